"""hotspot311 map: requests, boundary choropleths, hotspots and the crew list (Streamlit).

Run with ``streamlit run app.py`` (``scripts/app.sh`` sets everything up). The page is a
thin shell: widgets → :class:`hotspot311.web.filters.Filters` → cached calls in
:mod:`hotspot311.web.appdata` → pure builders in :mod:`hotspot311.web.maps` → ``st_folium``.
The map reports its view back; :mod:`hotspot311.web.mapview` decides from it which requests
are drawn one by one.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import streamlit as st
from streamlit_folium import st_folium

from clustering.density import suggest_min_samples
from clustering.priority import PROBLEM_PARTS
from hotspot311.errors import InputError, StoreError
from hotspot311.settings import from_environment
from hotspot311.web import appdata, maps
from hotspot311.web.arrowpool import use_returning_pool
from hotspot311.web.escaping import escape_markdown
from hotspot311.web.filters import HOTSPOT_AREA_KEYS, STATUSES, Filters
from hotspot311.web.maps import METRICS, TILES, hotspot_bounds
from hotspot311.web.mapview import DETAIL_ZOOM, MapView, next_mount, parse_view
from hotspot311.web.pagereads import same_run
from hotspot311.web.presets import PRESETS, preset_services
from hotspot311.web.sharelink import from_params, to_params, view_box
from hotspot311.web.signin import require_access
from hotspot311.web.worklist import work_list_csv, work_list_geojson, work_list_html
from layers.services import load_groups
from reports.sla import SLA_STATES

st.set_page_config(page_title="hotspot311 map", layout="wide")
use_returning_pool()  # before the first read: the process's peak memory

NONE = "(none)"
CITY_VIEW = "(whole city)"
#: What the map reports back: its view. A change reruns the page (st_folium's
#: returned_objects; clicks and popups do not).
VIEW_OBJECTS = ["zoom", "bounds", "center"]
#: Most requests drawn one by one (read here, so that a test may lower it).
POINT_LIMIT = maps.POINT_LIMIT

settings = from_environment()
access = require_access()
try:
    store = appdata.get_store(settings.store, settings.city)
except StoreError as err:
    st.error(str(err))
    st.stop()
profile = store.profile
log_head = store.batch_log_head()  # once per rerun: the version and "data as of"
version = appdata.data_version(store, log_head)
offered = appdata.choices(settings.store, settings.city, version)

st.title(f"hotspot311 — {profile.name}")
as_of = appdata.data_as_of(store, log_head)
if as_of:
    st.caption(f"Data as of {as_of}")
if offered.count == 0:
    appdata.first_run(store)
    st.stop()

keys = list(store.layer_keys())
titles = {spec.key: spec.title for spec in profile.layers}
services = offered.services
groups = load_groups(profile)
first_day, last_day = offered.first_day, offered.last_day


def busiest_area(key: str) -> list[str]:
    """The area of ``key`` with the most requests (the neighborhood preset's default)."""
    return appdata.busiest_area(settings.store, settings.city, version, key)


def apply_preset() -> None:
    """Fill the sidebar from the chosen preset (runs before the rerun)."""
    preset = PRESETS[st.session_state["preset"]]
    st.session_state["services"] = preset_services(preset, groups, services)
    st.session_state["agencies"] = []
    if preset.layer in keys:
        st.session_state["layer"] = preset.layer
    st.session_state["area_layer"] = preset.layer if preset.one_area and preset.layer in keys \
        else NONE
    st.session_state["area_codes"] = busiest_area(preset.layer) \
        if preset.one_area and preset.layer in keys else []
    st.session_state["focus"] = CITY_VIEW


def reset_area_codes() -> None:
    """A new area layer starts with no areas chosen."""
    st.session_state["area_codes"] = []


# A department user starts on their department's preset and filter (once per session).
def _default(key: str, value: Any) -> Any:
    """A widget's default, or ``None`` when a share link has set its value already (a
    widget given both warns)."""
    set_by_link: set[str] = st.session_state.setdefault("set_by_link", set())
    if key in set_by_link:
        set_by_link.discard(key)  # the widget owns the value from now on
        return None
    return value


def link_offers(key: str) -> list[Any]:
    """What a widget offers, for a share link's values (others are dropped)."""
    if key == "area_codes":
        chosen = (st.query_params.get_all("area_layer") or [NONE])[-1]
        return list(appdata.area_names(settings.store, settings.city, version, chosen)) \
            if chosen in keys else []
    return {"preset": list(PRESETS), "status": list(STATUSES), "services": services,
            "agencies": offered.agencies, "sla_states": list(SLA_STATES),
            "area_layer": [NONE, *keys], "layer": [NONE, *keys]}.get(key, [])


if "started" not in st.session_state:
    # A new session starts on its share link's view, else on the user's department's
    # preset and filter, else on the defaults.
    st.session_state["started"] = True
    link = from_params({k: st.query_params.get_all(k) for k in st.query_params},
                       offered=link_offers, full_span=(first_day, last_day))
    if link:
        if "preset" in link:
            st.session_state["preset"] = link["preset"]
            apply_preset()
        for key in ("services", "agencies", "status", "sla_states", "area_layer",
                    "area_codes", "layer", "window", "eps", "min_samples"):
            if key in link:
                st.session_state[key] = link[key]
        if "dates" in link:
            st.session_state["dates"] = link["dates"]
        st.session_state["set_by_link"] = {k for k in ("dates", "window", "eps",
                                                      "min_samples") if k in link}
        if "view" in link:
            lat, lon, zoom = link["view"]
            south, west, north, east = view_box(lat, lon, zoom)
            st.session_state["restored_view"] = MapView(zoom=zoom, center=(lat, lon),
                                                        box=(south, west, north, east))
        if "hotspot" in link:
            st.session_state["pending_focus"] = link["hotspot"]
    elif access.department is not None and access.department.preset in PRESETS:
        st.session_state["preset"] = access.department.preset
        apply_preset()
        st.session_state["agencies"] = [a for a in access.department.agencies
                                        if a in offered.agencies]
restored: MapView | None = st.session_state.get("restored_view")

# --- sidebar --------------------------------------------------------------------------
side = st.sidebar
side.selectbox("Preset", list(PRESETS), key="preset", on_change=apply_preset,
               format_func=lambda k: PRESETS[k].label)
preset = PRESETS[st.session_state["preset"]]
chosen_services = side.multiselect("Service type", services, key="services",
                                   placeholder="All types")
chosen_agencies = side.multiselect("Department", offered.agencies,
                                   key="agencies", placeholder="All departments")
dates = side.date_input("Requested between", value=_default("dates", (first_day, last_day)),
                        min_value=first_day, max_value=last_day, key="dates")
status = side.radio("Status", STATUSES, horizontal=True, key="status")
chosen_sla = side.multiselect("SLA state", list(SLA_STATES), key="sla_states",
                              placeholder="All SLA states",
                              help="From the source's due time, else the city's SLA table.")
area_layer = side.selectbox("Area filter: layer", [NONE, *keys], key="area_layer",
                            on_change=reset_area_codes,
                            format_func=lambda k: titles.get(k, k))
area_codes: list[str] = []
if area_layer != NONE:
    names = appdata.area_names(settings.store, settings.city, version, area_layer)
    area_codes = side.multiselect(f"{titles.get(area_layer, area_layer)}", sorted(names),
                                  key="area_codes", format_func=lambda c: names.get(c, c),
                                  placeholder="All areas")
side.divider()
layer = side.selectbox("Boundary layer", [NONE, *keys], key="layer",
                       format_func=lambda k: titles.get(k, k))
metric = side.radio("Shade areas by", list(METRICS), key="metric", format_func=METRICS.get)
drawn = side.radio("Areas as drawn", ["today", "request-date"], key="as_drawn",
                   horizontal=True, format_func={"today": "today",
                                                 "request-date": "on the request date"}.get,
                   help="Count each request in its area on today's map, or on the map in "
                        "force on its request date (after a redistricting).")
tiles = side.selectbox("Background", list(TILES), key="tiles",
                       index=list(TILES).index(os.environ.get("HOTSPOT311_TILES", "streets"))
                       if os.environ.get("HOTSPOT311_TILES", "streets") in TILES else 0,
                       help="Streets needs the internet for map tiles; plain works offline.")

start, end = (dates[0], dates[1]) if isinstance(dates, tuple) and len(dates) == 2 else (
    first_day, last_day)
filters = Filters(
    services=tuple(chosen_services), agencies=tuple(chosen_agencies),
    start=start if start > first_day else None, end=end if end < last_day else None,
    status=status, sla_states=tuple(chosen_sla),
    areas=((area_layer, tuple(area_codes)),) if area_layer != NONE and area_codes else (),
)
now = appdata.now_hour()
numbers = appdata.summary(settings.store, settings.city, version, filters, now)

# --- hotspot parameters ----------------------------------------------------------------
with side.expander("Hotspot settings (DBSCAN)", expanded=False):
    window = st.slider("Window (days, ending at the range's end)", 7, 365,
                       _default("window", 30), step=1, key="window")
    eps_m = st.slider("Search distance eps (m)", 25, 500, _default("eps", 100), step=25,
                      key="eps")
    min_samples = st.slider("min_samples (requests within eps)", 2, 50,
                            _default("min_samples", 5), key="min_samples")
    suggestion = st.empty()  # filled after the map: the city's area reads its extent
    weights = st.selectbox("Priority weights", ["balanced", "streets", "police", "neighborhood"],
                           index=["balanced", "streets", "police", "neighborhood"]
                           .index(preset.weights), key=f"weights_{preset.key}")

show_chronic = side.checkbox(
    "Chronic locations", key="show_chronic",
    help="Spots where problems of one type keep coming back: at least 3 problems within "
         "25 m in the 12 months before the range's end (repeat calls about one problem "
         "count once).")

run: dict[str, Any] = {"days": int(window), "eps_m": float(eps_m), "min_samples": int(min_samples),
       "weights": weights, "now": now}
# A run not done yet in this session is computed after the map is drawn (then the page
# reruns with it), so the first map never waits for the clustering.
run_key = (settings.store, version, filters, *run.values())
done: set[tuple] = st.session_state.setdefault("hotspot_runs", set())
spots = appdata.hotspots(settings.store, settings.city, version, filters, **run) \
    if run_key in done else None

# --- headline numbers ------------------------------------------------------------------
cols = st.columns(4)
cols[0].metric("Requests shown", f"{numbers.count:,}")
cols[1].metric("Open", f"{numbers.open:,}")
cols[2].metric("Overdue", f"{numbers.overdue:,}")
cols[3].metric("Hotspots", f"{len(spots.table):,}" if spots else "…",
               help=f"DBSCAN over {spots.selected:,} requests of the last {window} days"
               if spots else "Finding hotspots…")

# --- focus: a hotspot chosen in the table or the selectbox ----------------------------
table = spots.table if spots else pd.DataFrame(columns=["rank", "top_address", "hotspot_id"])
if not access.sees_personal:  # viewers: no residents' addresses anywhere on the page
    table = table.assign(top_address=None)
places = table["place"] if "place" in table.columns else table["top_address"]
labels = [CITY_VIEW, *[f"#{int(r)} {p or a or ''}".strip() for r, p, a in
                       zip(table["rank"], places, table["top_address"], strict=True)]]
ids = dict(zip(labels[1:], table["hotspot_id"], strict=True))
pending = st.session_state.get("pending_focus")
if spots and pending:  # a share link's hotspot, once the run is there
    st.session_state.pop("pending_focus")
    st.session_state["focus"] = next((lab for lab, i in ids.items() if i == pending), CITY_VIEW)
if spots and st.session_state.get("focus") not in labels:
    st.session_state["focus"] = CITY_VIEW


def table_selected() -> None:
    """A row picked in the hotspot table zooms the map to it."""
    rows = st.session_state["hotspot_table"]["selection"]["rows"]
    st.session_state["focus"] = labels[rows[0] + 1] if rows else CITY_VIEW


with st.expander("Find a request by its tracking number", expanded=bool(
        st.session_state.get("track"))):
    tracking = st.text_input("Tracking number (service request id)", key="track",
                             max_chars=200, placeholder="e.g. SYN-311-0059990")
    if tracking.strip():
        try:
            found = appdata.track(settings.store, settings.city, version, tracking, now)
        except InputError as err:
            st.warning(str(err))
        else:
            f = found["fields"]
            zone = profile.timezone

            def when(value: Any) -> str:
                return "—" if value is None or pd.isna(value) else \
                    f"{pd.Timestamp(value).tz_convert(zone):%Y-%m-%d %H:%M}"

            rows = {"request": f["service_request_id"], "type": f.get("service_name"),
                    "department": f.get("agency_responsible"), "status": f.get("status"),
                    "SLA state": f.get("sla_state"), "due": when(f.get("due_datetime")),
                    "requested": when(f.get("requested_datetime")),
                    "closed": when(f.get("closed_datetime"))}
            if access.sees_personal:
                rows["address"] = f.get("address")
                rows["description"] = f.get("description")
            for key, (code, name) in found["areas"].items():
                if code is not None:
                    rows[titles.get(key, key)] = name or code
            spot = found["hotspot"]
            rows["hotspot"] = (f"{spot['place'] or spot['hotspot_id']} ({spot['hotspot_id']}): "
                               f"{spot['calls']} calls about "
                               f"{spot['count']} problems (its type, last 30 days)"
                               ) if spot else f"none: {found['note']}"
            st.dataframe(pd.DataFrame({"": list(rows), "value": [
                "—" if v is None else str(v) for v in rows.values()]}), hide_index=True,
                key="track_table")

map_col, list_col = st.columns([3, 2], gap="medium")
with list_col:
    st.subheader("Crew priorities")
    focus = st.selectbox("Zoom to hotspot", labels, key="focus") if spots else CITY_VIEW
    if spots is None:
        st.info("Finding hotspots…", icon="spinner")
    else:
        area_cols = [k for k in HOTSPOT_AREA_KEYS if k in spots.table.columns]
        shown = table.set_index("hotspot_id")[
            [c for c in ["rank", "place", "score", "count", "calls", "open", "overdue",
                         *(["top_address"] if access.sees_personal else []),
                         *area_cols, *[f"score_{p}" for p in PROBLEM_PARTS]]
             if c in spots.table.columns]]
        st.dataframe(
            shown, key="hotspot_table", on_select=table_selected, selection_mode="single-row",
            height=min(38 + 35 * len(shown), 760),
            column_config={
                "_index": st.column_config.TextColumn("hotspot", help="Hotspot id (stable across "
                                                      "runs while its requests are the same)"),
                "score": st.column_config.ProgressColumn("score", min_value=0.0, max_value=100.0,
                                                         format="%.1f"),
                "place": st.column_config.TextColumn("place", help="Nearest street corner "
                                                     "to the hotspot's centre, and its area"),
                "top_address": st.column_config.TextColumn("top address"),
                "count": st.column_config.NumberColumn("problems", help="Problems: repeat "
                                                       "calls about one problem count once"),
                "calls": st.column_config.NumberColumn("calls", help="Requests about these "
                                                       "problems"),
                **{f"score_{p}": st.column_config.NumberColumn(f"{p} part", format="%.1f")
                   for p in PROBLEM_PARTS},
                **{k: titles.get(k, k) for k in area_cols}},
        )
        if table.empty:
            st.info("No hotspots for these filters and settings: widen the window or the "
                    "filters, or lower min_samples.")
        # the files are made when a button is clicked (a callable), not on every rerun:
        # at 1M requests a work list has ~200k rows (51 MB), and the page reruns on every pan
        stamp = f"{now:%Y%m%d}"
        ranked = spots.table
        params = {"window days": window, "eps m": eps_m, "min_samples": min_samples,
                  "weights": weights, "types": ", ".join(chosen_services) or "all",
                  "status": status}
        logged = {"services": list(chosen_services), "departments": list(chosen_agencies),
                  "start": str(filters.start or ""), "end": str(filters.end or ""),
                  "status": status, "areas": {k: list(v) for k, v in filters.areas},
                  "window_days": int(window), "eps_m": float(eps_m),
                  "min_samples": int(min_samples)}

        def export(what: str, make: Any) -> Any:
            """The button's file, made from the run's work list on click (a process does
            not keep work lists) and recorded in the export log."""
            def made() -> tuple[Any, int]:
                work = appdata.work_list(settings.store, settings.city, version, filters,
                                         **run)
                same_run(work, ranked)  # (the requests may have changed since the page)
                return make(work), len(work)

            return appdata.exporter(access, settings.store, settings.city, what=what,
                                    filters=logged, make=made)

        if access.may_export:
            dl = st.columns(3)
            dl[0].download_button("Work list CSV", export("work list CSV", work_list_csv),
                                  file_name=f"work-list-{stamp}.csv", mime="text/csv",
                                  key="dl_csv", on_click="ignore")
            dl[1].download_button("GeoJSON", export("work list GeoJSON", work_list_geojson),
                                  file_name=f"work-list-{stamp}.geojson",
                                  mime="application/geo+json", key="dl_geojson",
                                  on_click="ignore")
            dl[2].download_button(
                "Printable", export("work list printable", lambda work: work_list_html(
                    ranked, work, title=f"Crew work list — {profile.name}", params=params,
                    generated=datetime.now(UTC))),
                file_name=f"work-list-{stamp}.html", mime="text/html", key="dl_print",
                on_click="ignore", help="A print-friendly page: open it and print (Ctrl+P).")
        else:
            st.caption("Work list downloads are for department leads.")

# --- the map -------------------------------------------------------------------------
# The base map (tiles, choropleth, hotspots) is mounted in the browser once and rebuilt
# only when it changes; the request layer is swapped in place as the reported view
# changes (hotspot311.web.mapview has the rule).
focus_id = ids.get(focus)
focus_box = hotspot_bounds(spots.web, focus_id) if spots and focus_id else None
previous = st.session_state.get("map_mount")
mount = next_mount(previous, focus=focus_id,
                   view=parse_view(st.session_state.get("map")) or restored,
                   key=(tiles, layer, metric, drawn,
                        (filters, now) if layer != NONE else None,
                        run_key if spots else None,
                        (filters, now) if show_chronic else None))
if mount is not previous:
    st.session_state["map_mount"] = mount
    if previous is not None and previous.focus != focus_id:
        st.session_state.pop("map", None)  # the map opens afresh; its own report follows
reported = parse_view(st.session_state.get("map")) or restored
choice = appdata.point_choice(
    settings.store, settings.city, version, filters, now, view=reported, focus=focus_box,
    limit=POINT_LIMIT, columns=["service_request_id", "service_name", "status",
                                "requested_datetime",
                                *(["address"] if access.sees_personal else [])])
areas = appdata.area_layer(settings.store, settings.city, version, filters, layer, now,
                           drawn) if layer != NONE else None
points = choice.points
cells = appdata.heat_cells(settings.store, settings.city, version, filters, now) \
    if points is None else None
chronic = appdata.chronic(settings.store, settings.city, version, filters, now) \
    if show_chronic else None
if chronic is not None and not access.sees_personal:
    chronic = chronic.assign(top_address=None)
parts = maps.page_map(None, cells=cells, points=points, areas=areas,
                      area_title=titles.get(layer, layer), metric=metric,
                      hotspots=(spots.web if access.sees_personal else spots.web.assign(
                          top_address="")) if spots else None, selected=focus_id,
                      center=appdata.city_centre(settings.store, settings.city, version),
                      bounds=focus_box, tiles=tiles, assets=appdata.asset_base(),
                      chronic=chronic)
with map_col:
    st_folium(parts.base, key="map", height=620, use_container_width=True,
              returned_objects=VIEW_OBJECTS, feature_group_to_add=parts.requests,
              layer_control=parts.control,
              center=mount.view.center if mount.view else None,
              zoom=round(mount.view.zoom) if mount.view else None)
    shown_n = 0 if choice.points is None else len(choice.points)
    if numbers.count == 0:
        st.caption("No requests match these filters.")
    elif choice.reason == "hotspot":
        st.caption(f"Zoomed to {escape_markdown(focus)}: {shown_n:,} requests shown one by one; "
                   "click a point for its details.")
    elif choice.reason == "zoomed":
        st.caption(f"{shown_n:,} requests in view shown one by one; click a point for its "
                   "details. Zoom out for the density map.")
    elif choice.reason == "few":
        st.caption(f"{shown_n:,} requests shown one by one; click a point for its details.")
    elif choice.box is not None:
        where = f"around {focus}" if choice.box == focus_box else "in view"
        st.caption(f"{choice.in_box:,} requests {where}: more than {POINT_LIMIT:,} to draw one "
                   "by one (density map); zoom in further or narrow the filters.")
    else:
        st.caption(f"{numbers.count:,} requests drawn as a density map (grid counts); zoom in to "
                   f"street level (zoom {DETAIL_ZOOM}+) where at most {POINT_LIMIT:,} are in "
                   "view, narrow the filters, or pick a hotspot, to see each one.")

area_km2 = appdata.city_area_km2(settings.store, settings.city)
suggestion.caption(f"Suggested min_samples for {numbers.count:,} requests over "
                   f"~{area_km2:.0f} km²: "
                   f"{suggest_min_samples(numbers.count, area_km2, float(eps_m))} (3x background, "
                   "whole range)")

# --- the share link: the address bar holds this view ---------------------------------
st.query_params.from_dict(to_params(
    st.session_state.to_dict(), dates=(start, end), full_span=(first_day, last_day),
    view=(reported.center[0], reported.center[1], reported.zoom) if reported else None,
    hotspot=focus_id).items())
st.caption("Share this view: the address bar holds the preset, filters, map and picked "
           "hotspot; whoever opens it (and may see them) gets the same view.")

# --- did it work? ---------------------------------------------------------------------
if st.checkbox("Did it work? (stored runs)", key="show_effect"):
    st.subheader("New problems in each hotspot before and after its requests were closed")
    runs = appdata.stored_runs(settings.store, settings.city, version)
    if runs.empty:
        st.caption("No stored runs yet: store one with `hotspot311 hotspots --save`.")
    else:
        effect_run = st.selectbox("Stored run", runs["run_id"].tolist()[::-1], key="effect_run")
        effect_weeks = st.number_input("Weeks before and after", min_value=1, max_value=26,
                                       value=4, key="effect_weeks")
        st.dataframe(appdata.run_effect(settings.store, settings.city, version,
                                        int(effect_run), int(effect_weeks)), hide_index=True)
        st.caption("Against similar cells elsewhere in the city (as many new problems before);"
                   " effect < 0: fewer new problems than expected. Method and limits: "
                   "clustering/effect.py.")

# --- trend -----------------------------------------------------------------------------
if preset.trend or st.checkbox("Show requests over time", key="show_trend"):
    st.subheader("Requests per week")
    st.line_chart(appdata.weekly(settings.store, settings.city, version, filters, now))

if spots is None:
    appdata.hotspots(settings.store, settings.city, version, filters, **run)
    done.add(run_key)
    st.rerun()
# Once the page is whole: the counts the heat maps of later filter changes (any
# session's) are summed from, if this process has not got them yet.
appdata.facet_cells(settings.store, settings.city, version)
