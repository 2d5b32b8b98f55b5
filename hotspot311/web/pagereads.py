"""The page's reads of filtered rows and its hotspot run, without Streamlit.

:mod:`hotspot311.web.appdata` caches these for the pages (one answer per process and
data version, shared by every session); here they are plain functions of a store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import pandas as pd

from geo.geocode.places import PlaceNamer, street_corners
from geo.store.base import Store
from geo.store.reads import RequestFilter
from hotspot311.errors import StoreError
from hotspot311.web.filters import HOTSPOT_AREA_KEYS, Filters
from hotspot311.web.mapdata import web_hotspots
from layers.profile import CityProfile
from reports.sla import SLA_STATES

if TYPE_CHECKING:
    from clustering.run import HotspotResult

#: Columns the SLA state is worked out from (:func:`reports.sla.add_due_and_state`).
SLA_COLUMNS = ("service_name", "status", "requested_datetime", "expected_datetime",
               "closed_datetime")


def store_filter(store: Store, filters: Filters, **extra: Any) -> RequestFilter:
    """The store filter for the page's filters, with ``extra`` fields (box, window…)."""
    return replace(filters.request_filter(store.profile.timezone), **extra)


def rows(store: Store, filters: Filters, now: datetime, columns: Sequence[str], *,
         limit: int | None = None, **extra: Any) -> pd.DataFrame:
    """Columns of the requests passing ``filters`` (and ``extra`` store filter fields).

    With SLA states chosen, the SLA columns are read too and the rows whose state at
    ``now`` is not chosen are dropped here (the store cannot work SLA states out).
    """
    filt = store_filter(store, filters, **extra)
    if not filters.sla_states:
        return store.select_requests(filt, columns, limit=limit)
    frame = store.select_requests(filt, list(dict.fromkeys([*columns, *SLA_COLUMNS])))
    frame = frame.assign(sla_state=sla_state(frame, store.profile, now=now))
    kept = frame[frame["sla_state"].isin(filters.sla_states)]
    return kept.head(limit) if limit is not None else kept


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


@dataclass(frozen=True)
class Hotspots:
    """A hotspot run, ready for the page (one object shared by every session that asks
    for the same run: read it, never change it).

    Attributes
    ----------
    table
        Ranked hotspots, one row each (no geometry).
    web
        Hotspot polygons for the map (WGS84).
    selected
        Requests the run looked at.
    """

    table: pd.DataFrame
    web: gpd.GeoDataFrame
    selected: int


#: Farthest street corner that names a hotspot (m); beyond it the area name alone.
PLACE_CORNER_M = 400.0


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


def make_place_namer(store: Store) -> PlaceNamer:
    """Names hotspots by their nearest corner and the area of the profile's
    ``place_layer`` (:mod:`geo.geocode.places`)."""
    key = store.profile.place_layer
    areas = store.areas(key)[["name", "geometry"]] if key in store.layer_keys() else None
    return PlaceNamer(street_corners(store.profile), areas,
                      max_corner=store.profile.metres_to_crs(PLACE_CORNER_M))


def find_hotspots(store: Store, filters: Filters, *, days: int, eps_m: float,
                  min_samples: int, weights: str, now: datetime, end: datetime | None,
                  namer: PlaceNamer) -> Hotspots:
    """Run DBSCAN on the problems of the filtered requests of the ``days`` days up to
    ``end``, ready for the page (the work list is made on demand: :func:`find_work_list`).

    Parameters
    ----------
    store
        The store to read the window from.
    filters
        The page's filters.
    days, eps_m, min_samples
        The window and the DBSCAN parameters.
    weights
        A preset of :data:`clustering.priority.PRESETS`.
    now
        Reference time for overdue and ages.
    end
        The window's end (the filters' end, else the newest filtered request); ``None``
        when there is none.
    namer
        Names the hotspots by place (:func:`make_place_namer`).

    Returns
    -------
    Hotspots
        The crew table and the map's polygons.
    """
    from clustering.export import hotspot_table

    result, spots, keys = _run(store, filters, days=days, eps_m=eps_m,
                               min_samples=min_samples, weights=weights, now=now, end=end,
                               namer=namer, keep_members=False)
    return Hotspots(table=hotspot_table(spots, keys), web=web_hotspots(spots, layer_keys=keys),
                    selected=result.selected)


def find_work_list(store: Store, filters: Filters, *, days: int, eps_m: float,
                   min_samples: int, weights: str, now: datetime, end: datetime | None,
                   namer: PlaceNamer) -> pd.DataFrame:
    """The crew work list of the run :func:`find_hotspots` makes with the same arguments:
    one line per problem, each with its hotspot's place.

    The page makes it when a download is asked for, not with every run: at 1M requests a
    30-day list has 200,000 lines (51 MB), which a process would otherwise keep for every
    run it holds.

    Returns
    -------
    pandas.DataFrame
        :func:`clustering.export.work_list` with ``place`` after ``hotspot_id``.
    """
    from clustering.export import work_list

    result, spots, _ = _run(store, filters, days=days, eps_m=eps_m, min_samples=min_samples,
                            weights=weights, now=now, end=end, namer=namer,
                            keep_members=True)
    place_of = dict(zip(spots["hotspot_id"], spots["place"], strict=True))
    members = result.members
    del result, spots  # (the hotspots' member lists are not needed for the list)
    work = work_list(members, now=now, count="problems")
    work.insert(int(work.columns.get_loc("hotspot_id")) + 1, "place",  # type: ignore[arg-type]
                work["hotspot_id"].map(place_of).fillna(""))
    return work


def same_run(work: pd.DataFrame, table: pd.DataFrame) -> None:
    """Check that a work list made on a download click is of the run the page shows.

    Raises
    ------
    StoreError
        When its hotspots are not the table's: the requests changed between the page's
        run and the click (the page's next rerun shows the new run).
    """
    if set(work["hotspot_id"]) != set(table["hotspot_id"]):
        raise StoreError("The requests changed since this page was drawn, and with them "
                         "the hotspots: reload the page, then download the work list again.")


def _run(store: Store, filters: Filters, *, days: int, eps_m: float, min_samples: int,
         weights: str, now: datetime, end: datetime | None, namer: PlaceNamer,
         keep_members: bool) -> tuple[HotspotResult, pd.DataFrame, tuple[str, ...]]:
    """The page's hotspot run: problems of the window's located requests (members kept
    for a work list only); the result, its hotspots with their ``place``, and the layer
    keys their areas are given in."""
    from clustering.priority import PRESETS as WEIGHTS
    from clustering.run import run_hotspots
    from clustering.selection import HotspotQuery

    keys = tuple(k for k in HOTSPOT_AREA_KEYS if k in store.layer_keys())
    cols = ["service_request_id", "service_name", "status", "requested_datetime",
            "expected_datetime", "address", "x", "y", "lat", "lon", "problem_id", *keys]
    window: dict[str, Any] = {"after": end - timedelta(days=days), "until": end} \
        if end is not None else {}
    query = HotspotQuery(days=days, end=end, status="all",
                         eps_m=eps_m, min_samples=min_samples, count="problems")
    # (the window is not bound to a name here: the run lets it go after its problem rows)
    result = run_hotspots(_window(store, filters, now, cols, **window), query,
                          profile=store.profile, weights=WEIGHTS[weights], now=now,
                          layer_keys=keys, keep_members=keep_members)
    spots = result.hotspots.assign(place=namer.names(
        result.hotspots["centroid_x"].to_numpy(float),
        result.hotspots["centroid_y"].to_numpy(float)))
    return result, spots, keys


def _window(store: Store, filters: Filters, now: datetime, cols: list[str],
            **window: Any) -> pd.DataFrame:
    """The located requests of the run's window, ``cols`` only, categoricals as text."""
    view = rows(store, filters, now, cols, located=True, **window)
    return as_text(view[[c for c in cols if c in view.columns]])
