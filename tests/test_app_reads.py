"""No page of the app, and neither ``status`` nor ``request ID``, reads every request.

Every read method of both store classes is wrapped to record how many rows it returns;
the whole-table reads (``requests``, ``request_columns``, ``request_reader``) record the
store's size. The app is driven through its first map, a filter change, a choropleth, a
zoom to street level and a hotspot; then the two commands run. Each read must return
fewer rows than the store holds (counts come back as one row per value or cell).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner
from streamlit.testing.v1 import AppTest

from geo.store.base import Store, open_store
from geo.store.embedded import EmbeddedStore
from geo.store.postgis import PostGISStore
from hotspot311.cli.main import cli
from hotspot311.web import appdata, maps
from hotspot311.web.mapview import DETAIL_ZOOM
from layers.profile import load_profile

ROOT = Path(__file__).resolve().parents[1]
WHOLE = ("requests", "request_columns", "request_reader")
COUNTED = ("select_requests", "group_counts", "grid_cells", "facet_cells",
           "request_summary", "areas",
           "quarantine", "contacts", "latest_request", "problem_count", "area_names",
           "contact_quarantine", "batches", "table_counts", "batch_log_head")
#: Tables beside the requests that ``status`` counts through ``table_counts``.
OTHER_TABLES = ("quarantine", "contacts", "contact_quarantine", "batches")


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, int]]]:
    """(method, rows returned) of every store read while the test runs."""
    log: list[tuple[str, int]] = []

    def wrap(cls: type, name: str) -> None:
        real: Callable[..., Any] = getattr(cls, name)

        def recorded(self: Store, *args: Any, **kwargs: Any) -> Any:
            out = real(self, *args, **kwargs)
            if name in WHOLE:
                log.append((name, -1))  # a whole-table read, whatever it returns
            elif isinstance(out, pd.DataFrame):
                log.append((name, len(out)))
            else:
                log.append((name, 1))
            return out

        monkeypatch.setattr(cls, name, recorded)

    for cls in (EmbeddedStore, PostGISStore):
        for name in (*WHOLE, *COUNTED):
            wrap(cls, name)
    yield log


def stored_size(location: str) -> tuple[int, pd.DataFrame]:
    store = open_store(location, load_profile("philadelphia"))
    try:
        frame = pd.DataFrame(store.requests())
    finally:
        store.close()
    return len(frame), frame


def test_the_app_reads_only_what_it_shows(monkeypatch: pytest.MonkeyPatch, app_location: str,
                                          reads: list[tuple[str, int]]) -> None:
    import streamlit as st

    total, frame = stored_size(app_location)
    st.cache_data.clear()  # answers cached by other tests would hide reads
    appdata.hotspots.clear()  # (shared resources, not data: cleared apart)
    appdata.facet_cells.clear()
    reads.clear()
    monkeypatch.setattr(maps, "POINT_LIMIT", 300)  # the city view is aggregated
    monkeypatch.setenv("HOTSPOT311_STORE", app_location)
    monkeypatch.setenv("HOTSPOT311_TILES", "plain")
    monkeypatch.setenv("HOTSPOT311_ALLOW_WRITE_ROLE", "1")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    # once the page is whole, the heat map of a status (type, department) filter is
    # summed from the counts by cell and facet: no grid query of its own
    assert "facet_cells" in {n for n, _ in reads}
    before = len(reads)
    at.radio(key="status").set_value("closed").run()
    assert not at.exception, [e.message for e in at.exception]
    assert "grid_cells" not in {n for n, _ in reads[before:]}, reads[before:]
    at.radio(key="status").set_value("all").run()
    at.selectbox(key="layer").set_value("council_district").run()
    lat, lon = float(frame["lat"].median()), float(frame["lon"].median())
    at.session_state["map"] = {"zoom": DETAIL_ZOOM + 1, "bounds": {
        "_southWest": {"lat": lat - 0.003, "lng": lon - 0.004},
        "_northEast": {"lat": lat + 0.003, "lng": lon + 0.004}}}
    at.run()
    captions = [c.value for c in at.caption]
    assert any("in view shown one by one" in c for c in captions), captions
    at.radio(key="status").set_value("open").run()
    focus = at.selectbox(key="focus")
    if len(focus.options) > 1:
        focus.set_value(focus.options[1]).run()
    assert not at.exception, [e.message for e in at.exception]
    assert reads, "the app read nothing through the store"
    names = {n for n, _ in reads}
    assert not names & set(WHOLE), reads
    assert {"request_summary", "grid_cells", "facet_cells", "group_counts",
            "select_requests"} <= names
    # every rerun asks whether new data came in: the log's head, not the whole log
    assert "batch_log_head" in names and "batches" not in names, reads
    # grid cells are counts (one row per non-empty ~30 m cell, fewer than the requests);
    # every other read returns far fewer rows than the store holds
    assert max(n for name, n in reads if name == "grid_cells") < total
    # so are the cells by type, department and status (a small store has about one
    # request per cell and type: at most as many rows as requests)
    assert max(n for name, n in reads if name == "facet_cells") <= total
    biggest = max((r for r in reads if r[0] not in ("grid_cells", "facet_cells")),
                  key=lambda r: r[1])
    assert biggest[1] < total / 2, (biggest, total)


def test_status_and_request_read_counts_and_one_row(app_location: str,
                                                    reads: list[tuple[str, int]]) -> None:
    total, frame = stored_size(app_location)
    reads.clear()
    runner = CliRunner()
    status = runner.invoke(cli, ["--store", app_location, "status"])
    assert status.exit_code == 0, status.output
    assert f"requests     {total:>9,}" in status.output
    assert f"  open       {int((frame['status'] == 'open').sum()):>9,}" in status.output
    rid = str(frame.sort_values("service_request_id")["service_request_id"].iloc[5])
    one = runner.invoke(cli, ["--store", app_location, "request", rid])
    assert one.exit_code == 0, one.output
    assert f"request {rid}" in one.output
    names = {n for n, _ in reads}
    assert not names & set(WHOLE), reads
    assert "table_counts" in names and not names & set(OTHER_TABLES), reads
    assert "quarantine   " in status.output and "batches      " in status.output
    rows = [n for name, n in reads if name == "select_requests"]
    assert rows and rows[0] == 1  # the request itself: one row
    assert max(n for _, n in reads) < total / 2, reads


def test_request_lookup_reads_a_bounded_neighbourhood(app_location: str,
                                                      reads: list[tuple[str, int]]) -> None:
    """``request ID`` of a request in its type's hotspot window reads the request (one
    row), its problem and the requests round it, never its type's whole window."""
    from datetime import timedelta

    from geo.store.reads import RequestFilter

    total, frame = stored_size(app_location)
    service = "Street Light Outage"
    of_type = frame[frame["service_name"] == service]
    end = of_type["requested_datetime"].max()
    window = of_type[(of_type["requested_datetime"] > end - timedelta(days=30))
                     & of_type["x"].notna()]
    assert len(window) > 30
    rid = str(window.sort_values("service_request_id")["service_request_id"].iloc[0])
    store = open_store(app_location, load_profile("philadelphia"))
    try:
        problem = store.select_requests(RequestFilter(ids=(rid,)), ["problem_id"])
        pid = problem["problem_id"].iloc[0]
        calls = len(frame[frame["problem_id"] == pid]) if pd.notna(pid) else 0
    finally:
        store.close()
    reads.clear()
    one = CliRunner().invoke(cli, ["--store", app_location, "request", rid,
                                   "--now", "2026-07-01"])
    assert one.exit_code == 0, one.output
    assert "hotspot\n" in one.output and "outside the 30-day window" not in one.output
    assert not {n for n, _ in reads} & set(WHOLE), reads
    rows = [n for name, n in reads if name == "select_requests"]
    assert rows[0] == 1, reads  # the request itself, by key
    # then its problem and the squares round it (500 m, doubling while the hotspot
    # touches the edge): here fewer than the window of its type, which the look-up used
    # to read and cluster whole
    assert len(rows) <= 2 + 6, reads
    near = sum(rows[2:]) if pd.notna(pid) else sum(rows[1:])
    assert sum(rows) <= 1 + calls + near
    assert sum(rows[1:]) < len(window), (rows, len(window))
    # (areas: the layer's polygons, for the area names on the embedded store)
    assert max(n for name, n in reads if name != "areas") < total / 10, reads


@pytest.fixture
def selected(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The columns of every ``select_requests`` answer while the test runs."""
    log: list[list[str]] = []
    for cls in (EmbeddedStore, PostGISStore):
        real: Callable[..., Any] = cls.select_requests

        def recorded(self: Store, *args: Any, _real: Callable[..., Any] = real,
                     **kwargs: Any) -> Any:
            out = _real(self, *args, **kwargs)
            log.append(list(out.columns))
            return out

        monkeypatch.setattr(cls, "select_requests", recorded)
    return log


def test_the_reports_page_reads_only_its_rows_and_columns(
        monkeypatch: pytest.MonkeyPatch, app_location: str, reads: list[tuple[str, int]],
        selected: list[list[str]]) -> None:
    """Every request report of the page, without and with dates, broken down by a layer
    on the maps of today and of the request date: never the whole table, never the
    geometry; with dates, only the rows of the periods the report counts."""
    from datetime import date

    import streamlit as st

    from hotspot311.web.reportpage import REQUEST_REPORTS
    from reports.reads import REPORT_COLUMNS

    total, _ = stored_size(app_location)
    st.cache_data.clear()  # answers cached by other tests would hide reads
    appdata.hotspots.clear()  # (shared resources, not data: cleared apart)
    appdata.facet_cells.clear()
    reads.clear()
    monkeypatch.setenv("HOTSPOT311_STORE", app_location)
    monkeypatch.setenv("HOTSPOT311_ALLOW_WRITE_ROLE", "1")
    at = AppTest.from_file(str(ROOT / "pages" / "2_Reports.py"), default_timeout=120)
    at.run()
    undated = len(reads)
    at.date_input(key="start").set_value(date(2026, 6, 1))
    at.date_input(key="end").set_value(date(2026, 6, 30)).run()
    for name in REQUEST_REPORTS:
        at.selectbox(key="request_report").set_value(name).run()
    at.selectbox(key="by").set_value("council_district").run()
    at.radio(key="as_drawn").set_value("request-date").run()
    assert not at.exception, [e.message for e in at.exception]
    assert not {n for n, _ in reads} & set(WHOLE), reads
    assert len(selected) > len(REQUEST_REPORTS)
    allowed = {*REPORT_COLUMNS, "council_district", "x", "y"}
    assert all(set(cols) <= allowed for cols in selected), selected
    dated = [n for name, n in reads[undated:] if name == "select_requests"]
    assert dated and max(dated) < total / 2, (dated, total)


@pytest.mark.parametrize("extra", [
    (),  # every type, the default end (the newest stored request)
    ("--status", "open", "--days", "365"),
    ("--service", "Street Light Outage", "--area", "police_district=6",
     "--area", "police_district=18", "--end", "2026-06-01", "--days", "365"),
])
def test_hotspots_and_significance_read_their_window(
        app_location: str, reads: list[tuple[str, int]], tmp_path: Path,
        extra: tuple[str, ...]) -> None:
    """``hotspots`` and ``significance`` ask the store for their window's rows (services,
    dates, status, areas, located) and give what the library gives on the whole table."""
    from clustering.priority import PRESETS
    from clustering.run import run_hotspots
    from clustering.selection import HotspotQuery, select_requests

    total, _ = stored_size(app_location)
    store = open_store(app_location, load_profile("philadelphia"))
    try:
        whole = store.requests()
        keys = store.layer_keys()
    finally:
        store.close()
    reads.clear()
    out = tmp_path / "spots.csv"
    run = CliRunner().invoke(cli, ["--store", app_location, "hotspots", *extra, "--eps", "150",
                                   "--min-samples", "4", "--output", str(out)])
    assert run.exit_code == 0, run.output
    sig = CliRunner().invoke(cli, ["--store", app_location, "significance", *[
        a for a in extra if not a.startswith("police_district") and a != "--area"]])
    assert sig.exit_code == 0, sig.output
    assert not {n for n, _ in reads} & set(WHOLE), reads
    rows = [n for name, n in reads if name == "select_requests"]
    assert rows and max(rows) < total / 2, (rows, total)

    args = dict(zip(extra[::2], extra[1::2], strict=True))
    areas: dict[str, tuple[str, ...]] = {}
    for pair in [extra[i + 1] for i, a in enumerate(extra) if a == "--area"]:
        key, _, code = pair.partition("=")
        areas[key] = (*areas.get(key, ()), code)
    end = pd.Timestamp(args["--end"], tz="UTC").to_pydatetime() if "--end" in args else None
    query = HotspotQuery(services=(args["--service"],) if "--service" in args else (),
                         days=int(args.get("--days", 30)), end=end,
                         status=args.get("--status", "all"), eps_m=150.0, min_samples=4,
                         areas=areas, count="problems")
    ref = run_hotspots(whole, query, profile=load_profile("philadelphia"),
                       weights=PRESETS["balanced"], layer_keys=keys)
    ours = pd.read_csv(out, dtype={"hotspot_id": str})
    assert len(ref.hotspots) > 0
    assert ours["hotspot_id"].tolist() == ref.hotspots["hotspot_id"].tolist()
    assert ours["count"].tolist() == ref.hotspots["count"].tolist()
    sig_query = HotspotQuery(**{**query.__dict__, "areas": {}})
    assert f"{len(select_requests(whole, sig_query)):,} requests selected" in sig.output
