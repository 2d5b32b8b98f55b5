"""One request's full record: status, due time and SLA state, areas, geocode, problem,
hotspot.

The problem is the stored ``problem_id`` (:mod:`clustering.problems`) with every request
of that problem.

The hotspot is the one the ``hotspots`` command would find it in: DBSCAN over the
request's service type in the 30 days up to the newest request of that type, eps 100 m,
``min_samples`` suggested from the density of that window's problems over the city
extent. The look-up does not cluster the whole window: it reads the window's requests in
a square round the request (an indexed box query), growing the square until the
request's hotspot lies well inside it (:func:`hotspot_near`), so it gives the hotspot's
id, problems and calls but not its rank among the window's hotspots (that needs the
whole run: the ``hotspots`` command or the map). Every read is by key or by an index:
the request, its problem, the newest request of its type, the window's problem count and
the square.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final

import numpy as np
import pandas as pd
from pyproj import Geod, Transformer

from clustering.density import suggest_min_samples
from clustering.hotspots import hotspot_key, label_requests
from clustering.problem_hotspots import collapse, problem_ids_of
from clustering.selection import HotspotQuery, select_requests
from geo.store.base import Store
from geo.store.reads import RequestFilter
from hotspot311.errors import InputError, describe
from layers.profile import CityProfile
from layers.services import ServiceType
from reports.calendar import CalendarConfig
from reports.sla import add_due_and_state

HOTSPOT_DAYS: Final = 30
HOTSPOT_EPS_M: Final = 100.0
#: Half-side of the first square of requests read round the request (m).
START_RADIUS_M: Final = 500.0
#: The columns a hotspot run over the neighbourhood needs.
HOTSPOT_COLUMNS: Final = ("service_request_id", "service_name", "status",
                          "requested_datetime", "expected_datetime", "address", "x", "y",
                          "problem_id")


@dataclass
class RequestRecord:
    """Everything known about one request.

    Attributes
    ----------
    fields
        Canonical fields plus ``due_datetime``, ``due_source``, ``sla_state``,
        ``days_to_close``, ``geocode_match_type`` and ``geocode_score``.
    areas
        Layer key → (code, name); ``(None, None)`` outside every area.
    hotspot
        ``hotspot_id``, ``count`` (problems), ``calls``, ``window_end``, ``min_samples``
        and ``radius_m`` (see :func:`hotspot_near`) of the hotspot the request belongs
        to; ``None`` when it is in none (or has no point).
    hotspot_note
        Why there is no hotspot, when there is none.
    problem
        ``problem_id``, ``calls`` and ``request_ids`` (first call first) of the request's
        problem; ``None`` when the store has not given it one yet.
    """

    fields: dict[str, object]
    areas: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    problem: dict[str, object] | None = None
    hotspot: dict[str, object] | None = None
    hotspot_note: str = ""


def find_request(requests: pd.DataFrame, request_id: str) -> pd.DataFrame:
    """The one-row frame of ``request_id``.

    Raises
    ------
    InputError
        When no request has that id.
    """
    row = requests[requests["service_request_id"].astype(str) == str(request_id)]
    if row.empty:
        raise InputError(f"request: id {describe(request_id)} is not in the store "
                         f"({len(requests):,} requests); give a service_request_id")
    return row.iloc[:1]


def request_record(store: Store, request_id: str, *, services: Sequence[ServiceType],
                   calendar: CalendarConfig, now: datetime,
                   due_soon_hours: float = 48.0) -> RequestRecord:
    """Gather one request's record.

    Parameters
    ----------
    store
        The store.
    request_id
        ``service_request_id``.
    services, calendar
        The city's service catalogue and calendar (see :mod:`reports.sla`).
    now
        Reference time for the SLA state.
    due_soon_hours
        Horizon of ``open_due_soon``.

    Returns
    -------
    RequestRecord
        The record.

    Raises
    ------
    InputError
        When the id is unknown.
    """
    row = store.select_requests(RequestFilter(ids=(str(request_id),)))
    if row.empty:
        total = store.request_summary(RequestFilter()).count
        raise InputError(f"request: id {describe(request_id)} is not in the store "
                         f"({total:,} requests); give a service_request_id")
    row = row.iloc[:1]
    row = add_due_and_state(row, services=services, calendar=calendar,
                            now=now, due_soon_hours=due_soon_hours)
    rec = row.iloc[0]
    keep = [c for c in row.columns if c not in ("geometry", "extra", "row_hash")]
    record = RequestRecord(fields={c: rec[c] for c in keep})
    for key in store.layer_keys():
        code = rec.get(key)
        code = None if code is None or pd.isna(code) else str(code)
        record.areas[key] = (code, _area_name(store, key, code))
    record.problem = _problem(store, rec)
    record.hotspot, record.hotspot_note = _hotspot(store, rec, now)
    return record


def _problem(store: Store, rec: pd.Series) -> dict[str, object] | None:
    pid = rec.get("problem_id")
    if pid is None or pd.isna(pid):
        return None
    same = store.select_requests(RequestFilter(problems=(str(pid),)),
                                 ["service_request_id", "requested_datetime"]).sort_values(
        ["requested_datetime", "service_request_id"])
    return {"problem_id": str(pid), "calls": len(same),
            "request_ids": [str(v) for v in same["service_request_id"]]}


def _area_name(store: Store, key: str, code: str | None) -> str | None:
    if code is None:
        return None
    return store.area_names(key).get(code)


def _hotspot(store: Store, rec: pd.Series, now: datetime
             ) -> tuple[dict[str, object] | None, str]:
    """The request's hotspot, from its neighbourhood (see the module notes)."""
    if pd.isna(rec.get("x")) or pd.isna(rec.get("y")):
        return None, "no point to cluster (not geocoded)"
    profile = store.profile
    service = str(rec["service_name"])
    end = store.latest_request(RequestFilter(services=(service,)))
    if end is None:
        return None, f"no {service!r} request has a request time"
    end_time = end.to_pydatetime()
    start = end_time - timedelta(days=HOTSPOT_DAYS)
    when = rec.get("requested_datetime")
    if when is None or pd.isna(when) or not start < pd.Timestamp(when).to_pydatetime() <= end_time:
        return None, (f"outside the {HOTSPOT_DAYS}-day window up to the newest "
                      f"{service!r} request")
    window = RequestFilter(services=(service,), after=start, until=end_time, located=True)
    min_samples = suggest_min_samples(store.problem_count(window), profile.area_km2,
                                      HOTSPOT_EPS_M)
    query = HotspotQuery(services=(service,), days=HOTSPOT_DAYS, end=end_time,
                         eps_m=HOTSPOT_EPS_M, min_samples=min_samples, count="problems")
    found = hotspot_near(store, rec, window, query)
    if found is None:
        return None, (f"not in a hotspot (eps {HOTSPOT_EPS_M:g} m, min_samples {min_samples})")
    found.update(window_end=end_time, min_samples=min_samples)
    return found, ""


def hotspot_near(store: Store, rec: pd.Series, window: RequestFilter, query: HotspotQuery,
                 *, radius_m: float = START_RADIUS_M
                 ) -> dict[str, object] | None:
    """The DBSCAN hotspot holding ``rec``, from the window's requests around it only.

    Reads the requests of ``window`` in a square of half-side ``radius_m`` round the
    request (an indexed box query), clusters them, and keeps the answer when every
    member of the request's hotspot lies more than twice eps inside the square: then each
    member's neighbourhood, and so its core status, is the same as in the whole window,
    and the hotspot is the one a run over the whole window finds. Otherwise the square
    doubles and the step repeats (at worst until it covers the city).

    Returns
    -------
    dict or None
        ``hotspot_id``, ``count`` (problems), ``calls``, ``radius_m`` (the square's
        half-side that settled it), ``centre`` (mean x, y of its problems, city CRS);
        ``None`` when the request is in no hotspot.
    """
    profile = store.profile
    x, y = float(rec["x"]), float(rec["y"])
    mine = str(problem_ids_of(pd.DataFrame([rec])).iloc[0])
    limit = _city_span_m(profile)
    eps = profile.metres_to_crs(query.eps_m)
    while True:
        half = profile.metres_to_crs(radius_m)
        box = (x - half, y - half, x + half, y + half)
        near = store.select_requests(replace(window, box=_degrees_box(box, profile.crs)),
                                     HOTSPOT_COLUMNS)
        near = near[near["x"].between(box[0], box[2]) & near["y"].between(box[1], box[3])]
        points = collapse(select_requests(near, query))
        labels = label_requests(points, eps=eps, min_samples=query.min_samples)
        at = np.flatnonzero(points["problem_id"].to_numpy() == mine)
        if not len(at) or labels[at[0]] < 0:
            # the request's own neighbourhood lies inside the square (radius >> eps)
            return None
        spot = points[labels == labels[at[0]]]
        inner = min((spot["x"] - box[0]).min(), (box[2] - spot["x"]).min(),
                    (spot["y"] - box[1]).min(), (box[3] - spot["y"]).min())
        if radius_m >= limit or inner > 2 * eps:
            ids = spot["service_request_id"].astype(str)  # the problem ids, as in a run
            return {"hotspot_id": hotspot_key(ids.tolist()), "count": len(spot),
                    "calls": int(spot["calls"].sum()), "radius_m": radius_m,
                    "centre": (float(spot["x"].mean()), float(spot["y"].mean()))}
        radius_m *= 2


def _degrees_box(box: tuple[float, float, float, float], crs: str
                 ) -> tuple[float, float, float, float]:
    """``(south, west, north, east)`` in degrees holding a box of the city CRS."""
    x0, y0, x1, y1 = box
    edge = np.linspace(0.0, 1.0, 9)
    xs = np.concatenate([x0 + (x1 - x0) * edge, np.full(9, x1), x1 - (x1 - x0) * edge,
                         np.full(9, x0)])
    ys = np.concatenate([np.full(9, y0), y0 + (y1 - y0) * edge, np.full(9, y1),
                         y1 - (y1 - y0) * edge])
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(xs, ys)
    pad = 1e-6
    return (float(np.min(lat)) - pad, float(np.min(lon)) - pad,
            float(np.max(lat)) + pad, float(np.max(lon)) + pad)


def _city_span_m(profile: CityProfile) -> float:
    """Half-side (m) of a square round any point of the city that holds the whole city."""
    west, south, east, north = profile.extent.bounds
    return float(Geod(ellps="WGS84").line_length([west, east, east], [south, south, north]))
