"""A read of some stored requests: the filters of an Open311 GeoReport v2 query.

Both stores answer a :class:`RequestQuery` themselves (:mod:`geo.store.embedded_query`
reads only the needed columns of the snapshot file with the filters pushed into the
Parquet scan; :mod:`geo.store.postgis_query` is one parameterized SQL statement on
indexed columns), so a page of 1,000 requests never reads the whole table.

Order: ``requested_datetime`` newest first, then ``service_request_id`` in code-point
order, newest/greatest first. A deep page is asked for with :attr:`RequestQuery.after`,
the (time, id) of the last row of the page before (keyset paging): the rows after it in
that order, whatever was written since, so a client walking the pages while requests are
being ingested sees every request that was there when it started exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Final, Protocol

import pandas as pd
import pyproj

from hotspot311.errors import InputError
from hotspot311.schema import TIME_FIELDS

#: Columns a query returns when it names none.
QUERY_COLUMNS: Final = (
    "service_request_id",
    "status",
    "status_notes",
    "service_code",
    "service_name",
    "agency_responsible",
    "description",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "closed_datetime",
    "address",
    "zipcode",
    "lat",
    "lon",
    "media_url",
    "source",
)

#: Most rows one query returns.
MAX_LIMIT: Final = 1000


@dataclass(frozen=True)
class RequestQuery:
    """Filters, order position and size of one read of stored requests.

    Attributes
    ----------
    ids
        Only these ``service_request_id`` values (empty: any).
    service_names
        Only these service names (``None``: any; empty: none).
    status
        ``open`` or ``closed`` (``None``: any).
    start, end
        ``requested_datetime`` at or after ``start`` and before ``end``.
    updated_after, updated_before
        The last change strictly after / strictly before: ``updated_datetime``, or
        ``requested_datetime`` for a request never updated (so a client following
        changes also sees requests whose source leaves ``updated_datetime`` empty).
    bbox
        ``(min_lon, min_lat, max_lon, max_lat)`` in WGS84 degrees.
    near
        ``(lat, lon, radius_m)``: within ``radius_m`` metres (measured in the city CRS).
    after
        ``(requested_datetime, service_request_id)`` of the last row already seen.
    limit
        Rows to return, at most :data:`MAX_LIMIT`.
    offset
        Rows to skip first (shallow pages only; use ``after`` for deep ones).
    """

    ids: tuple[str, ...] = ()
    service_names: tuple[str, ...] | None = None
    status: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    bbox: tuple[float, float, float, float] | None = None
    near: tuple[float, float, float] | None = None
    after: tuple[datetime, str] | None = None
    limit: int = MAX_LIMIT
    offset: int = 0

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.limit <= MAX_LIMIT:
            problems.append(f"limit: {self.limit} is not between 0 and {MAX_LIMIT}")
        if self.offset < 0:
            problems.append(f"offset: {self.offset} is negative; allowed: 0 or more")
        if self.status not in (None, "open", "closed"):
            problems.append(f"status: {self.status!r} is not one of 'open', 'closed'")
        for name in ("start", "end", "updated_after", "updated_before"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                problems.append(f"{name}: {value} has no time zone; allowed: aware times")
        if self.after is not None and self.after[0].tzinfo is None:
            problems.append("after: the time has no time zone; allowed: aware times")
        if self.near is not None and not self.near[2] > 0:
            problems.append(f"radius: {self.near[2]} is not > 0 metres")
        if self.bbox is not None:
            w, s, e, n = self.bbox
            if not (w < e and s < n):
                problems.append(f"bbox: {self.bbox} is not (min_lon, min_lat, max_lon, "
                                "max_lat) with min < max")
        if problems:
            raise InputError(problems)

    @property
    def empty(self) -> bool:
        """Whether the query can match nothing (no service names allowed, or limit 0)."""
        return self.limit == 0 or self.service_names == ()


def frame_rows(frame: pd.DataFrame) -> dict[str, list[Any]]:
    """A page as column lists, as :meth:`geo.store.base.Store.query_rows` gives it:
    times as aware :class:`datetime.datetime` (UTC), missing values as ``None``.

    Examples
    --------
    >>> rows = frame_rows(pd.DataFrame({"a": ["x", None], "lat": [1.5, float("nan")],
    ...                                 "requested_datetime": ["2026-01-02T03:04:05Z", None]}))
    >>> rows["a"], rows["lat"], rows["requested_datetime"][0].isoformat()
    (['x', None], [1.5, None], '2026-01-02T03:04:05+00:00')
    """
    out: dict[str, list[Any]] = {}
    for name in frame.columns:
        values = frame[name]
        if name in TIME_FIELDS:
            t = pd.to_datetime(values, utc=True)
            out[name] = [None if pd.isna(v) else v.to_pydatetime() for v in t]
        else:
            out[name] = [None if v is None or v is pd.NA or v is pd.NaT
                         or (isinstance(v, float) and v != v) else v
                         for v in values.astype(object).tolist()]
    return out


@lru_cache(maxsize=16)
def unit_metres(crs: str) -> float:
    """Metres per unit of a CRS's first axis (cached: building a CRS costs ~1 ms).

    Examples
    --------
    >>> round(unit_metres("EPSG:2272"), 6), unit_metres("EPSG:32618")
    (0.304801, 1.0)
    """
    return float(pyproj.CRS(crs).axis_info[0].unit_conversion_factor or 1.0)


@dataclass(frozen=True)
class PageKeys:
    """Which requests answer a query, and in what state of the store.

    Attributes
    ----------
    version
        :meth:`geo.store.base.Store.data_version`'s token, read with the ids (one state
        of the store); ``None`` for an empty page.
    ids
        ``service_request_id`` of the page's rows, in page order.
    last_requested
        The last row's ``requested_datetime`` (aware; ``None`` for an empty page): with
        its id, where the next page starts.
    """

    version: str | None
    ids: list[str]
    last_requested: datetime | None


class AsyncQueries(Protocol):
    """Open311 reads for an asyncio server, opened and closed in the event loop that uses
    them (:meth:`geo.store.base.Store.async_reads`)."""

    async def open(self) -> None:
        """Get ready (connect)."""

    async def close(self) -> None:
        """Let go of what :meth:`open` took."""

    async def query_rows(self, query: RequestQuery, *,
                         columns: Sequence[str] = QUERY_COLUMNS) -> dict[str, list[Any]]:
        """What the store's ``query_rows`` answers."""


__all__ = ["MAX_LIMIT", "QUERY_COLUMNS", "AsyncQueries", "PageKeys", "RequestQuery", "frame_rows",
           "unit_metres"]
