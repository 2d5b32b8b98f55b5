"""Cached reads for the Streamlit pages (the only package module that imports Streamlit).

Every cached call is keyed on plain values: the store location, the city, a data
version (changes when a batch is ingested or a layer added) and the page's
:class:`~hotspot311.web.filters.Filters`, so reruns with the same widgets reuse the work.

The request frame itself is held with ``st.cache_resource`` (shared, never copied):
``st.cache_data`` would pickle a copy of a million rows on every rerun. Callers treat
it as read-only. Smaller derived frames use ``st.cache_data``.

The first map waits only for what it draws: the page columns are read with the
few-valued text columns dictionary-encoded (:data:`hotspot311.web.filters.CATEGORIES`); layer
codes, ids, addresses, projected positions and close times are read from the same
snapshot when first needed (:class:`StoredRequests`); SLA states are worked out when the
SLA filter first asks for them (:func:`sla_states`); and the clustering modules are
imported when the first hotspot run starts.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import geopandas as gpd
import numpy as np
import pandas as pd
import streamlit as st

from geo.store.base import RequestReader, Store, open_store
from geo.store.sources import data_as_of as stored_as_of
from geo.store.sources import sources_frame
from hotspot311.web.filters import (
    CATEGORIES,
    COLUMNS,
    DETAILS,
    HOTSPOT_AREA_KEYS,
    Filters,
    apply_filters,
)
from hotspot311.web.mapdata import area_stats, web_areas, web_hotspots
from layers.profile import CityProfile, load_profile
from reports.sla import SLA_STATES

#: Columns the SLA state is worked out from (:func:`reports.sla.add_due_and_state`).
SLA_COLUMNS = ("service_name", "status", "requested_datetime", "expected_datetime",
               "closed_datetime")


@st.cache_resource(show_spinner=False)
def get_store(location: str, city: str) -> Store:
    """Open the store once per process."""
    return open_store(location, load_profile(city))


def data_version(store: Store) -> str:
    """Changes whenever a batch is ingested or a layer generation added."""
    batches = store.batches()
    last = str(batches["batch_id"].iloc[-1]) if len(batches) else ""
    return f"{len(batches)}:{last}:{len(store.generations())}"


class StoredRequests:
    """The stored requests as the pages hold them, all from one snapshot of the store.

    ``frame`` has the page columns (:data:`hotspot311.web.filters.COLUMNS`), read at once;
    :meth:`columns` reads any other column on first use (layer codes, ids, addresses,
    ...: :data:`hotspot311.web.filters.DETAILS`), from the same snapshot, so that its rows
    line up with ``frame``'s (same index), and keeps it.

    Parameters
    ----------
    reader
        The store's reader (:meth:`geo.store.base.Store.request_reader`).
    layer_keys
        The store's layers; their codes are read as categoricals, like
        :data:`hotspot311.web.filters.CATEGORIES`.
    """

    def __init__(self, reader: RequestReader, layer_keys: tuple[str, ...]) -> None:
        self._reader = reader
        self._categories = (*CATEGORIES, *layer_keys)
        self.frame = reader.read(COLUMNS, categories=self._categories)
        self._more: dict[str, pd.Series] = {}
        self._absent: set[str] = set()
        self._lock = threading.Lock()

    def columns(self, names: Sequence[str]) -> pd.DataFrame:
        """Columns ``names`` of every request, aligned with ``frame`` (names the store
        does not have are left out)."""
        with self._lock:
            todo = [c for c in names if c not in self.frame.columns and c not in self._more
                    and c not in self._absent]
            if todo:
                read = self._reader.read(todo, categories=self._categories)
                self._more.update({c: read[c] for c in read.columns})
                self._absent.update(c for c in todo if c not in read.columns)
            more = dict(self._more)
        return pd.DataFrame({c: self.frame[c] if c in self.frame.columns else more[c]
                             for c in dict.fromkeys(names) if c in self.frame.columns
                             or c in more}, index=self.frame.index)


@st.cache_resource(show_spinner="Reading requests…", max_entries=2)
def stored_requests(location: str, city: str, version: str) -> StoredRequests:
    """The stored requests of this data version (shared; do not modify)."""
    store = get_store(location, city)
    return StoredRequests(store.request_reader(), store.layer_keys())


def load_requests(location: str, city: str, version: str) -> pd.DataFrame:
    """The stored requests, page columns only, few-valued text as categoricals (shared;
    do not modify)."""
    return stored_requests(location, city, version).frame


def with_columns(frame: pd.DataFrame, location: str, city: str, version: str,
                 columns: Sequence[str] = DETAILS) -> pd.DataFrame:
    """``frame`` (rows of :func:`load_requests`) with ``columns`` it lacks added, by row.

    A column's first use reads it for every stored request (kept with the data).
    """
    todo = [c for c in columns if c not in frame.columns]
    if not todo:
        return frame
    more = stored_requests(location, city, version).columns(todo)
    return frame.assign(**{c: more[c] for c in more.columns})


@st.cache_resource(show_spinner="Working out SLA states…", max_entries=2)
def sla_states(location: str, city: str, version: str, now: datetime) -> pd.Series:
    """The SLA state of every stored request at ``now`` (shared; do not modify)."""
    store = get_store(location, city)
    frame = with_columns(load_requests(location, city, version), location, city, version,
                         ["closed_datetime"])
    return sla_state(frame, store.profile, now=now)


def sla_state(frame: pd.DataFrame, profile: CityProfile, *, now: datetime) -> pd.Series:
    """SLA state of each request from the city's SLA table (see :mod:`reports.sla`).

    Parameters
    ----------
    frame
        Requests with :data:`SLA_COLUMNS`.
    profile
        The city, whose service catalogue and calendar give the due times.
    now
        Reference time for open requests.

    Returns
    -------
    pandas.Series
        Categorical over :data:`reports.sla.SLA_STATES`, aligned with ``frame``.
    """
    from layers.services import load_services
    from reports.calendar import load_calendar
    from reports.sla import add_due_and_state

    states = pd.CategoricalDtype(list(SLA_STATES))
    if frame.empty:
        return pd.Series([], index=frame.index, dtype=states, name="sla_state")
    out = add_due_and_state(frame[list(SLA_COLUMNS)], services=load_services(profile),
                            calendar=load_calendar(profile), now=now)
    return out["sla_state"].astype(states)


@st.cache_resource(show_spinner=False, max_entries=16)
def filtered(location: str, city: str, version: str, filters: Filters,
             now: datetime) -> pd.DataFrame:
    """The requests passing ``filters`` (shared; do not modify).

    ``now`` dates the SLA states, worked out only when ``filters`` select some.
    """
    store = get_store(location, city)
    frame = with_columns(load_requests(location, city, version), location, city, version,
                         list(filters.area_map()))
    if filters.sla_states:
        frame = frame.assign(sla_state=sla_states(location, city, version, now))
    return apply_filters(frame, filters, timezone=store.profile.timezone)


@st.cache_data(show_spinner=False, max_entries=32)
def area_layer(location: str, city: str, version: str, filters: Filters, key: str,
               now: datetime, as_drawn: str = "today") -> gpd.GeoDataFrame:
    """Web-ready areas of layer ``key`` with request counts and overdue share.

    ``as_drawn`` is ``today`` (each request in its area of today's map) or
    ``request-date`` (in its area of the map in force on its request date, see
    :mod:`reports.asdrawn`); either way the counts are drawn on today's areas.
    """
    from reports.asdrawn import as_drawn as redraw

    store = get_store(location, city)
    view = with_columns(filtered(location, city, version, filters, now), location, city,
                        version, [key])
    if as_drawn != "today":
        view = with_columns(view, location, city, version, ["x", "y"])
        view = redraw(as_text(view), store, mode=as_drawn, timezone=store.profile.timezone,
                      keys=[key])
    return web_areas(store.areas(key), area_stats(view, key, now=now),
                     simplify=store.profile.metres_to_crs(8.0))


@st.cache_data(show_spinner=False, max_entries=8)
def area_names(location: str, city: str, version: str, key: str) -> dict[str, str]:
    """Code → name of the areas of one layer."""
    areas = get_store(location, city).areas(key)
    return dict(zip(areas["code"].astype(str), areas["name"].astype(str), strict=True))


@dataclass
class Hotspots:
    """A hotspot run, ready for the page.

    Attributes
    ----------
    table
        Ranked hotspots, one row each (no geometry).
    web
        Hotspot polygons for the map (WGS84).
    work
        The crew work list.
    selected
        Requests the run looked at.
    """

    table: pd.DataFrame
    web: gpd.GeoDataFrame
    work: pd.DataFrame
    selected: int


@st.cache_data(show_spinner="Finding hotspots…", max_entries=16)
def hotspots(location: str, city: str, version: str, filters: Filters, *, days: int,
             eps_m: float, min_samples: int, weights: str, now: datetime) -> Hotspots:
    """Run DBSCAN on the problems of the filtered requests of the last ``days`` days of
    the date range (one work list line per problem)."""
    from clustering.export import hotspot_table, work_list
    from clustering.priority import PRESETS as WEIGHTS
    from clustering.run import run_hotspots
    from clustering.selection import HotspotQuery

    store = get_store(location, city)
    layers = [k for k in HOTSPOT_AREA_KEYS if k in store.layer_keys()]
    view = with_columns(filtered(location, city, version, filters, now), location, city,
                        version, ["service_request_id", "address", "x", "y", "problem_id",
                                  *layers])
    keys = tuple(k for k in HOTSPOT_AREA_KEYS if k in view.columns)
    cols = ["service_request_id", "service_name", "status", "requested_datetime",
            "expected_datetime", "address", "x", "y", "lat", "lon", "problem_id", *keys]
    query = HotspotQuery(days=days, end=filters.end_utc(store.profile.timezone), status="all",
                         eps_m=eps_m, min_samples=min_samples, count="problems")
    result = run_hotspots(as_text(view[[c for c in cols if c in view.columns]]), query,
                          profile=store.profile, weights=WEIGHTS[weights], now=now,
                          layer_keys=keys)
    return Hotspots(table=hotspot_table(result.hotspots, keys),
                    web=web_hotspots(result.hotspots, layer_keys=keys),
                    work=work_list(result.members, now=now, count="problems"),
                    selected=result.selected)


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its categorical columns as plain text (what the clustering takes).

    Examples
    --------
    >>> out = as_text(pd.DataFrame({"s": pd.Categorical(["a", None]), "n": [1, 2]}))
    >>> out["s"].tolist(), str(out["n"].dtype)
    (['a', nan], 'int64')
    """
    cats = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
    if not cats:
        return frame
    return frame.assign(**{c: frame[c].astype("str") for c in cats})


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
    """Median (lat, lon) of the stored requests: where the map opens, whatever the filters."""
    frame = load_requests(location, city, version)
    lat, lon = frame["lat"].to_numpy(dtype=float), frame["lon"].to_numpy(dtype=float)
    return float(np.nanmedian(lat)), float(np.nanmedian(lon))


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
    view = with_columns(filtered(location, city, version, filters, now), location, city,
                        version, ["service_request_id", "address", "x", "y", "problem_id"])
    if "problem_id" not in view.columns or view["problem_id"].isna().all():
        return gpd.GeoDataFrame(geometry=[], crs=store.profile.crs)
    query = ChronicQuery(radius_m=radius_m, months=months, min_problems=min_problems)
    return chronic_locations(view[view["problem_id"].notna()], query, profile=store.profile)


def feed_sources(store: Store) -> pd.DataFrame:
    """The feed sources with their last sync, rows, watermark and last error (read on
    every run: a sync that found nothing new changes no data version)."""
    return sources_frame(store.sources())


def data_as_of(store: Store) -> str | None:
    """"Data as of …" for the map: the newest good sync, else the newest ingest, in the
    city's time zone; ``None`` for an empty store."""
    when = stored_as_of(store.sources(), store.batches()["ingested_at"])
    if when is None:
        return None
    return f"{when.astimezone(ZoneInfo(store.profile.timezone)):%Y-%m-%d %H:%M %Z}"
