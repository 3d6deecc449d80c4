"""HTTP transport: base URLs (http, https, unix socket), a keep-alive connection pool, retries for
idempotent requests, JSON and streamed responses, and the error mapping. Standard library only."""
from __future__ import annotations

import http.client
import io
import json as jsonlib
import os
import select
import socket
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import IO, Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from . import errors
from ._version import __version__

DEFAULT_URL = "http://127.0.0.1:7070"
DEFAULT_REQUEST_TIMEOUT = 60.0
USER_AGENT = f"airlock-python/{__version__}"

# Keep-alive connections idle for longer than this are not reused (the daemon closes them after 75 s).
_POOL_IDLE_SECONDS = 50.0
_BLOCKSIZE = 256 * 1024

Body = Union[None, bytes, bytearray, memoryview, str, IO[bytes], Iterable[bytes]]
Params = Optional[Mapping[str, Any]]


@dataclass(frozen=True)
class Endpoint:
    """Where the daemon listens: ``http://host:port``, ``https://host:port`` or ``unix:/path.sock``."""

    scheme: str  # http, https or unix
    host: str
    port: Optional[int]
    unix_path: Optional[str]
    prefix: str  # a path prefix from the URL, without a trailing slash

    @classmethod
    def parse(cls, url: str) -> "Endpoint":
        url = url.strip()
        if url.startswith("unix:"):
            rest = url[len("unix:"):]
            if rest.startswith("//"):
                rest = rest[2:]  # unix:///run/airlockd.sock
            path = urllib.parse.unquote(rest)
            if not path:
                raise errors.InvalidArgumentError(f"invalid unix socket URL {url!r}", code="invalid_url")
            return cls("unix", "localhost", None, path, "")
        if url.startswith("http+unix://"):
            rest = url[len("http+unix://"):]
            sock, _, tail = rest.partition("/")
            return cls("unix", "localhost", None, urllib.parse.unquote(sock), _strip_prefix("/" + tail))
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise errors.InvalidArgumentError(
                f"invalid API URL {url!r}: expected http://HOST:PORT, https://HOST[:PORT] or unix:/PATH",
                code="invalid_url")
        return cls(parts.scheme, parts.hostname, parts.port, None, _strip_prefix(parts.path))

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix:{self.unix_path}"
        port = f":{self.port}" if self.port else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}{port}{self.prefix}"


def _strip_prefix(path: str) -> str:
    path = path.rstrip("/")
    if path.endswith("/v1"):
        path = path[:-3]
    return path


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: Optional[float]) -> None:
        super().__init__("localhost", timeout=timeout, blocksize=_BLOCKSIZE)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.unix_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _connect_socket(endpoint: Endpoint, timeout: Optional[float],
                    ssl_context: Optional[ssl.SSLContext]) -> socket.socket:
    """A connected (and for https, TLS-wrapped) socket; used by the WebSocket client."""
    if endpoint.scheme == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(endpoint.unix_path or "")
        except BaseException:
            sock.close()
            raise
        return sock
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    sock = socket.create_connection((endpoint.host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if endpoint.scheme == "https":
        ctx = ssl_context or ssl.create_default_context()
        sock = ctx.wrap_socket(sock, server_hostname=endpoint.host)
    return sock


def _is_dropped(conn: http.client.HTTPConnection) -> bool:
    """True when an idle keep-alive connection was closed by the peer (readable means EOF or junk)."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable)
    except (OSError, ValueError):
        return True


def _query_string(params: Params) -> str:
    if not params:
        return ""
    items: List[Tuple[str, str]] = []
    for name, value in params.items():
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if isinstance(v, bool):
                v = "true" if v else "false"
            items.append((name, str(v)))
    return "?" + urllib.parse.urlencode(items, quote_via=urllib.parse.quote) if items else ""


def _retry_after(value: Optional[str]) -> Optional[float]:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class Response:
    """A complete (non-streamed) response."""

    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        try:
            return jsonlib.loads(self.body.decode("utf-8")) if self.body else None
        except (ValueError, UnicodeDecodeError) as e:
            raise errors.InternalServerError(f"the daemon sent invalid JSON ({e}): {self.body[:200]!r}",
                                             status=self.status, code="invalid_response") from None


class StreamResponse(io.RawIOBase):
    """A streamed response body (file contents, NDJSON events). Reading it reads the socket; the
    connection goes back to the pool once the body was read to its end, and is closed otherwise.

    It is a binary file object (``read``, ``readinto``, ``readline``, iteration over lines) and a context
    manager. :meth:`iter_events` parses NDJSON. :meth:`abort` may be called from another thread to make a
    blocked read return (it shuts the socket down)."""

    def __init__(self, pool: "HttpClient", conn: http.client.HTTPConnection,
                 response: http.client.HTTPResponse, sock: Optional[socket.socket]) -> None:
        super().__init__()
        self._pool = pool
        self._conn = conn
        # http.client drops conn.sock when the response will close the connection; the response still
        # reads from this socket, which abort() and set_timeout() need.
        self._sock = sock
        self._response = response
        self.status = response.status
        self.headers = response.headers
        self._done = False
        self._aborted = False
        self._lock = threading.Lock()

    # -- io.RawIOBase -----------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:  # type: ignore[override]
        if self._done:
            return 0
        try:
            n = self._response.readinto(buffer)
        except (OSError, http.client.HTTPException, ValueError) as e:
            aborted = self._aborted
            self._finish(reuse=False)
            if aborted:
                return 0
            if isinstance(e, socket.timeout):
                raise errors.TimeoutError("timed out reading a response stream", code="request_timeout") from e
            raise errors.APIConnectionError(f"the response stream broke: {e}", code="connection_error") from e
        if n == 0:
            self._finish(reuse=True)
        return n

    def readall(self) -> bytes:
        """Reads the rest of the body at once."""
        if self._done:
            return b""
        try:
            data = self._response.read()
        except (OSError, http.client.HTTPException, ValueError) as e:
            aborted = self._aborted
            self._finish(reuse=False)
            if aborted:
                return b""
            if isinstance(e, socket.timeout):
                raise errors.TimeoutError("timed out reading a response stream", code="request_timeout") from e
            raise errors.APIConnectionError(f"the response stream broke: {e}", code="connection_error") from e
        self._finish(reuse=True)
        return data

    def read1(self, size: int = -1) -> bytes:
        """Returns what is available now (up to ``size``), blocking only until some bytes arrive."""
        if self._done:
            return b""
        try:
            data = self._response.read1(size if size and size > 0 else _BLOCKSIZE)
        except (OSError, http.client.HTTPException, ValueError) as e:
            aborted = self._aborted
            self._finish(reuse=False)
            if aborted:
                return b""
            if isinstance(e, socket.timeout):
                raise errors.TimeoutError("timed out reading a response stream", code="request_timeout") from e
            raise errors.APIConnectionError(f"the response stream broke: {e}", code="connection_error") from e
        if not data:
            self._finish(reuse=True)
        return data

    def readline(self, size: Optional[int] = -1) -> bytes:  # type: ignore[override]
        if self._done:
            return b""
        try:
            line = self._response.readline(size if size is not None else -1)
        except (OSError, http.client.HTTPException, ValueError) as e:
            aborted = self._aborted
            self._finish(reuse=False)
            if aborted:
                return b""
            if isinstance(e, socket.timeout):
                raise errors.TimeoutError("timed out reading a response stream", code="request_timeout") from e
            raise errors.APIConnectionError(f"the response stream broke: {e}", code="connection_error") from e
        if not line:
            self._finish(reuse=True)
        return line

    def iter_chunks(self, chunk_size: int = _BLOCKSIZE) -> Iterator[bytes]:
        """Yields the body in chunks as they arrive."""
        while True:
            data = self.read1(chunk_size)
            if not data:
                return
            yield data

    def iter_lines(self) -> Iterator[bytes]:
        """Yields the body's lines (without their newline) as they arrive. Reads whatever the socket has
        (``read1``) and splits it, which is much faster than ``readline`` on a chunked response."""
        pending = b""
        while True:
            data = self.read1(_BLOCKSIZE)
            if not data:
                if pending:
                    yield pending
                return
            pending += data
            if b"\n" not in data:
                continue
            *lines, pending = pending.split(b"\n")
            yield from lines

    def iter_events(self) -> Iterator[Dict[str, Any]]:
        """Yields the NDJSON objects of the body, one per line, as they arrive."""
        for line in self.iter_lines():
            line = line.strip()
            if not line:
                continue
            try:
                event = jsonlib.loads(line.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                raise errors.InternalServerError(f"invalid event in stream: {line[:200]!r}",
                                                 code="invalid_response") from None
            if isinstance(event, dict):
                yield event

    def close(self) -> None:
        if not self._done:
            # Not read to the end: the connection cannot be reused (the rest of the body is unread).
            self._finish(reuse=False)
        super().close()

    def abort(self) -> None:
        """Unblocks a reader in another thread by shutting the socket down; the stream then ends."""
        self._aborted = True
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def aborted(self) -> bool:
        return self._aborted

    def set_timeout(self, timeout: Optional[float]) -> None:
        """Changes the read timeout of the rest of the stream (None: wait for ever)."""
        if self._sock is not None:
            try:
                self._sock.settimeout(timeout)
            except OSError:
                pass

    def _finish(self, reuse: bool) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        if reuse and not self._aborted and not self._response.will_close:
            self._pool._release(self._conn)
        else:
            try:
                self._response.close()
            finally:
                self._conn.close()


class HttpClient:
    """One API URL and key, with a small pool of keep-alive connections. Thread-safe: each request uses
    its own connection from the pool.

    Retries (``retries`` times, with a short backoff) happen only when it is safe: when the connection
    could not be established (nothing was sent), and, for idempotent requests (GET, DELETE, and the POSTs
    the API documents as safe to retry), on a connection that broke before a complete answer and on 503
    with a short ``Retry-After``."""

    def __init__(
        self,
        api_url: Optional[str] = None,
        api_key: Optional[str] = None,
        *,
        request_timeout: Optional[float] = DEFAULT_REQUEST_TIMEOUT,
        ssl_context: Optional[ssl.SSLContext] = None,
        max_pool_size: int = 8,
        retries: int = 2,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        url = api_url or os.environ.get("AIRLOCK_URL") or os.environ.get("AIRLOCK_API_URL") or DEFAULT_URL
        self.endpoint = Endpoint.parse(url)
        self.api_key = api_key if api_key is not None else os.environ.get("AIRLOCK_API_KEY")
        self.request_timeout = request_timeout
        self.ssl_context = ssl_context
        self.max_pool_size = max_pool_size
        self.retries = max(0, retries)
        self.extra_headers = dict(headers or {})
        self._idle: List[Tuple[http.client.HTTPConnection, float]] = []
        self._lock = threading.Lock()
        self._closed = False

    @property
    def api_url(self) -> str:
        return str(self.endpoint)

    # -- connections ------------------------------------------------------------------------------
    def _new_connection(self, timeout: Optional[float]) -> http.client.HTTPConnection:
        ep = self.endpoint
        if ep.scheme == "unix":
            return _UnixHTTPConnection(ep.unix_path or "", timeout)
        if ep.scheme == "https":
            ctx = self.ssl_context or ssl.create_default_context()
            return http.client.HTTPSConnection(ep.host, ep.port, timeout=timeout, context=ctx,
                                               blocksize=_BLOCKSIZE)
        return http.client.HTTPConnection(ep.host, ep.port, timeout=timeout, blocksize=_BLOCKSIZE)

    def _acquire(self, timeout: Optional[float]) -> Tuple[http.client.HTTPConnection, bool]:
        """A connection (reused when a live idle one exists) and whether it was reused."""
        now = time.monotonic()
        while True:
            with self._lock:
                if not self._idle:
                    break
                conn, since = self._idle.pop()
            if now - since > _POOL_IDLE_SECONDS or _is_dropped(conn):
                conn.close()
                continue
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            return conn, True
        return self._new_connection(timeout), False

    def _release(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self.max_pool_size and conn.sock is not None:
                self._idle.append((conn, time.monotonic()))
                return
        conn.close()

    def close(self) -> None:
        """Closes the pooled connections (streams still open keep theirs until closed)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()

    # -- requests ---------------------------------------------------------------------------------
    def headers(self, extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
        h = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        h.update(self.extra_headers)
        if extra:
            h.update(extra)
        return h

    def url_path(self, path: str, params: Params = None) -> str:
        return f"{self.endpoint.prefix}{path}{_query_string(params)}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params = None,
        json: Any = None,
        body: Body = None,
        headers: Optional[Mapping[str, str]] = None,
        timeout: Union[float, None, object] = ...,
        idempotent: Optional[bool] = None,
        stream: bool = False,
    ) -> Any:
        """Sends a request and returns a :class:`Response` (or a :class:`StreamResponse` when ``stream``).
        Error statuses raise the matching :mod:`airlock.errors` class."""
        if timeout is ...:
            timeout = self.request_timeout
        hdrs = self.headers(headers)
        data: Any = body
        if json is not None:
            data = jsonlib.dumps(json, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            hdrs["Content-Type"] = "application/json"
        elif isinstance(data, str):
            data = data.encode("utf-8")
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS")
        rewind = _rewinder(data)
        if data is not None and not isinstance(data, (bytes, bytearray, memoryview)):
            length = _known_length(data)
            if length is not None:
                hdrs["Content-Length"] = str(length)
            if rewind is None:
                idempotent = False  # a one-shot body (pipe, generator) cannot be sent twice
        elif data is None and method in ("POST", "PUT", "PATCH"):
            hdrs["Content-Length"] = "0"
        target = self.url_path(path, params)
        attempt = 0
        while True:
            attempt += 1
            conn, reused = self._acquire(timeout)  # type: ignore[arg-type]
            sent = False
            try:
                # A file object or iterable without a known length goes out chunked (http.client).
                conn.request(method, target, body=data, headers=hdrs)
                sent = True
                sock = conn.sock
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                # Nothing reached the daemon if connecting failed; a stale reused connection that broke
                # is retried too for idempotent requests.
                connect_failed = not sent and not reused and isinstance(
                    e, (ConnectionRefusedError, FileNotFoundError, socket.gaierror))
                can_retry = attempt <= self.retries and (connect_failed or idempotent) \
                    and not isinstance(e, socket.timeout)
                if can_retry and (rewind is None or rewind()):
                    time.sleep(min(0.1 * (2 ** (attempt - 1)), 1.0) if not reused else 0)
                    continue
                if isinstance(e, socket.timeout):
                    raise errors.TimeoutError(
                        f"no answer from {self.endpoint} within {timeout} s ({method} {path})",
                        code="request_timeout") from e
                raise errors.APIConnectionError(
                    f"cannot reach airlockd at {self.endpoint}: {e}", code="connection_error") from e

            status = response.status
            if status >= 400:
                try:
                    payload = response.read()
                except (OSError, http.client.HTTPException):
                    payload = b""
                self._done_with(conn, response)
                retry_after = _retry_after(response.getheader("Retry-After"))
                err = errors.error_from_response(status, payload, retry_after)
                if (status == 503 and idempotent and attempt <= self.retries
                        and retry_after is not None and retry_after <= 5 and (rewind is None or rewind())):
                    time.sleep(retry_after or 0.2)
                    continue
                raise err
            if stream:
                return StreamResponse(self, conn, response, sock)
            try:
                payload = response.read()
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                if idempotent and attempt <= self.retries and (rewind is None or rewind()):
                    continue
                if isinstance(e, socket.timeout):
                    raise errors.TimeoutError(f"timed out reading the answer to {method} {path}",
                                              code="request_timeout") from e
                raise errors.APIConnectionError(f"the connection broke during {method} {path}: {e}",
                                                code="connection_error") from e
            self._done_with(conn, response)
            return Response(status, response.headers, payload)

    def _done_with(self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse) -> None:
        if response.will_close or not response.isclosed():
            conn.close()
        else:
            self._release(conn)

    # -- helpers ----------------------------------------------------------------------------------
    def get_json(self, path: str, params: Params = None, **kw: Any) -> Any:
        return self.request("GET", path, params=params, **kw).json()

    def post_json(self, path: str, json: Any, **kw: Any) -> Any:
        return self.request("POST", path, json=json, **kw).json()


def _known_length(data: Any) -> Optional[int]:
    """The remaining length of a file object body, when it can be known without reading it."""
    try:
        fileno = data.fileno()
        st = os.fstat(fileno)
        import stat as stat_mod

        if stat_mod.S_ISREG(st.st_mode):
            return max(0, st.st_size - data.tell())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass
    try:
        if data.seekable():
            pos = data.tell()
            end = data.seek(0, io.SEEK_END)
            data.seek(pos)
            return max(0, end - pos)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass
    return None


def _rewinder(data: Any):  # type: ignore[no-untyped-def]
    """A function that puts the body back at its start for a retry (None if it cannot be rewound)."""
    if data is None or isinstance(data, (bytes, bytearray, memoryview)):
        return lambda: True
    try:
        if data.seekable():
            pos = data.tell()

            def rewind() -> bool:
                try:
                    data.seek(pos)
                    return True
                except (OSError, ValueError):
                    return False

            return rewind
    except (AttributeError, OSError, ValueError):
        pass
    return None


def quote_path(segment: Union[str, int]) -> str:
    """Percent-encodes one path segment (a sandbox id, a pid)."""
    return urllib.parse.quote(str(segment), safe="")


def is_file_like(value: Any) -> bool:
    return hasattr(value, "read") and callable(value.read)


def chunks_of(values: Sequence[Any], n: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(values), n):
        yield values[i:i + n]
