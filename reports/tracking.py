"""One request's full record: status, due time and SLA state, areas, geocode, problem,
hotspot.

The problem is the stored ``problem_id`` (:mod:`clustering.problems`) with every request
of that problem.

The hotspot is found the way the ``hotspots`` command finds them: DBSCAN over the
request's service type in the 30 days up to the newest request of that type, eps 100 m,
``min_samples`` suggested from the density over the city extent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

import pandas as pd

from clustering.density import suggest_min_samples
from clustering.priority import preset
from clustering.problem_hotspots import problem_ids_of
from clustering.run import run_hotspots
from clustering.selection import HotspotQuery, select_requests
from geo.store.base import Store
from geo.store.reads import RequestFilter
from hotspot311.errors import InputError, describe
from layers.services import ServiceType
from reports.calendar import CalendarConfig
from reports.sla import add_due_and_state

HOTSPOT_DAYS: Final = 30
HOTSPOT_EPS_M: Final = 100.0


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
        ``hotspot_id``, ``rank``, ``count``, ``window_end``, ``min_samples`` of the
        hotspot the request belongs to; ``None`` when it is in none (or has no point).
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
    areas = store.areas(key)
    hit = areas[areas["code"].astype(str) == code]
    return None if hit.empty else str(hit["name"].iloc[0])


def _hotspot(store: Store, rec: pd.Series, now: datetime
             ) -> tuple[dict[str, object] | None, str]:
    """The request's hotspot among its type's requests of the window (only those read)."""
    if pd.isna(rec.get("x")) or pd.isna(rec.get("y")):
        return None, "no point to cluster (not geocoded)"
    profile, layer_keys = store.profile, store.layer_keys()
    service = str(rec["service_name"])
    end = store.request_summary(RequestFilter(services=(service,))).last
    if end is None:
        return None, f"no {service!r} request has a request time"
    end_time = end.to_pydatetime()
    same = store.select_requests(RequestFilter(
        services=(service,), after=end_time - timedelta(days=HOTSPOT_DAYS), until=end_time,
        located=True))
    query = HotspotQuery(services=(service,), days=HOTSPOT_DAYS, end=end_time,
                         eps_m=HOTSPOT_EPS_M, min_samples=1, count="problems")
    chosen = select_requests(same, query)
    if not chosen["service_request_id"].eq(rec["service_request_id"]).any():
        return None, (f"outside the {HOTSPOT_DAYS}-day window up to the newest "
                      f"{rec['service_name']!r} request")
    n_problems = problem_ids_of(chosen).nunique()
    min_samples = suggest_min_samples(n_problems, profile.area_km2, HOTSPOT_EPS_M)
    query = HotspotQuery(**{**query.__dict__, "min_samples": min_samples})
    result = run_hotspots(same, query, profile=profile, weights=preset("balanced"), now=now,
                          layer_keys=layer_keys)
    member = result.members[result.members["service_request_id"] == rec["service_request_id"]]
    hid = member["hotspot_id"].iloc[0] if len(member) else None
    if hid is None or pd.isna(hid):
        return None, (f"not in a hotspot (eps {HOTSPOT_EPS_M:g} m, min_samples {min_samples}, "
                      f"{result.selected:,} requests in the window)")
    spot = result.hotspots[result.hotspots["hotspot_id"] == hid].iloc[0]
    return {"hotspot_id": hid, "rank": int(spot["rank"]), "count": int(spot["count"]),
            "calls": int(spot["calls"]),
            "of": len(result.hotspots), "window_end": result.window_end,
            "min_samples": min_samples}, ""


