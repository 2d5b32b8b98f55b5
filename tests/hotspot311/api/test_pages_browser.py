"""The tracking page and the liaison form in a real headless Chromium (Playwright), on a
live uvicorn over each store (embedded, PostGIS) holding real requests.

Skipped with the reason when Chromium is missing, except under ``CI=true`` where that is
a failure. Every wait is for an element, never a fixed sleep.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest

from geo.geocode.geocoder import Geocoder
from geo.ingest.pipeline import ingest
from geo.store.base import Store
from hotspot311.api.app import create_app
from hotspot311.api.settings import ApiSettings
from layers.profile import load_profile
from tests.conftest import REQUESTS
from tests.hotspot311.api.conftest import open_kind
from tests.hotspot311.api.live import Keys, add_accounts, live_server
from tests.test_browser import ARGS, CHROMIUM, need_chromium

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module", params=["embedded",
                                        pytest.param("postgis", marks=pytest.mark.postgis)])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
         philly: Geocoder) -> Iterator[tuple[str, Store, Keys]]:
    need_chromium()
    root = tmp_path_factory.mktemp(f"pages-{request.param}")
    store = open_kind(request.param, root, request, load_profile("philadelphia"))
    try:
        ingest(REQUESTS / "parks-maintenance.csv", store)
        keys = add_accounts(store)
        settings = ApiSettings(media_dir=root / "media", secret="browser-secret")
        with live_server(create_app(store, settings=settings, geocoder=lambda: philly)) as url:
            yield url, store, keys
    finally:
        store.close()


@pytest.fixture
def page(site) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser.new_page(viewport={"width": 390, "height": 844},  # a phone
                                   java_script_enabled=True)
        finally:
            browser.close()


def test_tracking_page_finds_a_real_request_and_says_when_a_number_is_unknown(site, page
                                                                              ) -> None:
    from playwright.sync_api import expect

    url, store, _ = site
    rows = pd.DataFrame(store.requests().drop(columns="geometry"))
    row = rows[rows["status"] == "open"].iloc[0]
    rid = str(row["service_request_id"])
    page.goto(f"{url}/track")
    page.get_by_label("Tracking number").fill(rid)
    page.get_by_role("button", name="Look up").click()
    expect(page.locator("#status")).to_have_text("Open: in progress")
    expect(page.locator("#service")).to_have_text(str(row["service_name"]))
    due = page.locator("#due").inner_text()
    assert due != "not set" and any(m in due for m in (
        "January", "February", "March", "April", "May", "June", "July", "August",
        "September", "October", "November", "December"))
    body = page.locator("body").inner_text()
    address = str(row["address"])
    assert address not in body  # nothing personal
    page.get_by_label("Tracking number").fill("NO-SUCH-1")
    page.get_by_role("button", name="Look up").click()
    expect(page.locator("#message")).to_contain_text("We have no request with the number "
                                                     "NO-SUCH-1")
    expect(page.locator("#record")).to_have_count(0)


def test_tracking_page_works_without_javascript(site) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, store, _ = site
    rid = str(store.request_columns(["service_request_id"])["service_request_id"].iloc[0])
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(java_script_enabled=False)
            page.goto(f"{url}/track")
            page.get_by_label("Tracking number").fill(rid)
            page.get_by_role("button", name="Look up").click()
            expect(page.locator("#result")).to_have_text(f"Request {rid}")
        finally:
            browser.close()


def test_liaison_signs_in_picks_a_point_on_the_map_and_sends(site, page) -> None:
    from playwright.sync_api import expect

    url, store, keys = site
    before = len(store.request_columns(["service_request_id"]))
    page.goto(f"{url}/liaison")
    expect(page).to_have_url(f"{url}/liaison/login")
    page.get_by_label("Your key").fill(keys["ann"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("h1")).to_have_text("New request")
    page.get_by_label("Service").select_option("street-defect")
    page.get_by_role("button", name="Choose").click()
    expect(page.locator("#report h2")).to_have_text("Street Defect")
    page.wait_for_function("() => !!window.liaisonMap")  # the vendored Leaflet ran
    page.locator("#map").click(position={"x": 150, "y": 120})
    expect(page.locator("#lat")).not_to_have_value("")
    lat = float(page.locator("#lat").input_value())
    assert 39.8 < lat < 40.2
    page.get_by_label("What is wrong?").fill("<img src=x onerror=alert(1)> broken bench")
    page.get_by_role("button", name="Send request").click()
    expect(page.locator("#tracking")).to_contain_text("H311-")
    rid = page.locator("#tracking").inner_text()
    assert len(store.request_columns(["service_request_id"])) == before + 1
    stored = pd.DataFrame(store.requests().drop(columns="geometry")).set_index(
        "service_request_id").loc[rid]
    assert stored["description"] == "<img src=x onerror=alert(1)> broken bench"
    assert stored["source"] == "liaison-form:liaison"


def test_liaison_address_search_fills_the_position_without_script(site) -> None:
    import httpx

    url, _, keys = site
    with httpx.Client(base_url=url, follow_redirects=False) as client:
        login = client.post("/liaison/login", data={"api_key": keys["fred"]})
        assert login.status_code == 303
        page = client.get("/liaison", params={"service": "graffiti-removal",
                                              "find": "1500 Market St"})
        assert page.status_code == 200 and "Found:" in page.text
        assert 'id="lat" name="lat" type="text" inputmode="decimal" value="39.9' in page.text
        denied = client.post("/liaison/login", data={"api_key": keys["partner"]})
        assert denied.status_code == 403 and "partner" in denied.text
        client.cookies.clear()
        assert client.get("/liaison").status_code == 303
