"""Places named by the nearest corner and the area, on Philadelphia's real street data
and neighborhoods."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer

from geo.geocode.places import PlaceNamer, street_corners, street_label
from hotspot311.errors import InputError, LayerError
from layers.profile import load_profile
from layers.registry import load_layer


@pytest.fixture(scope="module")
def philadelphia() -> tuple[pd.DataFrame, PlaceNamer]:
    profile = load_profile("philadelphia")
    assert profile.place_layer == "neighborhood"
    spec = next(s for s in profile.layers if s.key == profile.place_layer)
    corners = street_corners(profile)
    areas = load_layer(spec, crs=profile.crs)
    return corners, PlaceNamer(corners, areas, max_corner=profile.metres_to_crs(400.0))


def at(lat: float, lon: float) -> tuple[np.ndarray, np.ndarray]:
    to_city = Transformer.from_crs("EPSG:4326", load_profile("philadelphia").crs,
                                   always_xy=True)
    x, y = to_city.transform([lon], [lat])
    return np.asarray(x), np.asarray(y)


def test_a_hotspot_by_fifth_and_lehigh_is_named_by_its_corner_and_neighborhood(
        philadelphia: tuple[pd.DataFrame, PlaceNamer]) -> None:
    corners, namer = philadelphia
    assert len(corners) > 20_000
    corner = corners[corners["label"].isin(["N 5th St & W Lehigh Ave",
                                            "W Lehigh Ave & N 5th St"])]
    assert len(corner) >= 1
    x, y = corner["x"].to_numpy()[:1], corner["y"].to_numpy()[:1]
    # Lehigh Avenue is the edge: Fairhill north of it, West Kensington south (40 ft off)
    north, south = namer.names(np.concatenate([x, x + 20]), np.concatenate([y + 40, y - 40]))
    for name, area in ((north, "Fairhill"), (south, "West Kensington")):
        street, _, named = name.partition(" — ")
        assert street in ("N 5th St & W Lehigh Ave", "W Lehigh Ave & N 5th St")
        assert named == area


def test_city_hall_and_places_without_a_corner_or_an_area(
        philadelphia: tuple[pd.DataFrame, PlaceNamer]) -> None:
    _corners, namer = philadelphia
    hall_x, hall_y = at(39.95234, -75.16352)  # City Hall, Penn Square
    far_x, far_y = at(39.5, -74.0)  # the Atlantic: no corner within 400 m, no area
    names = namer.names(np.concatenate([hall_x, far_x, [np.nan]]),
                        np.concatenate([hall_y, far_y, [np.nan]]))
    street, _, area = names[0].partition(" — ")
    assert area == "Center City East", names[0]
    first, _, second = street.partition(" & ")
    assert first and second and first.split()[-2:] != second.split()[-2:], street
    assert names[1:] == ["", ""]
    no_streets = PlaceNamer(pd.DataFrame({"x": [], "y": [], "label": []}), None,
                            max_corner=1.0)
    assert no_streets.names(hall_x, hall_y) == [""]


def test_street_labels_and_bad_input() -> None:
    assert street_label(["W", "LEHIGH", "AVE", ""]) == "W Lehigh Ave"
    assert street_label(["", "11TH", "ST", "S"]) == "11th St S"
    with pytest.raises(InputError, match="max_corner: got 0"):
        PlaceNamer(pd.DataFrame({"x": [], "y": [], "label": []}), None, max_corner=0)


def test_the_place_layer_must_be_a_layer_of_the_profile(tmp_path: Path) -> None:
    path = load_profile("philadelphia").path
    assert path is not None
    bad = tmp_path / "city.toml"
    bad.write_text(path.read_text().replace('place_layer = "neighborhood"',
                                            'place_layer = "wards"')
                   .replace('"../../data', f'"{path.parent}/../../data'))
    with pytest.raises(LayerError, match="'place_layer' 'wards' is not a layer key"):
        load_profile(bad)


def test_the_nearest_corner_ties_go_to_the_first_and_the_limit_is_exclusive() -> None:
    """Two corners at one node (a three-way intersection) or at one distance: the first
    in the corners' order names the point, whatever the search tree would return; a
    corner exactly at the limit is too far."""
    corners = pd.DataFrame({"x": [0.0, 10.0, 10.0, -10.0], "y": [50.0, 0.0, 0.0, 0.0],
                            "label": ["far", "B & C", "B & D", "A & E"]})
    namer = PlaceNamer(corners, None, max_corner=10.0 + 1e-9)
    # (0, 0): "B & C", "B & D" and "A & E" all 10 away; (10, 0): on the shared node
    assert namer.names(np.array([0.0, 10.0, 0.0]), np.array([0.0, 0.0, 41.0])) == \
        ["B & C", "B & C", "far"]
    reversed_order = PlaceNamer(corners.iloc[::-1].reset_index(drop=True), None,
                                max_corner=10.0 + 1e-9)
    assert reversed_order.names(np.array([0.0]), np.array([0.0])) == ["A & E"]
    exact = PlaceNamer(corners, None, max_corner=10.0)
    assert exact.names(np.array([0.0, 0.0]), np.array([0.0, 41.0])) == ["", "far"]
