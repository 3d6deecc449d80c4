"""The :class:`Sandbox` class: create, connect to, list, inspect, extend and kill sandboxes."""
from __future__ import annotations

import functools
import re
import ssl
import uuid
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, TypeVar, Union

from . import errors
from ._http import HttpClient, quote_path
from .commands import Commands
from .files import Files
from .logs import Logs
from .models import SandboxInfo, SandboxState
from .pty import Pty

__all__ = ["Sandbox"]

T = TypeVar("T")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_CREATE_TIMEOUT = 120.0


def _mebibytes(value: Union[int, float, str, None], name: str) -> Optional[int]:
    """MiB from an int (MiB) or a size string (``"512M"``, ``"2G"``, ``"1.5GiB"``, ``"100MB"``)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise errors.InvalidArgumentError(f"{name} must be MiB or a size string", code="invalid_argument", field=name)
    if isinstance(value, (int, float)):
        return int(value)
    m = _SIZE.match(value)
    if not m:
        raise errors.InvalidArgumentError(f"invalid size {value!r} for {name} (e.g. 512, '512M', '2G')",
                                          code="invalid_argument", field=name)
    number, unit = float(m.group(1)), m.group(2).lower()
    factor = {"": 1, "k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}[unit]
    return max(1, int(round(number * factor)))


class _hybridmethod:
    """A method callable on the class with a sandbox id (``Sandbox.kill("sb-...")``) or on an
    instance (``sb.kill()``), as in E2B's SDK."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        functools.update_wrapper(self, func)  # type: ignore[arg-type]

    def __get__(self, obj: Any, cls: Any) -> Callable[..., Any]:
        if obj is not None:
            return functools.partial(self.func, obj)

        def on_class(sandbox_id: str, *args: Any, api_url: Optional[str] = None, api_key: Optional[str] = None,
                     **kwargs: Any) -> Any:
            sb = cls(sandbox_id, api_url=api_url, api_key=api_key)
            try:
                return self.func(sb, *args, **kwargs)
            finally:
                sb.close()

        functools.update_wrapper(on_class, self.func)
        return on_class


class Sandbox:
    """A sandbox on an ``airlockd``.

    Create one with :meth:`create` (or reach an existing one with :meth:`connect`), use
    :attr:`commands`, :attr:`files`, :attr:`pty` and :attr:`logs`, and :meth:`kill` it when done; as a
    context manager it is killed on exit::

        with airlock.Sandbox.create(timeout=600) as sb:
            print(sb.commands.run("python3 -c 'print(6*7)'").stdout)

    The daemon's URL and API key come from ``api_url``/``api_key``, else from the ``AIRLOCK_URL`` and
    ``AIRLOCK_API_KEY`` environment variables (default URL ``http://127.0.0.1:7070``). URLs may be
    ``http://``, ``https://`` or ``unix:/path/to/airlockd.sock``. Each Sandbox keeps a small pool of
    keep-alive connections; :meth:`close` releases them (``kill`` and the context manager do it too).
    """

    def __init__(self, sandbox_id: str, *, api_url: Optional[str] = None, api_key: Optional[str] = None,
                 request_timeout: Optional[float] = 60.0, ssl_context: Optional[ssl.SSLContext] = None,
                 info: Optional[SandboxInfo] = None, _http: Optional[HttpClient] = None) -> None:
        """Wraps a sandbox id without any request; prefer :meth:`create` and :meth:`connect`."""
        self.sandbox_id = sandbox_id
        self._http = _http or HttpClient(api_url, api_key, request_timeout=request_timeout, ssl_context=ssl_context)
        self._info = info
        self.commands = Commands(self)
        self.files = Files(self)
        self.pty = Pty(self)
        self.logs = Logs(self)

    def __repr__(self) -> str:
        return f"<Sandbox {self.sandbox_id} at {self._http.api_url}>"

    @property
    def _base(self) -> str:
        return f"/v1/sandboxes/{quote_path(self.sandbox_id)}"

    @property
    def info(self) -> Optional[SandboxInfo]:
        """The last :class:`SandboxInfo` this object received (``get_info()`` fetches a fresh one)."""
        return self._info

    @property
    def api_url(self) -> str:
        return self._http.api_url

    # -- class methods ----------------------------------------------------------------------------
    @classmethod
    def create(cls, template: Optional[str] = None, *, timeout: Optional[int] = None,
               cpu: Optional[float] = None, memory: Union[int, str, None] = None,
               disk: Union[int, str, None] = None, pids: Optional[int] = None,
               env: Optional[Mapping[str, str]] = None, envs: Optional[Mapping[str, str]] = None,
               metadata: Optional[Mapping[str, str]] = None, idle_timeout: Optional[int] = None,
               workdir: Optional[str] = None, command: Optional[Sequence[str]] = None,
               network: Optional[Mapping[str, Any]] = None, idempotency_key: Optional[str] = None,
               api_url: Optional[str] = None, api_key: Optional[str] = None,
               request_timeout: Optional[float] = 60.0, ssl_context: Optional[ssl.SSLContext] = None) -> "Sandbox":
        """Creates a sandbox and returns once it runs.

        Args:
            template: the template (default ``"host"``).
            timeout: maximum lifetime in seconds (default 300); extend it with :meth:`set_timeout`.
            cpu: CPUs (0.5 = half a core; default 1).
            memory: memory limit, MiB as an int or a size string such as ``"512M"`` or ``"2G"`` (default 512).
            disk: size of the writable layer, like ``memory`` (default 1024 MiB).
            pids: maximum tasks (default 256).
            env: environment variables for every command (``envs`` is accepted too, as in E2B).
            metadata: string labels, to find the sandbox with :meth:`list`.
            idle_timeout: stop after this many seconds without API activity (default: none).
            workdir: default working directory (default ``/root``).
            command: optional entry command (argv); the sandbox stops when it exits.
            network: network settings (``{"mode": "none"}``, the only mode today).
            idempotency_key: makes a retried create return the same sandbox (one is generated otherwise).
            api_url, api_key: the daemon; default ``$AIRLOCK_URL`` and ``$AIRLOCK_API_KEY``.
            request_timeout: the default HTTP timeout of this sandbox's requests.

        Raises:
            airlock.errors.InvalidArgumentError: a bad value (400) or one above the daemon's policy or an
                unknown template (422). ``QuotaExceededError`` (429), ``ServiceUnavailableError`` (503),
                ``AuthenticationError`` (401).
        """
        body: Dict[str, Any] = {}
        if template is not None:
            body["template"] = template
        if timeout is not None:
            body["timeout"] = int(timeout)
        if cpu is not None:
            body["cpu"] = cpu
        memory_mb = _mebibytes(memory, "memory")
        if memory_mb is not None:
            body["memory_mb"] = memory_mb
        disk_mb = _mebibytes(disk, "disk")
        if disk_mb is not None:
            body["disk_mb"] = disk_mb
        if pids is not None:
            body["pids"] = int(pids)
        all_env = dict(envs or {})
        all_env.update(env or {})
        if all_env:
            body["env"] = {str(k): str(v) for k, v in all_env.items()}
        if metadata:
            body["metadata"] = {str(k): str(v) for k, v in metadata.items()}
        if idle_timeout is not None:
            body["idle_timeout"] = int(idle_timeout)
        if workdir is not None:
            body["workdir"] = workdir
        if command is not None:
            body["command"] = [str(a) for a in command]
        if network is not None:
            body["network"] = dict(network)
        http = HttpClient(api_url, api_key, request_timeout=request_timeout, ssl_context=ssl_context)
        try:
            response = http.request("POST", "/v1/sandboxes", json=body,
                                    headers={"Idempotency-Key": idempotency_key or f"sdk-{uuid.uuid4().hex}"},
                                    timeout=max(request_timeout or 0, _CREATE_TIMEOUT))
            info = SandboxInfo.from_json(response.json())
        except BaseException:
            http.close()
            raise
        return cls(info.sandbox_id, info=info, _http=http)

    @classmethod
    def connect(cls, sandbox_id: str, *, api_url: Optional[str] = None, api_key: Optional[str] = None,
                request_timeout: Optional[float] = 60.0, ssl_context: Optional[ssl.SSLContext] = None) -> "Sandbox":
        """Returns a :class:`Sandbox` for an existing sandbox id (after checking that it exists).

        Raises :class:`~airlock.errors.SandboxNotFoundError` for an unknown id (or another tenant's).
        A stopped or terminated sandbox is returned too (``is_running()`` is False; commands and files
        then raise :class:`~airlock.errors.SandboxNotRunningError`)."""
        sb = cls(sandbox_id, api_url=api_url, api_key=api_key, request_timeout=request_timeout,
                 ssl_context=ssl_context)
        try:
            sb.get_info()
        except BaseException:
            sb.close()
            raise
        return sb

    @classmethod
    def iter(cls, *, metadata: Optional[Mapping[str, str]] = None, state: Union[str, Iterable[str], None] = None,
             page_size: Optional[int] = None, api_url: Optional[str] = None,
             api_key: Optional[str] = None) -> Iterator[SandboxInfo]:
        """Yields the tenant's sandboxes, newest first, fetching pages as needed. ``metadata`` matches
        sandboxes having every given label; ``state`` is one state or several (default: every state but
        ``terminated``)."""
        params: Dict[str, Any] = {}
        if metadata:
            params["metadata"] = [f"{k}={v}" for k, v in metadata.items()]
        if state is not None:
            params["state"] = [state] if isinstance(state, str) else list(state)
        if page_size is not None:
            params["limit"] = int(page_size)
        http = HttpClient(api_url, api_key)
        try:
            cursor: Optional[str] = None
            while True:
                data = http.get_json("/v1/sandboxes", params={**params, "cursor": cursor}) or {}
                for item in data.get("sandboxes", []):
                    yield SandboxInfo.from_json(item)
                cursor = data.get("next_cursor")
                if not cursor:
                    return
        finally:
            http.close()

    @classmethod
    def list(cls, *, metadata: Optional[Mapping[str, str]] = None, state: Union[str, Iterable[str], None] = None,
             page_size: Optional[int] = None, api_url: Optional[str] = None,
             api_key: Optional[str] = None) -> List[SandboxInfo]:
        """The tenant's sandboxes (every page), newest first; see :meth:`iter` for the filters."""
        return list(cls.iter(metadata=metadata, state=state, page_size=page_size, api_url=api_url,
                             api_key=api_key))

    # -- instance methods (also callable on the class with an id) ---------------------------------
    @_hybridmethod
    def get_info(self) -> SandboxInfo:
        """The sandbox's current state, deadlines, limits, metadata and resource usage."""
        self._info = SandboxInfo.from_json(self._http.get_json(self._base))
        return self._info

    def is_running(self) -> bool:
        """True while the sandbox is ``running`` (False once stopped, terminated or purged)."""
        try:
            return self.get_info().state == SandboxState.RUNNING
        except errors.NotFoundError:
            return False

    @_hybridmethod
    def set_timeout(self, timeout: int) -> SandboxInfo:
        """Sets the sandbox's deadline to ``timeout`` seconds from now (it may shorten it)."""
        self._info = SandboxInfo.from_json(self._http.post_json(self._base + "/timeout", {"timeout": int(timeout)}))
        return self._info

    @_hybridmethod
    def extend_timeout(self, seconds: int) -> SandboxInfo:
        """Moves the sandbox's deadline ``seconds`` later."""
        self._info = SandboxInfo.from_json(self._http.post_json(self._base + "/timeout", {"extend_by": int(seconds)}))
        return self._info

    @_hybridmethod
    def kill(self) -> bool:
        """Terminates the sandbox (every process; its resources are released). Returns True when the
        sandbox existed (also if it had already ended), False when it is unknown. Idempotent."""
        try:
            self._info = SandboxInfo.from_json(self._http.request("DELETE", self._base, timeout=_CREATE_TIMEOUT).json())
            return True
        except errors.NotFoundError:
            return False
        finally:
            self._http.close()

    def close(self) -> None:
        """Releases this object's pooled connections (the sandbox keeps running)."""
        self._http.close()

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.kill()
