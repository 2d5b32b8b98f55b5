"""Logins and roles in a real headless Chromium, against a local OpenID Connect provider.

The provider (:mod:`tests.oidc_provider`) runs on a free port; the app runs with
``HOTSPOT311_AUTH=oidc``, a roles file and a secrets file naming the provider, on both
stores. Signed out, the page is the sign-in page; each of a viewer, an analyst and a
department lead signs in through the provider's form and sees exactly what the role may;
the lead's work-list download is written to the store's export log.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterator

import pandas as pd
import pytest

from geo.store.base import open_store
from layers.profile import load_profile
from tests.oidc_provider import OIDCProvider
from tests.test_browser import (
    ARGS,
    CHROMIUM,
    download,
    free_port,
    hotspots_ready,
    need_chromium,
    streamlit_server,
    wait_drawn,
)

pytestmark = pytest.mark.browser

ROLES = """
[users]
"vera@city.gov" = { role = "viewer" }
"lee@city.gov" = { role = "lead", department = "streets" }

[groups]
"311-analysts" = { role = "analyst" }

[departments.streets]
preset = "custom"
agencies = ["Streets Department"]
"""
USERS = {"vera@city.gov": [], "ana@city.gov": ["311-analysts"], "lee@city.gov": [],
         "nobody@city.gov": []}
#: The properties of the first request point drawn on the map (what its popup shows).
POINT_PROPS = """() => {
  const frames = document.querySelectorAll("iframe[title='streamlit_folium.st_folium']");
  if (frames.length !== 1) { return null; }
  const win = frames[0].contentWindow;
  if (!win.map || !win.L) { return null; }
  let props = null;
  win.map.eachLayer((layer) => {
    if (props === null && layer instanceof win.L.GeoJSON) {
      const marks = layer.getLayers().filter((m) => m instanceof win.L.CircleMarker);
      if (marks.length) { props = marks[0].feature.properties; }
    }
  });
  return props;
}"""


@pytest.fixture(scope="module")
def login_server(tmp_path_factory: pytest.TempPathFactory, app_location: str
                 ) -> Iterator[tuple[str, str]]:
    """(app URL, provider issuer) of an app with logins on, on the app test store."""
    need_chromium()
    work = tmp_path_factory.mktemp("login")
    port = free_port()
    redirect = f"http://127.0.0.1:{port}/oauth2callback"
    client_secret = secrets.token_urlsafe(16)
    with OIDCProvider(users=USERS, client_id="hotspot311", client_secret=client_secret,
                      redirect_uri=redirect) as idp:
        (work / "roles.toml").write_text(ROLES, encoding="utf-8")
        (work / "secrets.toml").write_text(
            "[auth]\n"
            f'redirect_uri = "{redirect}"\n'
            f'cookie_secret = "{secrets.token_urlsafe(24)}"\n'
            'client_id = "hotspot311"\n'
            f'client_secret = "{client_secret}"\n'
            f'server_metadata_url = "{idp.issuer}/.well-known/openid-configuration"\n',
            encoding="utf-8")
        env = {"HOTSPOT311_AUTH": "oidc", "HOTSPOT311_ROLES": str(work / "roles.toml"),
               # the test provider speaks plain HTTP on 127.0.0.1 (Authlib's switch for it)
               "AUTHLIB_INSECURE_TRANSPORT": "1"}
        with streamlit_server(app_location, work, extra_env=env, port=port,
                              args=("--secrets.files", str(work / "secrets.toml"))) as url:
            yield url, idp.issuer


def sign_in(browser: object, url: str, issuer: str, email: str) -> object:
    """A fresh browser context signed in as ``email`` through the provider's form."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1600, "height": 1400},  # type: ignore[attr-defined]
                                  accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(url)
    expect(page.get_by_text("Sign in with your city account")).to_be_visible()
    expect(page.locator("[data-testid='stMetric']")).to_have_count(0)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{issuer}/authorize*")
    page.fill("input[name=login]", email)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{url}/**")
    return page


def test_each_role_sees_what_it_may(login_server: tuple[str, str], app_location: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, issuer = login_server
    expect.set_options(timeout=120_000)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            # an analyst: addresses in the popups, no work-list export
            page = sign_in(browser, url, issuer, "ana@city.gov")
            expect(page.get_by_text("Signed in as ana@city.gov (analyst)")).to_be_visible()
            hotspots_ready(page)
            wait_drawn(page, "d.points > 0")
            props = page.wait_for_function(POINT_PROPS).json_value()  # type: ignore[attr-defined]
            assert "address" in props and "service_request_id" in props
            expect(page.get_by_role("button", name="Work list CSV")).to_have_count(0)
            page.goto(f"{url}/Data_quality")  # type: ignore[attr-defined]
            expect(page.get_by_text("for administrators")).to_be_visible()

            # a viewer: the same map without addresses, no export, no data quality page
            page = sign_in(browser, url, issuer, "vera@city.gov")
            expect(page.get_by_text("Signed in as vera@city.gov (viewer)")).to_be_visible()
            hotspots_ready(page)
            wait_drawn(page, "d.points > 0")
            props = page.wait_for_function(POINT_PROPS).json_value()  # type: ignore[attr-defined]
            assert "address" not in props and "service_request_id" in props
            grid = page.locator("[data-testid='stDataFrame']")  # type: ignore[attr-defined]
            expect(grid.locator("[role='columnheader']", has_text="top address")).to_have_count(0)
            expect(page.get_by_role("button", name="Work list CSV")).to_have_count(0)
            expect(page.get_by_text("Work list downloads are for department leads")
                   ).to_be_visible()
            page.goto(f"{url}/Data_quality")  # type: ignore[attr-defined]
            expect(page.get_by_text("for administrators")).to_be_visible()
            expect(page.locator("[data-testid='stDataFrame']")).to_have_count(0)

            # someone the roles file does not name
            page = sign_in(browser, url, issuer, "nobody@city.gov")
            expect(page.get_by_text("has no role in this app")).to_be_visible()
            expect(page.locator("[data-testid='stMetric']")).to_have_count(0)

            # a department lead: starts on the department's filter, exports, is audited
            page = sign_in(browser, url, issuer, "lee@city.gov")
            expect(page.get_by_text("Signed in as lee@city.gov (lead, streets)")).to_be_visible()
            department = page.locator("[data-testid='stMultiSelect']", has_text="Department")
            expect(department).to_contain_text("Streets Department")
            hotspots_ready(page)
            work = pd.read_csv(io.BytesIO(download(page, "Work list CSV")))
        finally:
            browser.close()
    store = open_store(app_location, load_profile("philadelphia"))
    try:
        log = store.exports()
    finally:
        store.close()
    last = log.iloc[-1]
    assert (last["user_name"], last["role"], last["department"], last["what"]) == (
        "lee@city.gov", "lead", "streets", "work list CSV")
    assert last["rows"] == len(work) > 0
    assert last["filters"]["departments"] == ["Streets Department"]
