"""``sandbox.files``: the sandbox's file system (paths are resolved inside the sandbox; relative paths
start at its workdir)."""
from __future__ import annotations

import base64
import io
import json
import queue
import threading
from typing import (TYPE_CHECKING, IO, Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence,
                    Tuple, Union, overload)

from . import errors
from ._http import is_file_like, quote_path
from .models import EntryInfo, EntryList, FilesystemEvent, WriteEntry

if TYPE_CHECKING:  # pragma: no cover
    from typing import Literal

    from ._http import HttpClient, StreamResponse
    from .sandbox import Sandbox

__all__ = ["Files", "WatchHandle"]

FileData = Union[str, bytes, bytearray, memoryview, IO[bytes], IO[str], Iterable[bytes]]

_BATCH_FILES = 1000  # the API's limits for files/write-many
_BATCH_BYTES = 30 * 1024 * 1024  # under the 32 MiB body limit, with room for JSON


def _mode_str(mode: Union[int, str, None]) -> Optional[str]:
    if mode is None:
        return None
    if isinstance(mode, int):
        return format(mode, "04o")
    return str(mode)


class _TextToBytes:
    """Wraps a text file object so it can be streamed as UTF-8."""

    def __init__(self, f: IO[str]) -> None:
        self._f = f

    def read(self, n: int = -1) -> bytes:
        return self._f.read(n).encode("utf-8")  # n characters: at most 4n bytes


class WatchHandle:
    """A running directory watch (from :meth:`Files.watch_dir`). Events go to ``on_event`` when given,
    otherwise they queue up for :meth:`get_new_events` or iteration. :meth:`stop` ends it."""

    def __init__(self, stream: "StreamResponse", path: str, on_event: Optional[Callable[[FilesystemEvent], Any]],
                 on_exit: Optional[Callable[[Optional[BaseException]], Any]]) -> None:
        self.path = path
        self._stream = stream
        self._on_event = on_event
        self._on_exit = on_exit
        self._queue: "queue.Queue[Optional[FilesystemEvent]]" = queue.Queue()
        self._stopped = False
        self.error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="airlock-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        error: Optional[BaseException] = None
        try:
            for event in self._stream.iter_events():
                kind = event.get("type")
                if kind in ("ready", "keepalive"):
                    continue
                if kind == "error":
                    detail = event.get("error") if isinstance(event.get("error"), dict) else {}
                    raise errors.error_from_detail(detail)
                ev = FilesystemEvent.from_json(event)
                if self._on_event is not None:
                    self._on_event(ev)
                else:
                    self._queue.put(ev)
        except BaseException as e:  # noqa: BLE001 - kept in .error and passed to on_exit
            if not self._stopped:
                error = e
        finally:
            self._stream.close()
            self.error = error
            self._queue.put(None)
            if self._on_exit is not None:
                self._on_exit(error)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def get_new_events(self) -> List[FilesystemEvent]:
        """The events received since the last call (without waiting)."""
        out: List[FilesystemEvent] = []
        while True:
            try:
                ev = self._queue.get_nowait()
            except queue.Empty:
                return out
            if ev is None:
                self._queue.put(None)  # keep the end marker for iterators
                return out
            out.append(ev)

    def get_event(self, timeout: Optional[float] = None) -> Optional[FilesystemEvent]:
        """The next event, waiting up to ``timeout`` seconds; ``None`` on timeout or when the watch ended."""
        try:
            ev = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if ev is None:
            self._queue.put(None)
        return ev

    def __iter__(self) -> Iterator[FilesystemEvent]:
        """Yields events until the watch ends (``stop()`` from another thread, or the directory went)."""
        while True:
            ev = self._queue.get()
            if ev is None:
                self._queue.put(None)
                return
            yield ev

    def stop(self) -> None:
        """Stops watching (closes the stream) and waits for the reader thread to finish."""
        self._stopped = True
        self._stream.abort()
        if threading.current_thread() is not self._thread:
            self._thread.join(5)

    close = stop

    def __enter__(self) -> "WatchHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class Files:
    """File operations inside a sandbox: ``sandbox.files``."""

    def __init__(self, sandbox: "Sandbox") -> None:
        self._sandbox = sandbox

    @property
    def _http(self) -> "HttpClient":
        return self._sandbox._http

    def _path(self, suffix: str) -> str:
        return f"/v1/sandboxes/{quote_path(self._sandbox.sandbox_id)}/files/{suffix}"

    # -- read -------------------------------------------------------------------------------------
    @overload
    def read(self, path: str, format: "Literal['text']" = ..., *, offset: Optional[int] = ...,
             length: Optional[int] = ..., encoding: str = ..., request_timeout: Optional[float] = ...) -> str: ...

    @overload
    def read(self, path: str, format: "Literal['bytes']", *, offset: Optional[int] = ...,
             length: Optional[int] = ..., encoding: str = ..., request_timeout: Optional[float] = ...) -> bytes: ...

    @overload
    def read(self, path: str, format: "Literal['stream']", *, offset: Optional[int] = ...,
             length: Optional[int] = ..., encoding: str = ...,
             request_timeout: Optional[float] = ...) -> "StreamResponse": ...

    def read(self, path: str, format: str = "text", *, offset: Optional[int] = None,
             length: Optional[int] = None, encoding: str = "utf-8",
             request_timeout: Optional[float] = None) -> Union[str, bytes, "StreamResponse"]:
        """Reads a regular file.

        Args:
            path: the file inside the sandbox.
            format: ``"text"`` (decoded with ``encoding``), ``"bytes"``, or ``"stream"``: a binary file
                object that reads from the network as you read it (use it as a context manager;
                ``iter_chunks()`` yields pieces as they arrive).
            offset, length: read only part of the file.

        Raises:
            airlock.errors.PathNotFoundError: no such file. ``ConflictError`` (``is_a_directory``,
            ``not_a_regular_file``) for other kinds of entries.
        """
        if format not in ("text", "bytes", "stream"):
            raise errors.InvalidArgumentError(f"format must be 'text', 'bytes' or 'stream', not {format!r}",
                                              code="invalid_argument", field="format")
        params = {"path": path, "offset": offset, "length": length}
        kwargs: Dict[str, Any] = {}
        if request_timeout is not None:
            kwargs["timeout"] = request_timeout
        stream = self._http.request("GET", self._path("read"), params=params,
                                    headers={"Accept": "application/octet-stream, application/json"},
                                    stream=True, **kwargs)
        if format == "stream":
            return stream
        with stream:
            data = stream.read()
        if format == "bytes":
            return data
        return data.decode(encoding)

    def read_bytes(self, path: str) -> bytes:
        return self.read(path, "bytes")

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return self.read(path, "text", encoding=encoding)

    # -- write ------------------------------------------------------------------------------------
    def write(self, path: str, data: FileData, *, mode: Union[int, str, None] = None, make_parents: bool = True,
              user: Union[str, int, None] = None, request_timeout: Optional[float] = None) -> EntryInfo:
        """Writes a file (a full, atomic replace: readers see the old or the new content, never a part).

        ``data`` is ``str`` (UTF-8), ``bytes``, a file object opened for reading (streamed from where it
        stands, never loaded whole), or an iterable of ``bytes`` chunks (streamed). ``mode`` (e.g.
        ``0o755`` or ``"0755"``) applies to a new file; missing parent directories are created unless
        ``make_parents=False``. Returns the written file's :class:`EntryInfo`."""
        body: Any
        if isinstance(data, str):
            body = data.encode("utf-8")
        elif isinstance(data, (bytes, bytearray, memoryview)):
            body = bytes(data)
        elif is_file_like(data):
            body = _TextToBytes(data) if isinstance(data, io.TextIOBase) else data  # type: ignore[arg-type]
        elif isinstance(data, Iterable):
            # (an empty chunk would end a chunked body early, so those are skipped)
            body = (c.encode("utf-8") if isinstance(c, str) else bytes(c) for c in data if c)
        else:
            raise errors.InvalidArgumentError(f"cannot write {type(data).__name__}: use str, bytes or a file",
                                              code="invalid_argument", field="data")
        params = {"path": path, "mode": _mode_str(mode), "make_parents": make_parents,
                  "user": None if user is None else str(user)}
        kwargs: Dict[str, Any] = {}
        if request_timeout is not None:
            kwargs["timeout"] = request_timeout
        response = self._http.request("POST", self._path("write"), params=params, body=body,
                                      headers={"Content-Type": "application/octet-stream"},
                                      idempotent=True, **kwargs)  # a full replace: safe to retry
        return EntryInfo.from_json(response.json())

    def write_files(self, files: Sequence[Union[WriteEntry, Mapping[str, Any], Tuple[str, Any]]], *,
                    make_parents: bool = True, user: Union[str, int, None] = None) -> List[EntryInfo]:
        """Writes many files in as few requests as possible (each file atomically; the whole batch is
        not atomic). Entries are :class:`WriteEntry`, ``{"path": ..., "data": ..., "mode": ...}`` dicts
        or ``(path, data)`` tuples; ``str`` data is sent as UTF-8 and ``bytes`` as base64. Returns the
        entries written, in order."""
        entries: List[Dict[str, Any]] = []
        for item in files:
            if isinstance(item, WriteEntry):
                path, data, mode = item.path, item.data, item.mode
            elif isinstance(item, Mapping):
                path, data, mode = item["path"], item["data"], item.get("mode")
            else:
                path, data = item  # type: ignore[misc]
                mode = None
            if is_file_like(data):
                data = data.read()
            entry: Dict[str, Any] = {"path": str(path)}
            if isinstance(data, str):
                entry["data"] = data
            else:
                entry["data"] = base64.b64encode(bytes(data)).decode("ascii")
                entry["encoding"] = "base64"
            if mode is not None:
                entry["mode"] = _mode_str(mode)
            entries.append(entry)
        if not entries:
            return []
        written: List[EntryInfo] = []
        batch: List[Dict[str, Any]] = []
        size = 0
        for entry in entries:
            entry_size = len(json.dumps(entry, ensure_ascii=False).encode("utf-8")) + 1
            if batch and (len(batch) >= _BATCH_FILES or size + entry_size > _BATCH_BYTES):
                written.extend(self._write_batch(batch, make_parents, user))
                batch, size = [], 0
            batch.append(entry)
            size += entry_size
        written.extend(self._write_batch(batch, make_parents, user))
        return written

    def _write_batch(self, batch: List[Dict[str, Any]], make_parents: bool,
                     user: Union[str, int, None]) -> List[EntryInfo]:
        body: Dict[str, Any] = {"files": batch, "make_parents": make_parents}
        if user is not None:
            body["user"] = str(user)
        data = self._http.post_json(self._path("write-many"), body, idempotent=True)
        return [EntryInfo.from_json(e) for e in (data or {}).get("files", [])]

    # -- metadata ---------------------------------------------------------------------------------
    def list(self, path: str = ".", depth: int = 1, *, limit: Optional[int] = None) -> EntryList:
        """Lists a directory (``depth`` > 1 recurses), sorted by path; symlinks are listed, not followed.
        The result is a list of :class:`EntryInfo` with ``.truncated`` set when ``limit`` cut it."""
        data = self._http.get_json(self._path("list"), params={"path": path, "depth": depth, "limit": limit})
        out = EntryList(EntryInfo.from_json(e) for e in (data or {}).get("entries", []))
        out.truncated = bool((data or {}).get("truncated"))
        return out

    def get_info(self, path: str, *, follow_symlinks: bool = False) -> EntryInfo:
        """Stats a path (:class:`~airlock.errors.PathNotFoundError` if it does not exist)."""
        return EntryInfo.from_json(self._http.get_json(
            self._path("stat"), params={"path": path, "follow_symlinks": follow_symlinks}))

    stat = get_info

    def exists(self, path: str) -> bool:
        """Whether the path exists (a dangling symlink exists)."""
        data = self._http.get_json(self._path("exists"), params={"path": path})
        return bool((data or {}).get("exists"))

    def make_dir(self, path: str, *, mode: Union[int, str, None] = None, parents: bool = True,
                 user: Union[str, int, None] = None) -> bool:
        """Creates a directory (and its parents unless ``parents=False``). Returns True when it was
        created, False when it already existed."""
        body: Dict[str, Any] = {"path": path, "parents": parents}
        if mode is not None:
            body["mode"] = _mode_str(mode)
        if user is not None:
            body["user"] = str(user)
        response = self._http.request("POST", self._path("mkdir"), json=body, idempotent=parents)
        return response.status == 201

    def remove(self, path: str, *, recursive: bool = False, force: bool = False) -> bool:
        """Removes a file, a symlink or an empty directory (``recursive=True``: a whole tree). A missing
        path raises :class:`~airlock.errors.PathNotFoundError` unless ``force``. Returns whether
        something was removed."""
        data = self._http.post_json(self._path("remove"), {"path": path, "recursive": recursive, "force": force},
                                    idempotent=force)
        return bool((data or {}).get("removed"))

    def rename(self, old_path: str, new_path: str, *, overwrite: bool = False) -> EntryInfo:
        """Renames or moves a path (atomic). An existing ``new_path`` raises
        :class:`~airlock.errors.PathExistsError` unless ``overwrite``."""
        data = self._http.post_json(self._path("rename"),
                                    {"old_path": old_path, "new_path": new_path, "overwrite": overwrite})
        return EntryInfo.from_json(data)

    move = rename

    # -- watch ------------------------------------------------------------------------------------
    def watch_dir(self, path: str, on_event: Optional[Callable[[FilesystemEvent], Any]] = None, *,
                  recursive: bool = False, on_exit: Optional[Callable[[Optional[BaseException]], Any]] = None,
                  ready_timeout: float = 30.0) -> WatchHandle:
        """Watches a directory. Returns once the watch is armed, so every change made after this call
        returns is reported. Events go to ``on_event`` (called from a background thread) or queue up on
        the returned :class:`WatchHandle` (``get_new_events()``, ``get_event(timeout)``, iteration).
        ``on_exit(error_or_None)`` is called when the watch ends. Call ``handle.stop()`` when done."""
        stream = self._http.request("GET", self._path("watch"), params={"path": path, "recursive": recursive},
                                    headers={"Accept": "application/x-ndjson"}, stream=True, timeout=ready_timeout)
        try:
            events = stream.iter_events()
            for event in events:
                kind = event.get("type")
                if kind == "ready":
                    break
                if kind == "error":
                    detail = event.get("error") if isinstance(event.get("error"), dict) else {}
                    raise errors.error_from_detail(detail)
            else:
                raise errors.APIConnectionError("the watch stream ended before it was ready", code="connection_error")
            stream.set_timeout(None)  # events may be rare: wait for them for ever
        except BaseException:
            stream.close()
            raise
        return WatchHandle(stream, path, on_event, on_exit)
