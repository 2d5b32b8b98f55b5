"""Pages of ``requests.json``/``.xml`` kept while the stored requests stay as they were.

Open311 clients poll: apps, dashboards and aggregators ask the same page again and
again (open street-light outages of the last year, the newest 1,000). Building a
1,000-row page costs the server about 10 ms of CPU (the rows, the records, the JSON;
about 2 ms when its rows are kept, :mod:`hotspot311.api.rowcache`), so 50 clients
polling one page on two cores would queue for a few hundred milliseconds. A page depends
only on the request's parameters, the reader's view (public or keyed) and the stored
requests, so :class:`PageCache` keeps each answered page with the store's
:meth:`~geo.store.base.Store.data_version` and serves it again while the store answers
the same token. The token is read before each page (one indexed row on PostGIS, a
``stat`` on the embedded store): a page is never served after the requests changed, and
paging while requests are written sees what it would see without the cache.

The cache is per server process, bounded in bytes (bodies, headers and keys) and in
pages, least recently used first out; a request with a query string over
:data:`MAX_QUERY` bytes is not kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Final

#: Default bound of one process's cache.
DEFAULT_BYTES: Final = 64 * 1024 * 1024
#: Bytes counted for each kept page besides its body and key (the objects holding it).
ENTRY_BYTES: Final = 512
#: Most pages kept, whatever their size.
MAX_PAGES: Final = 4096
#: Longest query string whose page is kept.
MAX_QUERY: Final = 2048


@dataclass(frozen=True)
class CachedPage:
    """One answered page: its body and the headers it was sent with.

    Attributes
    ----------
    version
        The store's :meth:`~geo.store.base.Store.data_version` read before it was made.
    body
        The response body.
    media_type
        Its content type.
    headers
        Headers of its own (the ``Link`` of the next page).
    key_bytes
        About how many bytes its cache key holds (the request's query string and host).
    """

    version: str
    body: bytes
    media_type: str
    headers: tuple[tuple[str, str], ...] = ()
    key_bytes: int = 0

    @property
    def size(self) -> int:
        """Bytes counted against the cache's bound: body, headers, key and overhead."""
        return (len(self.body) + sum(len(k) + len(v) for k, v in self.headers)
                + self.key_bytes + ENTRY_BYTES)


class PageCache:
    """Least-recently-used pages up to ``max_bytes`` (0: keep none) and
    :data:`MAX_PAGES` pages. A page counts its body, headers and key, and
    :data:`ENTRY_BYTES` more, so many small pages under long keys cannot outgrow the
    bound.

    Thread-safe: the page routes run on the server's thread pool.

    Examples
    --------
    >>> cache = PageCache(max_bytes=1500)
    >>> cache.put("a", CachedPage("v1", b"1" * 500, "application/json"))
    >>> len(cache.get("a", "v1").body), cache.get("a", "v2")
    (500, None)
    >>> cache.put("a", CachedPage("v1", b"1" * 500, "application/json"))
    >>> cache.put("b", CachedPage("v1", b"2" * 500, "application/json"))  # over 1,500
    >>> cache.get("a", "v1") is None, len(cache)
    (True, 1)
    """

    def __init__(self, max_bytes: int = DEFAULT_BYTES) -> None:
        self.max_bytes = max(0, max_bytes)
        self._pages: OrderedDict[Hashable, CachedPage] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._pages)

    def get(self, key: Hashable, version: str | None) -> CachedPage | None:
        """The page kept under ``key`` if it was made at ``version``, else ``None`` (a
        page of another version is dropped; ``None``: the store cannot tell, no page)."""
        with self._lock:
            page = self._pages.get(key)
            if page is None or version is None or page.version != version:
                if page is not None:
                    self._drop(key)
                self.misses += 1
                return None
            self._pages.move_to_end(key)
            self.hits += 1
            return page

    def put(self, key: Hashable, page: CachedPage) -> None:
        """Keep ``page`` under ``key``, dropping the least recently used pages beyond the
        bound (a page larger than the whole bound is not kept)."""
        size = page.size
        with self._lock:
            if key in self._pages:
                self._drop(key)
            if size > self.max_bytes:
                return
            self._pages[key] = page
            self._bytes += size
            while self._bytes > self.max_bytes or len(self._pages) > MAX_PAGES:
                self._drop(next(iter(self._pages)))

    def _drop(self, key: Hashable) -> None:
        self._bytes -= self._pages.pop(key).size


__all__ = ["DEFAULT_BYTES", "ENTRY_BYTES", "MAX_PAGES", "MAX_QUERY", "CachedPage", "PageCache"]
