"""The map page and the data quality page through Streamlit's AppTest (no browser), on
both stores (the same generated requests in a directory and in a PostGIS database)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from geo.store.base import open_store
from hotspot311.web import maps
from hotspot311.web.mapview import DETAIL_ZOOM, within_box
from hotspot311.web.presets import PRESETS, preset_services
from layers.profile import load_profile
from layers.services import load_groups

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120


@pytest.fixture(scope="module")
def store_dir(app_location: str) -> str:
    return app_location


@pytest.fixture(scope="module")
def stored(store_dir: str) -> pd.DataFrame:
    store = open_store(store_dir, load_profile("philadelphia"))
    try:
        return pd.DataFrame(store.requests())
    finally:
        store.close()


def run_app(monkeypatch: pytest.MonkeyPatch, store: Path | str, script: str = "app.py"
            ) -> AppTest:
    monkeypatch.setenv("HOTSPOT311_STORE", str(store))
    monkeypatch.setenv("HOTSPOT311_TILES", "plain")
    monkeypatch.setenv("HOTSPOT311_ALLOW_WRITE_ROLE", "1")  # the test server's superuser
    at = AppTest.from_file(str(ROOT / script), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def shown(at: AppTest) -> int:
    metric = next(m for m in at.metric if m.label == "Requests shown")
    return int(metric.value.replace(",", ""))


def test_map_page_shows_every_request_then_filters_narrow(
        monkeypatch: pytest.MonkeyPatch, store_dir: str, stored: pd.DataFrame) -> None:
    at = run_app(monkeypatch, store_dir)
    assert shown(at) == len(stored)
    at.radio(key="status").set_value("open").run()
    assert shown(at) == int((stored["status"] == "open").sum())
    at.radio(key="status").set_value("all").run()
    at.multiselect(key="services").set_value(["Street Defect"]).run()
    assert shown(at) == int((stored["service_name"] == "Street Defect").sum())
    at.multiselect(key="services").set_value([]).run()
    at.multiselect(key="agencies").set_value(["Police Department"]).run()
    assert shown(at) == int((stored["agency_responsible"] == "Police Department").sum())
    at.multiselect(key="agencies").set_value([]).run()
    at.multiselect(key="sla_states").set_value(["open_overdue"]).run()
    overdue = (stored["status"] == "open") & (stored["expected_datetime"] < pd.Timestamp.now("UTC"))
    assert shown(at) == int(overdue.sum()) > 0


def test_filters_matching_nothing_still_draw_the_page(monkeypatch: pytest.MonkeyPatch,
                                                      store_dir: str) -> None:
    at = run_app(monkeypatch, store_dir)
    at.multiselect(key="services").set_value(["Street Defect"]).run()
    at.multiselect(key="agencies").set_value(["Police Department"]).run()
    assert not at.exception
    assert shown(at) == 0
    assert any("No requests match" in c.value for c in at.caption)


def test_area_filter_and_date_range(monkeypatch: pytest.MonkeyPatch, store_dir: str,
                                    stored: pd.DataFrame) -> None:
    at = run_app(monkeypatch, store_dir)
    at.selectbox(key="area_layer").set_value("council_district").run()
    at.multiselect(key="area_codes").set_value(["5"]).run()
    assert shown(at) == int((stored["council_district"] == "5").sum())
    at.selectbox(key="area_layer").set_value("(none)").run()
    first, last = at.date_input(key="dates").value
    middle = first + (last - first) / 2
    at.date_input(key="dates").set_value((middle, last)).run()
    local = stored["requested_datetime"].dt.tz_convert("America/New_York").dt.date
    assert shown(at) == int((local >= middle).sum())


@pytest.mark.parametrize("key", ["streets", "police", "neighborhood", "custom"])
def test_presets_select_their_service_types(monkeypatch: pytest.MonkeyPatch, store_dir: str,
                                            stored: pd.DataFrame, key: str) -> None:
    at = run_app(monkeypatch, store_dir)
    at.selectbox(key="preset").set_value(key).run()
    assert not at.exception
    profile = load_profile("philadelphia")
    known = sorted(stored["service_name"].unique())
    expected = preset_services(PRESETS[key], load_groups(profile), known)
    assert at.multiselect(key="services").value == expected
    if key == "streets":
        assert set(expected) == {"Street Light Outage", "Alley Light Outage", "Street Defect",
                                 "Illegal Dumping", "Traffic Signal Emergency"} & set(known)
        assert "Street Defect" in expected
    if key == "police":
        assert set(expected) == {"Abandoned Vehicle", "Vacant House or Commercial",
                                 "Dangerous Building Complaint"} & set(known)
        assert at.selectbox(key="layer").value == "police_district"
    if key == "neighborhood":
        codes = at.multiselect(key="area_codes").value
        assert at.selectbox(key="area_layer").value == "neighborhood" and len(codes) == 1
        assert shown(at) == int((stored["neighborhood"] == codes[0]).sum())
        assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")  # the trend
    if key != "neighborhood":
        assert shown(at) == int(stored["service_name"].isin(expected).sum()) if expected \
            else len(stored)


def test_hotspot_settings_and_zoom(monkeypatch: pytest.MonkeyPatch, store_dir: str) -> None:
    at = run_app(monkeypatch, store_dir)
    at.slider(key="window").set_value(365).run()
    at.slider(key="min_samples").set_value(3).run()
    count = next(m for m in at.metric if m.label == "Hotspots")
    assert int(count.value.replace(",", "")) > 0
    focus = at.selectbox(key="focus")
    assert focus.options[0] == "(whole city)" and len(focus.options) > 1
    focus.set_value(focus.options[1]).run()
    assert not at.exception
    assert any("Zoomed to" in c.value for c in at.caption)


def reported_view(zoom: int, box: tuple[float, float, float, float]) -> dict:
    """What the map component reports for a view (st_folium's returned zoom and bounds)."""
    south, west, north, east = box
    return {"zoom": zoom, "bounds": {"_southWest": {"lat": south, "lng": west},
                                     "_northEast": {"lat": north, "lng": east}}}


def map_caption(at: AppTest) -> str:
    return next(c.value for c in at.caption if "request" in c.value)


def test_the_reported_view_switches_between_aggregate_and_points(
        monkeypatch: pytest.MonkeyPatch, store_dir: str, stored: pd.DataFrame) -> None:
    limit = 300  # below the test store's size, so that the city view is aggregated
    monkeypatch.setattr(maps, "POINT_LIMIT", limit)
    at = run_app(monkeypatch, store_dir)
    assert "density map" in map_caption(at)
    # zoomed in on the densest ~200 m: the requests in view one by one
    cells = (stored[["lat", "lon"]] / 0.002).round().value_counts()
    lat, lon = (float(v) * 0.002 for v in cells.index[0])
    block = (lat - 0.002, lon - 0.003, lat + 0.002, lon + 0.003)
    inside = len(within_box(stored, block))
    assert 0 < inside <= limit
    at.session_state["map"] = reported_view(DETAIL_ZOOM + 1, block)
    at.run()
    assert not at.exception
    assert map_caption(at).startswith(f"{inside:,} requests in view shown one by one")
    # zoomed in, but more than the limit in view: still the aggregate
    city = (float(stored["lat"].min()), float(stored["lon"].min()),
            float(stored["lat"].max()), float(stored["lon"].max()))
    at.session_state["map"] = reported_view(DETAIL_ZOOM, city)
    at.run()
    assert map_caption(at).startswith(f"{len(stored):,} requests in view: more than {limit}")
    # zoomed out again
    at.session_state["map"] = reported_view(DETAIL_ZOOM - 4, block)
    at.run()
    assert "density map" in map_caption(at)


def test_empty_store_shows_first_run_page(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    at = run_app(monkeypatch, tmp_path / "empty")
    assert "no requests yet" in at.header[0].value.lower()
    assert "hotspot311 demo" in at.markdown[0].value
    at = run_app(monkeypatch, tmp_path / "empty", "pages/1_Data_quality.py")
    assert "no requests yet" in at.header[0].value.lower()


def test_data_quality_page(monkeypatch: pytest.MonkeyPatch, store_dir: str,
                           stored: pd.DataFrame) -> None:
    at = run_app(monkeypatch, store_dir, "pages/1_Data_quality.py")
    quarantine = open_store(store_dir, load_profile("philadelphia")).quarantine()
    titles = [s.value for s in at.subheader]
    assert titles[:3] == ["Quarantine by reason", "Geocode match types", "Geocode review list"]
    matches = next(d.value for d in at.dataframe if "match type" in d.value.columns)
    assert matches["requests"].sum() == len(stored)
    assert set(matches["match type"]) == set(stored["geocode_match_type"].fillna("(none)"))
    review = int((quarantine["reason"] == "needs_geocoding").sum()) if len(quarantine) else 0
    assert any(f"{review:,} requests need" in c.value for c in at.caption)


def test_hotspot_table_counts_problems_and_did_it_work(monkeypatch: pytest.MonkeyPatch,
                                                       store_dir: str) -> None:
    at = run_app(monkeypatch, store_dir)
    at.slider(key="window").set_value(365).run()
    at.slider(key="min_samples").set_value(3).run()
    table = at.dataframe[0].value
    assert {"count", "calls", "score_calls"} <= set(table.columns)
    assert (table["calls"] >= table["count"]).all() and len(table) > 0
    at.checkbox(key="show_effect").check().run()
    assert not at.exception
    assert any("No stored runs yet" in c.value for c in at.caption)


def test_chronic_locations_layer(monkeypatch: pytest.MonkeyPatch, store_dir: str,
                                 stored: pd.DataFrame) -> None:
    from clustering.chronic import ChronicQuery, chronic_locations

    drawn: list[object] = []
    real = maps.page_map

    def recording(*args: object, **kwargs: object) -> maps.PageMap:
        drawn.append(kwargs.get("chronic"))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(maps, "page_map", recording)
    at = run_app(monkeypatch, store_dir)
    assert drawn and drawn[-1] is None  # off by default
    at.checkbox(key="show_chronic").check().run()
    assert not at.exception
    layer = drawn[-1]
    expected = chronic_locations(stored[stored["problem_id"].notna()], ChronicQuery(),
                                 profile=load_profile("philadelphia"))
    assert len(expected) > 0
    assert layer is not None
    assert sorted(layer["location_id"]) == sorted(expected["location_id"])  # type: ignore[index]
    fmap = real(stored.head(10), chronic=layer, tiles=None)  # type: ignore[arg-type]
    assert "Chronic locations" in maps.layer_names(fmap.base)


@pytest.mark.postgis
def test_the_app_refuses_a_database_role_that_can_write(monkeypatch: pytest.MonkeyPatch,
                                                         app_postgis_store: str) -> None:
    monkeypatch.setenv("HOTSPOT311_STORE", app_postgis_store)
    monkeypatch.delenv("HOTSPOT311_ALLOW_WRITE_ROLE", raising=False)
    from hotspot311.web import appdata

    appdata.get_store.clear()  # a store opened by another test with the check waived
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    assert any("may write to" in e.value and "grant-readonly" in e.value for e in at.error)
    assert not at.metric  # nothing of the store is shown


def test_the_demo_refuses_to_serve_beyond_this_computer(monkeypatch: pytest.MonkeyPatch,
                                                       store_dir: str) -> None:
    from streamlit import config

    monkeypatch.setenv("HOTSPOT311_STORE", store_dir)
    before = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
        at.run()
        assert any("serves 127.0.0.1 only" in e.value for e in at.error)
        assert not at.metric
        monkeypatch.setenv("HOTSPOT311_ALLOW_OPEN", "1")
        monkeypatch.setenv("HOTSPOT311_ALLOW_WRITE_ROLE", "1")
        at.run()
        assert not at.error and at.metric
    finally:
        config.set_option("server.address", before)


def test_a_share_link_restores_the_view(monkeypatch: pytest.MonkeyPatch, store_dir: str,
                                        stored: pd.DataFrame) -> None:
    at = run_app(monkeypatch, store_dir)
    at.radio(key="status").set_value("open").run()
    at.multiselect(key="services").set_value(["Street Defect", "Graffiti Removal"]).run()
    at.slider(key="window").set_value(365).run()
    at.slider(key="min_samples").set_value(3).run()
    lat, lon = float(stored["lat"].median()), float(stored["lon"].median())
    at.session_state["map"] = reported_view(DETAIL_ZOOM + 1, (lat - 0.002, lon - 0.003,
                                                              lat + 0.002, lon + 0.003))
    at.run()
    zoomed = {k: v if isinstance(v, list) else [v] for k, v in at.query_params.items()}
    assert zoomed["zoom"] == [str(DETAIL_ZOOM + 1)]
    assert float(zoomed["lat"][0]) == pytest.approx(lat, abs=1e-4)
    focus = at.selectbox(key="focus")
    assert len(focus.options) > 1
    focus.set_value(focus.options[1]).run()
    params = {k: v if isinstance(v, list) else [v] for k, v in at.query_params.items()}
    assert params["status"] == ["open"]
    assert sorted(params["service"]) == ["Graffiti Removal", "Street Defect"]
    assert params["window"] == ["365"] and params["min_samples"] == ["3"]
    assert params["hotspot"]
    picked = at.selectbox(key="focus").value
    expected = shown(at)

    # a new session opened on the link: same filters, same numbers, same hotspot
    fresh = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    for key, values in params.items():
        fresh.query_params[key] = values
    fresh.run()
    assert not fresh.exception, [e.message for e in fresh.exception]
    assert fresh.radio(key="status").value == "open"
    assert sorted(fresh.multiselect(key="services").value) == [
        "Graffiti Removal", "Street Defect"]
    assert fresh.slider(key="window").value == 365
    assert shown(fresh) == expected
    assert fresh.selectbox(key="focus").value == picked
    # the zoomed-in link opens zoomed in, its requests one by one
    there = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    for key, values in zoomed.items():
        there.query_params[key] = values
    there.run()
    mount = there.session_state["map_mount"]  # what st_folium is told to open on
    assert mount.view is not None and mount.view.zoom == DETAIL_ZOOM + 1
    assert mount.view.center == pytest.approx((lat, lon), abs=1e-4)
    # a link cannot select what the page does not offer
    odd = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    odd.query_params["service"] = ["<script>alert(1)</script>"]
    odd.query_params["status"] = ["everything"]
    odd.query_params["window"] = ["100000"]
    odd.run()
    assert not odd.exception
    assert odd.multiselect(key="services").value == [] and odd.radio(key="status").value == "all"
    assert odd.slider(key="window").value == 30


def test_tracking_number_search(monkeypatch: pytest.MonkeyPatch, store_dir: str,
                                stored: pd.DataFrame) -> None:
    at = run_app(monkeypatch, store_dir)
    row = stored.sort_values("service_request_id").iloc[10]
    at.text_input(key="track").set_value(str(row["service_request_id"])).run()
    assert not at.exception
    table = next(d.value for d in at.dataframe if "value" in d.value.columns)
    found = dict(zip(table.iloc[:, 0], table["value"], strict=True))
    assert found["request"] == row["service_request_id"]
    assert found["type"] == row["service_name"] and found["status"] == row["status"]
    assert found["SLA state"] != "—" and "hotspot" in found
    assert found["address"] == str(row["address"])  # the local demo user is an admin
    at.text_input(key="track").set_value("NO-SUCH-ID").run()
    assert any("id 'NO-SUCH-ID' is not in the store" in w.value for w in at.warning)
