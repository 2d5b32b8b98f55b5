"""Point-in-polygon joins of requests to boundary layers.

The rule for a point on a shared edge: every area whose polygon *covers* the point
(interior or boundary) is a candidate, and the candidate with the lowest code in plain
code-point order (PostgreSQL ``COLLATE "C"``) wins. A point no area covers gets ``None``.
The PostGIS store applies the same rule, so both stores give the same answer.

Speed comes from subdividing each polygon into pieces of at most
:data:`MAX_VERTICES` vertices (as ``ST_Subdivide`` does) before building the STRtree:
each candidate test is then against a small piece, not a district with thousands of
vertices. Pieces of one area share only that area's code, so cutting changes no answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from hotspot311.errors import CRSMismatchError

MAX_VERTICES: Final = 64


#: Cells per side of the lookup grid laid over a layer's bounds.
GRID_CELLS: Final = 384

_EXACT: Final = -2  # cell state: some area boundary crosses the cell
_NONE: Final = -1  # cell state: no area touches the cell


@dataclass(frozen=True)
class AreaIndex:
    """A spatial index over one layer's subdivided polygons.

    Besides the STRtree over the pieces, a grid of cells over the layer's bounds records
    for each cell either the one area whose piece contains the whole cell and which no
    other area touches, or that no area touches the cell, or that the cell needs the
    exact test. Most points are answered by the grid; only points in cells crossed by a
    boundary are tested against the pieces.

    Attributes
    ----------
    codes
        Area codes, sorted in code-point order.
    piece_rank
        For each piece, the position of its area's code in ``codes``.
    tree
        STRtree over the pieces.
    crs
        CRS of the pieces.
    origin
        ``(x0, y0)`` of the grid's lower-left corner.
    cell
        Cell size in CRS units.
    cells
        ``(ny, nx)`` int32 states: a code rank, ``-1`` (no area) or ``-2`` (exact test).
    """

    codes: np.ndarray
    piece_rank: np.ndarray
    tree: shapely.STRtree
    crs: object
    origin: tuple[float, float] = (0.0, 0.0)
    cell: float = 1.0
    cells: np.ndarray = field(default_factory=lambda: np.full((1, 1), _EXACT, dtype=np.int32))


def build_index(areas: gpd.GeoDataFrame, *, max_vertices: int = MAX_VERTICES) -> AreaIndex:
    """Subdivide a layer's polygons and index the pieces.

    Parameters
    ----------
    areas
        ``code`` and polygon ``geometry`` columns (see :func:`layers.registry.load_layer`).
    max_vertices
        Largest piece, in vertices.

    Returns
    -------
    AreaIndex
        The index, ready for :func:`locate`.
    """
    order = np.argsort(areas["code"].to_numpy(dtype=str), kind="stable")
    codes = areas["code"].to_numpy(dtype=object)[order]
    pieces: list[shapely.Geometry] = []
    ranks: list[int] = []
    for rank, geom in enumerate(areas.geometry.to_numpy()[order]):
        parts = subdivide(geom, max_vertices=max_vertices)
        pieces.extend(parts)
        ranks.extend([rank] * len(parts))
    geoms = np.asarray(pieces, dtype=object)
    shapely.prepare(geoms)
    piece_rank = np.asarray(ranks, dtype=np.int64)
    tree = shapely.STRtree(geoms, node_capacity=8)
    origin, cell, cells = _classify_cells(geoms, piece_rank, tree)
    return AreaIndex(codes=codes, piece_rank=piece_rank, tree=tree, crs=areas.crs,
                     origin=origin, cell=cell, cells=cells)


def _classify_cells(
    pieces: np.ndarray, piece_rank: np.ndarray, tree: shapely.STRtree
) -> tuple[tuple[float, float], float, np.ndarray]:
    """Lay a grid over the pieces and decide which cells need no exact test."""
    if len(pieces) == 0:
        return (0.0, 0.0), 1.0, np.full((1, 1), _NONE, dtype=np.int32)
    xmin, ymin, xmax, ymax = shapely.total_bounds(pieces)
    cell = max(xmax - xmin, ymax - ymin) / GRID_CELLS or 1.0
    x0, y0 = xmin - cell, ymin - cell  # one empty cell of margin on every side
    nx = int(np.ceil((xmax - x0) / cell)) + 2
    ny = int(np.ceil((ymax - y0) / cell)) + 2
    iy, ix = np.divmod(np.arange(nx * ny), nx)
    boxes = shapely.box(x0 + ix * cell, y0 + iy * cell, x0 + (ix + 1) * cell, y0 + (iy + 1) * cell)
    cell_idx, piece_idx = tree.query(boxes, predicate="intersects")
    states = np.full(nx * ny, _NONE, dtype=np.int32)
    if len(cell_idx):
        rank = piece_rank[piece_idx]
        lo = np.full(nx * ny, np.iinfo(np.int64).max)
        hi = np.full(nx * ny, -1)
        np.minimum.at(lo, cell_idx, rank)
        np.maximum.at(hi, cell_idx, rank)
        touched = hi >= 0
        states[touched] = _EXACT
        # one area only: resolved if one of its pieces contains the whole cell
        single = touched & (lo == hi)
        cand = single[cell_idx]
        inside = np.zeros(len(cell_idx), dtype=bool)
        inside[cand] = shapely.contains(pieces[piece_idx[cand]], boxes[cell_idx[cand]])
        full = np.zeros(nx * ny, dtype=bool)
        full[cell_idx[inside]] = True
        states[full] = lo[full].astype(np.int32)
    return (float(x0), float(y0)), float(cell), states.reshape(ny, nx)


def subdivide(geom: shapely.Geometry, *, max_vertices: int = MAX_VERTICES) -> list[shapely.Geometry]:
    """Cut a polygon into pieces of at most ``max_vertices`` vertices.

    The pieces cover exactly the input (they overlap only on the cut lines).

    Parameters
    ----------
    geom
        A Polygon or MultiPolygon.
    max_vertices
        Largest piece, in vertices.

    Returns
    -------
    list
        Polygons whose union is ``geom``.
    """
    out: list[shapely.Geometry] = []
    stack = [g for g in shapely.get_parts(geom) if not g.is_empty]
    while stack:
        g = stack.pop()
        if shapely.get_num_coordinates(g) <= max_vertices:
            out.append(g)
            continue
        xmin, ymin, xmax, ymax = g.bounds
        if xmax - xmin >= ymax - ymin:
            mid = (xmin + xmax) / 2
            halves = (shapely.box(xmin, ymin, mid, ymax), shapely.box(mid, ymin, xmax, ymax))
        else:
            mid = (ymin + ymax) / 2
            halves = (shapely.box(xmin, ymin, xmax, mid), shapely.box(xmin, mid, xmax, ymax))
        for half in halves:
            piece = shapely.intersection(g, half)
            for part in shapely.get_parts(piece):
                if part.geom_type == "Polygon" and not part.is_empty and part.area > 0:
                    stack.append(part)
    return out


def locate(x: np.ndarray, y: np.ndarray, index: AreaIndex) -> np.ndarray:
    """Find the area code covering each point.

    Parameters
    ----------
    x, y
        Point coordinates in the index's CRS; NaN gives ``None``.
    index
        From :func:`build_index`.

    Returns
    -------
    numpy.ndarray
        Object array of codes (``None`` where no area covers the point).
    """
    n = len(x)
    result = np.full(n, None, dtype=object)
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any() or len(index.codes) == 0:
        return result
    ny, nx = index.cells.shape
    with np.errstate(invalid="ignore"):
        gx = np.floor((x - index.origin[0]) / index.cell)
        gy = np.floor((y - index.origin[1]) / index.cell)
    in_grid = ok & (gx >= 0) & (gx < nx) & (gy >= 0) & (gy < ny)
    state = np.full(n, _NONE, dtype=np.int32)
    state[in_grid] = index.cells[gy[in_grid].astype(np.intp), gx[in_grid].astype(np.intp)]
    resolved = state >= 0
    result[resolved] = index.codes[state[resolved]]
    where = np.flatnonzero(state == _EXACT)
    if len(where) == 0:
        return result
    points = shapely.points(x[where], y[where])
    pt_idx, piece_idx = index.tree.query(points, predicate="covered_by")
    if len(pt_idx) == 0:
        return result
    rank = index.piece_rank[piece_idx]
    # lowest code rank per point: sort by (point, rank), take the first of each point
    order = np.lexsort((rank, pt_idx))
    pt_sorted = pt_idx[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = pt_sorted[1:] != pt_sorted[:-1]
    result[where[pt_sorted[first]]] = index.codes[rank[order][first]]
    return result


def join_layers(
    points: gpd.GeoDataFrame, indexes: dict[str, AreaIndex]
) -> pd.DataFrame:
    """Join points to several layers: one code column per layer key.

    Parameters
    ----------
    points
        Point geometries (rows with empty or missing geometry get ``None``).
    indexes
        Layer key → :class:`AreaIndex`, all in the points' CRS.

    Returns
    -------
    pandas.DataFrame
        Same index as ``points``, one object column per key.

    Raises
    ------
    CRSMismatchError
        When a layer's CRS differs from the points' CRS; joins never reproject silently.
    """
    geoms = points.geometry.to_numpy()
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    x = np.full(len(points), np.nan)
    y = np.full(len(points), np.nan)
    x[~missing] = shapely.get_x(geoms[~missing])
    y[~missing] = shapely.get_y(geoms[~missing])
    out = {}
    for key, index in indexes.items():
        if index.crs is not None and points.crs is not None and index.crs != points.crs:
            raise CRSMismatchError(
                f"layer {key!r}: CRS {index.crs} differs from the points' CRS {points.crs}; "
                "reproject one of them first"
            )
        out[key] = locate(x, y, index)
    return pd.DataFrame(out, index=points.index)
