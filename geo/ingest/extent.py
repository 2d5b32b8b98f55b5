"""Point-in-extent tests for many points: a grid over the extent answers most of them.

A city extent is one polygon with thousands of vertices, and validation asks whether
each of a million coordinates lies in it. :func:`contains_points` cuts the extent's box
into a grid once per extent (kept for the process): a cell whose slightly enlarged box
lies inside the polygon without touching its boundary answers ``True`` for every point
in it, a cell whose enlarged box does not meet the polygon answers ``False``, and only
the points in the cells the boundary crosses are tested exactly. The answers are those
of :func:`shapely.contains_xy` (a point on the boundary is not contained).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

#: Cells per side of the grid.
GRID_CELLS: Final = 128
#: How much each cell's box is enlarged before it is classified, as a fraction of the
#: cell: a point that rounding puts in the cell next to its own is still answered right.
_MARGIN: Final = 1e-6

_OUTSIDE, _INSIDE, _EDGE = 0, 1, 2


@dataclass(frozen=True)
class _Grid:
    """The extent's grid: its box, cell size and one class per cell (row-major by y)."""

    x0: float
    y0: float
    width: float
    height: float
    classes: np.ndarray


@lru_cache(maxsize=8)
def _grid(extent: BaseGeometry) -> _Grid:
    xmin, ymin, xmax, ymax = extent.bounds
    n = GRID_CELLS
    width = (xmax - xmin) / n or 1.0
    height = (ymax - ymin) / n or 1.0
    ix, iy = np.meshgrid(np.arange(n), np.arange(n))
    pad_x, pad_y = width * _MARGIN, height * _MARGIN
    boxes = shapely.box(xmin + ix.ravel() * width - pad_x, ymin + iy.ravel() * height - pad_y,
                        xmin + (ix.ravel() + 1) * width + pad_x,
                        ymin + (iy.ravel() + 1) * height + pad_y)
    classes = np.full(n * n, _EDGE, dtype=np.int8)
    classes[shapely.contains_properly(extent, boxes)] = _INSIDE
    classes[~shapely.intersects(extent, boxes)] = _OUTSIDE
    return _Grid(xmin, ymin, width, height, classes)


def contains_points(extent: BaseGeometry, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Whether each point (``x``, ``y``) lies in ``extent``, as :func:`shapely.contains_xy`.

    Parameters
    ----------
    extent
        A polygon (or any geometry with an area).
    x, y
        Coordinates in the extent's CRS; ``NaN`` is never contained.

    Returns
    -------
    numpy.ndarray
        One boolean per point.

    Examples
    --------
    >>> square = shapely.box(0, 0, 10, 10)
    >>> contains_points(square, np.array([5.0, 10.0, 11.0]), np.array([5.0, 5.0, 5.0])).tolist()
    [True, False, False]
    """
    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")
    out = np.zeros(len(x), dtype=bool)
    if extent.is_empty or len(x) == 0:
        return out
    shapely.prepare(extent)  # before the grid: an equal extent object may find it kept
    grid = _grid(extent)
    n = GRID_CELLS
    with np.errstate(invalid="ignore"):
        fx = (x - grid.x0) / grid.width
        fy = (y - grid.y0) / grid.height
        in_box = (fx >= 0) & (fx <= n) & (fy >= 0) & (fy <= n)
    at = np.flatnonzero(in_box)
    cell = (np.minimum(fy[at].astype(np.int64), n - 1) * n
            + np.minimum(fx[at].astype(np.int64), n - 1))
    kind = grid.classes[cell]
    out[at[kind == _INSIDE]] = True
    edge = at[kind == _EDGE]
    if len(edge):
        out[edge] = shapely.contains_xy(extent, x[edge], y[edge])
    return out
