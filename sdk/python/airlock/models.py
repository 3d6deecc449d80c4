"""Typed views of the API's objects (dataclasses). Each has ``from_json`` and keeps the raw JSON object in
``.raw``, so fields a newer daemon adds are not lost. Timestamps are timezone-aware ``datetime``s (UTC)."""
from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional

from . import errors

__all__ = [
    "SandboxState",
    "Usage",
    "SandboxInfo",
    "CommandResult",
    "OutputChunk",
    "OutputBufferInfo",
    "ProcessInfo",
    "EntryInfo",
    "EntryList",
    "FilesystemEvent",
    "LogEntry",
    "LogPage",
    "WriteEntry",
    "parse_timestamp",
]


class SandboxState:
    """The values of :attr:`SandboxInfo.state`."""

    STARTING = "starting"
    RUNNING = "running"
    STOPPED = "stopped"
    TERMINATED = "terminated"


def parse_timestamp(value: Any) -> Optional[datetime]:
    """Parses the API's RFC 3339 timestamps (``2026-11-21T10:00:00.123Z``); ``None`` stays ``None``."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt


def _int(value: Any, default: int = 0) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _opt_int(value: Any) -> Optional[int]:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _float(value: Any, default: float = 0.0) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _opt_str(value: Any) -> Optional[str]:
    return value if isinstance(value, str) else None


def decode_data(data: Any, encoding: Any) -> bytes:
    """The bytes of an output event's or log entry's ``data`` in its ``encoding``."""
    if not isinstance(data, str):
        return b""
    if encoding == "base64":
        return base64.b64decode(data)
    return data.encode("utf-8")


@dataclass
class Usage:
    """Resource usage from the sandbox's cgroup (``Sandbox.usage``)."""

    cpu_seconds: float = 0.0
    memory_bytes: int = 0
    memory_peak_bytes: int = 0
    disk_bytes: int = 0
    pids: int = 0
    oom_kills: int = 0
    sampled_at: Optional[datetime] = None

    @classmethod
    def from_json(cls, d: Any) -> "Usage":
        d = d if isinstance(d, dict) else {}
        return cls(
            cpu_seconds=_float(d.get("cpu_seconds")),
            memory_bytes=_int(d.get("memory_bytes")),
            memory_peak_bytes=_int(d.get("memory_peak_bytes")),
            disk_bytes=_int(d.get("disk_bytes")),
            pids=_int(d.get("pids")),
            oom_kills=_int(d.get("oom_kills")),
            sampled_at=parse_timestamp(d.get("sampled_at")),
        )


@dataclass
class SandboxInfo:
    """A sandbox as the daemon describes it (``GET /v1/sandboxes/{id}``). ``env`` is never returned."""

    sandbox_id: str
    template: str
    state: str
    stop_reason: Optional[str]
    stop_message: Optional[str]
    exit_code: Optional[int]
    created_at: Optional[datetime]
    started_at: Optional[datetime]
    ended_at: Optional[datetime]
    expires_at: Optional[datetime]
    last_activity_at: Optional[datetime]
    timeout: int
    idle_timeout: Optional[int]
    cpu: float
    memory_mb: int
    disk_mb: int
    pids: int
    workdir: str
    command: Optional[List[str]]
    metadata: Dict[str, str]
    network: Dict[str, Any]
    usage: Usage
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_running(self) -> bool:
        return self.state == SandboxState.RUNNING

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "SandboxInfo":
        if not isinstance(d, dict) or not isinstance(d.get("sandbox_id"), str):
            raise errors.InternalServerError(f"not a sandbox object: {d!r:.200}", code="invalid_response")
        command = d.get("command")
        return cls(
            sandbox_id=d["sandbox_id"],
            template=d.get("template") or "",
            state=d.get("state") or "",
            stop_reason=_opt_str(d.get("stop_reason")),
            stop_message=_opt_str(d.get("stop_message")),
            exit_code=_opt_int(d.get("exit_code")),
            created_at=parse_timestamp(d.get("created_at")),
            started_at=parse_timestamp(d.get("started_at")),
            ended_at=parse_timestamp(d.get("ended_at")),
            expires_at=parse_timestamp(d.get("expires_at")),
            last_activity_at=parse_timestamp(d.get("last_activity_at")),
            timeout=_int(d.get("timeout")),
            idle_timeout=_opt_int(d.get("idle_timeout")),
            cpu=_float(d.get("cpu")),
            memory_mb=_int(d.get("memory_mb")),
            disk_mb=_int(d.get("disk_mb")),
            pids=_int(d.get("pids")),
            workdir=d.get("workdir") or "",
            command=list(command) if isinstance(command, list) else None,
            metadata=dict(d.get("metadata") or {}),
            network=dict(d.get("network") or {}),
            usage=Usage.from_json(d.get("usage")),
            raw=dict(d),
        )


@dataclass
class CommandResult:
    """The result of a finished command. A non-zero exit is a result, not an exception: look at
    ``exit_code`` / ``ok``, or call :meth:`check` to raise :class:`~airlock.errors.CommandExitError`.

    ``reason`` is ``exited``, ``signaled``, ``timeout``, ``oom``, ``sandbox_stopped`` or
    ``failed_to_start`` (then ``error`` says why and ``exit_code`` is 126 or 127)."""

    pid: int
    exit_code: int
    stdout: str = ""
    stderr: str = ""
    signal: Optional[str] = None
    reason: Optional[str] = None
    error: Optional[str] = None
    started_at: Optional[datetime] = None
    ended_at: Optional[datetime] = None
    duration_ms: float = 0.0
    cpu_time_ms: float = 0.0
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when the command exited with status 0."""
        return self.exit_code == 0 and self.reason in (None, "exited")

    def check(self) -> "CommandResult":
        """Raises :class:`~airlock.errors.CommandExitError` unless the command exited 0; returns self."""
        if not self.ok:
            raise errors.CommandExitError(self)
        return self

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "CommandResult":
        encoding = d.get("encoding")

        def text(name: str) -> str:
            value = d.get(name)
            if not isinstance(value, str):
                return ""
            if encoding == "base64":
                return base64.b64decode(value).decode("utf-8", "replace")
            return value

        return cls(
            pid=_int(d.get("pid")),
            exit_code=_int(d.get("exit_code"), -1),
            stdout=text("stdout"),
            stderr=text("stderr"),
            signal=_opt_str(d.get("signal")),
            reason=_opt_str(d.get("reason")),
            error=_opt_str(d.get("error")),
            started_at=parse_timestamp(d.get("started_at")),
            ended_at=parse_timestamp(d.get("ended_at")),
            duration_ms=_float(d.get("duration_ms")),
            cpu_time_ms=_float(d.get("cpu_time_ms")),
            stdout_bytes=_int(d.get("stdout_bytes")),
            stderr_bytes=_int(d.get("stderr_bytes")),
            stdout_truncated=bool(d.get("stdout_truncated")),
            stderr_truncated=bool(d.get("stderr_truncated")),
            raw=dict(d),
        )


@dataclass
class OutputChunk:
    """A piece of a process's output: ``stream`` is ``"stdout"`` or ``"stderr"``; ``offset`` is its
    position in the process's combined output (for re-attaching with ``offset=``)."""

    stream: str
    data: str
    offset: int
    raw_bytes: bytes = b""

    @property
    def end_offset(self) -> int:
        return self.offset + len(self.raw_bytes)


@dataclass
class OutputBufferInfo:
    """A process's output ring buffer: bytes ``start_offset`` .. ``end_offset`` are still kept."""

    start_offset: int = 0
    end_offset: int = 0
    buffer_bytes: int = 0

    @classmethod
    def from_json(cls, d: Any) -> "OutputBufferInfo":
        d = d if isinstance(d, dict) else {}
        return cls(_int(d.get("start_offset")), _int(d.get("end_offset")), _int(d.get("buffer_bytes")))


@dataclass
class ProcessInfo:
    """A process in a sandbox (``GET /processes/{pid}``). ``kind`` is ``run``, ``stream`` or
    ``background``; ``state`` is ``running`` or ``exited``."""

    pid: int
    kind: str
    argv: List[str]
    cwd: str
    user: str
    pty: Optional[Dict[str, int]]
    state: str
    stdin_open: bool
    timeout: Optional[float]
    started_at: Optional[datetime]
    ended_at: Optional[datetime]
    exit_code: Optional[int]
    signal: Optional[str]
    reason: Optional[str]
    error: Optional[str]
    output: OutputBufferInfo
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_running(self) -> bool:
        return self.state == "running"

    @property
    def cmd(self) -> str:
        """The command line: the shell string for ``cmd`` processes, else the argv joined."""
        if len(self.argv) == 3 and self.argv[0] == "/bin/sh" and self.argv[1] == "-c":
            return self.argv[2]
        return " ".join(self.argv)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "ProcessInfo":
        if not isinstance(d, dict) or not isinstance(d.get("pid"), int):
            raise errors.InternalServerError(f"not a process object: {d!r:.200}", code="invalid_response")
        pty = d.get("pty")
        timeout = d.get("timeout")
        return cls(
            pid=d["pid"],
            kind=d.get("kind") or "",
            argv=list(d.get("argv") or []),
            cwd=d.get("cwd") or "",
            user=d.get("user") or "",
            pty=dict(pty) if isinstance(pty, dict) else None,
            state=d.get("state") or "",
            stdin_open=bool(d.get("stdin_open")),
            timeout=float(timeout) if isinstance(timeout, (int, float)) else None,
            started_at=parse_timestamp(d.get("started_at")),
            ended_at=parse_timestamp(d.get("ended_at")),
            exit_code=_opt_int(d.get("exit_code")),
            signal=_opt_str(d.get("signal")),
            reason=_opt_str(d.get("reason")),
            error=_opt_str(d.get("error")),
            output=OutputBufferInfo.from_json(d.get("output")),
            raw=dict(d),
        )


@dataclass
class EntryInfo:
    """A file-system entry inside a sandbox. ``type`` is ``file``, ``dir``, ``symlink`` or ``other``;
    ``mode`` is the octal permission string (``"0644"``); ``path`` is absolute."""

    name: str
    path: str
    type: str
    size: int
    mode: str
    uid: int
    gid: int
    modified_at: Optional[datetime]
    symlink_target: Optional[str]
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_dir(self) -> bool:
        return self.type == "dir"

    @property
    def is_file(self) -> bool:
        return self.type == "file"

    @property
    def permissions(self) -> int:
        """The mode as an integer (``0o644``)."""
        try:
            return int(self.mode, 8)
        except ValueError:
            return 0

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "EntryInfo":
        if not isinstance(d, dict):
            raise errors.InternalServerError(f"not an entry object: {d!r:.200}", code="invalid_response")
        return cls(
            name=d.get("name") or "",
            path=d.get("path") or "",
            type=d.get("type") or "",
            size=_int(d.get("size")),
            mode=d.get("mode") or "",
            uid=_int(d.get("uid")),
            gid=_int(d.get("gid")),
            modified_at=parse_timestamp(d.get("modified_at")),
            symlink_target=_opt_str(d.get("symlink_target")),
            raw=dict(d),
        )


class EntryList(List[EntryInfo]):
    """A directory listing: a list of :class:`EntryInfo` sorted by path, plus ``truncated`` (True when
    the listing hit its ``limit`` and more entries exist)."""

    truncated: bool = False


@dataclass
class FilesystemEvent:
    """A change seen by :meth:`Files.watch_dir`: ``type`` is ``create``, ``write``, ``remove``,
    ``rename`` or ``chmod`` (and ``overflow`` when events were lost; re-list to resync)."""

    type: str
    path: str
    is_dir: bool = False
    timestamp: Optional[datetime] = None
    old_path: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "FilesystemEvent":
        return cls(
            type=d.get("type") or "",
            path=d.get("path") or "",
            is_dir=bool(d.get("is_dir")),
            timestamp=parse_timestamp(d.get("timestamp")),
            old_path=_opt_str(d.get("old_path")),
            raw=dict(d),
        )


@dataclass
class LogEntry:
    """An entry of a sandbox's log: ``type`` is ``lifecycle`` (see ``event``, ``message``), ``stdout``
    or ``stderr`` (``pid``, ``data``) or ``gap`` (older entries were rotated out)."""

    type: str
    cursor: str
    timestamp: Optional[datetime] = None
    event: Optional[str] = None
    message: Optional[str] = None
    pid: Optional[int] = None
    data: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "LogEntry":
        data = d.get("data")
        if isinstance(data, str) and d.get("encoding") == "base64":
            data = base64.b64decode(data).decode("utf-8", "replace")
        return cls(
            type=d.get("type") or "",
            cursor=str(d.get("cursor") or ""),
            timestamp=parse_timestamp(d.get("timestamp")),
            event=_opt_str(d.get("event")),
            message=_opt_str(d.get("message")),
            pid=_opt_int(d.get("pid")),
            data=data if isinstance(data, str) else None,
            raw=dict(d),
        )


@dataclass
class LogPage:
    """One page of a sandbox's log; pass ``next_cursor`` back to read only newer entries."""

    entries: List[LogEntry]
    next_cursor: str
    has_more: bool


@dataclass
class WriteEntry:
    """One file for :meth:`Files.write_files`: ``data`` as ``str`` (sent as UTF-8) or ``bytes`` (sent as
    base64); ``mode`` such as ``"0755"``."""

    path: str
    data: Any
    mode: Optional[str] = None
