"""Map builders: pure functions from frames to ``folium.Map`` (no Streamlit).

The map never carries one marker per request at city scale: above
:data:`POINT_LIMIT` requests they are drawn as a heat map of grid counts
(:func:`hotspot311.web.mapdata.grid_counts`, at most ``MAX_CELLS`` cells), so the page stays
a few hundred kilobytes whatever the volume. At or under the limit (a small filtered
set, a hotspot in focus, or the requests in view when zoomed in: see
:mod:`hotspot311.web.mapview`) each request is a small circle with a popup, all in one
GeoJSON layer.

Folium's popups and tooltips, Leaflet's layer control and the legend show their text with
``innerHTML``; every value shown there is escaped first (:func:`popup_features` for
feature properties, :func:`~hotspot311.web.escaping.escape_html` for names and titles),
so text typed by the public is shown, never run.

The page takes the map in parts (:func:`page_map`): a base map (tiles, choropleth,
hotspots) that the browser mounts once, and the request layer in its own feature group,
which ``st_folium`` swaps in place as the view changes, without reloading the map.
:func:`city_map` puts the parts together into one map.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import branca.colormap as cm
import folium
import geopandas as gpd
import numpy as np
import pandas as pd
from branca.element import MacroElement
from folium.elements import JSCSSMixin
from folium.plugins import HeatMap
from folium.template import Template as FoliumTemplate
from jinja2 import Template

from hotspot311.web import literalrender
from hotspot311.web.escaping import escape_html, escape_texts
from hotspot311.web.mapdata import (
    DECIMALS,
    feature_collection,
    grid_counts,
    heat_weights,
    json_rows,
)

POINT_LIMIT: Final = 2_000
#: Low → high priority.
PRIORITY_COLOURS: Final = ("#fed976", "#fd8d3c", "#e31a1c", "#800026")
METRICS: Final = {"requests": "Requests", "overdue_share": "Overdue share of open requests"}
#: Background choices: a tile name for folium, or ``None`` for a plain background.
TILES: Final[dict[str, str | None]] = {"streets": "OpenStreetMap", "plain": None}
#: Asset file name → path under the local asset base (``static/vendor`` in the repo).
LOCAL_ASSETS: Final = {"leaflet.js": "leaflet/leaflet.js", "leaflet.css": "leaflet/leaflet.css",
                       "leaflet_heat.min.js": "leaflet-heat/leaflet_heat.min.js"}
_POINT_FIELDS: Final = ("service_request_id", "service_name", "address", "status", "requested")


def base_map(center: tuple[float, float], *, zoom: int = 11, tiles: str | None = "streets",
             bounds: tuple[float, float, float, float] | None = None) -> folium.Map:
    """An empty map.

    Parameters
    ----------
    center
        (lat, lon).
    zoom
        Initial zoom.
    tiles
        A key of :data:`TILES` (``plain``/``None``: no tiles, a light grey background).
    bounds
        ``(south, west, north, east)`` to fit instead of ``zoom``.
    """
    literalrender.install()
    tile = TILES.get(tiles, tiles) if tiles is not None else None
    fmap = folium.Map(location=list(center), zoom_start=zoom, tiles=tile, prefer_canvas=True,
                      control_scale=True)
    if tile is None:
        fmap.get_root().header.add_child(folium.Element(  # type: ignore[attr-defined]
            "<style>.leaflet-container{background:#eef0f2}</style>"))
    if bounds is not None:
        south, west, north, east = bounds
        fmap.fit_bounds([[south, west], [north, east]])
    return fmap


class Legend(MacroElement):
    """A colour-ramp legend drawn as a plain Leaflet control (no d3, unlike branca's)."""

    _template = Template("""{% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.control({position: "bottomright"});
        {{ this.get_name() }}.onAdd = function () {
            var div = L.DomUtil.create("div", "hotspot311-legend");
            div.innerHTML = {{ this.html|tojson }};
            return div;
        };
        {{ this.get_name() }}.addTo({{ this._parent.get_name() }});
    {% endmacro %}""")

    def __init__(self, caption: str, colours: Sequence[str], low: str, high: str) -> None:
        super().__init__()
        self._name = "Legend"
        ramp = ",".join(colours)
        self.html = (
            "<div style='background:#fff;padding:6px 8px;border-radius:4px;"
            "box-shadow:0 1px 4px rgba(0,0,0,.3);font:12px sans-serif'>"
            f"<div style='margin-bottom:3px'>{escape_html(caption)}</div>"
            f"<div style='width:180px;height:10px;background:linear-gradient(to right,{ramp})'>"
            "</div><div style='display:flex;justify-content:space-between'>"
            f"<span>{escape_html(low)}</span><span>{escape_html(high)}</span></div></div>")


def choropleth_layer(areas: gpd.GeoDataFrame, *, metric: str = "requests",
                     title: str = "Areas") -> tuple[folium.GeoJson, Legend]:
    """Areas shaded by ``metric``, with a hover tooltip of the area's name and value.

    Parameters
    ----------
    areas
        From :func:`hotspot311.web.mapdata.web_areas` with stats (WGS84).
    metric
        A key of :data:`METRICS`.
    title
        Layer name (the boundary layer's title).

    Returns
    -------
    (folium.GeoJson, Legend)
        The layer and its legend.
    """
    if metric not in METRICS:
        raise ValueError(f"metric: got {metric!r}; allowed: {', '.join(METRICS)}")
    values = areas[metric].astype(float)
    high = float(values.max()) if len(values) and values.max() > 0 else 1.0
    ramp = ["#f7fbff", "#6baed6", "#08306b"]
    scale = cm.LinearColormap(ramp, vmin=0.0, vmax=high)
    top = f"{high * 100:.0f} %" if metric == "overdue_share" else f"{high:,.0f}"
    legend = Legend(f"{title}: {METRICS[metric].lower()}", ramp, "0", top)
    shown = areas[["code", "name", metric, "geometry"]].copy()
    if metric == "overdue_share":
        shown["value"] = (shown[metric] * 100).round(1).astype(str) + " %"
    else:
        shown["value"] = shown[metric].astype(int).map("{:,}".format)
    codes = escape_texts(shown["code"].astype(object))  # as popup_features writes them
    colours = {code: scale(float(v)) for code, v in zip(codes, shown[metric], strict=True)}
    layer = folium.GeoJson(
        popup_features(shown[["code", "name", "value", metric, "geometry"]], ["name", "value"]),
        name=escape_html(f"{title}: {METRICS[metric].lower()}"),
        style_function=lambda f: {"fillColor": colours.get(f["properties"]["code"], "#ffffff"),
                                  "color": "#4a4a4a", "weight": 1, "fillOpacity": 0.45},
        highlight_function=lambda _: {"weight": 3, "color": "#000000"},
        tooltip=folium.GeoJsonTooltip(fields=["name", "value"],
                                      aliases=[escape_html(title), METRICS[metric]]),
        smooth_factor=1.0,
    )
    return layer, legend


def priority_colour(score: float, low: float, high: float) -> str:
    """Colour of a hotspot by its score within the run (darker red = higher priority).

    Examples
    --------
    >>> priority_colour(90, 10, 90), priority_colour(10, 10, 90)
    ('#800026', '#fed976')
    """
    if not np.isfinite(score) or high <= low:
        return PRIORITY_COLOURS[-1]
    step = int((score - low) / (high - low) * len(PRIORITY_COLOURS))
    return PRIORITY_COLOURS[min(max(step, 0), len(PRIORITY_COLOURS) - 1)]


def hotspot_layer(hotspots: gpd.GeoDataFrame, *, selected: str | None = None) -> folium.GeoJson:
    """Hotspot polygons coloured by priority, with popups.

    Parameters
    ----------
    hotspots
        From :func:`hotspot311.web.mapdata.web_hotspots` (WGS84).
    selected
        ``hotspot_id`` drawn with a thick outline.
    """
    low = float(hotspots["score"].min()) if len(hotspots) else 0.0
    high = float(hotspots["score"].max()) if len(hotspots) else 1.0
    colours = {hid: priority_colour(float(s), low, high)
               for hid, s in zip(hotspots["hotspot_id"], hotspots["score"], strict=True)}

    def style(feature: dict) -> dict:
        hid = feature["properties"]["hotspot_id"]
        return {"fillColor": colours.get(hid, PRIORITY_COLOURS[-1]), "color": "#000000",
                "weight": 4 if hid == selected else 1, "fillOpacity": 0.7}

    fields = ["rank", "place", "score", "count", "calls", "open", "overdue",
              "oldest_open_days", "areas", "top_address"]
    fields = [f for f in fields if f in hotspots.columns]
    aliases = [{"rank": "Rank", "place": "Place", "score": "Score", "count": "Problems",
                "calls": "Calls", "open": "Open", "overdue": "Overdue",
                "oldest_open_days": "Oldest open (days)", "areas": "Areas",
                "top_address": "Top address"}[f] for f in fields]
    return folium.GeoJson(
        popup_features(hotspots[["hotspot_id", *fields, "geometry"]], fields),
        name="Hotspots (by priority)",
        style_function=style,
        popup=folium.GeoJsonPopup(fields=fields, aliases=aliases, max_width=320),
        tooltip=folium.GeoJsonTooltip(fields=["rank", "count"],
                                      aliases=["Hotspot rank", "Problems"]),
    )


def chronic_layer(locations: gpd.GeoDataFrame) -> folium.GeoJson:
    """Chronic locations (:func:`clustering.chronic.chronic_locations`) as a map layer.

    Parameters
    ----------
    locations
        Chronic locations in any CRS (drawn in WGS84); repeats dark, near repeats light.

    Returns
    -------
    folium.GeoJson
        Named "Chronic locations", with a popup per location (text escaped by
        :func:`popup_features`, as for every layer).
    """
    frame = gpd.GeoDataFrame({
        "location_id": locations["location_id"].astype(str),
        "service_name": locations["service_name"].astype(str),
        "kind": locations["kind"].astype(str),
        "problems": locations["problems"].astype(int),
        "calls": locations["calls"].astype(int),
        "top_address": locations["top_address"].fillna("").astype(str),
    }, geometry=locations.geometry.to_numpy(), crs=locations.crs)
    if len(frame) and frame.crs is not None:
        frame = frame.to_crs("EPSG:4326")
    fields = ["service_name", "kind", "problems", "calls", "top_address"]
    return folium.GeoJson(
        popup_features(frame, fields),
        name="Chronic locations",
        style_function=lambda f: {"color": "#4a1486", "weight": 1, "fillOpacity": 0.6,
                                  "fillColor": "#4a1486" if f["properties"]["kind"] == "repeat"
                                  else "#9e9ac8"},
        popup=folium.GeoJsonPopup(fields=fields, aliases=["Service", "Kind", "Problems",
                                                          "Calls", "Top address"]),
    )


def point_layer(requests: pd.DataFrame) -> folium.GeoJson:
    """One small circle per request with a popup (only for small sets).

    The popup shows the address only when ``requests`` has an ``address`` column (the
    page leaves it out for roles that may not see addresses).
    """
    columns = {
        "service_request_id": requests["service_request_id"].astype(str),
        "service_name": requests["service_name"].astype(str),
        "status": requests["status"].astype(str),
        "requested": requests["requested_datetime"].dt.strftime("%Y-%m-%d"),
    }
    if "address" in requests.columns:
        columns["address"] = requests["address"].fillna("").astype(str)
    fields = [f for f in _POINT_FIELDS if f in columns]
    aliases = dict(zip(_POINT_FIELDS, ["Request", "Type", "Address", "Status", "Requested"],
                       strict=True))
    frame = pd.DataFrame({f: columns[f] for f in fields})
    points = gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(
        requests["lon"].round(DECIMALS), requests["lat"].round(DECIMALS)), crs="EPSG:4326")
    return folium.GeoJson(
        popup_features(points, fields), name="Requests",
        marker=folium.CircleMarker(radius=4, weight=1, color="#08306b", fill=True,
                                   fill_color="#2171b5", fill_opacity=0.8),
        popup=folium.GeoJsonPopup(fields=fields, aliases=[aliases[f] for f in fields]),
    )


def popup_features(frame: gpd.GeoDataFrame, shown: Sequence[str]) -> dict:
    """The GeoJSON of a layer whose ``shown`` fields go into popups or tooltips.

    The one place where values become popup/tooltip properties: folium builds those with
    ``innerHTML``, so every text value is HTML-escaped
    (:func:`~hotspot311.web.escaping.escape_texts`); numbers stay numbers. Properties not
    ``shown`` (codes and ids the style functions key on) are escaped too: branca renders
    the layer's GeoJSON as part of a jinja2 template, so a brace in any value must be
    encoded (a style function keys on the escaped value).

    Examples
    --------
    >>> import shapely
    >>> frame = gpd.GeoDataFrame({"address": ["<b>1 Main</b>"], "n": [2]},
    ...                          geometry=[shapely.Point(0, 0)])
    >>> popup_features(frame, ["address", "n"])["features"][0]["properties"]
    {'address': '&lt;b&gt;1 Main&lt;/b&gt;', 'n': 2}
    """
    out = frame.copy()
    missing = [name for name in shown if name not in out.columns]
    if missing:
        raise ValueError(f"shown: {missing} are not columns of the layer")
    for name in out.columns:
        if name == out.geometry.name:
            continue
        if out[name].dtype.kind in "OSU" or isinstance(out[name].dtype, pd.StringDtype):
            out[name] = escape_texts(out[name].astype(object))
    return feature_collection(out)


class CellHeatMap(HeatMap):
    """Leaflet.heat over grid cells, the cells written as JSON once (by
    :func:`~hotspot311.web.mapdata.json_rows`) instead of by ``tojson`` on every render:
    st_folium renders the layer twice a rerun.

    Parameters
    ----------
    cells_json : str
        ``[[lat, lon, weight], …]`` as JSON text.
    bounds : list of list of float or None
        ``[[south, west], [north, east]]`` of the cells (what ``get_bounds`` reports).
    **options
        Leaflet.heat options, as :class:`folium.plugins.HeatMap` takes them.
    """

    _template = FoliumTemplate("""
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = L.heatLayer(
                {{ this.cells_json }},
                {{ this.options|tojavascript }}
            );
        {% endmacro %}
        """)

    def __init__(self, cells_json: str, *, bounds: list[list[float]] | None = None,
                 **options: Any) -> None:
        super().__init__([], **options)
        self.cells_json = cells_json
        self._bounds = bounds

    def _get_self_bounds(self) -> list[list[float | None]]:
        """The cells' box, as folium's ``HeatMap`` computes it from its data."""
        if self._bounds is None:
            return [[None, None], [None, None]]
        return [list(corner) for corner in self._bounds]


def heat_layer(requests: pd.DataFrame, *, cells: pd.DataFrame | None = None) -> CellHeatMap:
    """Requests as a heat map of grid counts (never one entry per request); ``cells``
    (:func:`~hotspot311.web.mapdata.coarsen_cells` of a store's counts) instead of
    ``requests`` when given."""
    if cells is None:
        cells = grid_counts(requests)
    lat = np.asarray(cells["lat"], dtype="float64")
    lon = np.asarray(cells["lon"], dtype="float64")
    ok = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
    if not ok.all():
        raise ValueError(f"heat map: {int((~ok).sum())} cells without a valid position")
    # checked as a whole: folium's own check takes a Python call per cell
    bounds = [[float(lat.min()), float(lon.min())], [float(lat.max()), float(lon.max())]] \
        if len(lat) else None
    return CellHeatMap(json_rows([lat, lon, heat_weights(cells["n"])], [6, 6, 3]),
                       bounds=bounds, name="Requests (density)", radius=9, blur=12,
                       min_opacity=0.25, max_zoom=14)


def request_layer(requests: pd.DataFrame, *,
                  point_limit: int = POINT_LIMIT) -> folium.GeoJson | HeatMap:
    """Points with popups when at most ``point_limit`` requests, else the heat map."""
    return point_layer(requests) if len(requests) <= point_limit else heat_layer(requests)


class HeatPlugin(JSCSSMixin):
    """Loads Leaflet.heat with the base map and draws nothing.

    The browser loads a map's scripts once, when it mounts; a heat layer swapped in
    later (a feature group updated in place) finds the plugin already there.
    """

    _template = Template("{% macro script(this, kwargs) %}{% endmacro %}")

    def __init__(self) -> None:
        super().__init__()
        self._name = "HeatPlugin"
        self.default_js = list(HeatMap.default_js)


@dataclass
class PageMap:
    """The home map in the parts ``st_folium`` takes.

    Attributes
    ----------
    base
        Tiles, choropleth and legend, hotspots: the map the browser mounts (again only
        when one of these changes).
    requests
        The request layer, points or heat map, in a feature group named after it
        (``feature_group_to_add``: swapped in place).
    control
        The layer control over both (``layer_control``).
    """

    base: folium.Map
    requests: folium.FeatureGroup
    control: folium.LayerControl

    def assemble(self) -> folium.Map:
        """``base`` with the request group (drawn above the hotspots) and the control."""
        self.requests.add_to(self.base)
        self.control.add_to(self.base)
        return self.base


def request_group(requests: pd.DataFrame | None, *, points: pd.DataFrame | None = None,
                  assets: str | None = None, cells: pd.DataFrame | None = None
                  ) -> folium.FeatureGroup:
    """The request layer in a feature group: ``points`` one by one, else a heat map.

    Parameters
    ----------
    requests
        The filtered requests (``lat``, ``lon``), aggregated when ``points`` is ``None``.
    points
        Requests to draw one by one with popups (:func:`point_layer`), or ``None``.
    assets
        Base URL of local copies of Leaflet (:func:`use_local_assets`); CDN when ``None``.
    cells
        Grid counts to draw as the heat map instead of aggregating ``requests``
        (:func:`~hotspot311.web.mapdata.coarsen_cells`).

    Returns
    -------
    folium.FeatureGroup
        Named ``Requests`` (points) or ``Requests (density)``; empty when there is
        nothing to draw.
    """
    if points is not None:
        group = folium.FeatureGroup(name="Requests")
        if len(points):
            layer: folium.GeoJson | HeatMap = point_layer(points)
            layer.control = False
            layer.add_to(group)
    else:
        group = folium.FeatureGroup(name="Requests (density)")
        if cells is not None and len(cells):
            layer = heat_layer(pd.DataFrame(), cells=cells)
            layer.control = False
            layer.add_to(group)
        elif cells is None and requests is not None and len(requests):
            layer = heat_layer(requests)
            layer.control = False
            layer.add_to(group)
    if assets is not None:
        use_local_assets(group, assets)
    return group


def page_map(
    requests: pd.DataFrame | None,
    *,
    cells: pd.DataFrame | None = None,
    points: pd.DataFrame | None = None,
    areas: gpd.GeoDataFrame | None = None,
    area_title: str = "Areas",
    metric: str = "requests",
    hotspots: gpd.GeoDataFrame | None = None,
    selected: str | None = None,
    center: tuple[float, float] | None = None,
    bounds: tuple[float, float, float, float] | None = None,
    tiles: str | None = "streets",
    assets: str | None = None,
    chronic: gpd.GeoDataFrame | None = None,
) -> PageMap:
    """The home map in parts: base map, request group and layer control.

    Parameters
    ----------
    requests
        Filtered requests (``lat``, ``lon``), drawn as a heat map unless ``points``;
        ``None`` with ``cells``.
    cells
        The filtered requests' grid counts (:func:`~hotspot311.web.mapdata.coarsen_cells`),
        drawn as the heat map instead of ``requests``.
    points
        Requests to draw one by one with popups instead (:func:`choose_points`
        in :mod:`hotspot311.web.mapview` picks them), or ``None``.
    areas
        Web-ready areas with stats (:func:`hotspot311.web.mapdata.web_areas`), or ``None``.
    area_title
        Title of the boundary layer.
    metric
        Choropleth value, a key of :data:`METRICS`.
    hotspots
        Web-ready hotspots (:func:`hotspot311.web.mapdata.web_hotspots`), or ``None``.
    selected
        Hotspot to outline.
    center
        Map centre; the requests' median (or the areas' centre) when omitted. The page
        passes a fixed one, so that the base map does not change with the filters.
    bounds
        ``(south, west, north, east)`` to zoom to (a selected hotspot).
    tiles
        Background, a key of :data:`TILES`.
    assets
        Base URL of local copies of Leaflet (:func:`use_local_assets`); CDN when ``None``.
    chronic
        Chronic locations (:func:`clustering.chronic.chronic_locations`) to draw as a layer
        of their own (:func:`chronic_layer`), or ``None``.

    Returns
    -------
    PageMap
    """
    if center is None:
        center = _centre(requests if requests is not None else pd.DataFrame(
            {"lat": [], "lon": []}), areas)
    base = base_map(center, tiles=tiles, bounds=bounds)
    HeatPlugin().add_to(base)
    if areas is not None and len(areas):
        layer, legend = choropleth_layer(areas, metric=metric, title=area_title)
        layer.add_to(base)
        legend.add_to(base)
    if hotspots is not None and len(hotspots):
        hotspot_layer(hotspots, selected=selected).add_to(base)
    if chronic is not None and len(chronic):
        chronic_layer(chronic).add_to(base)
    if assets is not None:
        use_local_assets(base, assets)
    return PageMap(base=base, requests=request_group(requests, points=points, assets=assets,
                                                     cells=cells),
                   control=folium.LayerControl(collapsed=True))


def city_map(
    requests: pd.DataFrame,
    *,
    areas: gpd.GeoDataFrame | None = None,
    area_title: str = "Areas",
    metric: str = "requests",
    hotspots: gpd.GeoDataFrame | None = None,
    selected: str | None = None,
    center: tuple[float, float] | None = None,
    bounds: tuple[float, float, float, float] | None = None,
    tiles: str | None = "streets",
    point_limit: int = POINT_LIMIT,
    assets: str | None = None,
) -> folium.Map:
    """The home map in one piece: choropleth, hotspots and requests, with a layer control.

    Parameters
    ----------
    requests
        Filtered requests (``lat``, ``lon``; popup fields when drawn as points).
    areas
        Web-ready areas with stats (:func:`hotspot311.web.mapdata.web_areas`), or ``None``.
    area_title
        Title of the boundary layer.
    metric
        Choropleth value, a key of :data:`METRICS`.
    hotspots
        Web-ready hotspots (:func:`hotspot311.web.mapdata.web_hotspots`), or ``None``.
    selected
        Hotspot to outline.
    center
        Map centre; the requests' median (or the areas' centre) when omitted.
    bounds
        ``(south, west, north, east)`` to zoom to (a selected hotspot).
    tiles
        Background, a key of :data:`TILES`.
    point_limit
        Most requests drawn one by one (all of them or none).
    assets
        Base URL of local copies of Leaflet (:func:`use_local_assets`); CDN when ``None``.

    Returns
    -------
    folium.Map
        :func:`page_map`'s parts, assembled (:meth:`PageMap.assemble`).
    """
    points = requests if len(requests) <= point_limit else None
    return page_map(requests, points=points, areas=areas, area_title=area_title,
                    metric=metric, hotspots=hotspots, selected=selected, center=center,
                    bounds=bounds, tiles=tiles, assets=assets).assemble()


def use_local_assets(fmap: folium.Map | folium.FeatureGroup, base_url: str
                     ) -> folium.Map | folium.FeatureGroup:
    """Load Leaflet and its heat plugin from ``base_url`` instead of CDNs.

    Files with a local copy (:data:`LOCAL_ASSETS`) are pointed at ``base_url``; the other
    default assets (jQuery, Bootstrap, Font Awesome, awesome-markers) are dropped: the map
    draws no icon markers and its popups are plain HTML.

    Parameters
    ----------
    fmap
        The map, or a feature group given to the map later; changed in place.
    base_url
        Where ``static/vendor`` is served (``/app/static/vendor`` in Streamlit).

    Returns
    -------
    folium.Map or folium.FeatureGroup
        ``fmap``.
    """
    base = base_url.rstrip("/")

    def local(links: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        out = []
        for name, url in links:
            file = url.rsplit("/", 1)[-1]
            if file in LOCAL_ASSETS:
                out.append((name, f"{base}/{LOCAL_ASSETS[file]}"))
        return out

    for elem in _walk(fmap):
        if hasattr(elem, "default_js"):
            setattr(elem, "default_js", local(elem.default_js))  # noqa: B010 - per instance
        if hasattr(elem, "default_css"):
            setattr(elem, "default_css", local(elem.default_css))  # noqa: B010
    return fmap


def asset_urls(fmap: folium.Map) -> list[str]:
    """Every JS/CSS URL the map loads (what the browser fetches besides tiles)."""
    urls: list[str] = []
    for elem in _walk(fmap):
        urls += [u for _, u in getattr(elem, "default_js", [])]
        urls += [u for _, u in getattr(elem, "default_css", [])]
    return list(dict.fromkeys(urls))


def _walk(elem: object) -> list[object]:
    out = [elem]
    for child in getattr(elem, "_children", {}).values():
        out += _walk(child)
    return out


def map_html(fmap: folium.Map) -> str:
    """The standalone HTML of a map (what the browser receives)."""
    return fmap.get_root().render()


def naive_map(requests: pd.DataFrame, *, tiles: str | None = "streets") -> folium.Map:
    """One marker per request with a popup: the approach the app avoids (for benchmarks)."""
    fmap = base_map(_centre(requests, None), tiles=tiles)
    for lat, lon, name in zip(requests["lat"].astype(float), requests["lon"].astype(float),
                              requests["service_name"].astype(str), strict=True):
        folium.CircleMarker(location=(lat, lon), radius=3, popup=escape_html(name)).add_to(fmap)
    return fmap


def _centre(requests: pd.DataFrame, areas: gpd.GeoDataFrame | None) -> tuple[float, float]:
    if len(requests):
        return float(requests["lat"].median()), float(requests["lon"].median())
    if areas is not None and len(areas):
        west, south, east, north = areas.total_bounds
        return (south + north) / 2, (west + east) / 2
    return 0.0, 0.0


def hotspot_bounds(hotspots: gpd.GeoDataFrame, hotspot_id: str, *,
                   pad: float = 0.002) -> tuple[float, float, float, float] | None:
    """``(south, west, north, east)`` of one web hotspot, padded in degrees."""
    row = hotspots[hotspots["hotspot_id"] == hotspot_id]
    if row.empty:
        return None
    west, south, east, north = row.geometry.iloc[0].bounds
    return south - pad, west - pad, north + pad, east + pad


def layer_names(fmap: folium.Map) -> list[str]:
    """Names of the map's layers as shown in the layer control (unescaped)."""
    return [html.unescape(str(getattr(child, "layer_name", "")))
            for child in fmap._children.values()
            if getattr(child, "layer_name", None) and getattr(child, "control", True)]


__all__: Sequence[str] = ("POINT_LIMIT", "HeatPlugin", "PageMap", "base_map", "choropleth_layer",
                          "city_map", "heat_layer", "hotspot_bounds", "hotspot_layer",
                          "layer_names", "map_html", "naive_map", "page_map", "point_layer",
                          "popup_features", "priority_colour", "request_group", "request_layer",
                          "use_local_assets")
