"""Point-in-polygon joins: hand-drawn squares, the shared-edge rule, and real layers."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geo import joins
from geo.joins import (
    INDEX_FORMAT,
    build_index,
    index_from_bytes,
    index_to_bytes,
    join_layers,
    locate,
    locate_layers,
    locate_ranks,
    ranks_text,
    subdivide,
)
from hotspot311.errors import CRSMismatchError
from layers.profile import CityProfile
from layers.registry import load_layer
from tests.conftest import DATA


def squares() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"code": ["B", "A", "C"], "name": ["b", "a", "c"]},
        geometry=[shapely.box(1, 0, 2, 1), shapely.box(0, 0, 1, 1), shapely.box(5, 5, 6, 6)],
        crs="EPSG:32618",
    )


def test_inside_edge_corner_outside() -> None:
    index = build_index(squares())
    x = np.array([0.5, 1.5, 1.0, 1.0, 9.0, np.nan, 0.0, 5.0])
    y = np.array([0.5, 0.5, 0.5, 1.0, 9.0, 0.5, 0.0, 5.0])
    got = locate(x, y, index).tolist()
    # shared edge x=1 (and its corner) -> the lowest code "A"; outer boundary counts as inside
    assert got == ["A", "B", "A", "A", None, None, "A", "C"]


def test_edge_rule_uses_code_point_order() -> None:
    frame = gpd.GeoDataFrame(
        {"code": ["a", "Z", "10", "9"], "name": ["", "", "", ""]},
        geometry=[shapely.box(0, 0, 1, 1)] * 4,
        crs="EPSG:32618",
    )
    # code-point order: "10" < "9" < "Z" < "a"
    assert locate(np.array([0.5]), np.array([0.5]), build_index(frame)).tolist() == ["10"]


def test_subdivide_covers_exactly() -> None:
    circle = shapely.Point(0, 0).buffer(100, quad_segs=200)
    pieces = subdivide(circle, max_vertices=32)
    assert len(pieces) > 10
    assert all(shapely.get_num_coordinates(p) <= 40 for p in pieces)
    assert shapely.union_all(pieces).symmetric_difference(circle).area < 1e-6


def test_subdivided_join_equals_plain_covers(phila: CityProfile) -> None:
    spec = next(s for s in phila.layers if s.key == "neighborhood")
    areas = load_layer(spec, crs=phila.crs)
    rng = np.random.default_rng(7)
    xmin, ymin, xmax, ymax = areas.total_bounds
    x = rng.uniform(xmin, xmax, 3000)
    y = rng.uniform(ymin, ymax, 3000)
    got = locate(x, y, build_index(areas))
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y), crs=phila.crs)
    plain = gpd.sjoin(pts, areas, predicate="covered_by", how="left")
    expected = plain.sort_values("code").groupby(level=0)["code"].first().reindex(pts.index)
    assert (pd.Series(got).fillna("-") == expected.fillna("-").to_numpy()).all()
    assert pd.isna(got).sum() > 100  # the bounding box holds points outside the city


def test_join_refuses_crs_mismatch() -> None:
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy([0.5], [0.5]), crs="EPSG:4326")
    with pytest.raises(CRSMismatchError, match="differs from the points' CRS"):
        join_layers(pts, {"square": build_index(squares())})


def test_loney_street_matches_the_citys_answer(phila: CityProfile) -> None:
    """1001 LONEY ST: the City's geocoder gives its districts (data/.../geocoder)."""
    record = pd.read_csv(
        DATA / "geocoder" / "ais-address-record-1001-loney-st.csv", dtype=str
    ).iloc[0]
    pt = gpd.GeoDataFrame(
        geometry=gpd.points_from_xy([float(record["geocode_lon"])], [float(record["geocode_lat"])]),
        crs="EPSG:4326",
    ).to_crs(phila.crs)
    indexes = {s.key: build_index(load_layer(s, crs=phila.crs)) for s in phila.layers}
    got = join_layers(pt, indexes).iloc[0].to_dict()
    assert got["zip"] == record["zip_code"] == "19111"
    assert got["council_district"] == record["council_district_2024"] == "10"
    assert got["police_district"] == str(int(record["police_district"])) == "2"
    assert got["planning_district"] == record["planning_district"] == "Central Northeast"
    assert got["census_tract"] == record["census_tract_2010"] == "034000"
    assert got["neighborhood"] == "Fox Chase"
    assert got["li_district"].upper() == record["li_district"] == "EAST"


def test_index_kept_as_bytes_gives_the_same_answers(phila: CityProfile) -> None:
    spec = next(s for s in phila.layers if s.key == "census_tract")
    areas = load_layer(spec, crs=phila.crs)
    index = build_index(areas)
    kept = index_from_bytes(index_to_bytes(index))
    assert kept is not None
    rng = np.random.default_rng(19)
    x0, y0, x1, y1 = areas.total_bounds
    x, y = rng.uniform(x0, x1, 100_000), rng.uniform(y0, y1, 100_000)
    assert (locate(x, y, kept) == locate(x, y, index)).all()
    assert kept.crs == index.crs
    assert (kept.cells == index.cells).all() and kept.origin == index.origin


def test_layers_located_side_by_side_equal_one_at_a_time(phila: CityProfile) -> None:
    """The threaded multi-layer locate gives every layer's ranks as the plain call does,
    in the order of the layers, points on edges and outside the city included."""
    indexes = {s.key: build_index(load_layer(s, crs=phila.crs)) for s in phila.layers}
    rng = np.random.default_rng(23)
    areas = load_layer(phila.layers[0], crs=phila.crs)
    x0, y0, x1, y1 = areas.total_bounds
    pad = 2_000.0
    x = rng.uniform(x0 - pad, x1 + pad, 50_000)
    y = rng.uniform(y0 - pad, y1 + pad, 50_000)
    corners = shapely.get_coordinates(areas.geometry.boundary)[:5_000]
    x = np.concatenate([x, corners[:, 0], [np.nan]])
    y = np.concatenate([y, corners[:, 1], [0.0]])
    for threads in (None, 1, 3):
        got = locate_layers(x, y, indexes, threads=threads)
        assert list(got) == list(indexes)
        for key, index in indexes.items():
            expected = locate_ranks(x, y, index)
            assert (got[key] == expected).all(), (threads, key)
            assert (got[key] >= 0).any() and (got[key] == -1).any()
            text = ranks_text(got[key], index).to_pylist()
            assert text == [None if c is None else str(c) for c in locate(x, y, index)]


def test_index_of_another_format_or_garbage_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    data = index_to_bytes(build_index(squares()))
    assert index_from_bytes(data) is not None
    monkeypatch.setattr(joins, "INDEX_FORMAT", INDEX_FORMAT + "-next")
    assert index_from_bytes(data) is None
    monkeypatch.undo()
    assert index_from_bytes(b"not an index") is None
    assert index_from_bytes(data[: len(data) // 2]) is None


def test_pairs_tested_by_the_compiled_test_give_geos_answers(
        phila: CityProfile, monkeypatch: pytest.MonkeyPatch) -> None:
    """Enough points in boundary cells take the compiled covering test of each pair
    (:func:`geo.joins.covers_pairs`); the ranks are those of GEOS's predicate alone,
    for points on shared edges and corners too."""
    spec = next(s for s in phila.layers if s.key == "census_tract")
    areas = load_layer(spec, crs=phila.crs)
    index = build_index(areas)
    rng = np.random.default_rng(31)
    x0, y0, x1, y1 = areas.total_bounds
    corners = shapely.get_coordinates(areas.geometry.boundary)[::3]
    x = np.concatenate([rng.uniform(x0, x1, 30_000), corners[:, 0]])
    y = np.concatenate([rng.uniform(y0, y1, 30_000), corners[:, 1]])
    gx = np.floor((x - index.origin[0]) / index.cell).astype(np.intp)
    gy = np.floor((y - index.origin[1]) / index.cell).astype(np.intp)
    assert (index.cells[gy, gx] == joins._EXACT).sum() >= joins.FAST_COVERS_POINTS
    fast = locate_ranks(x, y, index)
    monkeypatch.setattr(joins, "FAST_COVERS_POINTS", len(x) + 1)
    assert (locate_ranks(x, y, index) == fast).all()
    assert (fast[30_000:] >= 0).all()  # every boundary vertex is covered by some tract


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_points_an_ulp_off_edges_on_grid_lines_get_geos_answers(seed: int) -> None:
    """Squares whose edges lie on the grid's own lines (the layer's left edge is one, its
    origin being a whole number of cells to the left), and points one and two ulps either
    side of every edge: a point's cell is found by a division that rounds, so a point just
    outside a whole cell could be given that cell's area. Every answer is GEOS's."""
    rng = np.random.default_rng(seed)
    for trial in range(40):
        a, b = rng.uniform(-3e6, 3e6, 2) if trial % 2 else rng.uniform(0, 1, 2)
        width = float(rng.choice([1.0, 1000.0, 12345.678, 0.3, 3e5]))
        cell = width / joins.GRID_CELLS
        x0 = a - cell * joins.COARSE
        steps = np.sort(rng.choice(np.arange(9, 8 + joins.GRID_CELLS), 6, replace=False))
        lines = x0 + steps * cell  # as _classify_cells computes its fine cells' corners
        xs = [a, *lines, a + width]
        boxes = [shapely.box(xs[i], b, xs[i + 1], b + width) for i in range(0, len(xs) - 1, 2)]
        frame = gpd.GeoDataFrame({"code": [f"A{i}" for i in range(len(boxes))]},
                                 geometry=boxes, crs="EPSG:32618")
        index = build_index(frame)
        edges = np.array(xs)
        up, down = np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf)
        px = np.concatenate([edges, up, down, np.nextafter(up, np.inf),
                             np.nextafter(down, -np.inf)])
        py = rng.uniform(b, b + width, len(px))
        got = locate_ranks(px, py, index)
        covered = np.column_stack([shapely.covered_by(shapely.points(px, py), box)
                                   for box in boxes])
        want = np.where(covered.any(axis=1), covered.argmax(axis=1), -1)
        assert got.tolist() == want.tolist(), (seed, trial)
