"""folium's page rendered with each element's output kept as text: the same page, byte
for byte, and nothing in it evaluated as a template."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import folium
import geopandas as gpd
import pytest
from branca.element import Element

from hotspot311.web import literalrender, maps
from hotspot311.web.mapdata import area_stats, web_areas, web_hotspots
from tests.hostile import without_element_ids
from tests.hotspot311.web.test_maps import NOW, ranked, requests, squares  # noqa: F401


@pytest.fixture
def both_ways() -> Iterator[Callable[[bool], None]]:
    """Switch between branca's own rendering and the literal one; installed afterwards."""
    def use(literal: bool) -> None:
        if literal:
            literalrender.install()
        else:
            literalrender.uninstall()

    yield use
    literalrender.install()


def _page(build: Callable[[], folium.Map], monkeypatch: pytest.MonkeyPatch) -> str:
    """The page of ``build()``, with element ids numbered from 0 (branca draws them at
    random)."""
    counter = itertools.count()
    monkeypatch.setattr(Element, "_generate_id", classmethod(lambda cls: f"{next(counter):032x}"))
    return maps.map_html(build())


def test_the_page_is_the_same_byte_for_byte(squares: gpd.GeoDataFrame,  # noqa: F811
                                            ranked: gpd.GeoDataFrame,  # noqa: F811
                                            both_ways: Callable[[bool], None],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    frame = requests(400)
    areas = web_areas(squares, area_stats(frame, "square", now=NOW), simplify=1.0)
    spots = web_hotspots(ranked, layer_keys=("neighborhood",))

    def points() -> folium.Map:
        return maps.city_map(frame, areas=areas, area_title="Square", hotspots=spots,
                             selected="Hb", tiles="plain")

    def heat() -> folium.Map:  # more requests than drawn one by one: the heat layer
        return maps.city_map(frame, areas=areas, hotspots=spots, tiles="streets",
                             point_limit=10)

    for build in (points, heat):
        both_ways(False)
        theirs = _page(build, monkeypatch)
        both_ways(True)
        ours = _page(build, monkeypatch)
        assert literalrender.installed()
        assert ours == theirs
        assert "Hotspots (by priority)" in ours and len(ours) > 10_000


def test_template_syntax_in_an_elements_output_stays_text(
        both_ways: Callable[[bool], None]) -> None:
    """Even text that reached an element unescaped is not evaluated (the escaping of
    :mod:`hotspot311.web.escaping` is the first guard, this the second)."""
    data = {"type": "FeatureCollection", "features": [{
        "type": "Feature", "geometry": {"type": "Point", "coordinates": [-75.16, 39.95]},
        "properties": {"note": "{{ 7*191 }}"}}]}

    both_ways(True)
    ours = without_element_ids(maps.map_html(_tooltip_map(data)))
    assert "{{ 7*191 }}" in ours and "1337" not in ours
    both_ways(False)  # branca's own: the output is rendered again, and evaluated
    assert "1337" in maps.map_html(_tooltip_map(data))


def _tooltip_map(data: dict[str, object]) -> folium.Map:
    """A map with one tooltip over ``data`` (not :func:`maps.base_map`, which installs)."""
    fmap = folium.Map(location=[39.95, -75.16], tiles=None)
    folium.GeoJson(data, tooltip=folium.GeoJsonTooltip(fields=["note"])).add_to(fmap)
    return fmap
