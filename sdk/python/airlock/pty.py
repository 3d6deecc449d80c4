"""``sandbox.pty``: interactive terminals over the attach WebSocket (RFC 6455, standard library only).

A PTY is an ordinary background process started with a terminal size; ``create()`` starts it and
attaches. Binary frames carry a channel byte (0 stdin, 1 stdout, 2 stderr); text frames carry JSON control
messages (``resize``, ``signal``, ``close_stdin`` from the client; ``attached``, ``gap``, ``exit``,
``error`` from the daemon)."""
from __future__ import annotations

import json
import queue
import signal as signal_mod
import threading
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Union

from . import errors
from ._http import quote_path
from ._websocket import OP_BINARY, OP_CLOSE, OP_TEXT, WebSocket
from .commands import Cmd, exec_body, signal_name
from .models import CommandResult, ProcessInfo, parse_timestamp

if TYPE_CHECKING:  # pragma: no cover
    from .sandbox import Sandbox

__all__ = ["Pty", "PtyHandle", "AttachSession"]

DataCallback = Callable[[bytes], Any]
_FRAME_MAX = 64 * 1024 - 1  # client frames are at most 64 KiB, channel byte included
_DEFAULT_SHELL: Sequence[str] = ("/bin/bash", "-i", "-l")


class AttachSession:
    """A WebSocket attached to a process (``GET /processes/{pid}/attach``). Output (bytes) goes to
    ``on_data(data)`` or queues up for iteration; ``wait()`` returns once the process exited.

    Works for any process: for a PTY the terminal's output comes on channel 1 only; for other processes
    stderr (channel 2) goes to ``on_stderr`` when given, else to ``on_data`` too."""

    def __init__(self, sandbox: "Sandbox", pid: int, ws: WebSocket, *, on_data: Optional[DataCallback] = None,
                 on_stderr: Optional[DataCallback] = None) -> None:
        self._sandbox = sandbox
        self.pid = pid
        self._ws = ws
        self._on_data = on_data
        self._on_stderr = on_stderr
        self._queue: "queue.Queue[Optional[bytes]]" = queue.Queue()
        self._output: List[bytes] = []  # channel 1 (stdout; a terminal's whole output)
        self._stderr: List[bytes] = []  # channel 2
        self._lock = threading.Lock()
        self.offset: Optional[int] = None  # position of the next output byte (for re-attaching)
        self.lost_bytes = 0
        self.exit_event: Optional[Dict[str, Any]] = None
        self.error: Optional[BaseException] = None
        self.attached = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._reader, name=f"airlock-attach-{pid}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} pid={self.pid}>"

    def _reader(self) -> None:
        try:
            while True:
                opcode, payload = self._ws.recv()
                if opcode == OP_CLOSE:
                    code, reason = payload
                    if self.exit_event is None and self.error is None and not self._closing and code != 1000:
                        self.error = errors.WebSocketError(f"attach closed with code {code}: {reason}",
                                                           code="websocket_closed")
                    return
                if opcode == OP_BINARY:
                    if not payload:
                        continue
                    channel, data = payload[0], payload[1:]
                    with self._lock:
                        (self._stderr if channel == 2 else self._output).append(data)
                        if self.offset is not None:
                            self.offset += len(data)
                    if channel == 2 and self._on_stderr is not None:
                        self._on_stderr(data)
                    elif self._on_data is not None:
                        self._on_data(data)
                    else:
                        self._queue.put(data)
                elif opcode == OP_TEXT:
                    try:
                        msg = json.loads(payload)
                    except ValueError:
                        continue
                    kind = msg.get("type") if isinstance(msg, dict) else None
                    if kind == "attached":
                        self.offset = int(msg.get("offset") or 0)
                        self.attached.set()
                    elif kind == "gap":
                        self.lost_bytes += int(msg.get("length") or 0)
                        if isinstance(msg.get("offset"), int):
                            self.offset = msg["offset"] + int(msg.get("length") or 0)
                    elif kind == "exit":
                        self.exit_event = msg
                    elif kind == "error":
                        detail = msg.get("error") if isinstance(msg.get("error"), dict) else {}
                        err = errors.error_from_detail(detail)
                        if detail.get("code") == "stdin_closed":
                            continue  # a dropped stdin frame; the session goes on
                        self.error = err
        except BaseException as e:  # noqa: BLE001 - reported by wait()
            if not self._closing:
                self.error = e
        finally:
            self.attached.set()
            self._queue.put(None)
            try:
                self._ws.close()
            except OSError:
                pass

    # -- output -----------------------------------------------------------------------------------
    @property
    def output(self) -> bytes:
        """Every stdout byte (channel 1; for a PTY, everything the terminal showed) received so far."""
        with self._lock:
            return b"".join(self._output)

    @property
    def stderr_output(self) -> bytes:
        """Every stderr byte (channel 2; never used by a PTY) received so far."""
        with self._lock:
            return b"".join(self._stderr)

    def __iter__(self) -> Iterator[bytes]:
        """Yields output as it arrives until the process exits or the session is closed (only when no
        ``on_data`` callback was given)."""
        while True:
            data = self._queue.get()
            if data is None:
                self._queue.put(None)
                return
            yield data

    def read(self, timeout: Optional[float] = None) -> bytes:
        """The next piece of output, waiting up to ``timeout``; ``b""`` on timeout or at the end."""
        try:
            data = self._queue.get(timeout=timeout)
        except queue.Empty:
            return b""
        if data is None:
            self._queue.put(None)
            return b""
        return data

    # -- input and control ------------------------------------------------------------------------
    def send_stdin(self, data: Union[str, bytes]) -> None:
        """Sends input (a terminal's keystrokes) to the process."""
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        for i in range(0, max(len(raw), 1), _FRAME_MAX):
            self._ws.send_binary(b"\x00" + raw[i:i + _FRAME_MAX])

    def resize(self, cols: int, rows: int) -> None:
        """Resizes the terminal (SIGWINCH to its foreground process group)."""
        self._ws.send_text(json.dumps({"type": "resize", "cols": int(cols), "rows": int(rows)}))

    def signal(self, sig: Union[str, int, signal_mod.Signals] = "SIGINT") -> None:
        self._ws.send_text(json.dumps({"type": "signal", "signal": signal_name(sig)}))

    def close_stdin(self) -> None:
        self._ws.send_text(json.dumps({"type": "close_stdin"}))

    def kill(self) -> bool:
        """SIGKILLs the process (through the REST API). False if it had already exited."""
        return self._sandbox.commands.kill(self.pid)

    def disconnect(self) -> None:
        """Closes the WebSocket; the process keeps running (re-attach with ``connect(pid)``)."""
        self._closing = True
        self._ws.close()
        if threading.current_thread() is not self._thread:
            self._thread.join(5)

    close = disconnect

    def __enter__(self) -> "AttachSession":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.disconnect()

    def wait(self, timeout: Optional[float] = None) -> CommandResult:
        """Waits until the process exits (its ``exit`` message) and returns its result; ``stdout`` holds
        the output received through this session (decoded as UTF-8)."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise errors.TimeoutError(f"process {self.pid} still runs after {timeout} s", code="wait_timeout")
        if self.exit_event is None:
            if self.error is not None:
                raise self.error
            # Disconnected without an exit message: ask the REST API.
            info = self._sandbox.commands.get(self.pid)
            if info.is_running:
                raise errors.WebSocketError(f"the attach session of process {self.pid} ended before it exited",
                                            code="websocket_closed")
            return _result(info.raw, self.output, self.stderr_output)
        return _result(self.exit_event, self.output, self.stderr_output)


def _result(ev: Mapping[str, Any], stdout: bytes, stderr: bytes) -> CommandResult:
    exit_code = ev.get("exit_code")
    return CommandResult(
        pid=int(ev.get("pid") or 0), exit_code=exit_code if isinstance(exit_code, int) else -1,
        stdout=stdout.decode("utf-8", "replace"), stderr=stderr.decode("utf-8", "replace"),
        signal=ev.get("signal"), reason=ev.get("reason"), error=ev.get("error"),
        ended_at=parse_timestamp(ev.get("ended_at")), duration_ms=float(ev.get("duration_ms") or 0.0),
        cpu_time_ms=float(ev.get("cpu_time_ms") or 0.0), stdout_bytes=len(stdout), stderr_bytes=len(stderr),
        raw=dict(ev))


class PtyHandle(AttachSession):
    """An interactive terminal session (from ``sandbox.pty.create()`` or ``connect()``)."""


class Pty:
    """Pseudo-terminals: ``sandbox.pty``."""

    def __init__(self, sandbox: "Sandbox") -> None:
        self._sandbox = sandbox

    def create(self, cols: int = 80, rows: int = 24, *, cmd: Optional[Cmd] = None,
               envs: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None,
               user: Union[str, int, None] = None, timeout: Optional[float] = None,
               on_data: Optional[DataCallback] = None, attach_timeout: float = 30.0) -> PtyHandle:
        """Starts ``cmd`` (default an interactive login ``bash``) on a new terminal of ``cols`` x
        ``rows`` and attaches to it. Output arrives as bytes on ``on_data`` (or iterate the handle);
        ``handle.send_stdin("ls\\n")`` types; ``handle.wait()`` returns when it exits."""
        env = {"TERM": "xterm-256color"}
        env.update(envs or {})
        body = exec_body(list(_DEFAULT_SHELL) if cmd is None else cmd, envs=env, cwd=cwd, user=user,
                         timeout=timeout)
        body["pty"] = {"cols": int(cols), "rows": int(rows)}
        body["open_stdin"] = True
        info = self._sandbox.commands._start(body)
        try:
            return self.connect(info.pid, on_data=on_data, offset=0, attach_timeout=attach_timeout)
        except BaseException:
            self._sandbox.commands.kill(info.pid)
            raise

    def connect(self, pid: int, *, on_data: Optional[DataCallback] = None, offset: Optional[int] = None,
                attach_timeout: float = 30.0) -> PtyHandle:
        """Attaches to an existing process (PTY or not); output is replayed from ``offset`` (default the
        oldest byte still buffered), then follows."""
        return PtyHandle(self._sandbox, int(pid), self._attach(pid, offset, attach_timeout), on_data=on_data)

    def _attach(self, pid: int, offset: Optional[int], attach_timeout: float) -> WebSocket:
        http = self._sandbox._http
        path = f"/v1/sandboxes/{quote_path(self._sandbox.sandbox_id)}/processes/{int(pid)}/attach"
        target = http.url_path(path, {"offset": offset})
        return WebSocket.connect(http, target, subprotocols=("airlock.attach.v1",), timeout=attach_timeout)

    def resize(self, pid: int, cols: int, rows: int) -> ProcessInfo:
        """Resizes a PTY through the REST API."""
        return self._sandbox.commands.resize(pid, cols, rows)

    def send_stdin(self, pid: int, data: Union[str, bytes]) -> None:
        """Types into a PTY through the REST API."""
        self._sandbox.commands.send_stdin(pid, data)

    def kill(self, pid: int) -> bool:
        return self._sandbox.commands.kill(pid)
