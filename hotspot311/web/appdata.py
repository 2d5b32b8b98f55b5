"""Cached reads for the Streamlit pages (with :mod:`hotspot311.web.signin`, the package's
only modules that import Streamlit; the reads themselves are :mod:`hotspot311.web.pagereads`).

Every cached call is keyed on plain values: the store location, the city, a data
version (changes when a batch is ingested or a layer added) and the page's
:class:`~hotspot311.web.filters.Filters`, so reruns with the same widgets reuse the work.

The pages never hold the request table. They ask the store for what they show
(:mod:`geo.store.reads`): the headline numbers, the sidebar's choices, the heat map's grid
counts and the choropleth's counts per area are counted by the store (in SQL on PostGIS);
the requests drawn one by one are those in the map's box, read only when there are few
enough to draw; a hotspot run reads the located requests of its window only. The one
exception is the SLA-state filter: the SLA state comes from the city's service catalogue
and calendar, so with that filter on, the rows passing the other filters are read (their
SLA columns) and the state worked out here.

One store (one connection pool on PostGIS) is opened per process and shared by every
session (``st.cache_resource``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import geopandas as gpd
import numpy as np
import pandas as pd
import streamlit as st

from geo.geocode.places import PlaceNamer
from geo.store.base import Store, open_store
from geo.store.reads import (
    BatchLogHead,
    Box,
    RequestFilter,
    RequestSummary,
    cells_from_facets,
    facets_answer,
    summary_from_facets,
)
from geo.store.sources import data_as_of as stored_as_of
from geo.store.sources import sources_frame
from hotspot311.errors import InputError, StoreError
from hotspot311.web.access import Access
from hotspot311.web.filters import Filters
from hotspot311.web.mapdata import (
    GRID_DEG,
    area_stats,
    cells_median,
    coarsen_cells,
    grid_counts,
    web_areas,
)
from hotspot311.web.mapview import MapView, PointChoice, choose_points_with
from hotspot311.web.pagereads import (
    Hotspots,
    as_text,
    find_hotspots,
    find_work_list,
    make_place_namer,
    rows,
    store_filter,
)
from layers.profile import load_profile

_T = TypeVar("_T")

#: Largest connection pool of the app's process (``HOTSPOT311_POOL_SIZE``).
POOL_SIZE = 8
#: Hotspot runs one process computes at once (``HOTSPOT311_HOTSPOT_RUNS``).
HOTSPOT_RUNS = 2
#: Most rows of :func:`facet_cells` a process keeps (about 27 bytes each).
FACET_CELLS_MAX = 1_000_000

_slots_lock = threading.Lock()
_slots: threading.BoundedSemaphore | None = None


def env_count(name: str, default: int) -> int:
    """A whole number of at least 1 from the environment variable ``name``.

    Parameters
    ----------
    name : str
        The variable, e.g. ``HOTSPOT311_POOL_SIZE``.
    default : int
        The value when the variable is unset or blank.

    Returns
    -------
    int
        The number.

    Raises
    ------
    InputError
        When the variable holds anything else (the message names it, its value and what
        is allowed).
    """
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise InputError(f"{name}={text!r} is not allowed: give a whole number of at least 1 "
                         f"(unset: {default})")
    return int(text)


def hotspot_slots() -> threading.BoundedSemaphore:
    """The process's turns for hotspot runs: at most ``HOTSPOT311_HOTSPOT_RUNS`` (default
    :data:`HOTSPOT_RUNS`; see :func:`env_count`) at once, the other sessions waiting
    their turn.

    A run reads a window of up to hundreds of thousands of requests and clusters it,
    seconds of CPU; twenty sessions changing filters at once would otherwise run twenty,
    holding twenty windows in memory and taking the CPU from every session's map.

    Returns
    -------
    threading.BoundedSemaphore
        One per process.
    """
    global _slots
    with _slots_lock:
        if _slots is None:
            _slots = threading.BoundedSemaphore(env_count("HOTSPOT311_HOTSPOT_RUNS",
                                                          HOTSPOT_RUNS))
        return _slots


@st.cache_resource(show_spinner=False)
def get_store(location: str, city: str) -> Store:
    """Open the store once per process (on PostGIS: one pool shared by every session).

    Raises
    ------
    StoreError
        On PostGIS, when the app's database role may change requests and
        ``HOTSPOT311_ALLOW_WRITE_ROLE`` is not ``1`` (the app's role should be read-only:
        ``hotspot311 db grant-readonly ROLE``).
    """
    size = env_count("HOTSPOT311_POOL_SIZE", POOL_SIZE)
    store = open_store(location, load_profile(city), pool_size=size)
    writes = store.write_privileges()
    allowed = os.environ.get("HOTSPOT311_ALLOW_WRITE_ROLE", "").strip().lower() in (
        "1", "true", "yes")
    if writes and not allowed:
        store.close()
        raise StoreError(
            f"{store.describe()}: the app's database role may write to {', '.join(writes)}; "
            "give the app a read-only role (hotspot311 db grant-readonly ROLE) or set "
            "HOTSPOT311_ALLOW_WRITE_ROLE=1 to run it anyway")
    return store


def data_version(store: Store, head: BatchLogHead | None = None) -> str:
    """Changes whenever a batch is ingested or a layer generation added (``head``: the
    ingest log's head when the caller has it; not the whole log: every rerun asks)."""
    head = head or store.batch_log_head()
    return f"{head.batches}:{head.last_batch or ''}:{len(store.generations())}"


@dataclass(frozen=True)
class Choices:
    """What the sidebar offers: service types, departments, the first and last request
    day (local) and how many requests the store holds."""

    services: list[str]
    agencies: list[str]
    first_day: date
    last_day: date
    count: int


@st.cache_data(show_spinner=False, max_entries=4)
def facets(location: str, city: str, version: str, now: datetime) -> pd.DataFrame:
    """Every request counted by service type, department and status (one pass over the
    store, shared by every session of the process: :meth:`geo.store.base.Store.facet_counts`)."""
    return get_store(location, city).facet_counts(now=now)


@st.cache_data(show_spinner=False, max_entries=4)
def choices(location: str, city: str, version: str) -> Choices:
    """The sidebar's choices, from the facet counts."""
    store = get_store(location, city)
    counts = facets(location, city, version, now_hour())
    whole = summary_from_facets(counts, RequestFilter())
    zone = store.profile.timezone
    today = datetime.now(UTC).astimezone(_zone(zone)).date()

    def names(column: str) -> list[str]:
        return sorted({str(v) for v in counts[column] if v is not None and str(v)})

    return Choices(
        services=names("service_name"), agencies=names("agency_responsible"),
        first_day=whole.first.tz_convert(zone).date() if whole.first is not None else today,
        last_day=whole.last.tz_convert(zone).date() if whole.last is not None else today,
        count=whole.count)


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


@st.cache_data(show_spinner=False, max_entries=64)
def summary(location: str, city: str, version: str, filters: Filters,
            now: datetime) -> RequestSummary:
    """Requests, open, overdue, first and last request of the filtered requests."""
    store = get_store(location, city)
    if not filters.sla_states:
        filt = store_filter(store, filters)
        if facets_answer(filt):  # types, departments, status: no query of its own
            return summary_from_facets(facets(location, city, version, now), filt)
        return store.request_summary(filt, now=now)
    frame = rows(store, filters, now, ["status", "expected_datetime", "requested_datetime"])
    due = frame["expected_datetime"]
    is_open = frame["status"] == "open"
    when = frame["requested_datetime"].dropna()
    return RequestSummary(count=len(frame), open=int(is_open.sum()),
                          overdue=int((is_open & due.notna() & (due < pd.Timestamp(now))).sum()),
                          first=when.min() if len(when) else None,
                          last=when.max() if len(when) else None)


@st.cache_data(show_spinner=False, max_entries=32)
def heat_cells(location: str, city: str, version: str, filters: Filters,
               now: datetime) -> pd.DataFrame:
    """Grid counts of the filtered requests for the heat map (counted by the store)."""
    store = get_store(location, city)
    if filters.sla_states:
        return grid_counts(rows(store, filters, now, ["lat", "lon"]))
    filt = store_filter(store, filters)
    if filt == RequestFilter():
        return coarsen_cells(all_cells(location, city, version), grid_deg=GRID_DEG)
    by_facet = facet_cells(location, city, version) if facets_answer(filt) else None
    cells = cells_from_facets(by_facet, filt) if by_facet is not None else \
        store.grid_cells(filt, grid_deg=GRID_DEG)  # (facets: no query of its own)
    return coarsen_cells(cells, grid_deg=GRID_DEG)


# A shared object (read, never changed): cache_data would unpickle its 10 MB for every
# heat map of every session.
@st.cache_resource(show_spinner=False, max_entries=2)
def facet_cells(location: str, city: str, version: str) -> pd.DataFrame | None:
    """Every located request counted by grid cell, service type, department and status.

    One pass over the store, shared by every session of the process: the heat map of any
    filter on those three alone is summed from it and asks the store nothing, so many
    sessions changing filters at once make one query between them, not one each.
    ``None`` when it would take more than :data:`FACET_CELLS_MAX` rows (the map then asks
    the store per filter).
    """
    return get_store(location, city).facet_cells(grid_deg=GRID_DEG, limit=FACET_CELLS_MAX)


@st.cache_data(show_spinner=False, max_entries=4)
def all_cells(location: str, city: str, version: str) -> pd.DataFrame:
    """Grid counts of every stored request (the unfiltered heat map, and where the map
    opens: :func:`city_centre`)."""
    return get_store(location, city).grid_cells(RequestFilter(), grid_deg=GRID_DEG)


@st.cache_data(show_spinner=False, max_entries=64)
def count_in(location: str, city: str, version: str, filters: Filters, now: datetime,
             box: Box | None) -> int:
    """Filtered requests in ``box`` (all when ``None``)."""
    if box is None:
        return summary(location, city, version, filters, now).count
    store = get_store(location, city)
    if filters.sla_states:
        return len(rows(store, filters, now, ["service_request_id"], box=box))
    return store.request_summary(store_filter(store, filters, box=box)).count


@st.cache_data(show_spinner=False, max_entries=32)
def requests_in(location: str, city: str, version: str, filters: Filters, now: datetime,
                box: Box | None, columns: tuple[str, ...]) -> pd.DataFrame:
    """``columns`` of the filtered requests in ``box`` (all when ``None``)."""
    store = get_store(location, city)
    return rows(store, filters, now, columns, box=box)


def point_choice(location: str, city: str, version: str, filters: Filters, now: datetime, *,
                 view: MapView | None, focus: Box | None, limit: int,
                 columns: Sequence[str]) -> PointChoice:
    """Which requests the map draws one by one (:func:`hotspot311.web.mapview.choose_points_with`),
    asking the store for counts first and for rows only when they will be drawn."""
    cols = tuple(dict.fromkeys(["lat", "lon", *columns]))
    return choose_points_with(
        lambda box: count_in(location, city, version, filters, now, box),
        lambda box: requests_in(location, city, version, filters, now, box, cols),
        view=view, focus=focus, limit=limit)


@st.cache_data(show_spinner=False, max_entries=32)
def area_layer(location: str, city: str, version: str, filters: Filters, key: str,
               now: datetime, as_drawn: str = "today") -> gpd.GeoDataFrame:
    """Web-ready areas of layer ``key`` with request counts and overdue share.

    ``as_drawn`` is ``today`` (each request in its area of today's map: counted by the
    store) or ``request-date`` (in its area of the map in force on its request date, see
    :mod:`reports.asdrawn`: the filtered requests' positions and dates are read); either
    way the counts are drawn on today's areas.
    """
    from reports.asdrawn import as_drawn as redraw

    store = get_store(location, city)
    if as_drawn == "today" and not filters.sla_states:
        counts = store.group_counts(store_filter(store, filters), key, now=now)
        counts = counts[[v is not None for v in counts.index]]
        stats = counts.rename_axis("code").assign(
            overdue_share=lambda f: (f["overdue"] / f["open"].where(f["open"] > 0)).fillna(0.0))
    else:
        view = rows(store, filters, now, [key, "x", "y", "status", "expected_datetime",
                                          "requested_datetime", "service_request_id"])
        if as_drawn != "today":
            view = redraw(as_text(view), store, mode=as_drawn, timezone=store.profile.timezone,
                          keys=[key])
        stats = area_stats(view, key, now=now)
    return web_areas(store.areas(key), stats, simplify=store.profile.metres_to_crs(8.0))


@st.cache_data(show_spinner=False, max_entries=8)
def area_names(location: str, city: str, version: str, key: str) -> dict[str, str]:
    """Code → name of the areas of one layer."""
    areas = get_store(location, city).areas(key)
    return dict(zip(areas["code"].astype(str), areas["name"].astype(str), strict=True))


@st.cache_data(show_spinner=False, max_entries=8)
def busiest_area(location: str, city: str, version: str, key: str) -> list[str]:
    """The area of ``key`` with the most requests (the neighborhood preset's default)."""
    counts = get_store(location, city).group_counts(RequestFilter(), key)
    found = [str(v) for v in counts.index if v is not None]
    return found[:1]


@st.cache_data(show_spinner=False, max_entries=16)
def weekly(location: str, city: str, version: str, filters: Filters,
           now: datetime) -> pd.DataFrame:
    """Requests per week for the top service types (:func:`hotspot311.web.trends.weekly_counts`),
    from the filtered requests' type and time only."""
    from hotspot311.web.trends import weekly_counts

    store = get_store(location, city)
    frame = rows(store, filters, now, ["service_name", "requested_datetime"])
    return weekly_counts(frame, timezone=store.profile.timezone)


@st.cache_data(show_spinner=False, max_entries=4)
def match_types(location: str, city: str, version: str) -> pd.DataFrame:
    """Stored requests per geocode match type (counted by the store)."""
    counts = get_store(location, city).group_counts(RequestFilter(), "geocode_match_type")
    return pd.DataFrame({"match type": ["(none)" if v is None else str(v)
                                        for v in counts.index],
                         "requests": counts["requests"].to_numpy()})


#: A process keeps the objects of this many hotspot runs (a run's table and polygons: at
#: 1M requests, under 1 MB).
HOTSPOT_RUNS_KEPT = 8


# One object per run for every session: cache_data would keep it pickled and give each
# rerun of each session its own copy.
@st.cache_resource(show_spinner="Finding hotspots…", max_entries=HOTSPOT_RUNS_KEPT)
def hotspots(location: str, city: str, version: str, filters: Filters, *, days: int,
             eps_m: float, min_samples: int, weights: str, now: datetime) -> Hotspots:
    """Run DBSCAN on the problems of the filtered requests of the last ``days`` days of
    the date range: the crew table and the map's polygons (:func:`pagereads.find_hotspots`;
    the work list is :func:`work_list`)."""
    return _hotspot_run(find_hotspots, location, city, version, filters, days=days,
                        eps_m=eps_m, min_samples=min_samples, weights=weights, now=now)


def work_list(location: str, city: str, version: str, filters: Filters, *, days: int,
              eps_m: float, min_samples: int, weights: str, now: datetime) -> pd.DataFrame:
    """The crew work list of the run :func:`hotspots` gives for the same arguments
    (:func:`pagereads.find_work_list`), made anew for a download and not kept: at 1M
    requests a 30-day list is 51 MB."""
    return _hotspot_run(find_work_list, location, city, version, filters, days=days,
                        eps_m=eps_m, min_samples=min_samples, weights=weights, now=now)


def _hotspot_run(run: Callable[..., _T], location: str, city: str, version: str,
                 filters: Filters, *, days: int, eps_m: float, min_samples: int,
                 weights: str, now: datetime) -> _T:
    """``run`` (:func:`pagereads.find_hotspots` or :func:`pagereads.find_work_list`) on
    the page's window, when a run slot is free (see :func:`hotspot_slots`)."""
    with hotspot_slots():
        store = get_store(location, city)
        end = filters.end_utc(store.profile.timezone) or summary(
            location, city, version, filters, now).last
        return run(store, filters, days=days, eps_m=eps_m, min_samples=min_samples,
                   weights=weights, now=now,
                   end=None if end is None else pd.Timestamp(end).to_pydatetime(),
                   namer=place_namer(location, city, version))


@st.cache_resource(show_spinner=False, max_entries=2)
def place_namer(location: str, city: str, version: str) -> PlaceNamer:
    """Names hotspots by their nearest corner and the area of the profile's
    ``place_layer`` (:func:`pagereads.make_place_namer`); built once per process and data
    version."""
    return make_place_namer(get_store(location, city))


@st.cache_data(show_spinner=False, max_entries=4)
def contacts(location: str, city: str, version: str) -> pd.DataFrame:
    """The stored contact log."""
    return get_store(location, city).contacts()


@st.cache_data(show_spinner="Running the report…", max_entries=16)
def request_report(location: str, city: str, version: str, name: str, *, now: datetime,
                   start: date | None, end: date | None, by: str | None,
                   as_drawn: str) -> tuple[pd.DataFrame, str]:
    """A standard request report (see :func:`hotspot311.web.reportpage.request_report`)."""
    from hotspot311.web.reportpage import request_report as run

    return run(get_store(location, city), name, now=now, start=start, end=end, by=by,
               as_drawn=as_drawn)


@st.cache_data(show_spinner=False, max_entries=16)
def contact_report(location: str, city: str, version: str, name: str, *,
                   start: date | None, end: date | None, freq: str) -> pd.DataFrame:
    """A contact report (see :func:`hotspot311.web.reportpage.contact_report`)."""
    from hotspot311.web.reportpage import contact_report as run

    return run(get_store(location, city), contacts(location, city, version), name,
               start=start, end=end, freq=freq)


@st.cache_data(show_spinner=False, max_entries=4)
def stored_runs(location: str, city: str, version: str) -> pd.DataFrame:
    """The stored hotspot runs, oldest first."""
    return get_store(location, city).runs()


@st.cache_data(show_spinner="Measuring before and after…", max_entries=8)
def run_effect(location: str, city: str, version: str, run_id: int, weeks: int) -> pd.DataFrame:
    """Did it work? per hotspot of a stored run (:func:`clustering.effect.hotspot_effect`)."""
    from clustering.effect import hotspot_effect

    store = get_store(location, city)
    params, hot, members = store.load_run(run_id)
    needed = ["service_request_id", "service_name", "x", "y", "requested_datetime",
              "closed_datetime", "problem_id"]
    return hotspot_effect(store.request_columns(needed), hot, members,
                          services=tuple(params.get("services") or ()), weeks=weeks)


@st.cache_data(show_spinner=False, max_entries=4)
def quarantine(location: str, city: str, version: str) -> pd.DataFrame:
    """The quarantined rows."""
    return get_store(location, city).quarantine()


def asset_base() -> str | None:
    """Where the vendored Leaflet is served (``static/vendor``), or ``None`` (CDN) when
    Streamlit's static serving is off."""
    if not st.get_option("server.enableStaticServing"):
        return None
    prefix = str(st.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{prefix}/app/static/vendor" if prefix else "/app/static/vendor"


@st.cache_data(show_spinner=False, max_entries=4)
def city_centre(location: str, city: str, version: str) -> tuple[float, float]:
    """Median (lat, lon) of the stored requests, to the grid's cell: where the map opens,
    whatever the filters (from the cached grid counts of every request, no read of its
    own)."""
    centre = cells_median(all_cells(location, city, version), grid_deg=GRID_DEG)
    return centre if centre is not None else (0.0, 0.0)


@st.cache_data(show_spinner=False)
def city_area_km2(location: str, city: str) -> float:
    """Area of the city extent in km² (for the suggested ``min_samples``)."""
    return get_store(location, city).profile.area_km2


def now_hour() -> datetime:
    """Now, to the hour (a stable cache key for overdue and ages)."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def first_run(store: Store) -> None:
    """The page shown when the store holds no requests yet."""
    st.header("Welcome — no requests yet")
    st.markdown(
        f"The store at `{store.describe()}` holds no service requests. Fill it with one of:\n\n"
        "* the bundled Philadelphia demo data (real dumping, graffiti and parks requests plus "
        "a labelled synthetic mix):\n\n"
        "  ```\n  hotspot311 demo\n  ```\n"
        "* your own 311 export (CSV, JSON or GeoJSON):\n\n"
        "  ```\n  hotspot311 ingest requests.csv\n  ```\n\n"
        "Set `HOTSPOT311_STORE` to a directory (embedded store) or a `postgresql://` URL "
        "(PostGIS) to choose the store, then reload this page."
    )


@st.cache_data(show_spinner="Finding chronic locations…", max_entries=8)
def chronic(location: str, city: str, version: str, filters: Filters, now: datetime, *,
            radius_m: float = 25.0, months: int = 12, min_problems: int = 3
            ) -> gpd.GeoDataFrame:
    """Chronic locations among the filtered requests (:mod:`clustering.chronic`): at least
    ``min_problems`` problems of a type within ``radius_m`` over the ``months`` before the
    newest filtered request."""
    from clustering.chronic import ChronicQuery, chronic_locations

    store = get_store(location, city)
    view = rows(store, filters, now, ["service_request_id", "service_name", "status",
                                      "requested_datetime", "expected_datetime",
                                      "closed_datetime", "address", "x", "y", "problem_id"],
                located=True)
    if "problem_id" not in view.columns or view["problem_id"].isna().all():
        return gpd.GeoDataFrame(geometry=[], crs=store.profile.crs)
    query = ChronicQuery(radius_m=radius_m, months=months, min_problems=min_problems)
    return chronic_locations(view[view["problem_id"].notna()], query, profile=store.profile)


def feed_sources(store: Store) -> pd.DataFrame:
    """The feed sources with their last sync, rows, watermark and last error (read on
    every run: a sync that found nothing new changes no data version)."""
    return sources_frame(store.sources())


def data_as_of(store: Store, head: BatchLogHead | None = None) -> str | None:
    """"Data as of …" for the map: the newest good sync, else the newest ingest, in the
    city's time zone; ``None`` for an empty store (``head`` as in :func:`data_version`)."""
    newest = (head or store.batch_log_head()).last_ingested
    when = stored_as_of(store.sources(), pd.Series([] if newest is None else [newest],
                                                   dtype=object))
    if when is None:
        return None
    return f"{when.astimezone(ZoneInfo(store.profile.timezone)):%Y-%m-%d %H:%M %Z}"


# --- logins, roles and the export log ------------------------------------------------------
def exporter(access: Access, location: str, city: str, *, what: str,
             filters: dict[str, Any], make: Callable[[], tuple[Any, int]]
             ) -> Callable[[], Any]:
    """The data callable of a download button: checks the role, makes the file, records
    the export in the store's audit log (who, role, department, what, filters, rows), then
    returns the file.

    Raises
    ------
    PermissionError
        When ``access`` may not export (the page shows no button then; this refuses a
        forged request).
    """
    def run() -> Any:
        if not access.may_export:
            raise PermissionError(f"{access.user} ({access.role}) may not export {what}")
        data, rows = make()
        get_store(location, city).record_export(
            user=access.user, role=access.role,
            department=access.department.key if access.department else None,
            what=what, filters=filters, rows=rows)
        return data

    return run


@st.cache_data(show_spinner="Looking up the request…", max_entries=32)
def track(location: str, city: str, version: str, request_id: str, now: datetime
          ) -> dict[str, Any]:
    """One request's status, SLA state and hotspot (:func:`reports.tracking.request_record`,
    which reads that request, its problem and its type's hotspot window only).

    Raises
    ------
    InputError
        When no request has that id.
    """
    from layers.services import load_services
    from reports.calendar import load_calendar
    from reports.tracking import request_record

    store = get_store(location, city)
    rec = request_record(store, request_id.strip(), services=load_services(store.profile),
                         calendar=load_calendar(store.profile), now=now)
    spot = rec.hotspot
    if spot is not None:  # named as the crew table names it
        centre = np.asarray(spot["centre"], dtype=float)
        spot = {**spot, "place": place_namer(location, city, version).names(
            centre[:1], centre[1:])[0]}
    return {"fields": rec.fields, "areas": rec.areas, "hotspot": spot,
            "note": rec.hotspot_note, "problem": rec.problem}
