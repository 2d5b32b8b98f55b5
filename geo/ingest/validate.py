"""Validation: from mapped source rows to canonical requests and a quarantine.

Each row is checked in this order and the first failure is its quarantine reason:

=========================  ==============================================================
reason                     meaning (and what a person can do about it)
=========================  ==============================================================
``missing_id``             no ``service_request_id``: map the id column
``missing_time``           no ``requested_datetime``
``unparseable_time``       ``requested_datetime`` is not a time hotspot311 can read
``time_in_future``         ``requested_datetime`` is more than a day after now
``needs_geocoding``        no usable coordinates, but an address: ``hotspot311 geocode``
                           can place it, and it then leaves the quarantine
``placeholder_coordinates`` (0, 0) and no address
``outside_city``           coordinates outside the city extent and no address
``invalid_coordinates``    coordinates that are not finite numbers, and no address
``missing_coordinates``    neither coordinates nor an address
``unsupported_geometry``   a GeoJSON feature that is not a Point, and no address
``duplicate_id``           another row of the same file has the same id and is newer
                           (newest ``updated_datetime`` wins, then the later row)
=========================  ==============================================================

Repairs that are certain are made and flagged in ``quality_flags``: lat/lon given in
the wrong order when the swapped pair lies in the city (``latlon_swapped``), ZIPs such
as ``19122.0`` or ``19122-1234``. Doubts are only flagged: a ZIP that is not five digits
(``zipcode_malformed``; the ``zip`` layer gives the true one), an unknown status word
(``status_unknown``), an updated or closed time in the future.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property, lru_cache
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyproj

from geo.ingest.arrowtext import text_buffers, trim_is_noop
from geo.ingest.extent import contains_points
from geo.ingest.hashing import hash_text
from geo.ingest.model import TEXT, row_hash, with_points
from geo.ingest.readers import GEOMETRY_ERROR_COLUMN, ROW_COLUMN
from geo.ingest.times import parse_times
from hotspot311.schema import CANONICAL_FIELDS, TEXT_FIELDS, TIME_FIELDS, UNSPECIFIED_SERVICE
from layers.profile import CityProfile

REASONS: Final[dict[str, str]] = {
    "missing_id": "no service_request_id; map the id column with --map service_request_id=COLUMN",
    "missing_time": "no requested_datetime; map it with --map requested_datetime=COLUMN",
    "unparseable_time": "requested_datetime {value!r} is not a time hotspot311 can read "
    "(epoch ms, ISO 8601, M/D/YYYY H:MM, YYYY/MM/DD H:MM)",
    "time_in_future": "requested_datetime {value} is in the future",
    "needs_geocoding": "{detail}; the address {address!r} can be placed with `hotspot311 geocode`",
    "placeholder_coordinates": "coordinates are the placeholder (0, 0) and there is no address",
    "outside_city": "coordinates (lat {lat}, lon {lon}) are outside {city} and there is no address",
    "invalid_coordinates": "coordinates (lat {rlat!r}, lon {rlon!r}) are not finite numbers and "
    "there is no address",
    "missing_coordinates": "no coordinates and no address",
    "unsupported_geometry": "{detail} and there is no address",
    "duplicate_id": "row {kept} of this file has the same id and is newer, so it was kept",
}

QUARANTINE_COLUMNS: Final = (
    "quarantine_id",
    "batch_id",
    "source_file",
    "source_row",
    "reason",
    "detail",
    "service_request_id",
    "address",
    "raw",
    "quarantined_at",
)

_CLOSED_WORDS = r"clos|complet|resolv|done|cancel"
_OPEN_WORDS = frozenset(
    {
        "open",
        "in-progress",
        "in progress",
        "pending",
        "acknowledged",
        "new",
        "assigned",
        "started",
        "submitted",
        "received",
        "reopened",
    }
)
_FUTURE_TOLERANCE = timedelta(days=1)
_CLOSED: Final = pa.scalar("closed", pa.large_string())
_OPEN: Final = pa.scalar("open", pa.large_string())
#: Share of located rows outside the city above which a file looks like another city's.
FOREIGN_SHARE: Final = 0.9


@dataclass
class ValidatedBatch:
    """The outcome of validating one source file.

    The usable requests' points are made when first asked for (:attr:`requests`), or for
    some rows only (:meth:`requests_where`): a million shapely points cost about as much
    as the rest of validation, and a store that finds most rows unchanged writes none.

    Attributes
    ----------
    rows
        Usable requests: canonical and derived columns (``lat``/``lon`` and city-CRS
        ``x``/``y`` included), without the point geometry.
    quarantine
        Rows that cannot be used, with raw values and reasons (:data:`QUARANTINE_COLUMNS`).
    rows_read
        Rows in the source; ``len(requests) + len(quarantine) == rows_read``.
    flags
        Repair and doubt flag → number of rows carrying it.
    located, outside
        Rows with finite coordinates, and those of them outside the city extent
        (quarantined as ``outside_city``, or ``needs_geocoding`` when they have an
        address): nearly all outside suggests a file of another city (:func:`foreign`).
    source_rows
        The source row of each request (the file's 1-based record position).
    """

    rows: pd.DataFrame
    quarantine: pd.DataFrame
    rows_read: int
    flags: dict[str, int] = field(default_factory=dict)
    located: int = 0
    outside: int = 0
    source_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @cached_property
    def requests(self) -> gpd.GeoDataFrame:
        """Usable requests with their point geometry in WGS84 (made once, then kept: an
        edit of this frame is what the store writes)."""
        return with_points(self.rows)

    def current(self) -> pd.DataFrame:
        """The usable requests as they stand, without making points.

        Returns
        -------
        pandas.DataFrame
            :attr:`requests` once it has been made (a caller may have edited it), else
            :attr:`rows`.
        """
        made = self.__dict__.get("requests")
        return made if made is not None else self.rows

    def requests_where(self, keep: np.ndarray) -> gpd.GeoDataFrame:
        """Some of the usable requests, with their points.

        Parameters
        ----------
        keep
            One boolean per row of :attr:`rows`.

        Returns
        -------
        geopandas.GeoDataFrame
            The rows at ``keep`` (their index kept), with points made for them alone
            unless :attr:`requests` has been made (then its rows, edits included).
        """
        made = self.__dict__.get("requests")
        if made is not None:
            return made[keep]
        return with_points(self.rows[keep])


def foreign(located: int, outside: int) -> bool:
    """Whether nearly every row with coordinates (:data:`FOREIGN_SHARE` or more) lies
    outside the city: the file is probably another city's.

    Examples
    --------
    >>> foreign(100, 95), foreign(100, 50), foreign(0, 0)
    (True, False, False)
    """
    return outside > 0 and outside >= FOREIGN_SHARE * located


def validate(
    mapped: pd.DataFrame,
    *,
    profile: CityProfile,
    batch_id: str,
    source_file: str,
    now: datetime | None = None,
    winners: Mapping[str, int] | None = None,
) -> ValidatedBatch:
    """Type, check and repair mapped rows; split them into requests and quarantine.

    Parameters
    ----------
    mapped
        Output of :func:`geo.ingest.mapping.apply_mapping`.
    profile
        City profile: time zone, CRS and extent.
    batch_id
        Identifier recorded on every row of this batch.
    source_file
        Name recorded in the quarantine.
    now
        Reference time for "in the future" (UTC now when omitted).
    winners
        For a file validated in pieces (:mod:`geo.ingest.stream`): id → the source row
        the whole file keeps, for ids kept in more than one piece; the other rows with
        such an id are quarantined as ``duplicate_id`` naming that row, as they would be
        if the file were validated whole.

    Returns
    -------
    ValidatedBatch
        Requests and quarantine; together they hold every row read.
    """
    now = now or datetime.now(UTC)
    n = len(mapped)
    df = mapped.reset_index(drop=True)
    reason = pd.Series(None, index=df.index, dtype=object)
    detail = pd.Series(None, index=df.index, dtype=object)

    cache: dict[str, pd.Series] = {}

    def text(name: str) -> pd.Series:
        if name not in cache:
            if name not in df.columns:
                cache[name] = pd.Series(None, index=df.index, dtype=object)
            else:
                cache[name] = _stripped(df[name])
        return cache[name]

    def mark(
        mask: pd.Series | np.ndarray, code: str, template: str, values: pd.Series | None = None
    ) -> None:
        m = pd.Series(mask, index=df.index).fillna(False).astype(bool) & reason.isna()
        if not m.any():
            return
        reason[m] = code
        detail[m] = (
            template if values is None else [template.format(value=str(v)[:80]) for v in values[m]]
        )

    ids = _id_text(text("service_request_id"))
    mark(ids.isna(), "missing_id", REASONS["missing_id"])

    tz = profile.timezone
    # the time columns and the coordinates are read side by side (Arrow's kernels and
    # shapely release the GIL); the marks below are set in the same order as ever
    address = text("address")
    raw_times = {name: text(name) for name in TIME_FIELDS}
    coordinate_args = (text("lat"), text("lon"), address, profile, text(GEOMETRY_ERROR_COLUMN))
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="validate") as pool:
        checked = pool.submit(_check_coordinates, *coordinate_args)
        times = dict(zip(TIME_FIELDS, pool.map(lambda v: parse_times(v, tz=tz),
                                               raw_times.values()), strict=True))
        lat, lon, coord_reason, coord_detail, swapped, located, outside = checked.result()
    raw_req = text("requested_datetime")
    mark(raw_req.isna(), "missing_time", REASONS["missing_time"])
    bad_time = times["requested_datetime"].isna() & raw_req.notna()
    mark(bad_time, "unparseable_time", REASONS["unparseable_time"], raw_req)
    future = times["requested_datetime"] > pd.Timestamp(now + _FUTURE_TOLERANCE)
    mark(future, "time_in_future", REASONS["time_in_future"], times["requested_datetime"])

    flags = pd.Series("", index=df.index, dtype=object)

    def flag(mask: pd.Series | np.ndarray, name: str) -> None:
        m = np.asarray(pd.Series(mask, index=df.index).fillna(False), dtype=bool)
        if m.any():
            flags.loc[m] = pd.Series([f"{f};{name}" if f else name for f in flags[m]],
                                     index=flags.index[m])

    flag(swapped, "latlon_swapped")
    coord_rows = coord_reason.notna() & reason.isna()
    at = np.flatnonzero(coord_rows.to_numpy(dtype=bool))  # a few rows: set by position
    if len(at):
        reason.iloc[at] = coord_reason.to_numpy(dtype=object)[at]
        detail.iloc[at] = coord_detail.to_numpy(dtype=object)[at]

    for name in ("updated_datetime", "closed_datetime"):
        flag(times[name] > pd.Timestamp(now + _FUTURE_TOLERANCE), f"{name}_in_future")
        flag(times[name].isna() & text(name).notna(), f"{name}_unparseable")
    flag(
        times["expected_datetime"].isna() & text("expected_datetime").notna(),
        "expected_datetime_unparseable",
    )

    status, status_unknown = normalize_status(text("status"), times["closed_datetime"])
    flag(status_unknown, "status_unknown")
    zipcode, zip_bad = normalize_zip(text("zipcode"))
    flag(zip_bad, "zipcode_malformed")

    # duplicates among rows that pass every other check: newest updated wins, then later row
    good = reason.isna()
    if winners:
        kept_row = ids.map(winners, na_action="ignore").astype("Int64")
        losers = (good & kept_row.notna() & (kept_row != df[ROW_COLUMN])).fillna(False)
        if losers.any():
            reason[losers] = "duplicate_id"
            detail[losers] = [REASONS["duplicate_id"].format(kept=int(r))
                              for r in kept_row[losers]]
            good = reason.isna()
    dup_rows = _duplicates(ids, times["updated_datetime"], df[ROW_COLUMN], good)
    if dup_rows is not None:
        losers, kept_row = dup_rows
        reason[losers] = "duplicate_id"
        detail[losers] = kept_row[losers].map(lambda r: REASONS["duplicate_id"].format(kept=r))

    extra_cols = [c for c in df.columns if c.startswith("src:")]
    synthetic = pd.Series(False, index=df.index)
    if "src:synthetic" in extra_cols:
        codes, marks = distinct(text("src:synthetic"))
        yes = marks.fillna("").str.lower().isin(["true", "1", "yes"]).to_numpy(dtype=bool)
        synthetic = pd.Series(yes[codes], index=df.index)
        extra_cols.remove("src:synthetic")

    q = reason.notna()
    quarantine = _quarantine_frame(df[q], reason[q], detail[q], batch_id, source_file, now)

    keep = (~q).to_numpy(dtype=bool)
    kept = _Picker(keep)
    # the kept rows are numbered 0…n-1 from here on
    req = pd.DataFrame(index=pd.RangeIndex(kept.n))
    for name in CANONICAL_FIELDS:
        if name in TIME_FIELDS:
            req[name] = kept(times[name])
        elif name in TEXT_FIELDS:
            req[name] = kept(_text_column(text(name)))
    req["service_request_id"] = kept(_text_column(ids))
    req["status"] = kept(status)
    req["zipcode"] = kept(_text_column(zipcode))
    req["service_name"] = req["service_name"].fillna(UNSPECIFIED_SERVICE)
    req["lat"] = kept(lat)
    req["lon"] = kept(lon)
    req["x"] = req["y"] = np.nan  # filled below, in their place among the columns
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="validate") as pool:
        # the city-CRS coordinates (PROJ releases the GIL) while the row hashes are computed
        projected = pool.submit(_project, req["lon"].to_numpy(), req["lat"].to_numpy(),
                                profile.crs)
        req["geocode_match_type"] = constant_text("source", kept.n)
        req["geocode_score"] = 100.0
        marks = kept(flags)
        req["quality_flags"] = marks.where(marks != "", None)
        req["synthetic"] = kept(synthetic).astype(bool)
        req["extra"] = (kept(_extras(df[extra_cols])) if extra_cols
                        else pd.Series(None, index=req.index, dtype=object))
        req["batch_id"] = constant_text(batch_id, kept.n)
        req["row_hash"] = row_hash(req)
        req["x"], req["y"] = projected.result()
    for name in (*TEXT_FIELDS, "service_request_id", "status", "zipcode"):
        if name in req.columns:
            req[name] = _text_column(req[name])
    counts = _flag_counts(flags)
    return ValidatedBatch(rows=req, quarantine=quarantine, rows_read=n, flags=counts,
                          located=located, outside=outside,
                          source_rows=df[ROW_COLUMN].to_numpy(dtype=np.int64)[keep])


#: Up to this many dropped rows, Arrow-backed text keeps its buffers: the kept rows are
#: the runs between the dropped ones, as slices (no copy).
_SLICED_DROPS: Final = 1_000


class _Picker:
    """Picks the kept rows of a column of the validated frame (``keep``: one boolean per
    row) and numbers them 0…n-1; Arrow-backed text is filtered by Arrow, not through
    pandas' boolean indexing. When few rows are dropped (a quarantine of tens in a
    million-row file), the text is not copied at all: the kept runs between them become
    the chunks of the column (filtering 15 text columns of 1M rows to drop 75 took about
    0.5 s)."""

    def __init__(self, keep: np.ndarray) -> None:
        self.keep = keep
        self.every = bool(keep.all())
        self.n = int(keep.sum())
        self._mask: pa.Array | None = None
        dropped = np.flatnonzero(~keep)
        self._runs: list[tuple[int, int]] | None = None
        if 0 < len(dropped) <= _SLICED_DROPS:
            starts = np.concatenate([[0], dropped + 1])
            ends = np.concatenate([dropped, [len(keep)]])
            self._runs = [(int(a), int(b - a)) for a, b in zip(starts, ends, strict=True)
                          if b > a]

    def __call__(self, values: pd.Series) -> pd.Series:
        if self.every:
            return values.reset_index(drop=True)
        arrow = getattr(values.array, "_pa_array", None)
        picked: Any
        if arrow is not None and self._runs is not None:
            chunks = [c for start, length in self._runs
                      for c in arrow.slice(start, length).chunks]
            picked = pd.array(pa.chunked_array(chunks, type=arrow.type), dtype=values.dtype)
        elif arrow is not None:
            if self._mask is None:
                self._mask = pa.array(self.keep)
            picked = pd.array(pc.filter(arrow, self._mask), dtype=values.dtype)
        else:
            picked = values.array[self.keep]
        return pd.Series(picked, name=values.name, dtype=values.dtype)


def constant_text(value: str, n: int) -> pd.Series:
    """``n`` rows of one text value as :data:`TEXT` (one Arrow buffer; pandas would
    broadcast a scalar through a Python object per row).

    Examples
    --------
    >>> constant_text("source", 2).tolist()
    ['source', 'source']
    """
    return pd.Series(pd.array(pa.repeat(pa.scalar(value, pa.large_string()), n), dtype=TEXT))


def _project(lon: np.ndarray, lat: np.ndarray, crs: str) -> tuple[np.ndarray, np.ndarray]:
    """City-CRS ``x`` and ``y`` of usable coordinates."""
    x, y = to_city(crs).transform(lon, lat)
    return np.asarray(x), np.asarray(y)


@lru_cache(maxsize=16)
def to_city(crs: str) -> pyproj.Transformer:
    """The transformer from WGS84 longitude/latitude to ``crs``, made once per CRS (making
    one parses both CRSs: 4-5 ms, a third of validating a one-row batch). pyproj's
    transformers may be shared between threads (since pyproj 3.1)."""
    return pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)


#: The text dtype of request columns: Arrow-backed, missing as NaN (what a Parquet file
#: of the embedded store reads back as), so no Python string is made per value.
def _stripped(values: pd.Series) -> pd.Series:
    """Text with surrounding whitespace removed and empty values missing, as pandas'
    ``string`` dtype: ``s.str.strip()`` then ``s.mask(s == "")``, done by Arrow in one
    pass for Arrow-backed text."""
    s = values.astype("string")
    arrow = getattr(s.array, "_pa_array", None)
    if arrow is None:  # pragma: no cover - "string" is Arrow-backed where pyarrow is
        s = s.str.strip()
        return s.mask(s == "")
    if trim_is_noop(arrow):  # the usual column: nothing to strip, no empty value
        return s
    trimmed = pc.utf8_trim_whitespace(arrow)  # what ``str.strip`` runs
    out = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, trimmed.type), trimmed)
    return pd.Series(pd.array(out, dtype=s.dtype), index=s.index, name=s.name)


def _text_column(values: pd.Series) -> pd.Series:
    """A text column of the request frame as :data:`TEXT`."""
    if values.dtype == TEXT:
        return values
    if isinstance(values.dtype, pd.StringDtype):
        return values.astype(TEXT)
    if values.dtype == object:
        try:  # text and missing values only (the usual case): Arrow takes them as they are
            arrow = pa.array(values.to_numpy(dtype=object), type=pa.large_string(),
                             from_pandas=True)
        except (pa.ArrowException, UnicodeError):
            arrow = None
        if arrow is not None:
            text = arrow.to_pandas(types_mapper={pa.large_string(): TEXT}.get).array
            return pd.Series(text, index=values.index, name=values.name)
    return values.astype(object).where(values.notna(), None).astype(TEXT)


def _id_text(ids: pd.Series) -> pd.Series:
    """:func:`normalize_ids` as Arrow-backed text (``<NA>`` for missing)."""
    s = _stripped(ids)  # the replacement below never leaves an empty id
    arrow = getattr(s.array, "_pa_array", None)
    # the pattern needs a ".": without one in any id (the usual file), nothing to replace
    if arrow is None or pc.any(pc.match_substring(arrow, ".")).as_py():
        s = s.str.replace(r"^(\d+)\.0+$", r"\1", regex=True)
    return s


def normalize_ids(ids: pd.Series) -> pd.Series:
    """Ids as text; ``8992784.0`` (a number that went through a float) becomes ``8992784``.

    Examples
    --------
    >>> normalize_ids(pd.Series(["8992784.0", " A-1 ", None])).tolist()
    ['8992784', 'A-1', None]
    """
    s = _id_text(ids)
    return s.astype(object).where(s.notna(), None)


def normalize_status(status: pd.Series, closed: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Map source status words onto ``open`` / ``closed``.

    A word containing "clos", "complet", "resolv", "done" or "cancel" is closed; a known
    open word is open; a missing status is closed when a close time is given; any other
    word is open and flagged.

    Returns
    -------
    tuple of pandas.Series
        The statuses, and a mask of unrecognised words.
    """
    codes, words = distinct(status)  # a handful of words: each judged once
    low = words.str.strip().str.lower()
    is_closed = low.str.contains(_CLOSED_WORDS, regex=True).fillna(False).to_numpy(dtype=bool)
    known_open = low.isin(list(_OPEN_WORDS)).fillna(False).to_numpy(dtype=bool)
    missing = low.isna().to_numpy(dtype=bool)
    shut = is_closed[codes] | (missing[codes] & closed.notna().to_numpy(dtype=bool))
    out = pd.Series(pd.array(pc.if_else(pa.array(shut), _CLOSED, _OPEN), dtype=TEXT),
                    index=status.index)
    unknown = ~missing & ~is_closed & ~known_open
    return out, pd.Series(unknown[codes], index=status.index)


def normalize_zip(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Five-digit ZIPs; ``19122.0`` and ``19122-1234`` repaired, anything else flagged.

    Examples
    --------
    >>> z, bad = normalize_zip(pd.Series(["19122.0", "1914", None, "19104-2211"]))
    >>> [None if pd.isna(v) else v for v in z], bad.tolist()
    (['19122', None, None, '19104'], [False, True, False, False])
    """
    codes, zips = distinct(values)  # a city has a few dozen: each read once
    s = zips.str.strip()
    five = s.str.extract(r"^(\d{5})(?:\.0+)?(?:-\d{4})?$", expand=False)
    bad = (s.notna() & five.isna()).fillna(False).to_numpy(dtype=bool)
    out = pd.Series(five.array.take(codes), index=values.index).astype(TEXT)
    return out, pd.Series(bad[codes], index=values.index)


def _check_coordinates(
    rlat: pd.Series,
    rlon: pd.Series,
    address: pd.Series,
    profile: CityProfile,
    geometry_error: pd.Series,
) -> tuple[pd.Series, pd.Series, pd.Series, pd.Series, pd.Series, int, int]:
    """Coordinates: parse, repair swaps, test against the extent, explain failures.

    Returns lat, lon (usable ones), reason, detail, the swapped mask, and the numbers of
    rows with finite coordinates and of those outside the extent.
    """
    lat = numbers(rlat)
    lon = numbers(rlon)
    finite = np.isfinite(lat) & np.isfinite(lon)
    inside = in_extent(lon.to_numpy(), lat.to_numpy(), profile) & finite
    swapped = finite & ~inside & in_extent(lat.to_numpy(), lon.to_numpy(), profile)
    lat2 = lat.where(~swapped, lon)
    lon2 = lon.where(~swapped, lat)
    usable = inside | swapped
    zero = finite & (lat.abs() < 1e-9) & (lon.abs() < 1e-9)
    has_address = address.notna()
    no_coords = rlat.isna() & rlon.isna()

    reason = pd.Series(None, index=lat.index, dtype=object)
    detail = pd.Series(None, index=lat.index, dtype=object)
    bad = ~usable
    why = pd.Series(None, index=lat.index, dtype=object)
    if bad.any():
        why[bad & geometry_error.notna()] = geometry_error
        why[bad & no_coords & why.isna()] = "no coordinates"
        why[bad & zero & why.isna()] = "coordinates are the placeholder (0, 0)"
        m = bad & ~finite & why.isna()
        why[m] = [
            f"coordinates ({str(a)[:30]}, {str(b)[:30]}) are not finite numbers"
            for a, b in zip(rlat[m], rlon[m], strict=True)
        ]
        m = bad & why.isna()
        why[m] = [
            f"coordinates ({a}, {b}) are outside {profile.name}"
            for a, b in zip(lat[m], lon[m], strict=True)
        ]
    geo_m = bad & has_address
    reason[geo_m] = "needs_geocoding"
    detail[geo_m] = [
        REASONS["needs_geocoding"].format(detail=w, address=a)
        for w, a in zip(why[geo_m], address[geo_m], strict=True)
    ]
    rest = bad & ~has_address
    kinds = [
        (geometry_error.notna(), "unsupported_geometry"),
        (no_coords, "missing_coordinates"),
        (zero, "placeholder_coordinates"),
        (~finite, "invalid_coordinates"),
        (pd.Series(True, index=lat.index), "outside_city"),
    ]
    for mask, code in kinds:
        m = rest & mask & reason.isna()
        reason[m] = code
        detail[m] = [
            REASONS[code].format(detail=w, lat=la, lon=lo, rlat=ra, rlon=ro, city=profile.name)
            for w, la, lo, ra, ro in zip(why[m], lat[m], lon[m], rlat[m], rlon[m], strict=True)
        ]
    located = int(finite.sum())
    outside = int((finite & ~usable & ~zero & geometry_error.isna()).sum())
    return lat2.where(usable), lon2.where(usable), reason, detail, swapped, located, outside


#: The bytes of plain decimal numbers (``-75.16``, ``+.5``, ``1e5``). When every value of
#: a column is made of them, Arrow's cast accepts exactly the columns whose values are all
#: plain decimal numbers (the regular expression this check replaced) and refuses the
#: others (``1-2``, ``.``, ``1.5e``), which go to ``pandas.to_numeric``. Arrow's values
#: are correctly rounded; pandas' may differ in the last bit for huge exponents.
_NUMBER_BYTES: Final = np.zeros(256, dtype=bool)
_NUMBER_BYTES[np.frombuffer(b"0123456789.+-eE", dtype=np.uint8)] = True


def _number_bytes_only(arrow: pa.Array | pa.ChunkedArray) -> bool:
    """Whether every value of a string column is made of :data:`_NUMBER_BYTES` only."""
    chunks = arrow.chunks if isinstance(arrow, pa.ChunkedArray) else [arrow]
    for chunk in chunks:
        if not (pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type)):
            return False
        offsets, data, _ = text_buffers(chunk)
        if len(chunk) and not _NUMBER_BYTES[data[offsets[0]:offsets[-1]]].all():
            return False
    return True


def numbers(values: pd.Series) -> pd.Series:
    """Text as ``float64``; ``NaN`` where missing or not a number.

    A column of plain decimal numbers (the usual coordinates) is parsed by Arrow in one
    call; any other column goes through ``pandas.to_numeric``, which reads ``NaN``,
    ``inf`` and the like.

    Examples
    --------
    >>> numbers(pd.Series(["39.95", None, "-75.1"], dtype="string")).tolist()
    [39.95, nan, -75.1]
    """
    arrow = getattr(values.array, "_pa_array", None)
    if arrow is not None and len(values) and _number_bytes_only(arrow):
        try:
            parsed = pc.cast(arrow, pa.float64())
        except pa.ArrowInvalid:
            parsed = None
        if parsed is not None:
            return pd.Series(parsed.to_numpy(zero_copy_only=False), index=values.index,
                             dtype="float64")
    return pd.to_numeric(values, errors="coerce").astype("float64")


def in_extent(lon: np.ndarray, lat: np.ndarray, profile: CityProfile) -> np.ndarray:
    """Whether each (lon, lat) lies in the profile's buffered extent
    (:func:`geo.ingest.extent.contains_points`)."""
    return contains_points(profile.extent, lon, lat)


def _duplicates(
    ids: pd.Series, updated: pd.Series, rows: pd.Series, good: pd.Series
) -> tuple[pd.Series, pd.Series] | None:
    """Rows that lose to a newer row with the same id, and the row that won."""
    cand = good & ids.notna()
    if _all_distinct(ids[cand]):
        return None
    frame = pd.DataFrame({"id": ids[cand], "upd": updated[cand], "row": rows[cand]})
    frame["upd_key"] = frame["upd"].fillna(pd.Timestamp.min.tz_localize("UTC"))
    frame = frame.sort_values(["id", "upd_key", "row"])
    winner = frame.groupby("id", sort=False)["row"].transform("last")
    losers = pd.Series(False, index=ids.index)
    losers[frame.index[frame["row"] != winner]] = True
    kept = pd.Series(None, index=ids.index, dtype=object)
    kept[frame.index] = winner
    return losers, kept


def _all_distinct(values: pd.Series) -> bool:
    """Whether no value occurs twice.

    Distinct 64-bit fingerprints prove distinct values, and fingerprinting a column and
    looking for a repeated number is several times faster than Arrow's count of
    distinct strings; only when two fingerprints are equal (a repeated value, or a
    collision) are the values themselves counted.
    """
    arrow = getattr(values.array, "_pa_array", None)
    if arrow is not None and arrow.null_count == 0:
        if pd.Index(hash_text(arrow)).is_unique:
            return True
        return int(pc.count_distinct(arrow).as_py()) == len(values)
    return bool(pd.Index(_text_column(values)).is_unique)


def distinct(values: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """The distinct values of a column as pandas ``string`` (missing included, as
    ``<NA>``) and, for each row, the position of its value among them: an elementwise
    rule run on the distinct values and spread back by position gives what it gives
    run on every row.

    Examples
    --------
    >>> codes, words = distinct(pd.Series(["Open", None, "Open", "closed"]))
    >>> codes.tolist(), words.tolist()
    ([0, 1, 0, 2], ['Open', <NA>, 'closed'])
    """
    codes, uniques = pd.factorize(values.astype("string"), use_na_sentinel=False)
    return np.asarray(codes, dtype=np.intp), pd.Series(uniques, dtype="string")


def _extras(frame: pd.DataFrame) -> pd.Series:
    """Unmapped source columns as one JSON object per row."""
    renamed = frame.rename(columns=lambda c: c[4:])
    return pd.Series(json_lines(renamed), index=frame.index, dtype=object)


def json_lines(frame: pd.DataFrame) -> list[str]:
    """One JSON object per row of ``frame`` (column → value), for any shape.

    ``DataFrame.to_json(lines=True)`` gives a lone newline for a frame without rows or
    without columns, and its records may hold characters that ``str.splitlines`` takes
    for line breaks (U+2028, U+0085): records are split on ``\\n`` alone, which JSON
    always escapes inside strings.

    Examples
    --------
    >>> json_lines(pd.DataFrame({"a": ["x\\u2028y", None]}))
    ['{"a":"x\\u2028y"}', '{"a":null}']
    >>> json_lines(pd.DataFrame(index=[0, 1])), json_lines(pd.DataFrame({"a": []}))
    (['{}', '{}'], [])
    """
    if frame.empty:
        return ["{}"] * len(frame)
    text = frame.to_json(orient="records", lines=True, force_ascii=False)
    lines = text.rstrip("\n").split("\n")
    if len(lines) != len(frame):  # pragma: no cover - an invariant of to_json
        raise AssertionError(f"{len(lines)} JSON records for {len(frame)} rows")
    return lines


def _quarantine_frame(
    rows: pd.DataFrame,
    reason: pd.Series,
    detail: pd.Series,
    batch_id: str,
    source_file: str,
    now: datetime,
) -> pd.DataFrame:
    """Quarantine records: raw row as JSON, reason, and a stable id for idempotence."""
    if rows.empty:
        return empty_quarantine()
    raw_cols = [c for c in rows.columns if c != ROW_COLUMN]
    names = set(raw_cols)
    # a source column keeps its own name, unless a mapped field already took it
    raw = rows[raw_cols].rename(
        columns=lambda c: c[4:] if c.startswith("src:") and c[4:] not in names else c)
    raw_json = json_lines(raw)
    qid = [
        hashlib.sha1(f"{r}\x1f{code}\x1f{row}".encode("utf-8", "surrogatepass")).hexdigest()[:20]
        for r, code, row in zip(raw_json, reason, rows[ROW_COLUMN], strict=True)
    ]
    sid = rows["service_request_id"] if "service_request_id" in rows.columns else None
    addr = rows["address"] if "address" in rows.columns else None
    return pd.DataFrame(
        {
            "quarantine_id": qid,
            "batch_id": batch_id,
            "source_file": source_file,
            "source_row": rows[ROW_COLUMN].astype("int64").to_numpy(),
            "reason": reason.to_numpy(dtype=object),
            "detail": detail.to_numpy(dtype=object),
            "service_request_id": normalize_ids(sid).to_numpy(dtype=object)
            if sid is not None
            else None,
            "address": addr.to_numpy(dtype=object) if addr is not None else None,
            "raw": raw_json,
            "quarantined_at": pd.Timestamp(now),
        }
    )


def empty_quarantine() -> pd.DataFrame:
    """An empty quarantine frame with typed columns."""
    frame = pd.DataFrame({c: pd.Series([], dtype=object) for c in QUARANTINE_COLUMNS})
    frame["source_row"] = frame["source_row"].astype("int64")
    frame["quarantined_at"] = frame["quarantined_at"].astype("datetime64[ns, UTC]")
    return frame


def _flag_counts(flags: pd.Series) -> dict[str, int]:
    """Count each flag over the rows (flags are ';'-separated)."""
    present = flags[flags != ""]
    if present.empty:
        return {}
    counts = present.str.split(";").explode().value_counts()
    return {str(k): int(v) for k, v in counts.items()}


def parse_extra(value: str | None) -> dict[str, object]:
    """Decode an ``extra`` value back into a dict (empty for ``None``)."""
    return json.loads(value) if value else {}
