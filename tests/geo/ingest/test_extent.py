"""The extent grid answers as shapely's exact point-in-polygon test, on the real city."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from geo.ingest.extent import GRID_CELLS, contains_points
from layers.profile import load_profile


def _near_boundary(extent: shapely.Polygon, rng: np.random.Generator,
                   n: int) -> tuple[np.ndarray, np.ndarray]:
    """Points on, and a hair off, the extent's boundary, and on the grid's lines."""
    ring = shapely.get_coordinates(extent.exterior)
    picks = ring[rng.integers(0, len(ring), n)]
    jitter = rng.choice([0.0, 1e-12, -1e-12, 1e-7, -1e-7], size=(n, 2))
    xmin, ymin, xmax, ymax = extent.bounds
    lines_x = xmin + (xmax - xmin) * rng.integers(0, GRID_CELLS + 1, n) / GRID_CELLS
    lines_y = ymin + (ymax - ymin) * rng.integers(0, GRID_CELLS + 1, n) / GRID_CELLS
    x = np.concatenate([picks[:, 0] + jitter[:, 0], lines_x, picks[:, 0]])
    y = np.concatenate([picks[:, 1] + jitter[:, 1], rng.uniform(ymin, ymax, n), lines_y])
    return x, y


def test_grid_answers_as_contains_xy_on_the_city_extent() -> None:
    extent = load_profile("philadelphia").extent
    rng = np.random.default_rng(11)
    xmin, ymin, xmax, ymax = extent.bounds
    wide = rng.uniform([xmin - 0.05, ymin - 0.05], [xmax + 0.05, ymax + 0.05], (200_000, 2))
    bx, by = _near_boundary(extent, rng, 20_000)
    x = np.concatenate([wide[:, 0], bx, [np.nan, np.inf, xmin, xmax, -np.inf]])
    y = np.concatenate([wide[:, 1], by, [ymin, 40.0, np.nan, ymax, 39.9]])
    got = contains_points(extent, x, y)
    expected = shapely.contains_xy(extent, x, y)
    assert got.dtype == bool and len(got) == len(x)
    assert np.array_equal(got, expected)
    assert got.any() and not got.all()  # both answers occur


@pytest.mark.parametrize("shape", [shapely.box(0, 0, 10, 10),
                                   shapely.Point(5, 5).buffer(4),
                                   shapely.Polygon([(0, 0), (10, 0), (0, 10)],
                                                   holes=[[(1, 1), (3, 1), (1, 3)]])],
                         ids=["square", "disc", "triangle with a hole"])
def test_grid_answers_as_contains_xy_on_simple_shapes(shape: shapely.Polygon) -> None:
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-1, 11, 50_000), np.arange(0, 10.5, 0.5)])
    y = np.concatenate([rng.uniform(-1, 11, 50_000), np.full(21, 1.0)])
    assert np.array_equal(contains_points(shape, x, y), shapely.contains_xy(shape, x, y))


def test_grid_on_nothing() -> None:
    assert contains_points(shapely.box(0, 0, 1, 1), np.array([]), np.array([])).size == 0
    assert not contains_points(shapely.Polygon(), np.array([0.5]), np.array([0.5])).any()
