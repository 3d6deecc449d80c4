"""``sandbox.logs``: the sandbox's persisted log (lifecycle events and process output)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterable, Iterator, Optional, Union

from . import errors
from ._http import quote_path
from .models import LogEntry, LogPage

if TYPE_CHECKING:  # pragma: no cover
    from .sandbox import Sandbox

__all__ = ["Logs"]


class Logs:
    """Reads a sandbox's log, in every state until the record is purged: ``sandbox.logs``."""

    def __init__(self, sandbox: "Sandbox") -> None:
        self._sandbox = sandbox

    def _path(self, suffix: str = "") -> str:
        return f"/v1/sandboxes/{quote_path(self._sandbox.sandbox_id)}/logs{suffix}"

    @staticmethod
    def _params(cursor: Optional[str], types: Union[str, Iterable[str], None], pid: Optional[int]) -> Dict[str, Any]:
        params: Dict[str, Any] = {"cursor": cursor, "pid": pid}
        if types is not None:
            params["type"] = [types] if isinstance(types, str) else list(types)
        return params

    def fetch(self, cursor: Optional[str] = None, *, limit: Optional[int] = None,
              types: Union[str, Iterable[str], None] = None, pid: Optional[int] = None) -> LogPage:
        """One page of entries after ``cursor`` (from the oldest kept when None). ``types``: any of
        ``lifecycle``, ``stdout``, ``stderr``; ``pid``: only that process's output."""
        params = self._params(cursor, types, pid)
        params["limit"] = limit
        data = self._sandbox._http.get_json(self._path(), params=params) or {}
        return LogPage(entries=[LogEntry.from_json(e) for e in data.get("entries", [])],
                       next_cursor=str(data.get("next_cursor") or cursor or ""), has_more=bool(data.get("has_more")))

    def iter(self, cursor: Optional[str] = None, *, types: Union[str, Iterable[str], None] = None,
             pid: Optional[int] = None) -> Iterator[LogEntry]:
        """Every entry written so far (after ``cursor``), fetching pages as needed."""
        while True:
            page = self.fetch(cursor, types=types, pid=pid)
            yield from page.entries
            if not page.has_more or page.next_cursor == cursor:
                return
            cursor = page.next_cursor

    def stream(self, cursor: Optional[str] = None, *, follow: bool = True,
               types: Union[str, Iterable[str], None] = None, pid: Optional[int] = None) -> Iterator[LogEntry]:
        """Yields entries as they are written (``follow``) until the sandbox ends; closing the generator
        closes the stream."""
        params = self._params(cursor, types, pid)
        params["follow"] = follow
        stream = self._sandbox._http.request("GET", self._path("/stream"), params=params,
                                             headers={"Accept": "application/x-ndjson"}, stream=True, timeout=None)
        with stream:
            for event in stream.iter_events():
                kind = event.get("type")
                if kind == "keepalive":
                    continue
                if kind == "error":
                    detail = event.get("error") if isinstance(event.get("error"), dict) else {}
                    raise errors.error_from_detail(detail)
                yield LogEntry.from_json(event)
