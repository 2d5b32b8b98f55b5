"""Reads that ask a store only for what a page or a command shows.

A :class:`RequestFilter` says which requests (service types, departments, a time range,
status, areas, a latitude/longitude box, ids, problems); the store answers with counts
(:meth:`geo.store.base.Store.request_summary`, :meth:`~geo.store.base.Store.group_counts`,
:meth:`~geo.store.base.Store.grid_cells`) or with the few columns of the matching rows
(:meth:`~geo.store.base.Store.select_requests`). The PostGIS store answers in SQL
(:mod:`geo.store.postgis_reads`), the embedded store by reading only the columns it needs
(:mod:`geo.store.embedded_reads`); both give the same answers (tested).

Store-independent here: the filter, the summary record and the box arithmetic both
implementations share.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa

from hotspot311.errors import InputError, describe

#: ``(south, west, north, east)`` in degrees; see :func:`lon_ranges`.
Box = tuple[float, float, float, float]
STATUS_CHOICES: Final = ("all", "open", "closed")
#: Columns :meth:`~geo.store.base.Store.group_counts` may group by besides layer keys.
GROUPABLE: Final = ("service_name", "agency_responsible", "status", "geocode_match_type",
                    "source", "synthetic")
#: Columns of :meth:`~geo.store.base.Store.facet_counts`.
FACET_COLUMNS: Final = ("service_name", "agency_responsible", "status", "requests", "overdue",
                        "synthetic", "first", "last")
#: Columns of :meth:`~geo.store.base.Store.facet_cells`.
FACET_CELL_COLUMNS: Final = ("service_name", "agency_responsible", "status", "row", "col", "n")


@dataclass(frozen=True)
class RequestFilter:
    """Which stored requests a read is about (every field narrows; empty means all).

    Attributes
    ----------
    services, agencies
        ``service_name`` / ``agency_responsible`` values to keep.
    start, end
        ``requested_datetime`` at or after ``start`` and before ``end`` (aware datetimes).
    after
        ``requested_datetime`` strictly after this time (a hotspot window's start).
    until
        ``requested_datetime`` at or before this time (a hotspot window's end).
    status
        ``all``, ``open`` or ``closed``.
    areas
        ``(layer key, codes)`` pairs: a request must be in one of the codes of each layer.
    box
        ``(south, west, north, east)`` in degrees (see :func:`lon_ranges`), or ``None``.
    ids
        ``service_request_id`` values to keep.
    problems
        ``problem_id`` values to keep.
    located
        Only requests with a point in the city CRS (``x`` and ``y``).
    """

    services: tuple[str, ...] = ()
    agencies: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    after: datetime | None = None
    until: datetime | None = None
    status: str = "all"
    areas: tuple[tuple[str, tuple[str, ...]], ...] = field(default_factory=tuple)
    box: Box | None = None
    ids: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    located: bool = False

    def check(self, layer_keys: Sequence[str]) -> RequestFilter:
        """Raise :class:`InputError` listing every unusable field; else ``self``."""
        problems = []
        if self.status not in STATUS_CHOICES:
            problems.append(f"status: got {describe(self.status)}; allowed: "
                            f"{', '.join(STATUS_CHOICES)}")
        for name in ("start", "end", "after", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                problems.append(f"{name}: got {describe(value)}; allowed: an aware datetime")
        for key, _codes in self.areas:
            if key not in layer_keys:
                problems.append(f"area: layer {describe(key)} is not in the store; layers: "
                                f"{', '.join(layer_keys)}")
        if self.box is not None:
            try:
                lon_ranges(self.box)
            except InputError as err:
                problems.extend(err.problems)
        if problems:
            raise InputError(problems)
        return self

    def area_map(self) -> dict[str, tuple[str, ...]]:
        """Layer key → codes, pairs without codes left out."""
        return {k: tuple(v) for k, v in self.areas if v}


@dataclass(frozen=True)
class RequestSummary:
    """Headline numbers of the requests a filter selects.

    Attributes
    ----------
    count, open, overdue, synthetic
        Requests; open ones; open ones past ``expected_datetime`` at the reference time;
        generated demo rows.
    first, last
        Earliest and latest ``requested_datetime`` (``None`` when there are none).
    """

    count: int = 0
    open: int = 0
    overdue: int = 0
    synthetic: int = 0
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None


@dataclass(frozen=True)
class TableCounts:
    """What ``hotspot311 status`` shows of the tables beside the requests, counted by the
    store (no table is read whole).

    Attributes
    ----------
    quarantine, contact_quarantine
        Reason → quarantined rows, most first (then by reason).
    contacts, contacts_synthetic
        Stored contacts; generated demo ones.
    contacts_first, contacts_last
        Earliest and latest ``received_datetime`` (``None`` when there are none).
    batches
        Rows of the ingest log.
    """

    quarantine: dict[str, int] = field(default_factory=dict)
    contacts: int = 0
    contacts_synthetic: int = 0
    contacts_first: pd.Timestamp | None = None
    contacts_last: pd.Timestamp | None = None
    contact_quarantine: dict[str, int] = field(default_factory=dict)
    batches: int = 0


@dataclass(frozen=True)
class BatchLogHead:
    """The end of the ingest log: what tells the app that new data came in.

    Attributes
    ----------
    batches
        Rows of the log.
    last_batch
        ``batch_id`` of the newest row (``None`` for an empty log).
    last_ingested
        The newest ``ingested_at`` (UTC; ``None`` for an empty log).
    """

    batches: int = 0
    last_batch: str | None = None
    last_ingested: pd.Timestamp | None = None


def log_head(batch_ids: pd.Series, ingested: pd.Series) -> BatchLogHead:
    """The :class:`BatchLogHead` of an ingest log given by its ``batch_id`` and
    ``ingested_at`` (ISO 8601 text) columns, in log order.

    Examples
    --------
    >>> head = log_head(pd.Series(["a", "b"]), pd.Series(["2024-05-01T08:00:00+00:00", None]))
    >>> head.batches, head.last_batch, head.last_ingested.isoformat()
    (2, 'b', '2024-05-01T08:00:00+00:00')
    """
    if len(batch_ids) == 0:
        return BatchLogHead()
    times = pd.to_datetime(ingested.dropna(), utc=True, format="ISO8601")
    return BatchLogHead(batches=len(batch_ids), last_batch=str(batch_ids.iloc[-1]),
                        last_ingested=None if times.empty else times.max())


def reason_counts(pairs: Iterable[tuple[Any, Any]]) -> dict[str, int]:
    """(reason, rows) pairs as :attr:`TableCounts.quarantine`: most rows first, then by
    reason.

    Examples
    --------
    >>> reason_counts([("b", 2), ("a", 2), ("c", 5)])
    {'c': 5, 'a': 2, 'b': 2}
    """
    return dict(sorted(((str(r), int(n)) for r, n in pairs), key=lambda p: (-p[1], p[0])))


def lon_ranges(box: Box) -> list[tuple[float, float]]:
    """The longitude ranges (in -180..180) that a box covers.

    Leaflet reports the longitudes of world copies unwrapped (``west`` near -435 one world
    to the west) and boxes across the antimeridian with ``east`` above 180.

    Parameters
    ----------
    box
        ``(south, west, north, east)`` in degrees.

    Returns
    -------
    list of (float, float)
        One range, two across the antimeridian, or ``[(-180, 180)]`` for a box 360 degrees
        wide or wider.

    Raises
    ------
    InputError
        When ``south`` is above ``north`` or ``west`` east of ``east`` (or not finite).

    Examples
    --------
    >>> lon_ranges((39.9, -435.2, 40.0, -435.1))
    [(-75.2, -75.1)]
    >>> lon_ranges((0, 170, 1, 190))
    [(170.0, 180.0), (-180.0, -170.0)]
    """
    south, west, north, east = (float(v) for v in box)
    problems = []
    if not np.isfinite([south, west, north, east]).all():
        problems.append(f"box: got {describe(box)}; allowed: four finite numbers")
    elif not south <= north:
        problems.append(f"box: south {describe(south)} must be at or below north "
                        f"{describe(north)}")
    elif not west <= east:
        problems.append(f"box: west {describe(west)} must be at or west of east "
                        f"{describe(east)}")
    if problems:
        raise InputError(problems)
    width = east - west
    if width >= 360:
        return [(-180.0, 180.0)]
    lo = round(((west + 180.0) % 360.0) - 180.0, 9)
    hi = round(lo + width, 9)
    if hi <= 180.0:
        return [(lo, hi)]
    return [(lo, 180.0), (-180.0, round(hi - 360.0, 9))]


def grid_index(values: np.ndarray, size: float) -> np.ndarray:
    """The grid row (or column) of each coordinate: ``floor(value / size)``."""
    return np.floor(values / size).astype(np.int64)


def facets_answer(filt: RequestFilter) -> bool:
    """Whether :func:`summary_from_facets` answers ``filt`` (it filters by service type,
    department and status only)."""
    plain = RequestFilter(services=filt.services, agencies=filt.agencies, status=filt.status)
    return filt == plain


def summary_from_facets(facets: pd.DataFrame, filt: RequestFilter) -> RequestSummary:
    """The headline numbers of ``filt`` from :meth:`~geo.store.base.Store.facet_counts`.

    Raises
    ------
    InputError
        When ``filt`` narrows by more than service type, department and status.

    Examples
    --------
    >>> t = pd.Timestamp("2026-01-01", tz="UTC")
    >>> f = pd.DataFrame({"service_name": ["a", "b"], "agency_responsible": ["X", "X"],
    ...                   "status": ["open", "closed"], "requests": [3, 2], "overdue": [1, 0],
    ...                   "synthetic": [0, 0], "first": [t, t], "last": [t, t]})
    >>> summary_from_facets(f, RequestFilter(status="open")).count
    3
    """
    part = facets[_facet_rows(facets, filt, "the facet counts")]
    if part.empty or int(part["requests"].sum()) == 0:
        return RequestSummary()
    is_open = part["status"] == "open"
    return RequestSummary(
        count=int(part["requests"].sum()), open=int(part.loc[is_open, "requests"].sum()),
        overdue=int(part["overdue"].sum()), synthetic=int(part["synthetic"].sum()),
        first=_utc(part["first"].min()), last=_utc(part["last"].max()))


def facet_cells_frame(table: pa.Table | None) -> pd.DataFrame:
    """The frame :meth:`~geo.store.base.Store.facet_cells` returns, from an Arrow table.

    Parameters
    ----------
    table
        :data:`FACET_CELL_COLUMNS` (any string or dictionary type for the facets);
        ``None``: no rows.

    Returns
    -------
    pandas.DataFrame
        The facets as categoricals (a few distinct values over hundreds of thousands of
        rows; missing as NaN), the cells and counts as int64.

    Examples
    --------
    >>> t = pa.table({"service_name": ["a", None], "agency_responsible": ["X", "X"],
    ...               "status": ["open", "open"], "row": [1, 2], "col": [3, 3], "n": [4, 5]})
    >>> f = facet_cells_frame(t)
    >>> f["service_name"].tolist(), f["n"].tolist(), str(f["status"].dtype)
    (['a', nan], [4, 5], 'category')
    """
    facets = FACET_CELL_COLUMNS[:3]
    if table is None:
        return pd.DataFrame({c: pd.Series([], dtype="category" if c in facets else "int64")
                             for c in FACET_CELL_COLUMNS})
    out: dict[str, Any] = {}
    for c in FACET_CELL_COLUMNS:
        column = table.column(c)
        if c in facets:
            text = column.cast(pa.string()) if column.type != pa.string() else column
            out[c] = text.dictionary_encode().to_pandas()
        else:
            out[c] = column.to_numpy().astype("int64", copy=False)
    return pd.DataFrame(out)


def cells_from_facets(cells: pd.DataFrame, filt: RequestFilter) -> pd.DataFrame:
    """The grid counts of ``filt`` (as :meth:`~geo.store.base.Store.grid_cells` gives them)
    from :meth:`~geo.store.base.Store.facet_cells`, without asking the store again.

    Parameters
    ----------
    cells
        Requests per grid cell and per service type, department and status
        (:data:`FACET_CELL_COLUMNS`).
    filt
        A filter by service type, department and status only (:func:`facets_answer`).

    Returns
    -------
    pandas.DataFrame
        ``row``, ``col``, ``n`` (int64), one row per non-empty cell, ordered by row and
        column.

    Raises
    ------
    InputError
        When ``filt`` narrows by anything else.

    Examples
    --------
    >>> c = pd.DataFrame({"service_name": ["a", "b", "a"], "agency_responsible": ["X"] * 3,
    ...                   "status": ["open", "open", "closed"], "row": [1, 1, 2],
    ...                   "col": [5, 5, 5], "n": [2, 3, 4]})
    >>> cells_from_facets(c, RequestFilter(status="open")).to_dict("list")
    {'row': [1], 'col': [5], 'n': [5]}
    >>> cells_from_facets(c, RequestFilter(services=("a",))).to_dict("list")
    {'row': [1, 2], 'col': [5, 5], 'n': [2, 4]}
    """
    keep = _facet_rows(cells, filt, "the grid counts by facet")
    return cell_counts(cells["row"].to_numpy(dtype=np.int64)[keep],
                       cells["col"].to_numpy(dtype=np.int64)[keep],
                       cells["n"].to_numpy(dtype=np.int64)[keep])


def cell_counts(row: np.ndarray, col: np.ndarray, n: np.ndarray | None = None
                ) -> pd.DataFrame:
    """Counts per grid cell, as :meth:`~geo.store.base.Store.grid_cells` gives them.

    Parameters
    ----------
    row, col
        Each item's grid cell (:func:`grid_index`), int64.
    n
        Each item's count (default 1: one request).

    Returns
    -------
    pandas.DataFrame
        ``row``, ``col``, ``n`` (int64), one row per non-empty cell, ordered by row and
        column.

    Examples
    --------
    >>> r, c = np.array([2, 1, 2]), np.array([5, 7, 5])
    >>> cell_counts(r, c).to_dict("list"), cell_counts(r, c, np.array([1, 2, 3]))["n"].tolist()
    ({'row': [1, 2], 'col': [7, 5], 'n': [1, 2]}, [2, 4])
    """
    if not len(row):
        return pd.DataFrame({"row": [], "col": [], "n": []}, dtype="int64")
    r0, c0 = int(row.min()), int(col.min())
    width = int(col.max()) - c0 + 1
    keys, where, counts = np.unique((row - r0) * width + (col - c0), return_inverse=True,
                                    return_counts=True)
    if n is not None:
        counts = np.bincount(where, weights=n, minlength=len(keys))
    return pd.DataFrame({"row": keys // width + r0, "col": keys % width + c0,
                         "n": counts}).astype("int64")


def _facet_rows(frame: pd.DataFrame, filt: RequestFilter, what: str) -> np.ndarray:
    """Which rows of a frame counted by service type, department and status ``filt``
    keeps.

    Raises
    ------
    InputError
        When ``filt`` narrows by anything else (the message says that ``what`` answers
        those three only).
    """
    if not facets_answer(filt):
        raise InputError(f"filter: got {describe(filt)}; {what} answer filters by service "
                         "type, department and status only")
    keep = np.ones(len(frame), dtype=bool)
    if filt.services:
        keep &= frame["service_name"].isin(filt.services).to_numpy()
    if filt.agencies:
        keep &= frame["agency_responsible"].isin(filt.agencies).to_numpy()
    if filt.status != "all":
        keep &= (frame["status"] == filt.status).to_numpy()
    return keep


def _utc(value: Any) -> pd.Timestamp | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).tz_convert("UTC")
