"""Hostile text stays text in a real headless Chromium (issue 20, part 1).

A store whose every text field (and the boundary layer's title, codes and names) holds
markup that runs script when parsed as HTML is drawn the way the app draws it
(:func:`hotspot311.web.maps.page_map` with the app's data builders): every request popup,
hotspot popup and tooltip, and choropleth tooltip is opened, and the printable work list
is loaded. No payload may run (``window.PWNED`` stays unset, the title unchanged) and the
text is shown literally.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from clustering.export import hotspot_table, work_list
from clustering.priority import PRESETS
from clustering.run import run_hotspots
from clustering.selection import HotspotQuery
from hotspot311.web.mapdata import area_stats, web_areas, web_hotspots
from hotspot311.web.maps import map_html, page_map
from hotspot311.web.worklist import work_list_html
from tests.hostile import END, HTML_PAYLOADS, TEMPLATES, build_hostile_store
from tests.test_browser import ARGS, ARTIFACTS, CHROMIUM, need_chromium

pytestmark = pytest.mark.browser

VENDOR = Path(__file__).resolve().parents[1] / "static" / "vendor"

#: Opens every popup and tooltip of every GeoJSON layer of the (one) folium map, one
#: feature at a time, as a click or a hover would; returns what each showed.
OPEN_ALL = """() => {
  const name = Object.keys(window).find((k) => k.startsWith("map_") && window[k] instanceof L.Map);
  const map = window[name], shown = {popup: [], tooltip: []};
  map.eachLayer((group) => {
    if (!(group instanceof L.GeoJSON)) { return; }
    for (const layer of group.getLayers()) {
      const at = layer.getLatLng ? layer.getLatLng() : layer.getBounds().getCenter();
      if (group.getPopup()) {
        layer.fire("click", {latlng: at}, true);
        const el = group.getPopup().getElement();
        const box = group.isPopupOpen() && el ? el.querySelector(".leaflet-popup-content") : null;
        shown.popup.push({layer: group.options.name || "", text: box ? box.innerText : null,
                          tags: box ? box.querySelectorAll("img,svg,script").length : -1});
        map.closePopup();
      }
      if (group.getTooltip()) {
        layer.fire("mouseover", {latlng: at}, true);
        const tip = group.isTooltipOpen() ? group.getTooltip().getElement() : null;
        shown.tooltip.push({text: tip ? tip.innerText : null,
                            tags: tip ? tip.querySelectorAll("img,svg,script").length : -1});
        layer.fire("mouseout", {latlng: at}, true);
      }
    }
  });
  const control = document.querySelector(".leaflet-control-layers-overlays");
  shown.control = control ? control.innerText : null;
  const legend = document.querySelector(".hotspot311-legend");
  shown.legend = legend ? legend.innerText : null;
  shown.markup = document.querySelectorAll(
    ".leaflet-control-layers img, .hotspot311-legend img, .hotspot311-legend svg").length;
  return shown;
}"""

#: A control image that fails to load like the payloads' do: once its handler has run,
#: a payload's would have run too, had it been parsed as HTML.
CANARY = """() => {
  const probe = document.createElement("div");
  probe.innerHTML = '<img src="x" onerror="window.CANARY=1">';
  document.body.appendChild(probe);
}"""


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The app's map and printable work list for a hostile store, as HTML files."""
    directory = tmp_path_factory.mktemp("hostile")
    store, profile = build_hostile_store(directory)
    requests = store.requests()
    areas = web_areas(store.areas("square"), area_stats(requests, "square", now=END),
                      simplify=1.0)
    query = HotspotQuery(days=30, end=END, eps_m=60, min_samples=5)
    result = run_hotspots(pd.DataFrame(requests.drop(columns="geometry")), query,
                          profile=profile, weights=PRESETS["streets"], now=END,
                          layer_keys=("square",))
    assert len(result.hotspots) >= 1
    parts = page_map(requests, points=requests, areas=areas, area_title=profile.layers[0].title,
                     hotspots=web_hotspots(result.hotspots, layer_keys=("square",)),
                     tiles=None, assets=VENDOR.as_uri())
    map_file = directory / "map.html"
    map_file.write_text(map_html(parts.assemble()), encoding="utf-8")
    table = hotspot_table(result.hotspots, ("square",))
    page = work_list_html(table, work_list(result.members, now=END), title=HTML_PAYLOADS[0],
                          params={HTML_PAYLOADS[1]: HTML_PAYLOADS[2]}, generated=END)
    list_file = directory / "work-list.html"
    list_file.write_text(page, encoding="utf-8")
    return map_file, list_file


def assert_nothing_ran(page: object, title: str) -> None:
    page.evaluate(CANARY)  # type: ignore[attr-defined]
    page.wait_for_function("() => window.CANARY === 1")  # type: ignore[attr-defined]
    assert page.evaluate("() => window.PWNED === undefined")  # type: ignore[attr-defined]
    assert page.title() == title  # type: ignore[attr-defined]


def test_popups_and_tooltips_show_hostile_text_literally(drawn: tuple[Path, Path]) -> None:
    from playwright.sync_api import sync_playwright

    need_chromium()
    map_file, _ = drawn
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(map_file.as_uri())
            page.wait_for_function("() => window.L && document.querySelector('.leaflet-container')")
            title = page.title()
            shown = page.evaluate(OPEN_ALL)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "hostile-map.png"))
            assert_nothing_ran(page, title)
        finally:
            browser.close()
    popups, tooltips = shown["popup"], shown["tooltip"]
    # every request point and every hotspot opened a popup; hotspots and areas a tooltip
    assert len(popups) > 40 and len(tooltips) >= 3
    for item in popups + tooltips:
        assert item["text"] is not None and item["tags"] == 0, item
    texts = "\n".join(item["text"] for item in popups + tooltips)
    # shown literally: request fields, hotspot top address, area names and the layer title
    for payload in HTML_PAYLOADS[:2]:
        assert payload in texts
    # text in jinja2's syntax, which branca would have evaluated while building the page
    for payload in TEMPLATES:
        assert payload in texts
    assert "1337" not in texts and "TPLRAN" not in texts
    request_popups = [p["text"] for p in popups if "Requested" in p["text"]]
    assert len(request_popups) == 40
    assert any("Top address" in p["text"] and HTML_PAYLOADS[0] in p["text"] for p in popups)
    assert shown["markup"] == 0
    assert HTML_PAYLOADS[0] in shown["control"] and HTML_PAYLOADS[0] in shown["legend"]


def test_printable_work_list_shows_hostile_text_literally(drawn: tuple[Path, Path]) -> None:
    from playwright.sync_api import sync_playwright

    need_chromium()
    _, list_file = drawn
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page()
            page.goto(list_file.as_uri())
            assert page.title() == HTML_PAYLOADS[0]
            assert_nothing_ran(page, HTML_PAYLOADS[0])
            body = page.inner_text("body")
            assert page.locator("body img, body svg, body script").count() == 1  # the canary
        finally:
            browser.close()
    for payload in HTML_PAYLOADS[:3]:
        assert payload in body

