"""The map page in a real headless Chromium (Playwright), against a small test store.

Needs the system Chromium (``scripts/install-test-deps.sh`` installs it). Skipped with
the reason when it is missing, except under ``CI=true`` where that is a failure. Every
wait is for an element or a value, never a fixed sleep.
"""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MAP_FRAME = "iframe[title='streamlit_folium.st_folium']"
WORK_COLUMNS = ["rank", "hotspot_id", "service_request_id", "service_name", "address", "status",
                "requested_datetime", "age_days", "due_datetime", "overdue", "lat", "lon"]


def need_chromium() -> None:
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is missing: run scripts/install-test-deps.sh"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    for port in range(8600, 8700):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 8600-8699")


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Poll Streamlit's health endpoint until it answers (or the server died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)  # poll interval, not a wait for the page
    raise TimeoutError(f"streamlit did not answer at {url} within {timeout} s")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, app_store: Path) -> Iterator[str]:
    need_chromium()
    store = app_store
    port = free_port()
    env = {**os.environ, "HOTSPOT311_STORE": str(store), "HOTSPOT311_TILES": "plain",
           "PYTHONPATH": str(ROOT)}
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1",
             "--server.enableStaticServing", "true", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


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
            with page.expect_download() as info:
                page.get_by_role("button", name="Work list CSV").click()
            work = pd.read_csv(io.BytesIO(Path(info.value.path()).read_bytes()),
                               dtype={"hotspot_id": str, "service_request_id": str})
            assert list(work.columns) == WORK_COLUMNS
            assert len(work) > 0 and set(work["status"]) == {"open"}
            assert work["hotspot_id"].nunique() == n_hot
            assert set(work["rank"]) == set(range(1, n_hot + 1))
            for hotspot in sorted(set(work["hotspot_id"]) - cells):  # cells fill in lazily
                expect(grid.locator("[role='gridcell']", has_text=hotspot)).to_have_count(1)
            page.screenshot(path=str(ARTIFACTS / "map-page-open.png"), full_page=True)
        finally:
            browser.close()
