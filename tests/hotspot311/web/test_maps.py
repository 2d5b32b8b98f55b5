"""Map builders without Streamlit: layers, colours by priority, aggregation, page size."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from numpy.testing import assert_allclose

from hotspot311.web import maps
from hotspot311.web.filters import Filters, apply_filters
from hotspot311.web.mapdata import (
    area_stats,
    feature_collection,
    grid_counts,
    web_areas,
    web_hotspots,
)
from hotspot311.web.presets import PRESETS, preset_services
from hotspot311.web.trends import weekly_counts
from hotspot311.web.worklist import work_list_csv, work_list_geojson, work_list_html
from tests.hostile import without_element_ids

NOW = datetime(2024, 6, 1, tzinfo=UTC)
CRS = "EPSG:32618"  # metres


def requests(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "service_request_id": [f"R{i}" for i in range(n)],
        "service_name": rng.choice(["Street Defect", "Abandoned Vehicle"], n),
        "agency_responsible": "Streets Department",
        "address": "1 MAIN ST",
        "status": rng.choice(["open", "closed"], n),
        "requested_datetime": pd.Timestamp("2024-05-01", tz="UTC")
        + pd.to_timedelta(rng.integers(0, 30 * 86400, n), unit="s"),
        "expected_datetime": pd.Timestamp("2024-05-20", tz="UTC"),
        "lat": 39.95 + rng.normal(0, 0.03, n),
        "lon": -75.16 + rng.normal(0, 0.03, n),
        "square": rng.choice(["A", "B"], n),
    })


@pytest.fixture
def squares() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"code": ["A", "B"], "name": ["Alpha", "Beta"]},
                            geometry=[shapely.box(486000, 4420000, 487000, 4421000),
                                      shapely.box(487000, 4420000, 488000, 4421000)], crs=CRS)


@pytest.fixture
def ranked() -> gpd.GeoDataFrame:
    """Three ranked hotspots, as :func:`clustering.run.run_hotspots` returns them."""
    return gpd.GeoDataFrame({
        "hotspot_id": ["Ha", "Hb", "Hc"], "rank": [1, 2, 3], "score": [90.0, 50.0, 10.0],
        "count": [30, 12, 6], "open": [20, 5, 0], "overdue": [9, 1, 0],
        "oldest_open_days": [40.0, 3.0, np.nan], "top_address": ["1 A ST", "2 B ST", None],
        "neighborhood": ["Alpha", "Beta", "Alpha"],
    }, geometry=[shapely.box(486000 + i * 300, 4420000, 486100 + i * 300, 4420100).buffer(5)
                 for i in range(3)], crs=CRS)


def test_choropleth_hotspots_and_request_layers_present(squares: gpd.GeoDataFrame,
                                                        ranked: gpd.GeoDataFrame) -> None:
    frame = requests(100)
    areas = web_areas(squares, area_stats(frame, "square", now=NOW), simplify=1.0)
    fmap = maps.city_map(frame, areas=areas, area_title="Square",
                         hotspots=web_hotspots(ranked, layer_keys=("neighborhood",)), tiles=None)
    # requests last: drawn above the hotspot polygons, so that their points take the clicks
    assert maps.layer_names(fmap) == ["Square: requests", "Hotspots (by priority)", "Requests"]
    html = maps.map_html(fmap)
    assert "Alpha" in html and "1 A ST" in html and "neighborhood Alpha" in html
    assert "hotspot311-legend" in html


def test_area_stats_counts_and_overdue_share() -> None:
    frame = pd.DataFrame({"square": ["A", "A", "A", "B"], "status": ["open", "open", "closed",
                                                                     "closed"],
                          "expected_datetime": pd.to_datetime(
                              ["2024-01-01", "2024-12-01", "2024-01-01", "2024-01-01"], utc=True)})
    stats = area_stats(frame, "square", now=NOW)
    assert stats.loc["A", ["requests", "open", "overdue"]].tolist() == [3, 2, 1]
    assert_allclose(stats["overdue_share"].to_numpy(), [0.5, 0.0])


def test_hotspot_colours_follow_priority(ranked: gpd.GeoDataFrame) -> None:
    web = web_hotspots(ranked)
    layer = maps.hotspot_layer(web)
    fill = {f["properties"]["hotspot_id"]: layer.style_function(f)["fillColor"]
            for f in layer.data["features"]}
    assert fill["Ha"] == maps.PRIORITY_COLOURS[-1]
    assert fill["Hc"] == maps.PRIORITY_COLOURS[0]
    order = [maps.PRIORITY_COLOURS.index(fill[h]) for h in ("Ha", "Hb", "Hc")]
    assert order == sorted(order, reverse=True)
    assert web.crs.to_epsg() == 4326 and web["oldest_open_days"].tolist() == ["40", "3",
                                                                               "none open"]


def test_aggregation_switches_with_the_number_of_points() -> None:
    small = maps.request_layer(requests(maps.POINT_LIMIT))
    large = maps.request_layer(requests(maps.POINT_LIMIT + 1))
    assert small.layer_name == "Requests" and large.layer_name == "Requests (density)"
    assert maps.layer_names(maps.city_map(requests(50), tiles=None)) == ["Requests"]


def test_grid_counts_keep_every_request_and_bound_the_cells() -> None:
    frame = requests(50_000)
    cells = grid_counts(frame, max_cells=2_000)
    assert cells["n"].sum() == len(frame) and len(cells) <= 2_000
    assert cells.attrs["grid_deg"] > 0.0003  # coarsened


def test_html_size_is_bounded_at_city_scale() -> None:
    html = maps.map_html(maps.city_map(requests(300_000, seed=2), tiles=None))
    assert len(html) < 1_000_000


def test_local_assets_replace_cdn_links() -> None:
    fmap = maps.city_map(requests(5000), tiles=None, assets="/app/static/vendor")
    urls = maps.asset_urls(fmap)
    assert urls and all(u.startswith("/app/static/vendor/") for u in urls)
    assert "cdn.jsdelivr" not in maps.map_html(fmap)


def test_hotspot_bounds_pad_the_polygon(ranked: gpd.GeoDataFrame) -> None:
    web = web_hotspots(ranked)
    south, west, north, east = maps.hotspot_bounds(web, "Ha", pad=0.0)
    assert south < north and west < east
    assert maps.hotspot_bounds(web, "missing") is None


def test_filters_and_presets() -> None:
    frame = requests(500)
    assert len(apply_filters(frame, Filters())) == 500
    only = apply_filters(frame, Filters(services=("Street Defect",), status="open",
                                        areas=(("square", ("A",)),)))
    assert set(only["service_name"]) == {"Street Defect"} and set(only["square"]) == {"A"}
    with pytest.raises(ValueError, match="status: got 'late'"):
        apply_filters(frame, Filters(status="late"))
    with pytest.raises(KeyError, match="layer 'ward'"):
        apply_filters(frame, Filters(areas=(("ward", ("1",)),)))
    groups = {"streets": ("Street Defect", "Street Light Outage")}
    assert preset_services(PRESETS["streets"], groups, ["Street Defect"]) == ["Street Defect"]
    assert preset_services(PRESETS["neighborhood"], groups, ["Street Defect"]) == []


def test_work_list_downloads() -> None:
    work = pd.DataFrame({"rank": [1, 1, 2], "hotspot_id": ["Ha", "Ha", "Hb"],
                         "service_request_id": ["1", "2", "3"], "service_name": "x",
                         "address": "<b>1 A ST</b>", "status": ["open", "closed", "open"],
                         "requested_datetime": pd.to_datetime(["2024-01-01"] * 3, utc=True),
                         "age_days": 1.0, "overdue": False,
                         "lat": 39.95, "lon": -75.16})
    table = pd.DataFrame({"rank": [1, 2], "score": [9.0, 1.0], "count": [2, 1], "open": [1, 1],
                          "overdue": [0, 0], "top_address": ["<b>1 A ST</b>", "2 B ST"]})
    assert work_list_csv(work).decode().splitlines()[0].startswith("rank,hotspot_id")
    geo = json.loads(work_list_geojson(work))
    assert len(geo["features"]) == 3
    first = geo["features"][0]
    assert first["properties"]["requested_datetime"] == "2024-01-01T00:00:00Z"
    assert first["geometry"] == {"type": "Point", "coordinates": [-75.16, 39.95]}
    page = work_list_html(table, work, title="List", params={"eps m": 100}, generated=NOW)
    assert "<script" not in page and "&lt;b&gt;1 A ST" in page and "#2" in page


def test_weekly_counts_sum_to_the_requests() -> None:
    frame = requests(400)
    weeks = weekly_counts(frame, top=1)
    assert int(weeks.to_numpy().sum()) == 400 and list(weeks.columns)[-1] == "Other"


def test_feature_collection_is_geopandas_geojson_without_ids(ranked: gpd.GeoDataFrame,
                                                             squares: gpd.GeoDataFrame) -> None:
    for frame in (web_hotspots(ranked, layer_keys=("neighborhood",)),
                  web_areas(squares, area_stats(requests(50), "square", now=NOW))):
        ours = feature_collection(frame)
        theirs = json.loads(frame.to_json(drop_id=True))
        assert ours["type"] == "FeatureCollection" and len(ours["features"]) == len(frame)
        for mine, geopandas_own in zip(ours["features"], theirs["features"], strict=True):
            assert mine["properties"] == geopandas_own["properties"]
            assert mine["geometry"]["type"] == geopandas_own["geometry"]["type"]
            assert_allclose(np.asarray(mine["geometry"]["coordinates"], dtype=float),
                            np.asarray(geopandas_own["geometry"]["coordinates"], dtype=float))
        json.dumps(ours)  # plain Python values only


def test_chronic_layer_escapes_and_colours_by_kind() -> None:
    import geopandas as gpd
    import shapely

    locations = gpd.GeoDataFrame({
        "location_id": ["CA", "CB"], "service_name": ["Illegal Dumping"] * 2,
        "kind": ["repeat", "near_repeat"], "problems": [4, 3], "calls": [9, 3],
        "top_address": ["<b>1 Main</b>", None],
    }, geometry=[shapely.Point(2_690_000, 235_000).buffer(40),
                 shapely.Point(2_700_000, 240_000).buffer(40)], crs="EPSG:2272")
    layer = maps.chronic_layer(locations)
    assert layer.layer_name == "Chronic locations"
    features = layer.data["features"]
    assert [f["properties"]["problems"] for f in features] == [4, 3]
    lon, lat = features[0]["geometry"]["coordinates"][0][0]
    assert -76 < lon < -74 and 39 < lat < 41
    # folium's popup sets the values as HTML: residents' text arrives escaped
    assert features[0]["properties"]["top_address"] == "&lt;b&gt;1 Main&lt;/b&gt;"
    assert features[1]["properties"]["top_address"] == ""


def test_hotspot_popups_carry_the_place_escaped(ranked: gpd.GeoDataFrame) -> None:
    named = ranked.assign(place=["W Lehigh Ave & N 5th St — Fairhill",
                                 "<img src=x onerror=alert(1)> & Main St", None])
    web = web_hotspots(named)
    assert web["place"].tolist()[0] == "W Lehigh Ave & N 5th St — Fairhill"
    assert web["place"].tolist()[2] == ""
    layer = maps.hotspot_layer(web)
    features = layer.data["features"]
    popup = next(c for c in layer._children.values() if isinstance(c, folium.GeoJsonPopup))
    assert "place" in popup.fields and "Place" in popup.aliases
    shown = [f["properties"]["place"] for f in features]
    assert shown[0] == "W Lehigh Ave &amp; N 5th St — Fairhill"
    assert shown[1].startswith("&lt;img") and "<img" not in shown[1]
    unnamed = maps.hotspot_layer(web_hotspots(ranked))  # a run without places: empty field
    assert {f["properties"]["place"] for f in unnamed.data["features"]} == {""}


def test_heat_layer_holds_what_folium_would_check_and_refuses_bad_cells() -> None:
    """The heat layer's data are the cells folium's own constructor would give (it
    checks each position with a Python call; the layer checks them all at once)."""
    import numpy as np
    from folium.plugins import HeatMap

    cells = grid_counts(requests(5_000), max_cells=500)
    layer = maps.heat_layer(pd.DataFrame(), cells=cells)
    data = np.column_stack([cells["lat"], cells["lon"], maps.heat_weights(cells["n"])])
    folium_data = np.array(HeatMap(data.tolist()).data)
    written = np.array(json.loads(layer.cells_json))
    assert written.shape == folium_data.shape == (len(cells), 3) and len(cells) > 10
    assert_allclose(written, folium_data, rtol=0, atol=5e-7)
    assert_allclose(np.array(layer.get_bounds(), dtype=float),  # as folium's own reports
                    np.array(HeatMap(data.tolist()).get_bounds(), dtype=float))
    assert maps.heat_layer(pd.DataFrame(), cells=cells.iloc[:0]).get_bounds() == [
        [None, None], [None, None]]
    fmap = maps.base_map((39.95, -75.16), tiles=None)
    layer.add_to(fmap)
    assert f"L.heatLayer(\n                {layer.cells_json}," in maps.map_html(fmap)
    assert "Requests (density)" in maps.layer_names(maps.city_map(requests(5_000), tiles=None))
    bad = cells.assign(lat=cells["lat"].where(cells.index != cells.index[3], np.nan))
    with pytest.raises(ValueError, match="1 cells without a valid position"):
        maps.heat_layer(pd.DataFrame(), cells=bad)


#: Text that jinja2 would evaluate: branca renders the map page from templates made of
#: each element's output, so these must reach the browser as typed, not as their result.
TEMPLATE_TEXT = ("{{ 7*191 }}", "{% if true %}TPL{{ 'RAN' }}{% endif %}{# TPL-GONE #}",
                 "{{ ''.__class__.__mro__ }}")


@pytest.fixture(params=["escaping alone", "escaping and literal render"])
def second_pass(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each guard on its own: with branca's own rendering (every element's output rendered
    again as a template) the escaping alone must hold."""
    from hotspot311.web import literalrender

    if request.param == "escaping alone":
        monkeypatch.setattr(literalrender, "install", lambda: None)
        literalrender.uninstall()
    yield request.param
    monkeypatch.undo()
    literalrender.install()


def test_template_text_in_any_layer_is_shown_not_evaluated(squares: gpd.GeoDataFrame,
                                                           ranked: gpd.GeoDataFrame,
                                                           second_pass: str) -> None:
    """Residents' text (addresses, service names, ids), a boundary layer's codes, names and
    title, and hotspot places holding jinja2 syntax: the page shows the braces and never
    the evaluated result; the areas keep their colours."""
    import html as html_module

    from hotspot311.web import literalrender

    assert literalrender.installed() == (second_pass != "escaping alone")

    text = list(TEMPLATE_TEXT)
    frame = requests(3).assign(address=text, service_name=text,
                               service_request_id=[f"R{t}" for t in text])
    hostile = squares.assign(code=[text[0], text[1]], name=[text[2], text[0]])
    areas = web_areas(hostile, area_stats(frame.assign(square=[text[0], text[1], text[0]]),
                                          "square", now=NOW), simplify=1.0)
    spots = web_hotspots(ranked.assign(place=text, top_address=text))
    fmap = maps.city_map(frame, areas=areas, area_title=text[1], hotspots=spots, tiles=None)
    page = without_element_ids(maps.map_html(fmap))
    for evaluated in ("1337", "TPLRAN", "<class 'str'>", "&lt;class"):
        assert evaluated not in page
    assert "TPL-GONE" in page  # the comment too is kept as text
    json_escapes = {"\\u0026": "&", "\\u0027": "'", "\\u003c": "<", "\\u003e": ">"}
    for code, char in json_escapes.items():  # jinja2's tojson, in the layers' GeoJSON
        page = page.replace(code, char)
    shown = html_module.unescape(page)
    for typed in text:
        assert typed in shown
    choropleth = next(c for c in fmap._children.values()
                      if getattr(c, "layer_name", "").endswith(": requests"))
    fills = {f["properties"]["name"]: choropleth.style_function(f)["fillColor"]
             for f in choropleth.data["features"]}
    assert len(set(fills.values())) == 2  # 2 and 1 requests: two shades, not the blank


@pytest.mark.parametrize("seed", [0, 1])
def test_json_rows_is_the_rounded_numbers_as_json(seed: int) -> None:
    from hotspot311.web.mapdata import json_rows

    rng = np.random.default_rng(seed)
    n = 2_000
    columns = [rng.normal(39.95, 0.1, n), rng.normal(-75.16, 0.1, n),
               np.concatenate([[0.0, -0.0, 1e-7, -1e-7, 1.0, 1e21, -3.5e-4],
                               rng.random(n - 7)])]
    text = json_rows(columns, [6, 6, 3])
    back = json.loads(text)
    expected = np.column_stack([np.round(c, d) for c, d in zip(columns, [6, 6, 3], strict=True)])
    assert np.array_equal(np.array(back), expected)
    assert "-0," not in text and "-0]" not in text and " " not in text
    assert json_rows([np.array([])], [3]) == "[]"
    with pytest.raises(ValueError, match="not finite"):
        json_rows([np.array([1.0, np.nan])], [3])
