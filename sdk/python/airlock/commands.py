"""``sandbox.commands``: run commands (blocking, streamed, or in the background) and manage processes."""
from __future__ import annotations

import base64
import codecs
import signal as signal_mod
import threading
import time
import uuid
from typing import (TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Union,
                    overload)

from . import errors
from ._http import is_file_like, quote_path
from .models import CommandResult, OutputChunk, ProcessInfo, decode_data, parse_timestamp

if TYPE_CHECKING:  # pragma: no cover
    from typing import Literal

    from ._http import HttpClient, StreamResponse
    from .sandbox import Sandbox

__all__ = ["Commands", "CommandHandle", "OutputCallback"]

OutputCallback = Callable[[str], Any]
"""Called with each piece of output text as it arrives."""

Cmd = Union[str, Sequence[str]]
StdinData = Union[str, bytes, bytearray, memoryview]

_MARGIN = 30.0  # seconds a request may take beyond the command's own timeout
_DEFAULT_RUN_TIMEOUT = 60.0  # the API's default command timeout
_JSON_STDIN_MAX = 1 << 20  # the API's limit for inline stdin (characters of the JSON string)
_WAIT_MAX = 300.0  # the API's long-poll limit


def exec_body(cmd: Cmd, *, envs: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None,
              user: Union[str, int, None] = None, stdin: Optional[StdinData] = None,
              timeout: Optional[float] = None) -> Dict[str, Any]:
    """The request fields shared by commands/run, commands/stream and processes."""
    body: Dict[str, Any] = {}
    if isinstance(cmd, str):
        if not cmd:
            raise errors.InvalidArgumentError("cmd must not be empty", code="invalid_argument", field="cmd")
        body["cmd"] = cmd
    else:
        argv = [str(a) for a in cmd]
        if not argv:
            raise errors.InvalidArgumentError("argv must not be empty", code="invalid_argument", field="argv")
        body["argv"] = argv
    if envs:
        body["env"] = {str(k): str(v) for k, v in envs.items()}
    if cwd is not None:
        body["cwd"] = str(cwd)
    if user is not None:
        body["user"] = str(user)
    if stdin is not None:
        if isinstance(stdin, str):
            body["stdin"] = stdin
        else:
            body["stdin"] = base64.b64encode(bytes(stdin)).decode("ascii")
            body["stdin_encoding"] = "base64"
    if timeout is not None:
        if timeout <= 0:
            raise errors.InvalidArgumentError("timeout must be positive (seconds)", code="invalid_argument",
                                              field="timeout")
        body["timeout"] = timeout
    return body


def signal_name(sig: Union[str, int, signal_mod.Signals]) -> str:
    """``"SIGTERM"`` for ``"SIGTERM"``, ``"term"``, ``15`` or ``signal.SIGTERM``."""
    if isinstance(sig, signal_mod.Signals):
        return sig.name
    if isinstance(sig, int):
        return signal_mod.Signals(sig).name
    name = str(sig).strip().upper()
    return name if name.startswith("SIG") else "SIG" + name


class _OutputCollector:
    """Accumulates a process's output from ``ProcessEvent``s (base64 or utf-8), decoding text per stream
    incrementally so that a character split across chunks is not corrupted."""

    def __init__(self, on_stdout: Optional[OutputCallback], on_stderr: Optional[OutputCallback]) -> None:
        self.on_stdout = on_stdout
        self.on_stderr = on_stderr
        self.parts: Dict[str, List[str]] = {"stdout": [], "stderr": []}
        self.byte_counts = {"stdout": 0, "stderr": 0}
        self._decoders = {name: codecs.getincrementaldecoder("utf-8")("replace") for name in self.parts}
        self.next_offset: Optional[int] = None
        self.lost_bytes = 0
        self.exit_event: Optional[Dict[str, Any]] = None
        self.start_event: Optional[Dict[str, Any]] = None
        self.lock = threading.Lock()

    def handle(self, event: Mapping[str, Any]) -> Optional[OutputChunk]:
        """Takes one event; returns the output chunk it carried, if any. Raises for ``error`` events."""
        kind = event.get("type")
        if kind in ("stdout", "stderr"):
            raw = decode_data(event.get("data"), event.get("encoding"))
            offset = event.get("offset") if isinstance(event.get("offset"), int) else (self.next_offset or 0)
            with self.lock:
                if event.get("encoding") == "base64":
                    text = self._decoders[kind].decode(raw)
                else:
                    text = event.get("data") or ""
                self.parts[kind].append(text)
                self.byte_counts[kind] += len(raw)
                self.next_offset = offset + len(raw)
            callback = self.on_stdout if kind == "stdout" else self.on_stderr
            if callback is not None and text:
                callback(text)
            return OutputChunk(kind, text, offset, raw)
        if kind == "gap":
            with self.lock:
                self.lost_bytes += int(event.get("length") or 0)
                self.next_offset = int(event.get("offset") or 0) + int(event.get("length") or 0)
        elif kind == "start":
            self.start_event = dict(event)
        elif kind == "exit":
            self.flush()
            self.exit_event = dict(event)
        elif kind == "error":
            detail = event.get("error") if isinstance(event.get("error"), dict) else {}
            raise errors.error_from_detail(detail)
        return None

    def flush(self) -> None:
        for kind, decoder in self._decoders.items():
            tail = decoder.decode(b"", final=True)
            if tail:
                self.parts[kind].append(tail)
                callback = self.on_stdout if kind == "stdout" else self.on_stderr
                if callback is not None:
                    callback(tail)
            decoder.reset()

    def text(self, kind: str) -> str:
        with self.lock:
            return "".join(self.parts[kind])


def _result_from(exit_event: Optional[Mapping[str, Any]], info: Optional[ProcessInfo],
                 collector: _OutputCollector) -> CommandResult:
    ev: Mapping[str, Any] = exit_event or {}
    started = parse_timestamp((collector.start_event or {}).get("started_at")) or (info.started_at if info else None)
    ended = parse_timestamp(ev.get("ended_at")) or (info.ended_at if info else None)
    duration = ev.get("duration_ms")
    if not isinstance(duration, (int, float)):
        duration = (ended - started).total_seconds() * 1000 if started and ended else 0.0
    exit_code = ev.get("exit_code", info.exit_code if info else None)
    return CommandResult(
        pid=int(ev.get("pid") or (info.pid if info else 0)),
        exit_code=int(exit_code) if isinstance(exit_code, int) else -1,
        stdout=collector.text("stdout"),
        stderr=collector.text("stderr"),
        signal=ev.get("signal", info.signal if info else None),
        reason=ev.get("reason", info.reason if info else None),
        error=ev.get("error", info.error if info else None),
        started_at=started,
        ended_at=ended,
        duration_ms=float(duration),
        cpu_time_ms=float(ev.get("cpu_time_ms") or 0.0),
        stdout_bytes=collector.byte_counts["stdout"],
        stderr_bytes=collector.byte_counts["stderr"],
        stdout_truncated=collector.lost_bytes > 0,  # a gap does not say which stream lost bytes
        stderr_truncated=collector.lost_bytes > 0,
        raw=dict(ev) if ev else (dict(info.raw) if info else {}),
    )


def _raise_on_timeout(result: CommandResult) -> CommandResult:
    if result.reason == "timeout":
        raise errors.TimeoutError(f"command timed out (pid {result.pid})", code="command_timeout", result=result)
    return result


class CommandHandle:
    """A process started with ``commands.run(..., background=True)`` or found with
    ``commands.connect(pid)``.

    - ``wait()`` blocks until it exits and returns its :class:`CommandResult` (with the output this
      handle received, or what the daemon's ring buffer still holds);
    - ``for chunk in handle`` yields :class:`OutputChunk`\\ s as they are produced, until it exits;
    - ``send_stdin()``, ``close_stdin()``, ``signal()``, ``kill()``, ``resize()`` act on it;
    - ``disconnect()`` stops receiving output (the process keeps running).

    When created with ``on_stdout``/``on_stderr`` a background thread follows the output and calls them.
    """

    def __init__(self, commands: "Commands", pid: int, info: Optional[ProcessInfo] = None, *,
                 on_stdout: Optional[OutputCallback] = None, on_stderr: Optional[OutputCallback] = None,
                 offset: Optional[int] = None) -> None:
        self._commands = commands
        self.pid = pid
        self.info = info
        self._collector = _OutputCollector(on_stdout, on_stderr)
        self._collector.next_offset = offset
        self._result: Optional[CommandResult] = None
        self._stream: Optional["StreamResponse"] = None
        self._thread: Optional[threading.Thread] = None
        self._thread_error: Optional[BaseException] = None
        self._disconnected = False
        if on_stdout is not None or on_stderr is not None:
            self._start_follower()

    def __repr__(self) -> str:
        return f"<CommandHandle pid={self.pid} sandbox={self._commands._sandbox_id}>"

    # -- output -----------------------------------------------------------------------------------
    @property
    def stdout(self) -> str:
        """The stdout received so far."""
        return self._collector.text("stdout")

    @property
    def stderr(self) -> str:
        """The stderr received so far."""
        return self._collector.text("stderr")

    @property
    def exit_code(self) -> Optional[int]:
        """The exit code once the handle has seen the process exit (after ``wait()``), else ``None``."""
        return self._result.exit_code if self._result else None

    def _open_output(self, follow: bool) -> "StreamResponse":
        params: Dict[str, Any] = {"encoding": "base64", "follow": follow}
        if self._collector.next_offset is not None:
            params["offset"] = self._collector.next_offset
        return self._commands._http.request(
            "GET", self._commands._path(f"/processes/{self.pid}/output"), params=params,
            headers={"Accept": "application/x-ndjson"}, stream=True, timeout=None)

    def _consume(self, stream: "StreamResponse") -> Iterator[OutputChunk]:
        """Yields the chunks of an output stream until its exit event or its end."""
        with stream:
            for event in stream.iter_events():
                chunk = self._collector.handle(event)
                if chunk is not None:
                    yield chunk
                if self._collector.exit_event is not None:
                    return

    def _follow(self) -> None:
        try:
            stream = self._open_output(follow=True)
            self._stream = stream
            for _ in self._consume(stream):
                if self._disconnected:
                    break
        except BaseException as e:  # noqa: BLE001 - reported by wait()
            if not (self._stream is not None and self._stream.aborted):
                self._thread_error = e

    def _start_follower(self) -> None:
        self._thread = threading.Thread(target=self._follow, name=f"airlock-output-{self.pid}", daemon=True)
        self._thread.start()

    def __iter__(self) -> Iterator[OutputChunk]:
        """Yields output chunks (replayed from where this handle stands, then live) until the process
        exits; then ``wait()`` returns at once."""
        if self._thread is not None:
            raise RuntimeError("this handle already follows the output with callbacks; use wait()")
        if self._collector.exit_event is not None:
            return
        stream = self._open_output(follow=True)
        self._stream = stream
        yield from self._consume(stream)
        if self._collector.exit_event is None and not stream.aborted:
            raise errors.APIConnectionError(f"the output stream of process {self.pid} ended before its exit",
                                            code="connection_error")

    def disconnect(self) -> None:
        """Stops following the output (callbacks stop); the process keeps running. Reconnect with
        ``sandbox.commands.connect(pid)``; ``wait()`` still works (it polls)."""
        self._disconnected = True
        self._collector.on_stdout = self._collector.on_stderr = None
        stream = self._stream
        if stream is not None:
            stream.abort()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)
            if not thread.is_alive():
                self._thread = None

    # -- state ------------------------------------------------------------------------------------
    def refresh(self) -> ProcessInfo:
        """Fetches the process's current state into ``info``."""
        self.info = self._commands.get(self.pid)
        return self.info

    def is_running(self) -> bool:
        return self.refresh().is_running

    def wait(self, timeout: Optional[float] = None, *, on_stdout: Optional[OutputCallback] = None,
             on_stderr: Optional[OutputCallback] = None) -> CommandResult:
        """Waits until the process exits and returns its result (a non-zero exit is a result; call
        ``result.check()`` to raise). The result's ``stdout``/``stderr`` hold the output this handle
        received: all of it when it followed the process from its start (``*_truncated`` is True when
        the daemon's ring buffer dropped some before it was read).

        ``timeout`` bounds the wait on this side (then :class:`~airlock.errors.TimeoutError`, code
        ``wait_timeout``, and the process keeps running; wait again to go on). A process killed at its
        own ``timeout`` raises :class:`~airlock.errors.TimeoutError` (code ``command_timeout``) with the
        result in ``.result``."""
        if self._result is not None:
            return _raise_on_timeout(self._result)
        deadline = None if timeout is None else time.monotonic() + timeout
        if on_stdout is not None:
            self._collector.on_stdout = on_stdout
        if on_stderr is not None:
            self._collector.on_stderr = on_stderr
        info: Optional[ProcessInfo] = None
        if self._collector.exit_event is None and not self._disconnected:
            # Follow the output until the exit event (in a thread, so that the wait can time out).
            if self._thread is None:
                self._start_follower()
            assert self._thread is not None
            self._thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if self._thread.is_alive():
                raise errors.TimeoutError(f"process {self.pid} still runs after {timeout} s", code="wait_timeout")
            error, self._thread_error = self._thread_error, None
            self._thread = None
            if error is not None and not isinstance(error, (errors.APIConnectionError, errors.TimeoutError)):
                raise error
            if self._collector.exit_event is None:
                self._disconnected = True  # the stream broke (a daemon restart?): poll instead
        if self._collector.exit_event is None:
            info = self._poll_until_exited(deadline, timeout)
            # Collect what the ring buffer still holds (from where this handle stands).
            try:
                for _ in self._consume(self._open_output(follow=False)):
                    pass
            except errors.NotFoundError:
                pass  # the record may be gone already; the result comes from `info`
        self._result = _result_from(self._collector.exit_event, info, self._collector)
        return _raise_on_timeout(self._result)

    def _poll_until_exited(self, deadline: Optional[float], timeout: Optional[float]) -> ProcessInfo:
        while True:
            remaining = _WAIT_MAX if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                raise errors.TimeoutError(f"process {self.pid} still runs after {timeout} s", code="wait_timeout")
            wait_for = min(remaining, _WAIT_MAX)
            data = self._commands._http.get_json(
                self._commands._path(f"/processes/{self.pid}/wait"), params={"timeout": round(wait_for, 3)},
                timeout=wait_for + _MARGIN)
            info = ProcessInfo.from_json(data)
            self.info = info
            if not info.is_running:
                return info

    # -- control ----------------------------------------------------------------------------------
    def send_stdin(self, data: Union[StdinData, Any], *, close: bool = False) -> None:
        """Writes ``data`` (str, bytes, or a binary file object, streamed) to the process's stdin."""
        self._commands.send_stdin(self.pid, data, close=close)

    def close_stdin(self) -> None:
        """Closes the process's stdin (EOF). Idempotent."""
        self._commands.close_stdin(self.pid)

    def signal(self, sig: Union[str, int, signal_mod.Signals] = "SIGTERM", *, process_group: bool = True) -> None:
        """Sends a signal (by default to the process's whole group)."""
        self._commands.signal(self.pid, sig, process_group=process_group)

    def kill(self) -> bool:
        """SIGKILLs the process group. Returns False when the process had already exited."""
        return self._commands.kill(self.pid)

    def resize(self, cols: int, rows: int) -> None:
        """Resizes the process's pseudo-terminal (only for PTY processes)."""
        self._commands.resize(self.pid, cols, rows)


class Commands:
    """Runs commands in a sandbox: ``sandbox.commands``."""

    def __init__(self, sandbox: "Sandbox") -> None:
        self._sandbox = sandbox

    @property
    def _http(self) -> "HttpClient":
        return self._sandbox._http

    @property
    def _sandbox_id(self) -> str:
        return self._sandbox.sandbox_id

    def _path(self, suffix: str) -> str:
        return f"/v1/sandboxes/{quote_path(self._sandbox_id)}{suffix}"

    @overload
    def run(self, cmd: Cmd, *, background: "Literal[False]" = ..., envs: Optional[Mapping[str, str]] = ...,
            cwd: Optional[str] = ..., user: Union[str, int, None] = ..., timeout: Optional[float] = ...,
            stdin: Optional[StdinData] = ..., on_stdout: Optional[OutputCallback] = ...,
            on_stderr: Optional[OutputCallback] = ..., open_stdin: Optional[bool] = ...,
            max_output_bytes: Optional[int] = ..., request_timeout: Optional[float] = ...) -> CommandResult: ...

    @overload
    def run(self, cmd: Cmd, *, background: "Literal[True]", envs: Optional[Mapping[str, str]] = ...,
            cwd: Optional[str] = ..., user: Union[str, int, None] = ..., timeout: Optional[float] = ...,
            stdin: Optional[StdinData] = ..., on_stdout: Optional[OutputCallback] = ...,
            on_stderr: Optional[OutputCallback] = ..., open_stdin: Optional[bool] = ...,
            max_output_bytes: Optional[int] = ..., request_timeout: Optional[float] = ...) -> CommandHandle: ...

    def run(self, cmd: Cmd, *, background: bool = False, envs: Optional[Mapping[str, str]] = None,
            cwd: Optional[str] = None, user: Union[str, int, None] = None, timeout: Optional[float] = None,
            stdin: Optional[StdinData] = None, on_stdout: Optional[OutputCallback] = None,
            on_stderr: Optional[OutputCallback] = None, open_stdin: Optional[bool] = None,
            max_output_bytes: Optional[int] = None,
            request_timeout: Optional[float] = None) -> Union[CommandResult, CommandHandle]:
        """Runs a command in the sandbox.

        Args:
            cmd: a shell string (run as ``/bin/sh -c CMD``) or a list of program and arguments (no shell).
            background: return a :class:`CommandHandle` as soon as the process runs, instead of waiting.
            envs: environment variables, merged over the defaults (PATH, HOME, LANG).
            cwd: working directory (default: the sandbox's workdir).
            user: user name or ``UID[:GID]`` inside the sandbox (default root).
            timeout: seconds after which the command's process group is killed. Default: 60 s for a
                foreground command (the API's default), none for a background one.
            stdin: data written to the command's stdin (str or bytes, up to 1 MiB); then stdin is
                closed unless ``open_stdin``. Larger input: start it in the background and stream it
                with ``handle.send_stdin(file_object)``.
            on_stdout, on_stderr: called with output text as it arrives (uses the streaming endpoint;
                for background commands, a thread follows the output).
            open_stdin: keep stdin open for :meth:`send_stdin` (default: True for background commands).
            max_output_bytes: for a blocking run without callbacks, the tail of each stream kept (default
                1 MiB, at most 16 MiB).
            request_timeout: the HTTP timeout; default the command's timeout plus 30 s.

        Returns:
            a :class:`CommandResult` (a non-zero exit is a result: see ``result.check()``), or with
            ``background=True`` a :class:`CommandHandle`.

        Raises:
            airlock.errors.TimeoutError: the command was killed at ``timeout`` (``.result`` has its output).
            airlock.errors.SandboxNotRunningError: the sandbox is not running.
        """
        body = exec_body(cmd, envs=envs, cwd=cwd, user=user, stdin=stdin, timeout=timeout)
        if background:
            body["open_stdin"] = True if open_stdin is None else bool(open_stdin)
            info = self._start(body)
            return CommandHandle(self, info.pid, info, on_stdout=on_stdout, on_stderr=on_stderr, offset=0)
        http_timeout = request_timeout if request_timeout is not None else (timeout or _DEFAULT_RUN_TIMEOUT) + _MARGIN
        if on_stdout is None and on_stderr is None and not open_stdin:
            if max_output_bytes is not None:
                body["max_output_bytes"] = max_output_bytes
            data = self._http.post_json(self._path("/commands/run"), body, timeout=http_timeout)
            return _raise_on_timeout(CommandResult.from_json(data))
        if open_stdin:
            body["open_stdin"] = True
        return self._run_streamed(body, on_stdout, on_stderr, http_timeout)

    def _run_streamed(self, body: Dict[str, Any], on_stdout: Optional[OutputCallback],
                      on_stderr: Optional[OutputCallback], http_timeout: float) -> CommandResult:
        collector = _OutputCollector(on_stdout, on_stderr)
        stream = self._http.request("POST", self._path("/commands/stream"), json=body,
                                    headers={"Accept": "application/x-ndjson"}, stream=True, timeout=http_timeout)
        with stream:  # leaving early (an exception in a callback, Ctrl-C) disconnects: the daemon kills it
            for event in stream.iter_events():
                collector.handle(event)
                if collector.exit_event is not None:
                    break
        if collector.exit_event is None:
            raise errors.APIConnectionError("the command's stream ended before its exit event",
                                            code="connection_error")
        return _raise_on_timeout(_result_from(collector.exit_event, None, collector))

    def stream(self, cmd: Cmd, *, envs: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None,
               user: Union[str, int, None] = None, timeout: Optional[float] = None,
               stdin: Optional[StdinData] = None, request_timeout: Optional[float] = None) -> Iterator[OutputChunk]:
        """Runs a command and yields its output chunks as they are produced (a generator; closing it
        early kills the command). Raises :class:`~airlock.errors.TimeoutError` on a timeout; the exit
        status is not reported: use ``run(on_stdout=...)`` for that."""
        body = exec_body(cmd, envs=envs, cwd=cwd, user=user, stdin=stdin, timeout=timeout)
        http_timeout = request_timeout if request_timeout is not None else (timeout or _DEFAULT_RUN_TIMEOUT) + _MARGIN
        collector = _OutputCollector(None, None)
        stream = self._http.request("POST", self._path("/commands/stream"), json=body,
                                    headers={"Accept": "application/x-ndjson"}, stream=True, timeout=http_timeout)
        with stream:
            for event in stream.iter_events():
                chunk = collector.handle(event)
                if chunk is not None:
                    yield chunk
                if collector.exit_event is not None:
                    break
        if collector.exit_event is not None:
            _raise_on_timeout(_result_from(collector.exit_event, None, collector))

    def _start(self, body: Dict[str, Any]) -> ProcessInfo:
        # The Idempotency-Key makes a retry after a lost answer return the same process.
        data = self._http.post_json(self._path("/processes"), body,
                                    headers={"Idempotency-Key": f"sdk-{uuid.uuid4().hex}"})
        return ProcessInfo.from_json(data)

    def start(self, cmd: Cmd, *, envs: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None,
              user: Union[str, int, None] = None, timeout: Optional[float] = None,
              stdin: Optional[StdinData] = None, open_stdin: bool = True,
              pty: Optional[Mapping[str, int]] = None, output_buffer_bytes: Optional[int] = None,
              on_stdout: Optional[OutputCallback] = None,
              on_stderr: Optional[OutputCallback] = None) -> CommandHandle:
        """Starts a background process; like ``run(..., background=True)`` with the process options
        (``pty={"cols": 80, "rows": 24}``, ``output_buffer_bytes``)."""
        body = exec_body(cmd, envs=envs, cwd=cwd, user=user, stdin=stdin, timeout=timeout)
        body["open_stdin"] = bool(open_stdin)
        if pty is not None:
            body["pty"] = {"cols": int(pty["cols"]), "rows": int(pty["rows"])}
        if output_buffer_bytes is not None:
            body["output_buffer_bytes"] = int(output_buffer_bytes)
        info = self._start(body)
        return CommandHandle(self, info.pid, info, on_stdout=on_stdout, on_stderr=on_stderr, offset=0)

    def list(self, state: Optional[str] = None) -> List[ProcessInfo]:
        """The sandbox's processes, oldest first: every running one started through the API and the last
        100 exited background ones. ``state``: ``"running"`` or ``"exited"``."""
        data = self._http.get_json(self._path("/processes"), params={"state": state})
        return [ProcessInfo.from_json(p) for p in (data or {}).get("processes", [])]

    def get(self, pid: int) -> ProcessInfo:
        """One process (:class:`~airlock.errors.ProcessNotFoundError` if unknown)."""
        return ProcessInfo.from_json(self._http.get_json(self._path(f"/processes/{int(pid)}")))

    def connect(self, pid: int, *, on_stdout: Optional[OutputCallback] = None,
                on_stderr: Optional[OutputCallback] = None, offset: Optional[int] = None) -> CommandHandle:
        """A handle on an existing process (after a restart of this program, say). Output is replayed from
        ``offset`` (default: the oldest byte the daemon still keeps)."""
        info = self.get(pid)
        return CommandHandle(self, info.pid, info, on_stdout=on_stdout, on_stderr=on_stderr, offset=offset)

    def send_stdin(self, pid: int, data: Union[StdinData, Any], *, close: bool = False) -> None:
        """Writes to a process's stdin: str or bytes (JSON), or a binary file object (streamed raw)."""
        path = self._path(f"/processes/{int(pid)}/stdin")
        if isinstance(data, str) and len(data) > 256 * 1024:
            data = data.encode("utf-8")  # the JSON form is limited to 1 MiB: stream it raw instead
        if is_file_like(data) or (isinstance(data, (bytes, bytearray, memoryview)) and len(data) > 512 * 1024):
            self._http.request("POST", path, body=data if is_file_like(data) else bytes(data),
                               headers={"Content-Type": "application/octet-stream"}, idempotent=False)
            if close:
                self.close_stdin(pid)
            return
        body: Dict[str, Any]
        if isinstance(data, str):
            body = {"data": data}
        else:
            body = {"data": base64.b64encode(bytes(data)).decode("ascii"), "encoding": "base64"}
        if close:
            body["close"] = True
        self._http.post_json(path, body)

    def close_stdin(self, pid: int) -> None:
        """Closes a process's stdin (EOF); idempotent."""
        self._http.request("POST", self._path(f"/processes/{int(pid)}/stdin/close"), idempotent=True)

    def signal(self, pid: int, sig: Union[str, int, signal_mod.Signals] = "SIGTERM", *,
               process_group: bool = True) -> ProcessInfo:
        """Sends a signal (``"SIGINT"``, ``"TERM"``, ``signal.SIGHUP``, 9, ...) to a process, by default
        to its whole process group."""
        body = {"signal": signal_name(sig), "process_group": bool(process_group)}
        return ProcessInfo.from_json(self._http.post_json(self._path(f"/processes/{int(pid)}/signal"), body))

    def kill(self, pid: int) -> bool:
        """SIGKILLs a process and its group. Returns False when it had already exited or is unknown."""
        try:
            self.signal(pid, "SIGKILL")
            return True
        except (errors.ProcessNotRunningError, errors.ProcessNotFoundError):
            return False

    def resize(self, pid: int, cols: int, rows: int) -> ProcessInfo:
        """Resizes a PTY process's terminal."""
        data = self._http.post_json(self._path(f"/processes/{int(pid)}/resize"), {"cols": int(cols), "rows": int(rows)})
        return ProcessInfo.from_json(data)
