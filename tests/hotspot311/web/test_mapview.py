"""The map's reported view and the choice of requests drawn one by one (no Streamlit)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hotspot311.errors import InputError
from hotspot311.web.mapview import (
    DETAIL_ZOOM,
    MapView,
    Mount,
    choose_points,
    next_mount,
    parse_view,
    within_box,
)

#: Three requests on one block, one a few blocks north, one across the antimeridian.
FRAME = pd.DataFrame({
    "id": ["a", "b", "c", "d", "e"],
    "lat": [39.9500, 39.9510, 39.9520, 39.9700, 39.9510],
    "lon": [-75.1600, -75.1610, -75.1620, -75.1600, 179.9000],
})
BLOCK = (39.949, -75.163, 39.953, -75.159)


def reported(zoom: float, box: tuple[float, float, float, float]) -> dict:
    """What st_folium returns for a view (Leaflet's bounds object)."""
    south, west, north, east = box
    return {"zoom": zoom, "bounds": {"_southWest": {"lat": south, "lng": west},
                                     "_northEast": {"lat": north, "lng": east}},
            "center": {"lat": (south + north) / 2, "lng": (west + east) / 2}}


def view(zoom: float, box: tuple[float, float, float, float]) -> MapView:
    parsed = parse_view(reported(zoom, box))
    assert parsed is not None
    return parsed


def crowd(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` requests spread over a city-sized box."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"lat": rng.uniform(39.9, 40.1, n), "lon": rng.uniform(-75.3, -75.0, n)})


# --- parse_view ---------------------------------------------------------------------------
def test_parse_view_reads_zoom_bounds_and_centre() -> None:
    value = reported(17, BLOCK)
    value["center"] = {"lat": 39.9511, "lng": -75.1612}
    parsed = parse_view(value)
    assert parsed == MapView(zoom=17.0, box=BLOCK, center=(39.9511, -75.1612))


def test_parse_view_without_centre_takes_the_middle_of_the_box() -> None:
    value = reported(12, (39.0, -76.0, 41.0, -74.0))
    del value["center"]
    parsed = parse_view(value)
    assert parsed is not None and parsed.center == (40.0, -75.0)


@pytest.mark.parametrize("value", [
    None,
    {},
    # the component's default before the browser reports: bounds of a map without data
    {"bounds": {"_southWest": {"lat": None, "lng": None},
                "_northEast": {"lat": None, "lng": None}}, "zoom": 11},
    {"zoom": 17},
    {"zoom": "near", "bounds": reported(17, BLOCK)["bounds"]},
    {"zoom": float("nan"), "bounds": reported(17, BLOCK)["bounds"]},
    reported(17, (39.953, -75.163, 39.949, -75.159)),  # south above north
    reported(17, (39.949, -75.159, 39.953, -75.163)),  # west east of east
])
def test_parse_view_is_none_for_no_usable_view(value: dict | None) -> None:
    assert parse_view(value) is None


# --- within_box ---------------------------------------------------------------------------
def test_within_box_keeps_the_block_edges_included() -> None:
    assert within_box(FRAME, BLOCK)["id"].tolist() == ["a", "b", "c"]
    edge = (39.9500, -75.1620, 39.9520, -75.1600)  # the block's own extremes
    assert within_box(FRAME, edge)["id"].tolist() == ["a", "b", "c"]
    assert within_box(FRAME, (39.9501, -75.1620, 39.9520, -75.1600))["id"].tolist() == ["b", "c"]


def test_within_box_leaves_the_callers_frame_alone() -> None:
    before = FRAME.copy()
    within_box(FRAME, BLOCK)
    pd.testing.assert_frame_equal(FRAME, before)


def test_within_box_matches_a_plain_comparison_on_random_boxes() -> None:
    frame = crowd(5_000, seed=3)
    rng = np.random.default_rng(4)
    for _ in range(50):
        south, north = np.sort(rng.uniform(39.85, 40.15, 2))
        west, east = np.sort(rng.uniform(-75.35, -74.95, 2))
        expected = frame[frame["lat"].between(south, north) & frame["lon"].between(west, east)]
        got = within_box(frame, (south, west, north, east))
        assert got.index.equals(expected.index)


def test_within_box_on_a_world_copy_selects_the_same_requests() -> None:
    # Leaflet reports unwrapped longitudes when the map was panned round the world
    for turns in (-2, -1, 1):
        shifted = (BLOCK[0], BLOCK[1] + 360 * turns, BLOCK[2], BLOCK[3] + 360 * turns)
        assert within_box(FRAME, shifted)["id"].tolist() == ["a", "b", "c"]


def test_within_box_across_the_antimeridian() -> None:
    frame = pd.DataFrame({"lat": [0.0, 0.0, 0.0, 0.0], "lon": [175.0, -175.0, 0.0, 165.0]})
    assert within_box(frame, (-1.0, 170.0, 1.0, 190.0))["lon"].tolist() == [175.0, -175.0]


def test_within_box_wider_than_the_world_takes_every_longitude_in_the_band() -> None:
    assert within_box(FRAME, (39.94, -300.0, 39.96, 300.0))["id"].tolist() == [
        "a", "b", "c", "e"]


def test_within_box_refuses_an_inverted_box() -> None:
    with pytest.raises(InputError, match=r"box: south 39\.953 must be at or below north"):
        within_box(FRAME, (39.953, -75.163, 39.949, -75.159))
    with pytest.raises(InputError, match=r"2 problems"):
        within_box(FRAME, (2.0, 2.0, 1.0, 1.0))


# --- choose_points ------------------------------------------------------------------------
def test_zoomed_in_draws_the_requests_in_view() -> None:
    choice = choose_points(FRAME, view=view(DETAIL_ZOOM, BLOCK), limit=3)
    assert choice.reason == "zoomed" and choice.box == BLOCK and choice.in_box == 3
    assert choice.points is not None and choice.points["id"].tolist() == ["a", "b", "c"]


def test_below_the_detail_zoom_the_aggregate_stays() -> None:
    for zoom in (DETAIL_ZOOM - 1, DETAIL_ZOOM - 0.5, 11):
        choice = choose_points(FRAME, view=view(zoom, BLOCK), limit=3)
        assert choice.points is None and choice.reason == "aggregate"
        assert choice.box is None and choice.in_box == len(FRAME)
    assert choose_points(FRAME, view=None, limit=3).points is None  # nothing reported yet


def test_the_threshold_is_a_parameter() -> None:
    assert choose_points(FRAME, view=view(14, BLOCK), limit=3, min_zoom=14).reason == "zoomed"
    assert choose_points(FRAME, view=view(17, BLOCK), limit=3, min_zoom=18).reason == "aggregate"


def test_more_in_view_than_the_limit_keeps_the_aggregate() -> None:
    frame = crowd(1_000)
    city = (39.9, -75.3, 40.1, -75.0)
    inside = len(within_box(frame, city))
    choice = choose_points(frame, view=view(DETAIL_ZOOM, city), limit=inside - 1)
    assert choice.points is None and choice.reason == "aggregate"
    assert choice.box == city and choice.in_box == inside
    at_limit = choose_points(frame, view=view(DETAIL_ZOOM, city), limit=inside)
    assert at_limit.points is not None and len(at_limit.points) == inside


def test_few_requests_are_all_drawn_whatever_the_view() -> None:
    choice = choose_points(FRAME, view=view(11, (39.0, -76.0, 41.0, -74.0)), limit=len(FRAME))
    assert choice.reason == "few" and choice.points is not None
    assert len(choice.points) == len(FRAME) and choice.box is None


def test_a_hotspot_in_focus_draws_its_box_until_zoomed_in_elsewhere() -> None:
    north_block = (39.969, -75.161, 39.971, -75.159)
    choice = choose_points(FRAME, focus=north_block, view=view(12, BLOCK), limit=3)
    assert choice.reason == "hotspot" and choice.points is not None
    assert choice.points["id"].tolist() == ["d"]
    # the focus wins even over few requests: its own box, not everything
    assert choose_points(FRAME, focus=north_block, limit=10).points["id"].tolist() == ["d"]
    zoomed = choose_points(FRAME, focus=north_block, view=view(DETAIL_ZOOM, BLOCK), limit=3)
    assert zoomed.reason == "zoomed" and zoomed.points["id"].tolist() == ["a", "b", "c"]
    crowded = choose_points(FRAME, focus=BLOCK, limit=2)
    assert crowded.points is None and crowded.box == BLOCK and crowded.in_box == 3


def test_choose_points_refuses_a_negative_limit() -> None:
    with pytest.raises(InputError, match="limit: got -1"):
        choose_points(FRAME, limit=-1)


# --- next_mount ---------------------------------------------------------------------------
def test_next_mount_restores_the_view_only_when_the_base_map_changes() -> None:
    here, there = view(17, BLOCK), view(13, (39.9, -75.3, 40.1, -75.0))
    first = next_mount(None, key="k1", focus=None, view=None)
    assert first == Mount(key="k1", focus=None, view=None)
    # same base map: the same mount, so st_folium gets the same centre/zoom (a no-op)
    assert next_mount(first, key="k1", focus=None, view=here) is first
    # the base map changes (filters, hotspots): mounted afresh where the user was
    moved = next_mount(first, key="k2", focus=None, view=here)
    assert moved.view == here and moved.key == "k2"
    assert next_mount(moved, key="k2", focus=None, view=there) is moved
    # a hotspot picked, or back to the whole city: the map opens on that, not on the view
    picked = next_mount(moved, key="k2", focus="H1", view=there)
    assert picked == Mount(key="k2", focus="H1", view=None)
    assert next_mount(picked, key="k3", focus=None, view=here).view is None
