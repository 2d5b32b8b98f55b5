"""Segment positioning from intersection nodes, and centerline layers with geometry."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import LineString

from geo.geocode.geocoder import Geocoder
from geo.geocode.positioning import position_segments
from geo.geocode.streets import CenterlineFields, segments_from_centerline
from hotspot311.errors import InputError


def _grid() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A street 'MAIN ST' (code 1) crossed by 1ST..4TH ST (codes 11..14) every 400 ft."""
    nodes = pd.DataFrame({"node_id": [1, 2, 3, 4], "code_1": [1, 1, 1, 1],
                          "code_2": [11, 12, 13, 14], "x": [400.0, 800, 1200, 1600],
                          "y": [0.0, 0, 0, 0]})
    ranges = pd.DataFrame({
        "seg_id": [10, 20, 30], "street_code": [1, 1, 1], "predir": "", "name": "MAIN",
        "suffix": "ST", "postdir": "", "l_from": [101, 201, 301], "l_to": [199, 299, 399],
        "r_from": [100, 200, 300], "r_to": [198, 298, 398]})
    return ranges, nodes


def test_numbered_cross_streets_orient_the_blocks() -> None:
    ranges, nodes = _grid()
    # list the nodes in reverse so the ordering has to be recovered
    segs, stats = position_segments(ranges, nodes.iloc[::-1])
    assert stats.n_positioned == 3
    starts = [g.coords[0][0] for g in segs.geometry]
    ends = [g.coords[-1][0] for g in segs.geometry]
    np.testing.assert_allclose(starts, [400, 800, 1200])
    np.testing.assert_allclose(ends, [800, 1200, 1600])


def test_unanchored_street_uses_the_directional_prefix() -> None:
    ranges, nodes = _grid()
    nodes = nodes.assign(code_2=[91, 92, 93, 94], x=0.0, y=[400.0, 800, 1200, 1600])
    ranges = ranges.assign(predir="S")
    segs, _ = position_segments(ranges, nodes)
    # S streets count upwards going south: the 100 block is the northernmost
    assert segs.geometry.iloc[0].coords[0][1] == pytest.approx(1600)


def test_philadelphia_positions(philly: Geocoder) -> None:
    stats = philly.stats
    assert stats is not None
    print(f"\n{stats}")
    assert stats.n_segments == 41_271
    assert stats.n_positioned + stats.n_inferred >= 0.9 * stats.n_addressed


def _tiger() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({
        "FULLNAME": ["Main St", "Main St", "Oak Ave", "Oak Ave"],
        "LFROMADD": ["101", "201", "1", "101"], "LTOADD": ["199", "299", "99", "199"],
        "RFROMADD": ["100", "200", "2", "102"], "RTOADD": ["198", "298", "98", "198"],
    }, geometry=[LineString([(0, 0), (100, 0)]), LineString([(100, 0), (200, 0)]),
                 LineString([(100, -50), (100, 0)]), LineString([(100, 0), (100, 50)])],
        crs="EPSG:32618")


def test_tiger_centerline_geocodes() -> None:
    g = Geocoder.from_centerline(_tiger(), city="Springfield", state="PA", side_offset_m=5)
    out = g.geocode(pd.Series(["150 Main Street", "151 main st", "Main St & Oak Ave",
                               "150 Main St, Shelbyville, PA"], index=[7, 8, 9, 10]))
    assert list(out.index) == [7, 8, 9, 10]
    assert list(out["match_type"]) == ["range", "range", "intersection", "unmatched"]
    assert out.loc[10, "reason"] == "outside_city"
    # 150 is half way along the first segment, right (even) side: south of a west-east line
    np.testing.assert_allclose(out.loc[7, ["x", "y"]].to_numpy(float), [50.5, -5], atol=1)
    np.testing.assert_allclose(out.loc[8, ["x", "y"]].to_numpy(float), [50.5, 5], atol=1.5)
    np.testing.assert_allclose(out.loc[9, ["x", "y"]].to_numpy(float), [100, 0])


def test_centerline_with_own_field_names() -> None:
    gdf = _tiger().rename(columns={"LFROMADD": "lf", "LTOADD": "lt", "RFROMADD": "rf",
                                   "RTOADD": "rt", "FULLNAME": "street"})
    segs = segments_from_centerline(gdf, fields=CenterlineFields(
        l_from="lf", l_to="lt", r_from="rf", r_to="rt", name="street"))
    assert list(segs["name"]) == ["MAIN", "MAIN", "OAK", "OAK"]
    assert list(segs["suffix"]) == ["ST", "ST", "AVE", "AVE"]


def test_centerline_missing_fields_are_all_reported() -> None:
    gdf = _tiger().drop(columns=["LTOADD", "RTOADD"])
    with pytest.raises(InputError, match="2 problems") as err:
        segments_from_centerline(gdf)
    assert "LTOADD" in str(err.value) and "RTOADD" in str(err.value)


def test_runs_of_unplaced_blocks_are_spread_by_their_numbers() -> None:
    from geo.geocode.positioning import _infer_runs

    lo = np.array([100.0, 200, 300, 400])
    hi = np.array([198.0, 298, 398, 498])
    geoms: list[LineString | None] = [LineString([(0, 0), (400, 0)]), None, None,
                                      LineString([(1200, 0), (1600, 0)])]
    how = np.array(["nodes", "", "", "nodes"], dtype=object)
    _infer_runs(lo, hi, np.arange(4), geoms, how, min_density=0.3, max_density=25)
    assert list(how) == ["nodes", "inferred", "inferred", "nodes"]
    assert geoms[1] is not None and geoms[2] is not None
    np.testing.assert_allclose(geoms[1].coords, [(400, 0), (800, 0)])
    np.testing.assert_allclose(geoms[2].coords, [(800, 0), (1200, 0)])
    # 200 numbers over 50,000 ft breaks the upper bound: left unpositioned
    far: list[LineString | None] = [geoms[0], None, None, LineString([(50400, 0),
                                                                      (50800, 0)])]
    how = np.array(["nodes", "", "", "nodes"], dtype=object)
    _infer_runs(lo, hi, np.arange(4), far, how, min_density=0.3, max_density=25)
    assert far[1] is None and far[2] is None


def _main_street(third: LineString) -> gpd.GeoDataFrame:
    lines = [LineString([(i * 400, 0), (i * 400 + 400, 0)]) for i in range(5)]
    lines[2] = third
    return gpd.GeoDataFrame({
        "seg_id": range(5), "street_code": 1, "predir": "", "name": "MAIN", "suffix": "ST",
        "postdir": "", "l_from": [101, 201, 301, 401, 501], "l_to": [199, 299, 399, 499, 599],
        "r_from": [100, 200, 300, 400, 500], "r_to": [198, 298, 398, 498, 598],
        "position": "nodes"}, geometry=lines, crs="EPSG:2272")


def test_a_block_far_from_both_neighbours_is_not_trusted() -> None:
    nodes = pd.DataFrame({"node_id": [1], "code_1": [1], "code_2": [1], "x": [0.0],
                          "y": [0.0]})
    ok = Geocoder(_main_street(LineString([(800, 0), (1200, 0)])), nodes,
                  city="Springfield", state="PA")
    assert ok.n_isolated == 0
    assert ok.geocode_one("350 Main St")["match_type"] == "range"
    bad = Geocoder(_main_street(LineString([(800, 20000), (1200, 20000)])), nodes,
                   city="Springfield", state="PA")
    assert bad.n_isolated == 1
    r = bad.geocode_one("350 Main St")
    assert (r["match_type"], r["reason"]) == ("unmatched", "unpositioned")
    assert bad.geocode_one("250 Main St")["match_type"] == "range"
