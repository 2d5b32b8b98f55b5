"""Open311 reads: query parameters to a :class:`geo.store.query.RequestQuery`, the
``after`` cursors of keyset pages, and public position filters no finer than the
privacy rules allow (the records themselves: :mod:`hotspot311.api.records`).

Parameters of ``requests.json``: the spec's ``service_request_id`` (comma-separated; the
other filters are then ignored), ``service_code`` (comma-separated), ``start_date``,
``end_date`` (ISO 8601; without any of the four time filters, the 90 days up to now:
with only ``updated_after``/``updated_before`` every requested time counts, so a client
following updates sees updates to old requests), ``status``
(``open``/``closed``, comma-separated) and the common extensions ``updated_after``,
``updated_before``, ``bbox`` (``min_lon,min_lat,max_lon,max_lat``), ``lat``/``long``/
``radius`` (metres, at most :data:`MAX_RADIUS_M`), ``page_size`` (at most 1,000) and
``page`` (shallow pages, to :data:`MAX_OFFSET` rows deep). Deeper pages follow the
``after`` cursor of the ``Link: <…>; rel="next"`` header (keyset paging).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
import pandas as pd

from geo.store.query import MAX_LIMIT, RequestQuery
from hotspot311.api.catalogue import Catalogue
from hotspot311.api.errors import Open311Error

DEFAULT_DAYS: Final = 90
MAX_OFFSET: Final = 10_000
MAX_RADIUS_M: Final = 20_000.0
MAX_IDS: Final = 1000


def parse_time(name: str, value: str, tz: str) -> datetime:
    """An ISO 8601 parameter as an aware time (naive times in the city's zone).

    Raises
    ------
    Open311Error
        400, naming the parameter, the value and the allowed form.
    """
    try:
        t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Open311Error(400, f"{name}: {value[:60]!r} is not an ISO 8601 time; allowed: "
                                "e.g. 2026-01-31T12:00:00-05:00 or 2026-01-31") from None
    if t.tzinfo is None:
        t = pd.Timestamp(t).tz_localize(tz).to_pydatetime()
    return t


def _number(name: str, value: str) -> float:
    try:
        out = float(value)
    except ValueError:
        raise Open311Error(400, f"{name}: {value[:60]!r} is not a number") from None
    if not np.isfinite(out):
        raise Open311Error(400, f"{name}: {value[:60]!r} is not a finite number")
    return out


def encode_cursor(t: pd.Timestamp, request_id: str) -> str:
    """The ``after`` cursor of a row: its time and id, URL-safe.

    Examples
    --------
    >>> c = encode_cursor(pd.Timestamp("2026-01-02T03:04:05Z"), "A-1")
    >>> decode_cursor(c)
    (datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc), 'A-1')
    """
    raw = f"{pd.Timestamp(t).tz_convert('UTC').isoformat()}|{request_id}"
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(value: str) -> tuple[datetime, str]:
    """The (time, id) of an ``after`` cursor.

    Raises
    ------
    Open311Error
        400 when the cursor was not made by :func:`encode_cursor`.
    """
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("utf-8")
        when, rid = raw.split("|", 1)
        t = datetime.fromisoformat(when)
        if t.tzinfo is None:
            raise ValueError(when)
    except (ValueError, UnicodeDecodeError):
        raise Open311Error(400, f"after: {value[:60]!r} is not a cursor from a Link header "
                                "of this server") from None
    return t.astimezone(UTC), rid


#: The time filters; without any of them a read covers the last 90 days up to now.
TIME_PARAMETERS: Final = ("start_date", "end_date", "updated_after", "updated_before")


def window_is_now(params: Mapping[str, str]) -> bool:
    """Whether a read with ``params`` covers the default window, the days up to now
    (no time filter given), so its answer depends on when it is asked.

    Examples
    --------
    >>> window_is_now({"status": "open"}), window_is_now({"start_date": "2024-01-01"})
    (True, False)
    """
    return not any(params.get(k) for k in TIME_PARAMETERS)


def build_query(params: Mapping[str, str], *, catalogue: Catalogue, tz: str,
                now: datetime) -> RequestQuery:
    """The store query of ``requests.json``'s parameters (see the module docstring).

    Raises
    ------
    Open311Error
        400 listing every parameter that cannot be used.
    """
    problems: list[str] = []

    def attempt(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Open311Error as err:
            problems.extend(err.descriptions)
            return None

    size = MAX_LIMIT
    if params.get("page_size"):
        raw = params["page_size"]
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
            problems.append(f"page_size: {raw[:20]!r} is not a whole number from 1 to "
                            f"{MAX_LIMIT}")
        else:
            size = int(raw)
    ids = [i.strip() for i in params.get("service_request_id", "").split(",") if i.strip()]
    if len(ids) > MAX_IDS:
        problems.append(f"service_request_id: {len(ids)} ids; allowed: at most {MAX_IDS}")
    if ids:
        if problems:
            raise Open311Error(400, problems)
        return RequestQuery(ids=tuple(ids), limit=min(size, len(ids)))
    names = None
    if params.get("service_code"):
        codes = [c.strip() for c in params["service_code"].split(",") if c.strip()]
        found, unknown = catalogue.names_for(codes)
        if unknown:
            problems.append(f"service_code: {unknown} not in the catalogue; allowed: "
                            f"{[d.code for d in catalogue.definitions]}")
        names = tuple(found)
    status = None
    if params.get("status"):
        words = {w.strip().lower() for w in params["status"].split(",") if w.strip()}
        if not words <= {"open", "closed"}:
            problems.append(f"status: {params['status'][:40]!r} is not allowed; allowed: "
                            "open, closed (comma-separated)")
        elif len(words) == 1:
            status = words.pop()
    times = {k: attempt(parse_time, k, params[k], tz) if params.get(k) else None
             for k in TIME_PARAMETERS}
    start, end = times["start_date"], times["end_date"]
    if window_is_now(params):
        end = now + timedelta(seconds=1)
        start = now - timedelta(days=DEFAULT_DAYS)
    bbox = None
    if params.get("bbox"):
        parts = params["bbox"].split(",")
        nums = [attempt(_number, "bbox", p) for p in parts] if len(parts) == 4 else []
        if len(nums) != 4 or None in nums or not (nums[0] < nums[2] and nums[1] < nums[3]):
            problems.append(f"bbox: {params['bbox'][:80]!r} is not min_lon,min_lat,max_lon,"
                            "max_lat with min < max")
        else:
            bbox = (nums[0], nums[1], nums[2], nums[3])
    near = None
    geo = [params.get(k) for k in ("lat", "long", "radius")]
    if any(geo[:2]):
        if not all(geo[:2]):
            problems.append("lat, long: give both (and optionally radius in metres)")
        else:
            lat = attempt(_number, "lat", geo[0])
            lon = attempt(_number, "long", geo[1])
            radius = attempt(_number, "radius", geo[2]) if geo[2] else 1000.0
            if radius is not None and not 0 < radius <= MAX_RADIUS_M:
                problems.append(f"radius: {radius} is not between 0 and {MAX_RADIUS_M:g} metres")
            elif None not in (lat, lon, radius):
                near = (lat, lon, radius)
    after = attempt(decode_cursor, params["after"]) if params.get("after") else None
    offset = 0
    if params.get("page"):
        raw = params["page"]
        if not raw.isdigit() or int(raw) < 1:
            problems.append(f"page: {raw[:20]!r} is not a whole number from 1")
        elif after is not None and int(raw) != 1:
            problems.append("page: cannot be combined with after (the cursor already says "
                            "where the page starts)")
        else:
            offset = (int(raw) - 1) * size
            if offset > MAX_OFFSET:
                problems.append(f"page: {raw} is {offset:,} rows deep; allowed: at most "
                                f"{MAX_OFFSET:,} (follow the Link header's rel=\"next\" "
                                "cursor for deeper pages)")
    if problems:
        raise Open311Error(400, problems)
    return RequestQuery(service_names=names, status=status, start=start, end=end,
                        updated_after=times["updated_after"],
                        updated_before=times["updated_before"], bbox=bbox, near=near,
                        after=after, limit=size, offset=offset)


def snap_public(query: RequestQuery, decimals: int) -> RequestQuery:
    """The query a public reader may ask: ``bbox`` and ``lat``/``long``/``radius`` as
    boxes on the grid of the rounded coordinates.

    Exact positions must not be recoverable by moving a tiny box or circle around: a
    box is widened outward to multiples of ``10**-decimals`` degrees, and a circle
    becomes the grid-aligned box around it, so a filter tells no more than the rounded
    coordinates do.

    Examples
    --------
    >>> q = snap_public(RequestQuery(bbox=(-75.16512, 39.95201, -75.16508, 39.95204)), 3)
    >>> q.bbox
    (-75.166, 39.952, -75.165, 39.953)
    """
    if decimals < 0 or (query.bbox is None and query.near is None):
        return query
    step = 10.0 ** -decimals
    boxes = [query.bbox] if query.bbox is not None else []
    if query.near is not None:
        lat, lon, radius = query.near
        dlat = radius / 111_320.0
        dlon = dlat / max(math.cos(math.radians(lat)), 1e-6)
        boxes.append((lon - dlon, lat - dlat, lon + dlon, lat + dlat))
    w = max(b[0] for b in boxes)
    s_ = max(b[1] for b in boxes)
    e = min(b[2] for b in boxes)
    n = min(b[3] for b in boxes)
    snapped = (round(math.floor(round(w / step, 6)) * step, decimals),
               round(math.floor(round(s_ / step, 6)) * step, decimals),
               round(math.ceil(round(e / step, 6)) * step, decimals),
               round(math.ceil(round(n / step, 6)) * step, decimals))
    if not (snapped[0] < snapped[2] and snapped[1] < snapped[3]):
        snapped = (snapped[0], snapped[1], snapped[0] + step, snapped[1] + step)
    return replace(query, bbox=snapped, near=None)


def iso_times(values: Any, tz: str) -> list[str | None]:
    """ISO 8601 text of times in the city's zone, to the second (``None`` for missing).

    Examples
    --------
    >>> iso_times(pd.Series(["2026-01-02T03:04:05.6Z", None]), "America/New_York")
    ['2026-01-01T22:04:05-05:00', None]
    """
    t = pd.Series(pd.to_datetime(values, utc=True)).dt.tz_convert(tz)
    off = t.dt.strftime("%z")
    text = t.dt.strftime("%Y-%m-%dT%H:%M:%S") + off.str[:3] + ":" + off.str[3:]
    return [None if pd.isna(v) else str(v) for v in text.where(t.notna(), None)]


__all__ = ["DEFAULT_DAYS", "MAX_OFFSET", "build_query", "decode_cursor", "encode_cursor",
           "iso_times", "parse_time", "snap_public"]
