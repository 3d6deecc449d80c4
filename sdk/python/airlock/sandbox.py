"""The :class:`Sandbox` class: create, connect to, list, inspect, extend and kill sandboxes."""
from __future__ import annotations

import functools
import re
import ssl
import time
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


def _network_body(network: Optional[Mapping[str, Any]], allow_internet_access: Optional[bool],
                  allow_out: Optional[Sequence[str]], deny_out: Optional[Sequence[str]]) -> Optional[Dict[str, Any]]:
    """The API's NetworkConfig from create()/set_network() arguments (None: nothing asked)."""
    if network is None and allow_internet_access is None and allow_out is None and deny_out is None:
        return None
    body: Dict[str, Any] = dict(network or {})
    if allow_internet_access is not None:
        body["mode"] = "allow" if allow_internet_access else "none"
    if allow_out is not None:
        if isinstance(allow_out, str):
            raise TypeError("allow_out must be a list of destinations, not a string")
        body["allow_out"] = [str(d) for d in allow_out]
    if deny_out is not None:
        if isinstance(deny_out, str):
            raise TypeError("deny_out must be a list of destinations, not a string")
        body["deny_out"] = [str(d) for d in deny_out]
    return body


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
               network: Optional[Mapping[str, Any]] = None, allow_internet_access: Optional[bool] = None,
               allow_out: Optional[Sequence[str]] = None, deny_out: Optional[Sequence[str]] = None,
               idempotency_key: Optional[str] = None,
               ports: Optional[Sequence[Union[int, Mapping[str, Any]]]] = None,
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
            network: the egress policy as the API takes it: ``{"mode": "none" | "allow", "allow_out": [...],
                "deny_out": [...]}``. Default: no network at all (loopback only).
            allow_internet_access: shorthand for ``mode="allow"`` (True) or ``"none"`` (False), as in E2B:
                the internet through NAT, never private ranges, cloud metadata, the host or other sandboxes.
            allow_out: destinations reachable even so: CIDRs, ``"ADDR:PORT"``, domains, ``"*.domain"``
                (with ``mode="none"`` only these; domains are resolved by the daemon's filtering resolver).
            deny_out: destinations never reachable (wins over ``allow_out``).
            idempotency_key: makes a retried create return the same sandbox (one is generated otherwise).
            ports: ports to expose through the daemon's port proxy: numbers (an access token is needed,
                see :meth:`create_port_token`) or ``{"port": 3000, "public": True}``. See :meth:`get_url`.
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
        net = _network_body(network, allow_internet_access, allow_out, deny_out)
        if net is not None:
            body["network"] = net
        if ports is not None:
            body["ports"] = [dict(p) if isinstance(p, Mapping) else int(p) for p in ports]
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
    def set_network(self, network: Optional[Mapping[str, Any]] = None, *, allow_internet_access: Optional[bool] = None,
                    allow_out: Optional[Sequence[str]] = None, deny_out: Optional[Sequence[str]] = None) -> Dict[str, Any]:
        """Replaces the running sandbox's egress policy (same arguments as :meth:`create`; what is not given
        takes its default: no network). Established connections to destinations it now denies are cut.
        Returns the new policy with the sandbox's addresses (``ipv4``/``ipv6``, None without an interface)."""
        body = _network_body(network, allow_internet_access, allow_out, deny_out) or {}
        result = self._http.request("PUT", self._base + "/network", json=body).json()
        if self._info is not None:
            self._info.network = dict(result)
        return result

    # -- exposed ports ----------------------------------------------------------------------------
    @_hybridmethod
    def expose_port(self, port: int, public: bool = False) -> Dict[str, Any]:
        """Exposes ``port`` through the daemon's port proxy (or changes whether it is public). Returns
        ``{"port", "public", "url", "host_url", "created_at"}``. Nothing needs to listen yet."""
        return self._http.post_json(self._base + "/ports", {"port": int(port), "public": bool(public)})

    @_hybridmethod
    def unexpose_port(self, port: int) -> None:
        """Stops exposing ``port``; its access tokens are revoked and its proxied connections closed."""
        self._http.request("DELETE", f"{self._base}/ports/{int(port)}")

    @_hybridmethod
    def list_ports(self) -> List[Dict[str, Any]]:
        """The exposed ports with their URLs (``url`` path-based, ``host_url`` with a proxy domain)."""
        return list(self._http.get_json(self._base + "/ports")["ports"])

    def _exposed(self, port: int) -> Dict[str, Any]:
        for p in self.list_ports():
            if p["port"] == int(port):
                return p
        raise errors.NotFoundError(f"sandbox {self.sandbox_id} does not expose port {port}", status=404,
                                   code="port_not_found")

    @_hybridmethod
    def get_url(self, port: int) -> str:
        """The URL of an exposed port: host-based when the daemon has a proxy domain, else path-based
        (``http://DAEMON/p/ID/PORT/``). Non-public ports need a token (:meth:`create_port_token`) in the
        ``X-Airlock-Port-Token`` header or the ``airlock_token`` query parameter."""
        p = self._exposed(port)
        return p["host_url"] or p["url"]

    @_hybridmethod
    def get_host(self, port: int) -> str:
        """``HOST[:PORT]`` of an exposed port's host-based URL, as in E2B (``{port}-{id}.{domain}``).
        Raises ``InvalidArgumentError`` when the daemon runs without ``--proxy-domain``: use :meth:`get_url`."""
        p = self._exposed(port)
        if not p["host_url"]:
            raise errors.InvalidArgumentError("the daemon has no proxy domain (airlockd --proxy-domain); use get_url()",
                                              code="invalid_parameter")
        return p["host_url"].split("://", 1)[1].rstrip("/")

    @_hybridmethod
    def create_port_token(self, port: int, expires_in: Optional[int] = None, name: Optional[str] = None) -> Dict[str, Any]:
        """Creates an access token for an exposed port. Returns ``{"token", "token_id", "expires_at", ...}``;
        ``token`` (the secret) is shown only here. ``expires_in``: seconds (default: until revoked)."""
        body: Dict[str, Any] = {}
        if expires_in is not None:
            body["expires_in"] = int(expires_in)
        if name is not None:
            body["name"] = name
        return self._http.post_json(f"{self._base}/ports/{int(port)}/tokens", body)

    @_hybridmethod
    def revoke_port_token(self, port: int, token_id: str) -> None:
        """Revokes an access token (requests carrying it are refused from now on)."""
        self._http.request("DELETE", f"{self._base}/ports/{int(port)}/tokens/{quote_path(token_id)}")

    @_hybridmethod
    def wait_for_port(self, port: int, timeout: float = 30) -> bool:
        """Waits until something accepts TCP connections on ``port`` inside the sandbox (127.0.0.1 or ::1;
        the port need not be exposed). Returns False if nothing did within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = max(0.0, deadline - time.monotonic())
            chunk = min(left, 300.0)
            result = self._http.get_json(f"{self._base}/ports/{int(port)}/wait", params={"timeout": round(chunk, 3)},
                                         timeout=chunk + 30)
            if result["ready"] or time.monotonic() >= deadline:
                return bool(result["ready"])

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
