"""Rendered request records kept while the stored requests stay as they were, so a page
of rows already served is put together instead of made again.

The page cache (:mod:`hotspot311.api.cache`) serves a page asked again word for word.
Clients also ask pages that differ yet hold the same rows: the default window (the 90
days up to now, which moves with the clock and so is never kept whole), a window that
ends a second later, the next page of a list, another status. Making a 1,000-row page
costs the server about 10 ms of CPU; reading only its ids and version, and joining
rows rendered before, about 2 ms (``bench/api.py``'s ``varied`` page, HTTP included).

A page is answered in two statements at most (:meth:`geo.store.base.Store.page_keys`,
then :meth:`~geo.store.base.Store.rows_by_id` for the rows not kept), each reading the
store's data version in the same state as its rows. Rows are kept per version, format
and view (public or keyed): a kept row is served only with ids read at its version, and
when the two statements saw different versions (a write came between them) the page is
made whole instead. So a page is never assembled from rows of two states of the store.

The cache is per server process and bounded in bytes (each item's body, its id and
:data:`ENTRY_BYTES`); the oldest rows of the variant holding the most go first. A new
version empties it; a reader still at a version left behind finds nothing kept and
leaves the newer rows alone.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from geo.store.base import Store
from geo.store.query import PageKeys, RequestQuery

#: Default bound of one process's kept rows.
DEFAULT_BYTES: Final = 64 * 1024 * 1024
#: Bytes counted for each kept row besides its body and id (the objects holding it).
ENTRY_BYTES: Final = 200
#: Versions left behind that are remembered, so that a late reader of one does not
#: empty the cache of the newer version.
RETIRED: Final = 16


class RowCache:
    """Rendered rows of one data version, up to ``max_bytes`` (0: keep none).

    Thread-safe: the page routes run on the server's thread pool.

    Examples
    --------
    >>> cache = RowCache(max_bytes=1200)
    >>> cache.get("v1", "json", ["a"])  # ids read at version v1: rows of v1 are kept
    [None]
    >>> cache.put("v1", "json", {"a": b"x" * 300, "b": b"y" * 300})
    >>> [b and len(b) for b in cache.get("v1", "json", ["a", "b", "c"])]
    [300, 300, None]
    >>> cache.put("v1", "json", {"c": b"z" * 300})  # over 1,200 bytes: "a" goes
    >>> [b and len(b) for b in cache.get("v1", "json", ["a", "b", "c"])]
    [None, 300, 300]
    >>> cache.get("v2", "json", ["b"]), len(cache)  # another version: nothing kept
    ([None], 0)
    >>> cache.put("v2", "json", {"b": b"y" * 300})
    >>> cache.get("v1", "json", ["b"]), len(cache)  # a late reader of v1: v2's stay
    ([None], 1)
    """

    def __init__(self, max_bytes: int = DEFAULT_BYTES) -> None:
        self.max_bytes = max(0, max_bytes)
        self._version: str | None = None
        self._retired: deque[str] = deque(maxlen=RETIRED)
        # variant → id → body, each in the order kept (oldest first)
        self._rows: dict[Hashable, OrderedDict[str, bytes]] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        with self._lock:
            return sum(len(rows) for rows in self._rows.values())

    def get(self, version: str, variant: Hashable, ids: Sequence[str]) -> list[bytes | None]:
        """The kept bodies of ``ids`` (``None`` where none is kept) rendered as
        ``variant`` at ``version``. A version not seen before drops the rows kept (the
        store has moved on); one left behind finds nothing and drops nothing."""
        with self._lock:
            if version != self._version:
                if version in self._retired:
                    self.misses += len(ids)
                    return [None] * len(ids)
                self._reset(version)
            rows = self._rows.get(variant)
            out: list[bytes | None] = (list(map(rows.get, ids)) if rows is not None
                                       else [None] * len(ids))
            missed = out.count(None)
            self.hits += len(out) - missed
            self.misses += missed
        return out

    def put(self, version: str, variant: Hashable, bodies: dict[str, bytes]) -> None:
        """Keep ``bodies`` (id → body) rendered as ``variant`` at ``version``, the
        version of the last :meth:`get` (else nothing is kept: the cache has moved on),
        dropping the oldest beyond the bound."""
        with self._lock:
            if version != self._version:
                return
            rows = self._rows.setdefault(variant, OrderedDict())
            for rid, body in bodies.items():
                size = _size(rid, body)
                if size > self.max_bytes:
                    continue
                old = rows.pop(rid, None)
                if old is not None:
                    self._bytes -= _size(rid, old)
                rows[rid] = body
                self._bytes += size
            while self._bytes > self.max_bytes:
                # the oldest row of the variant holding the most rows
                fullest = max(self._rows.values(), key=len)
                rid, body = fullest.popitem(last=False)
                self._bytes -= _size(rid, body)

    def _reset(self, version: str) -> None:
        if self._version is not None:
            self._retired.append(self._version)
        self._version = version
        self._rows.clear()
        self._bytes = 0


def _size(rid: str, body: bytes) -> int:
    """Bytes a kept row counts against the bound."""
    return len(body) + len(rid) + ENTRY_BYTES


@dataclass(frozen=True)
class KeptPage:
    """A page's rendered rows, in page order (put together from kept and new rows, or
    all made for it), and the time and id of its last row (for the next page's
    cursor)."""

    items: list[bytes]
    last: tuple[Any, str] | None


def page_items(store: Store, cache: RowCache, query: RequestQuery, *, variant: Hashable,
               columns: Sequence[str],
               render: Callable[[dict[str, list[Any]]], dict[str, bytes]]) -> KeptPage:
    """The rendered rows of ``query``'s page: kept ones reused where the store reads the
    page's ids with their version, else the page made whole (the store cannot, the cache
    is off, or a write came between the two reads).

    Parameters
    ----------
    store
        Where the rows are.
    cache
        The process's kept rows.
    query
        The page (filters, order position, size).
    variant
        What else a body depends on (format and view).
    columns
        The stored columns ``render`` needs.
    render
        Column lists of stored rows → id → rendered body.
    """
    keys = store.page_keys(query) if cache.max_bytes else None
    if keys is not None and not keys.ids:
        return KeptPage([], None)
    if keys is not None and keys.version is not None:
        page = _from_kept(store, cache, keys, variant=variant, columns=columns, render=render)
        if page is not None:
            return page
    rows = store.query_rows(query, columns=columns)
    made = render(rows)
    ids = rows["service_request_id"]
    return KeptPage([made[rid] for rid in ids],
                    (rows["requested_datetime"][-1], ids[-1]) if ids else None)


def _from_kept(store: Store, cache: RowCache, keys: PageKeys, *, variant: Hashable,
               columns: Sequence[str],
               render: Callable[[dict[str, list[Any]]], dict[str, bytes]]) -> KeptPage | None:
    """The page of ``keys`` (a version and ids) from kept rows and the rows not kept,
    read and rendered now; ``None`` when those were read at another version."""
    version = str(keys.version)
    kept = cache.get(version, variant, keys.ids)
    missing = [rid for rid, body in zip(keys.ids, kept, strict=True) if body is None]
    made: dict[str, bytes] = {}
    if missing:
        read_at, rows = store.rows_by_id(missing, columns=columns)
        if read_at != version:
            return None
        made = render(rows)
        if not set(missing) <= made.keys():
            return None
        cache.put(version, variant, {rid: made[rid] for rid in missing})
    return KeptPage([made[rid] if body is None else body
                     for rid, body in zip(keys.ids, kept, strict=True)],
                    (keys.last_requested, keys.ids[-1]))


__all__ = ["DEFAULT_BYTES", "ENTRY_BYTES", "KeptPage", "RowCache", "page_items"]
