"""Airlock Python SDK: run untrusted code in Airlock sandboxes.

    import airlock

    with airlock.Sandbox.create(timeout=600, memory="1G") as sb:
        result = sb.commands.run("python3 -c 'print(6*7)'")
        print(result.stdout)                       # 42
        sb.files.write("/root/data.txt", "hello")
        print(sb.files.read("/root/data.txt"))     # hello

The daemon's URL and key come from ``AIRLOCK_URL`` and ``AIRLOCK_API_KEY`` unless passed as ``api_url``
and ``api_key``. Standard library only; synchronous; thread-safe per Sandbox object.
"""
from . import errors
from ._version import __version__
from .commands import CommandHandle, Commands
from .errors import (AirlockError, AuthenticationError, CommandExitError, ConflictError, InvalidArgumentError,
                     NotFoundError, QuotaExceededError, RateLimitError, SandboxNotRunningError,
                     ServiceUnavailableError, TimeoutError)
from .files import Files, WatchHandle
from .logs import Logs
from .models import (CommandResult, EntryInfo, EntryList, FilesystemEvent, LogEntry, LogPage, OutputChunk,
                     ProcessInfo, SandboxInfo, SandboxState, Usage, WriteEntry)
from .pty import AttachSession, Pty, PtyHandle
from .sandbox import Sandbox

__all__ = [
    "__version__",
    "errors",
    "Sandbox",
    "SandboxInfo",
    "SandboxState",
    "Usage",
    "Commands",
    "CommandHandle",
    "CommandResult",
    "OutputChunk",
    "ProcessInfo",
    "Files",
    "WatchHandle",
    "EntryInfo",
    "EntryList",
    "FilesystemEvent",
    "WriteEntry",
    "Pty",
    "PtyHandle",
    "AttachSession",
    "Logs",
    "LogEntry",
    "LogPage",
    "AirlockError",
    "AuthenticationError",
    "CommandExitError",
    "ConflictError",
    "InvalidArgumentError",
    "NotFoundError",
    "QuotaExceededError",
    "RateLimitError",
    "SandboxNotRunningError",
    "ServiceUnavailableError",
    "TimeoutError",
]
