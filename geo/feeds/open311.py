"""Open311 GeoReport v2 endpoints (Chicago, Boston, Toronto, Bloomington, SF …).

``--url`` is the endpoint base that ``services.json`` and ``requests.json`` hang from.
GeoReport v2 has no keyset: a query is a time window, and an endpoint answers at most
its page limit (the spec's default: 1,000 rows, 90 days). So a sync walks time windows
from the watermark to now (``window_days``, default 90), and a window that comes back
full is split in halves until no half is full. Options (``sources add --option``):

``window=requested|updated``
    Filter on ``start_date``/``end_date`` (the spec's, on the request time; updates to
    older requests are not seen) or on ``updated_after``/``updated_before`` where the
    endpoint offers them (updates are seen).
``paging=yes``
    The endpoint takes ``page`` and ``page_size``: a full window is read page by page
    instead of being split. Where a page carries a ``Link: <…>; rel="next"`` header on
    the endpoint's own host and path (keyset paging, as hotspot311's server gives),
    that link is followed instead of counting pages, so deep windows are neither cut
    off at the server's page limit nor shifted by rows written meanwhile.
``window_days=N``
    The widest window asked for.

The watermark is the end of the last window written. Window ends are inclusive, so a
row on a boundary may come twice; the second copy changes nothing. ``updated_after`` is
"strictly after" on most endpoints, as is ``updated_before``: a row updated exactly on
a window's edge would fall between two windows, so each ``updated_after`` is sent
:data:`OVERLAP` before the window's start (the rows of that second come twice).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, Final

import httpx

from geo.feeds.client import FeedClient, readable
from geo.feeds.records import Page, iso_z, parse_time, records_frame
from geo.ingest.readers import Format
from geo.store.sources import SourceConfig
from hotspot311.errors import FeedError, describe

DEFAULT_COLUMNS: Final[dict[str, str]] = {}
#: Window ends are inclusive: a row on a boundary comes twice (see the engine).
REPEATS: Final = True
#: Where a first sync without ``--since`` starts: the spec's default window.
FIRST_WINDOW: Final = timedelta(days=90)
_SMALLEST: Final = timedelta(seconds=1)
#: How far each ``updated_after`` reaches back before its window (see above).
OVERLAP: Final = timedelta(seconds=1)


def base(config: SourceConfig) -> str:
    """The endpoint base, without a trailing slash."""
    return config.url.rstrip("/")


def _params(config: SourceConfig) -> dict[str, Any]:
    return {"jurisdiction_id": config.jurisdiction} if config.jurisdiction else {}


def services(config: SourceConfig, client: FeedClient) -> list[dict[str, Any]]:
    """The endpoint's service list (``services.json``).

    Raises
    ------
    FeedError
        When the answer is not a JSON list of objects.
    """
    url = f"{base(config)}/services.json"
    doc, response = client.get_json(url, params=_params(config))
    if not isinstance(doc, list) or not all(isinstance(s, dict) for s in doc):
        raise FeedError(f"services.json: expected a JSON list of services; got "
                        f"{describe(doc, 120)}", source=config.name, url=readable(response.url))
    return doc


def pages(config: SourceConfig, client: FeedClient, *, watermark: dict[str, str] | None,
          now: datetime) -> Iterator[Page]:
    """Requests in time windows from ``watermark`` to ``now``.

    Raises
    ------
    FeedError
        When a page is not a JSON list of requests, or one second holds more requests
        than the endpoint's page limit and it offers no paging.
    """
    opts = config.options
    by_updated = opts.get("window", "requested") == "updated"
    names = ("updated_after", "updated_before") if by_updated else ("start_date", "end_date")
    span = timedelta(days=int(opts.get("window_days", "90")))
    paging = opts.get("paging", "no").lower() in ("yes", "true", "1")
    start = (parse_time(watermark["updated"], what="watermark")
             if watermark and watermark.get("updated") else now - FIRST_WINDOW)
    walker = _Walker(config, client, names, paging)
    cursor = start
    while cursor < now:
        end = min(cursor + span, now)
        yield from walker.window(cursor, end)
        cursor = end


class _Walker:
    """Reads windows, splitting full ones, numbering pages."""

    def __init__(self, config: SourceConfig, client: FeedClient, names: tuple[str, str],
                 paging: bool) -> None:
        self.config, self.client, self.names, self.paging = config, client, names, paging
        self.number = 0
        self.url = f"{base(config)}/requests.json"

    def fetch(self, start: datetime, end: datetime, page: int | None, *,
              link: str | None = None) -> tuple[list[dict[str, Any]], str, str | None]:
        """One page: the window's query (page ``page``), or the ``link`` of the page
        before; the rows, the URL shown in messages, and the next page's link."""
        self.number += 1
        if link is not None:
            doc, response = self.client.get_json(link, page=self.number)
        else:
            after = start - OVERLAP if self.names[0] == "updated_after" else start
            params = {**_params(self.config), self.names[0]: iso_z(after),
                      self.names[1]: iso_z(end)}
            if page is not None:
                params.update(page=page, page_size=self.config.page_size)
            doc, response = self.client.get_json(self.url, params=params, page=self.number)
        if isinstance(doc, dict):  # some endpoints wrap the list
            doc = doc.get("service_requests", doc.get("requests", doc))
        if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
            raise FeedError(f"expected a JSON list of requests; got {describe(doc, 120)}",
                            source=self.config.name, url=readable(response.url), page=self.number)
        return doc, readable(response.url), self._next_link(response)

    def _next_link(self, response: httpx.Response) -> str | None:
        """The ``rel="next"`` link when it stays on the endpoint (same scheme, host,
        port and path): the token is sent with it, so never to anywhere else."""
        found = response.links.get("next", {}).get("url")
        if not found:
            return None
        nxt, own = httpx.URL(str(found)), httpx.URL(self.url)
        nxt = response.url.join(nxt) if nxt.is_relative_url else nxt
        same = (nxt.scheme, nxt.host, nxt.port, nxt.path) == (own.scheme, own.host, own.port,
                                                              own.path)
        return str(nxt) if same else None

    def window(self, start: datetime, end: datetime) -> Iterator[Page]:
        limit = self.config.page_size
        first = 1 if self.paging else None
        rows, url, link = self.fetch(start, end, first)
        if len(rows) < limit and not (self.paging and link):
            yield self._page(rows, url, end)
            return
        if self.paging:
            page = 1
            while link is not None or len(rows) >= limit:
                yield self._page(rows, url, start)
                page += 1
                rows, url, link = self.fetch(start, end, page, link=link)
            yield self._page(rows, url, end)
            return
        if end - start <= _SMALLEST:
            raise FeedError(
                f"{len(rows)} requests (the page limit, {limit}) within one second, and the "
                "endpoint takes no paging: raise the source's page size to the endpoint's "
                "limit, or add --option paging=yes if it offers page/page_size",
                source=self.config.name, url=url, page=self.number)
        middle = start + (end - start) / 2
        yield from self.window(start, middle)
        yield from self.window(middle, end)

    def _page(self, rows: list[dict[str, Any]], url: str, upto: datetime) -> Page:
        return Page(records_frame(rows), Format.OPEN311, {"updated": iso_z(upto)}, url,
                    self.number)
