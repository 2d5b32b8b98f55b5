"""The map page in a real headless Chromium (Playwright), against a small test store.

Needs the system Chromium (``scripts/install-test-deps.sh`` installs it). Skipped with
the reason when it is missing, except under ``CI=true`` where that is a failure. Every
wait is for an element or a value, never a fixed sleep.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from geo.store.base import open_store
from hotspot311.web.maps import POINT_LIMIT
from hotspot311.web.mapview import DETAIL_ZOOM, within_box
from layers.profile import load_profile
from tests import ports
from tests.geo.store.stores import store_location

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STREAMLIT_PORTS = range(8600, 8700)
LISTENING = "You can now view your Streamlit app"  # printed once the port is bound
MAP_FRAME = "iframe[title='streamlit_folium.st_folium']"
#: What the Leaflet map in the (one) map iframe draws: request points (circle markers,
#: their popup bound on the GeoJSON layer holding them, and where they are in the frame),
#: heat layers, whether the hotspots are on it, the view. ``null`` while the page holds no
#: map or two (the map is mounted afresh when the hotspots arrive).
DRAWN = """() => {
  const frames = document.querySelectorAll("iframe[title='streamlit_folium.st_folium']");
  if (frames.length !== 1) { return null; }
  const win = frames[0].contentWindow, map = win.map, L = win.L;
  if (!map || !L) { return null; }
  const control = win.document.querySelector(".leaflet-control-layers-overlays");
  const out = {points: 0, popup: false, heat: 0, zoom: map.getZoom(), at: [],
               hotspots: !!control && control.textContent.includes("Hotspots (by priority)")};
  map.eachLayer((layer) => {
    if (layer instanceof L.GeoJSON) {
      const marks = layer.getLayers().filter((m) => m instanceof L.CircleMarker);
      out.points += marks.length;
      if (marks.length && layer.getPopup()) { out.popup = true; }
      for (const m of marks) {
        const xy = map.latLngToContainerPoint(m.getLatLng());
        out.at.push([xy.x, xy.y]);
      }
    }
    if (L.HeatLayer && layer instanceof L.HeatLayer) { out.heat += 1; }
  });
  const b = map.getBounds();
  out.bounds = [b.getSouth(), b.getWest(), b.getNorth(), b.getEast()];
  return out;
}"""


def wait_drawn(page: object, condition: str) -> dict:
    """Wait until the map draws what ``condition`` (JS over ``d``, from DRAWN) says; return it."""
    page.wait_for_function(f"() => {{ const d = ({DRAWN})(); return !!d && ({condition}); }}")  # type: ignore[attr-defined]
    return page.evaluate(DRAWN)  # type: ignore[attr-defined, no-any-return]


def set_view(page: object, lat: float, lon: float, zoom: int) -> None:
    """Move the Leaflet map as a user would (Leaflet then reports the view to the page)."""
    page.evaluate(  # type: ignore[attr-defined]
        f"() => {{ document.querySelector(\"{MAP_FRAME}\").contentWindow.map"
        f".setView([{lat}, {lon}], {zoom}); }}")


#: The app's work list: one line per problem, with every request id of it.
WORK_COLUMNS = ["rank", "hotspot_id", "place", "problem_id", "calls", "request_ids",
                "service_name",
                "address", "status", "first_requested", "last_requested", "age_days",
                "due_datetime", "overdue", "lat", "lon"]


def need_chromium() -> None:
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is missing: run scripts/install-test-deps.sh"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    """A free port for a Streamlit server (this pytest-xdist worker's share of 8600-8699)."""
    return ports.free_port(STREAMLIT_PORTS)


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60.0,
                 log: Path | None = None) -> None:
    """Poll Streamlit's health endpoint until it answers (or the server died).

    With ``log`` (the server's output), the server must also have printed that it is
    listening: then the answer comes from this server, not from another one that took
    the port first (this one then exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200 and (log is None or LISTENING in log.read_text(
                        encoding="utf-8", errors="replace")):
                    return
        except OSError:
            pass
        time.sleep(0.2)  # poll interval, not a wait for the page
    raise TimeoutError(f"streamlit did not answer at {url} within {timeout} s")


@contextmanager
def streamlit_server(store: Path | str, log_dir: Path, *, extra_env: dict[str, str] | None = None,
                     args: tuple[str, ...] = (), port: int | None = None) -> Iterator[str]:
    """Run the app against ``store`` on a free port; yield its URL, stop it afterwards."""
    port = port or free_port()
    env = {**os.environ, "HOTSPOT311_STORE": str(store), "HOTSPOT311_TILES": "plain",
           "PYTHONPATH": str(ROOT), "HOTSPOT311_ALLOW_WRITE_ROLE": "1", **(extra_env or {})}
    log = log_dir / "streamlit.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1",
             "--server.enableStaticServing", "true", "--browser.gatherUsageStats", "false",
             *args],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log=log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, app_location: str) -> Iterator[str]:
    need_chromium()
    with streamlit_server(app_location, tmp_path_factory.mktemp("streamlit")) as url:
        yield url


@pytest.fixture(scope="module", params=["embedded", pytest.param("postgis",
                                                                 marks=pytest.mark.postgis)])
def dense_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """More requests than the map draws one by one at city scale: it opens aggregated
    (each store in turn)."""
    from tests.appstore import fill_store

    directory = tmp_path_factory.mktemp("densestore")
    location = store_location(request.param, directory, request, "dense")
    return fill_store(location, directory / "requests.csv", 3 * POINT_LIMIT)


@pytest.fixture(scope="module")
def dense_server(tmp_path_factory: pytest.TempPathFactory, dense_store: str) -> Iterator[str]:
    need_chromium()
    with streamlit_server(dense_store, tmp_path_factory.mktemp("streamlit-dense")) as url:
        yield url


def hotspots_ready(page: object) -> None:
    """Wait until the hotspot run is shown (the page shows "…" while it runs)."""
    from playwright.sync_api import expect

    value = page.locator("[data-testid='stMetric']", has_text="Hotspots").locator(  # type: ignore[attr-defined]
        "[data-testid='stMetricValue']")
    expect(value).to_have_text(re.compile(r"^[0-9,]+$"))
    expect(page.locator("[data-testid='stStatusWidget']")).to_have_count(0)  # type: ignore[attr-defined]


def metric(page: object, label: str) -> str:
    box = page.locator("[data-testid='stMetric']", has_text=label)  # type: ignore[attr-defined]
    return box.locator("[data-testid='stMetricValue']").inner_text()


def download(page: Any, name: str, tries: int = 3) -> bytes:
    """Click a download button until the file comes. A rerun between drawing the button and
    the click (the map reporting its view) retires the button's file: Streamlit logs
    "Deferred file … not found" and nothing downloads, so the click is made again, as a
    user would."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    for attempt in range(tries):
        expect(page.locator("[data-testid='stStatusWidget']")).to_have_count(0)
        try:
            with page.expect_download(timeout=40_000) as info:
                page.get_by_role("button", name=name).click()
            return Path(info.value.path()).read_bytes()
        except PlaywrightTimeout:
            if attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


def test_map_table_filter_download(server: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    expect.set_options(timeout=120_000)  # the first run reads the store and clusters
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1400},
                                    accept_downloads=True)
            page.set_default_timeout(120_000)
            page.goto(server)
            # the hotspot table (the page draws the map first, then reruns with hotspots)
            hotspots_ready(page)
            grid = page.locator("[data-testid='stDataFrame']")
            expect(grid.locator("[role='gridcell']").first).to_be_attached()
            # the map: Leaflet (served locally) with its layers, drawn on a canvas
            expect(page.locator(MAP_FRAME)).to_have_count(1)
            frame = page.frame_locator(MAP_FRAME)
            expect(frame.locator(".leaflet-container")).to_be_visible()
            expect(frame.locator(".leaflet-overlay-pane canvas").first).to_be_attached()
            expect(frame.locator(".leaflet-control-layers-overlays")).to_contain_text(
                "Hotspots (by priority)")
            before = metric(page, "Requests shown")
            page.screenshot(path=str(ARTIFACTS / "map-page.png"), full_page=True)

            # a filter: only open requests
            page.locator("[data-testid='stRadio']", has_text="Status").get_by_text(
                "open", exact=True).click()
            expect(page.locator("[data-testid='stMetric']", has_text="Requests shown")
                   .locator("[data-testid='stMetricValue']")).not_to_have_text(before)
            after = int(metric(page, "Requests shown").replace(",", ""))
            assert 0 < after < int(before.replace(",", ""))
            hotspots_ready(page)
            expect(grid.locator("[role='gridcell']").first).to_be_attached()
            n_hot = int(metric(page, "Hotspots").replace(",", ""))
            cells = set(grid.locator("[role='gridcell']").all_inner_texts())

            # the crew work list
            work = pd.read_csv(io.BytesIO(download(page, "Work list CSV")),
                               dtype={"hotspot_id": str, "problem_id": str, "request_ids": str})
            assert list(work.columns) == WORK_COLUMNS
            assert work["problem_id"].is_unique
            assert work["place"].str.contains(" & ").all()  # named by their street corner
            assert (work["request_ids"].str.count(";") + 1 == work["calls"]).all()
            assert len(work) > 0 and set(work["status"]) == {"open"}
            assert work["hotspot_id"].nunique() == n_hot
            assert set(work["rank"]) == set(range(1, n_hot + 1))
            for hotspot in sorted(set(work["hotspot_id"]) - cells):  # cells fill in lazily
                expect(grid.locator("[role='gridcell']", has_text=hotspot)).to_have_count(1)
            page.screenshot(path=str(ARTIFACTS / "map-page-open.png"), full_page=True)
        finally:
            browser.close()


def dense_spot(store: Path | str) -> tuple[float, float]:
    """Centre of the ~200 m cell holding the most stored requests."""
    frame = open_store(store, load_profile("philadelphia")).request_columns(["lat", "lon"])
    cells = (frame[["lat", "lon"]] / 0.002).round().value_counts()
    lat, lon = cells.index[0]
    return float(lat) * 0.002, float(lon) * 0.002


def test_zoom_in_draws_points_with_popups_zoom_out_the_aggregate(dense_server: str,
                                                                 dense_store: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    stored = open_store(dense_store, load_profile("philadelphia")).request_columns(
        ["service_request_id", "lat", "lon"])
    assert len(stored) > POINT_LIMIT  # else the city view would draw points already
    lat, lon = dense_spot(dense_store)
    expect.set_options(timeout=120_000)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1400})
            page.set_default_timeout(120_000)
            page.goto(dense_server)
            hotspots_ready(page)
            # the map with the hotspots on it (mounted afresh when they arrive): aggregated
            wait_drawn(page, "d.hotspots && d.heat === 1 && d.points === 0")
            caption = page.locator("[data-testid='stCaptionContainer']")
            expect(caption.filter(has_text="density map")).to_have_count(1)

            # zoom in on the densest spot: the page reruns with the reported view
            set_view(page, lat, lon, DETAIL_ZOOM + 1)
            drawn = wait_drawn(page, "d.points > 0 && d.heat === 0")
            expect(caption.filter(has_text="in view shown one by one")).to_have_count(1)
            assert drawn["zoom"] == DETAIL_ZOOM + 1 and drawn["popup"] and drawn["hotspots"]
            inside = within_box(stored, tuple(drawn["bounds"]))
            assert drawn["points"] == len(inside) > 0
            page.screenshot(path=str(ARTIFACTS / "map-zoomed-in.png"), full_page=True)

            # a point's popup: click the marker nearest the middle of the map
            box = page.locator(MAP_FRAME).bounding_box()
            assert box is not None
            xy = np.array(drawn["at"], dtype=float)
            x, y = xy[np.argmin(np.hypot(xy[:, 0] - box["width"] / 2,
                                         xy[:, 1] - box["height"] / 2))]
            page.mouse.click(box["x"] + x, box["y"] + y)
            popup = page.frame_locator(MAP_FRAME).locator(".leaflet-popup-content")
            expect(popup).to_contain_text("Request")
            text = popup.inner_text()
            assert any(rid in text for rid in inside["service_request_id"].astype(str))

            # zoom back out: the aggregate again, no points
            set_view(page, lat, lon, DETAIL_ZOOM - 4)
            drawn = wait_drawn(page, "d.heat === 1 && d.points === 0")
            expect(caption.filter(has_text="density map")).to_have_count(1)
            assert drawn["zoom"] == DETAIL_ZOOM - 4
        finally:
            browser.close()
