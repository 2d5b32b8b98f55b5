"""Covering tests of (point, polygon) pairs (:func:`geo.joins.covers_pairs`) against GEOS."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from geo.joins import _NEAR, _pair_states, _Rings, covers_pairs, subdivide
from layers.profile import CityProfile
from layers.registry import load_layer


def _shapes() -> np.ndarray:
    """A square with a square hole, a concave L, a multipolygon, a ring with a repeated
    and a collinear vertex, a self-crossing bow tie (not valid) and a line (not a
    polygon): the last two go to GEOS whole."""
    holed = shapely.Polygon([(0, 0), (10, 0), (10, 10), (0, 10)],
                            [[(3, 3), (7, 3), (7, 7), (3, 7)]])
    ell = shapely.Polygon([(20, 0), (30, 0), (30, 4), (24, 4), (24, 10), (20, 10)])
    multi = shapely.MultiPolygon([shapely.box(40, 0, 44, 4), shapely.box(46, 6, 50, 10)])
    odd = shapely.Polygon([(60, 0), (65, 0), (65, 0), (70, 0), (70, 10), (60, 10)])
    bowtie = shapely.Polygon([(80, 0), (90, 10), (90, 0), (80, 10)])
    line = shapely.LineString([(100, 0), (110, 10)])
    return np.array([holed, ell, multi, odd, bowtie, line], dtype=object)


def _points_on_and_near(shapes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random points over the shapes' extent, every vertex, edge midpoints, and points a
    hair's breadth off the edges: the cases where a point on a boundary counts."""
    xmin, ymin, xmax, ymax = shapely.total_bounds(shapes)
    random = np.column_stack([rng.uniform(xmin - 1, xmax + 1, 4000),
                              rng.uniform(ymin - 1, ymax + 1, 4000)])
    vertices = shapely.get_coordinates(shapes)
    middles = (vertices[:-1] + vertices[1:]) / 2
    off = middles + rng.normal(0, 1e-7, middles.shape)
    return np.vstack([random, vertices, middles, off])


def _all_pairs(n_points: int, n_shapes: int) -> tuple[np.ndarray, np.ndarray]:
    point_of, shape_of = np.meshgrid(np.arange(n_points), np.arange(n_shapes), indexing="ij")
    return point_of.ravel(), shape_of.ravel()


@pytest.mark.parametrize("seed", range(3))
def test_every_pair_is_geos_covered_by(seed: int) -> None:
    shapes = _shapes()
    xy = _points_on_and_near(shapes, np.random.default_rng(seed))
    points = shapely.points(xy)
    point_of, shape_of = _all_pairs(len(points), len(shapes))
    got = covers_pairs(shapes, shape_of, points, point_of, xy[:, 0], xy[:, 1])
    assert got.tolist() == shapely.covered_by(points[point_of], shapes[shape_of]).tolist()
    assert got.any() and not got.all()


def test_the_compiled_test_decides_the_clear_pairs_and_leaves_the_rest() -> None:
    """Points off every edge of a valid polygon are decided, as GEOS would; points on an
    edge or a vertex, and every pair of a polygon that is not valid, are left to GEOS."""
    shapes = _shapes()
    xy = _points_on_and_near(shapes, np.random.default_rng(5))
    point_of, shape_of = _all_pairs(len(xy), len(shapes))
    rings = _Rings(shapes)
    assert rings.fast.tolist() == [True, True, True, True, False, False]
    state = np.full(len(point_of), _NEAR, dtype=np.int8)
    _pair_states(xy[:, 0], xy[:, 1], point_of, shape_of, rings.fast, rings.ring_start,
                 rings.coord_start, rings.x, rings.y, rings.margin, state)
    decided = state != _NEAR
    expected = shapely.covered_by(shapely.points(xy)[point_of], shapes[shape_of])
    assert (state[decided] == expected[decided]).all()
    assert not decided[~rings.fast[shape_of]].any()
    on_vertex = np.isin(np.arange(len(xy)), np.arange(4000, 4000 + len(
        shapely.get_coordinates(shapes))))
    assert not decided[on_vertex[point_of] & rings.fast[shape_of]
                       & expected].any()  # a vertex of the polygon tested is never decided
    assert decided[rings.fast[shape_of]].mean() > 0.95


def test_real_boundary_pieces_and_their_vertices(phila: CityProfile) -> None:
    """A real layer's subdivided areas, tested at random points and at the vertices of
    their boundaries, where neighbouring areas both cover the point."""

    spec = next(s for s in phila.layers if s.key == "council_district")
    areas = load_layer(spec, crs=phila.crs)
    pieces = np.array([p for g in areas.geometry for p in subdivide(g, max_vertices=64)],
                      dtype=object)
    rng = np.random.default_rng(11)
    xmin, ymin, xmax, ymax = shapely.total_bounds(pieces)
    vertices = shapely.get_coordinates(pieces)[::7]
    xy = np.vstack([np.column_stack([rng.uniform(xmin, xmax, 20_000),
                                     rng.uniform(ymin, ymax, 20_000)]), vertices])
    points = shapely.points(xy)
    point_of, piece_of = shapely.STRtree(pieces).query(points)
    got = covers_pairs(pieces, piece_of, points, point_of, xy[:, 0], xy[:, 1])
    assert got.tolist() == shapely.covered_by(points[point_of], pieces[piece_of]).tolist()
    covering = np.bincount(point_of[got], minlength=len(xy))
    assert (covering[20_000:] >= 1).all()  # each vertex by its own piece at least
    assert (covering[20_000:] >= 2).sum() > len(vertices) // 2  # mostly by a neighbour too


def test_no_pairs_or_no_polygons() -> None:
    nothing = np.zeros(0, dtype=np.int64)
    empty = np.zeros(0, dtype=object)
    assert covers_pairs(empty, nothing, empty, nothing, np.zeros(0), np.zeros(0)).tolist() == []
    square = np.array([shapely.box(0, 0, 1, 1)], dtype=object)
    assert covers_pairs(square, nothing, empty, nothing, np.zeros(0), np.zeros(0)).tolist() == []


def _edge_points(square: shapely.Polygon) -> tuple[np.ndarray, np.ndarray]:
    """The middles of the square's four edges and one of its corners."""
    xmin, ymin, xmax, ymax = square.bounds
    x = np.array([xmax, (xmin + xmax) / 2, xmin, (xmin + xmax) / 2, xmax])
    y = np.array([(ymin + ymax) / 2, ymax, (ymin + ymax) / 2, ymin, ymax])
    return x, y


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_piece_with_a_coordinate_not_finite_spoils_no_other(bad: float) -> None:
    """The margin is of the finite coordinates: a NaN in one piece made it NaN, and then
    no point was near any edge, so points on the square's boundary were decided by the
    crossing test alone (and found outside)."""
    square = shapely.box(0, 0, 2, 2)
    with np.errstate(invalid="ignore"):
        broken = shapely.Polygon([(5, 5), (6, 5), (6, bad), (5, 6)])
    shapes = np.array([square, broken], dtype=object)
    x, y = _edge_points(square)
    rings = _Rings(shapes)
    assert np.isfinite(rings.margin) and rings.fast.tolist() == [True, False]
    points = shapely.points(x, y)
    got = covers_pairs(shapes, np.zeros(len(x), dtype=np.intp), points, np.arange(len(x)), x, y)
    assert got.tolist() == [True] * len(x)


@pytest.mark.parametrize("scale", [1e9, 1e155, 1e160])
def test_huge_coordinates_are_left_to_geos(scale: float) -> None:
    """From about 1e154 a squared edge length overflows: such coordinates go to GEOS,
    which finds the boundary points covered."""
    square = shapely.box(0, 0, scale, scale)
    x, y = _edge_points(square)
    points = shapely.points(x, y)
    with np.errstate(over="ignore", invalid="ignore"):  # GEOS's own overflow, answered
        got = covers_pairs(np.array([square], dtype=object), np.zeros(len(x), dtype=np.intp),
                           points, np.arange(len(x)), x, y)
        want = shapely.covered_by(points, square)
    assert got.tolist() == want.tolist() == [True] * len(x)
