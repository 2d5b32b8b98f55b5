"""Point-in-polygon joins of requests to boundary layers.

The rule for a point on a shared edge: every area whose polygon *covers* the point
(interior or boundary) is a candidate, and the candidate with the lowest code in plain
code-point order (PostgreSQL ``COLLATE "C"``) wins. A point no area covers gets ``None``.
The PostGIS store applies the same rule, so both stores give the same answer.

Speed comes from subdividing each polygon into pieces of at most
:data:`MAX_VERTICES` vertices (as ``ST_Subdivide`` does) before building the STRtree:
each candidate test is then against a small piece, not a district with thousands of
vertices. Pieces of one area share only that area's code, so cutting changes no answer.
Points in cells no boundary crosses are answered by a grid; the others are tested
against each piece whose box holds them by :func:`covers_pairs`.

:func:`covers_pairs` gives GEOS's ``covered_by`` (interior or boundary) pair by pair, but
decides most pairs by a compiled crossing-number test: a point farther than a tiny
margin from every edge of a valid polygon is inside it exactly when a ray from it
crosses the polygon's rings an odd number of times, and that count cannot be upset by
rounding (the crossing tests compare coordinates without arithmetic, and the one
computed abscissa is farther from the point than the margin, which is a million times
the rounding error). Pairs whose point lies within the margin of an edge, polygons that
are not valid polygons or have a coordinate that is not finite, and coordinates beyond
1e150 (where squared lengths overflow) go to GEOS. Measured on this project's machine, the seven
Philadelphia layers' 1.8M candidate pairs of 1M requests: 0.3 s against 1.1 s by the
STRtree's predicate.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final

import geopandas as gpd
import numba
import numpy as np
import pandas as pd
import pyarrow as pa
import pyproj
import shapely

from hotspot311.errors import CRSMismatchError
from layers import geometry

MAX_VERTICES: Final = 64


#: Cells per side of the lookup grid laid over a layer's bounds.
GRID_CELLS: Final = 512
#: Fine cells per side of one coarse cell.
COARSE: Final = 8

#: From this many points in cells a boundary crosses, :func:`locate_ranks` tests each
#: (point, piece) pair by :func:`covers_pairs` instead of GEOS's predicate alone.
FAST_COVERS_POINTS: Final = 2_000

#: The margin around an edge, as a share of the largest coordinate of the polygons (at
#: a city's projected coordinates of about 3e6 feet: 3e-3 ft, while the rounding of the
#: distances computed is about 1e-9 ft).
MARGIN: Final = 1e-9

_NEAR: Final = -1  # pair state: the point is within the margin of an edge: GEOS decides
#: Coordinates beyond this leave the crossing test to GEOS: its squared edge lengths
#: would overflow (from about 1e154).
_LARGEST: Final = 1e150
_POLYGON_TYPES: Final = (3, 6)  # shapely type ids of Polygon and MultiPolygon

_EXACT: Final = -2  # cell state: some area boundary crosses the cell
_NONE: Final = -1  # cell state: no area touches the cell
#: A grid cell is classified with its box grown by this many ulps of the grid's largest
#: coordinate: far more than the rounding of a point's cell (a few ulps).
_PAD_ULPS: Final = 64


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
    return AreaIndex(
        codes=codes,
        piece_rank=piece_rank,
        tree=tree,
        crs=areas.crs,
        origin=origin,
        cell=cell,
        cells=cells,
    )


def _classify_cells(
    pieces: np.ndarray, piece_rank: np.ndarray, tree: shapely.STRtree
) -> tuple[tuple[float, float], float, np.ndarray]:
    """Lay a grid over the pieces and decide which cells need no exact test.

    Two levels: coarse cells of :data:`COARSE` fine cells a side are classified first,
    and only coarse cells that some boundary crosses are split into fine cells.
    """
    if len(pieces) == 0:
        return (0.0, 0.0), 1.0, np.full((1, 1), _NONE, dtype=np.int32)
    xmin, ymin, xmax, ymax = shapely.total_bounds(pieces)
    cell = max(xmax - xmin, ymax - ymin) / GRID_CELLS or 1.0
    big = cell * COARSE
    x0, y0 = xmin - big, ymin - big  # a margin of empty cells on every side
    cnx = int(np.ceil((xmax - x0) / big)) + 1
    cny = int(np.ceil((ymax - y0) / big)) + 1
    cy, cx = np.divmod(np.arange(cnx * cny), cnx)
    # a point is given its cell by floor((x - x0) / cell), which rounds: a point a few
    # ulps outside a cell's box can be given the cell. Each box is tested grown by far
    # more than that, so a cell is whole or empty only if its neighbourhood is too.
    pad = _PAD_ULPS * float(np.spacing(max(abs(x0), abs(y0), abs(x0 + cnx * big),
                                           abs(y0 + cny * big))))
    coarse = _classify_boxes(x0 + cx * big, y0 + cy * big, big, pad, pieces, piece_rank,
                             tree)
    states = np.repeat(np.repeat(coarse.reshape(cny, cnx), COARSE, axis=0), COARSE, axis=1)
    mixed = np.flatnonzero(coarse == _EXACT)
    if len(mixed):
        fy, fx = np.divmod(np.arange(COARSE * COARSE), COARSE)
        gx = (cx[mixed][:, None] * COARSE + fx[None, :]).ravel()
        gy = (cy[mixed][:, None] * COARSE + fy[None, :]).ravel()
        states[gy, gx] = _classify_boxes(
            x0 + gx * cell, y0 + gy * cell, cell, pad, pieces, piece_rank, tree
        )
    return (float(x0), float(y0)), float(cell), states


def _classify_boxes(
    bx: np.ndarray,
    by: np.ndarray,
    size: float,
    pad: float,
    pieces: np.ndarray,
    piece_rank: np.ndarray,
    tree: shapely.STRtree,
) -> np.ndarray:
    """State of each square cell with lower-left corner (bx, by), its box grown by
    ``pad`` on every side: a code rank when one area's piece contains the box and no
    other area touches it, -1 when no area touches it, -2 otherwise."""
    n = len(bx)
    boxes = geometry.boxes(bx - pad, by - pad, bx + size + pad, by + size + pad)
    cell_idx, piece_idx = tree.query(boxes, predicate="intersects")
    states = np.full(n, _NONE, dtype=np.int32)
    if len(cell_idx) == 0:
        return states
    rank = piece_rank[piece_idx]
    lo = np.full(n, np.iinfo(np.int64).max)
    hi = np.full(n, -1)
    np.minimum.at(lo, cell_idx, rank)
    np.maximum.at(hi, cell_idx, rank)
    states[hi >= 0] = _EXACT
    cand = ((hi >= 0) & (lo == hi))[cell_idx]
    inside = np.zeros(len(cell_idx), dtype=bool)
    inside[cand] = shapely.contains(pieces[piece_idx[cand]], boxes[cell_idx[cand]])
    full = np.zeros(n, dtype=bool)
    full[cell_idx[inside]] = True
    states[full] = lo[full].astype(np.int32)
    return states


def subdivide(
    geom: shapely.Geometry, *, max_vertices: int = MAX_VERTICES
) -> list[shapely.Geometry]:
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
    rank = locate_ranks(x, y, index)
    result = np.full(len(rank), None, dtype=object)
    found = rank >= 0
    result[found] = index.codes[rank[found]]
    return result


def locate_text(x: np.ndarray, y: np.ndarray, index: AreaIndex) -> pa.Array:
    """:func:`locate` as an Arrow string array (null where no area covers the point),
    built from the code ranks without a Python object per point."""
    return ranks_text(locate_ranks(x, y, index), index)


def locate_ranks(x: np.ndarray, y: np.ndarray, index: AreaIndex) -> np.ndarray:
    """Position in ``index.codes`` of the area covering each point, ``-1`` for none
    (the shared-edge rule: the lowest code covering the point)."""
    n = len(x)
    result = np.full(n, -1, dtype=np.int32)
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
    result[resolved] = state[resolved]
    where = np.flatnonzero(state == _EXACT)
    if len(where) == 0:
        return result
    points = geometry.points(x[where], y[where])
    if len(where) < FAST_COVERS_POINTS:
        pt_idx, piece_idx = index.tree.query(points, predicate="covered_by")
    else:  # the pieces whose box holds the point, then the exact test of each pair
        pt_idx, piece_idx = index.tree.query(points)
        kept = covers_pairs(index.tree.geometries, piece_idx, points, pt_idx,
                            x[where], y[where])
        pt_idx, piece_idx = pt_idx[kept], piece_idx[kept]
    if len(pt_idx) == 0:
        return result
    rank = index.piece_rank[piece_idx]
    # lowest code rank per point: sort by (point, rank), take the first of each point
    order = np.lexsort((rank, pt_idx))
    pt_sorted = pt_idx[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = pt_sorted[1:] != pt_sorted[:-1]
    result[where[pt_sorted[first]]] = rank[order][first]
    return result


def covers_pairs(polygons: np.ndarray, polygon_of: np.ndarray, points: np.ndarray,
                 point_of: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Whether ``polygons[polygon_of[k]]`` covers ``points[point_of[k]]``, for each k.

    Parameters
    ----------
    polygons
        Shapely geometries (polygons, or anything else, which GEOS tests).
    polygon_of, point_of
        The pairs: positions in ``polygons`` and in ``points``.
    points
        Shapely points, for the pairs GEOS decides.
    x, y
        The coordinates of ``points``.

    Returns
    -------
    numpy.ndarray
        One bool per pair: GEOS's ``covered_by`` of the point by the polygon.

    Examples
    --------
    >>> square = shapely.box(0, 0, 2, 2)
    >>> pts = shapely.points([1, 2, 3], [1, 1, 1])
    >>> covers_pairs(np.array([square]), np.zeros(3, dtype=np.intp), pts,
    ...              np.arange(3), np.array([1.0, 2.0, 3.0]), np.ones(3)).tolist()
    [True, True, False]
    """
    polygon_of = np.asarray(polygon_of, dtype=np.int64)
    point_of = np.asarray(point_of, dtype=np.int64)
    state = np.full(len(polygon_of), _NEAR, dtype=np.int8)
    if len(polygon_of) and len(polygons):
        rings = _Rings(polygons)
        _pair_states(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64),
                     point_of, polygon_of, rings.fast, rings.ring_start, rings.coord_start,
                     rings.x, rings.y, rings.margin, state)
    near = np.flatnonzero(state == _NEAR)
    if len(near):
        state[near] = shapely.covered_by(points[point_of[near]], polygons[polygon_of[near]])
    return state == 1


class _Rings:
    """Every ring of every polygon as flat coordinate arrays: polygon ``j``'s rings are
    ``ring_start[j]`` to ``ring_start[j + 1]``, ring ``r``'s closed coordinates
    ``coord_start[r]`` to ``coord_start[r + 1]``; ``fast[j]``: the crossing test holds
    for polygon ``j`` (a valid polygon or multipolygon, its coordinates finite, and no
    coordinate of any polygon beyond :data:`_LARGEST`); ``margin``: :data:`MARGIN` times
    the largest finite coordinate (at least 1)."""

    def __init__(self, polygons: np.ndarray) -> None:
        n = len(polygons)
        self.fast = (np.isin(shapely.get_type_id(polygons), _POLYGON_TYPES)
                     & shapely.is_valid(polygons))
        parts, part_of = shapely.get_parts(polygons, return_index=True)
        rings, ring_of = shapely.get_rings(parts, return_index=True)
        coords, coord_of = shapely.get_coordinates(rings, return_index=True)
        self.ring_start = np.searchsorted(part_of[ring_of], np.arange(n + 1)).astype(np.int64)
        self.coord_start = np.searchsorted(coord_of, np.arange(len(rings) + 1)).astype(np.int64)
        self.x = np.ascontiguousarray(coords[:, 0], dtype=np.float64)
        self.y = np.ascontiguousarray(coords[:, 1], dtype=np.float64)
        finite = np.isfinite(coords).all(axis=1)
        # a polygon with a NaN or infinite coordinate goes to GEOS, and takes no part in
        # the margin (a NaN margin would make no point near any edge)
        self.fast[part_of[ring_of[coord_of[~finite]]]] = False
        largest = float(np.abs(coords[finite]).max()) if finite.any() else 0.0
        if largest > _LARGEST:  # squared edge lengths would overflow: GEOS decides all
            self.fast[:] = False
        self.margin = MARGIN * max(largest, 1.0)


@numba.njit(cache=True, nogil=True)
def _pair_states(px: np.ndarray, py: np.ndarray, point_of: np.ndarray,
                 polygon_of: np.ndarray, fast: np.ndarray, ring_start: np.ndarray,
                 coord_start: np.ndarray, cx: np.ndarray, cy: np.ndarray, margin: float,
                 out: np.ndarray) -> None:  # pragma: no cover - compiled
    """``out[k]``: 1 when polygon ``polygon_of[k]`` covers point ``point_of[k]``, 0 when
    not, left at -1 when the point is within ``margin`` of one of its edges or the
    polygon is not ``fast``."""
    margin2 = margin * margin
    for k in range(len(point_of)):
        j = polygon_of[k]
        if not fast[j]:
            continue
        x = px[point_of[k]]
        y = py[point_of[k]]
        inside = False
        near = False
        for r in range(ring_start[j], ring_start[j + 1]):
            for c in range(coord_start[r], coord_start[r + 1] - 1):
                x1, y1, x2, y2 = cx[c], cy[c], cx[c + 1], cy[c + 1]
                if not (x < min(x1, x2) - margin or x > max(x1, x2) + margin
                        or y < min(y1, y2) - margin or y > max(y1, y2) + margin):
                    dx, dy = x2 - x1, y2 - y1
                    wx, wy = x - x1, y - y1
                    length2 = dx * dx + dy * dy
                    t = (wx * dx + wy * dy) / length2 if length2 > 0.0 else 0.0
                    t = min(max(t, 0.0), 1.0)
                    ex, ey = wx - t * dx, wy - t * dy
                    if ex * ex + ey * ey <= margin2:
                        near = True
                        break
                if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
                    inside = not inside
            if near:
                break
        if not near:
            out[k] = 1 if inside else 0


def locate_layers(x: np.ndarray, y: np.ndarray, indexes: Mapping[str, AreaIndex], *,
                  threads: int | None = None) -> dict[str, np.ndarray]:
    """:func:`locate_ranks` for several layers at once, the layers shared among threads.

    The work of a layer is NumPy and the STRtree's query, which release the GIL, so on
    a machine with several cores the layers run side by side.

    Parameters
    ----------
    x, y
        Point coordinates in the indexes' CRS; NaN gives ``-1``.
    indexes
        Layer key → :class:`AreaIndex`.
    threads
        At most this many threads (default: the cores this process may use, at most one
        per layer); ``1`` runs the layers one after another.

    Returns
    -------
    dict
        Layer key → int32 ranks into that index's ``codes`` (``-1``: no area), in the
        order of ``indexes``.
    """
    keys = list(indexes)
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
    threads = max(1, min(threads, len(keys)))
    if threads == 1:
        return {k: locate_ranks(x, y, indexes[k]) for k in keys}
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="locate") as pool:
        ranks = pool.map(lambda k: locate_ranks(x, y, indexes[k]), keys)
        return dict(zip(keys, ranks, strict=True))


def ranks_text(rank: np.ndarray, index: AreaIndex) -> pa.Array:
    """Ranks from :func:`locate_ranks` as an Arrow string array of codes (null for
    ``-1``), built without a Python object per point."""
    codes = pa.array([str(c) for c in index.codes], type=pa.string())
    ranks = pa.array(rank, mask=rank < 0, type=pa.int32())
    return pa.DictionaryArray.from_arrays(ranks, codes).cast(pa.string())


def join_layers(points: gpd.GeoDataFrame, indexes: dict[str, AreaIndex]) -> pd.DataFrame:
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


#: Changes whenever the index format or the parameters that shape it change, so that a
#: stored index made by other code is never used.
INDEX_FORMAT: Final = f"areaindex-2-v{MAX_VERTICES}-g{GRID_CELLS}-c{COARSE}"


def index_to_bytes(index: AreaIndex) -> bytes:
    """An :class:`AreaIndex` as bytes (NumPy ``.npz``, no pickle), for a store to keep.

    The pieces are kept as WKB; the STRtree is rebuilt from them on load (cheap: the
    costly parts, subdividing and classifying the grid, are what is kept).
    """
    pieces = shapely.to_wkb(np.asarray(index.tree.geometries), output_dimension=2)
    lengths = np.fromiter((len(w) for w in pieces), dtype=np.int64, count=len(pieces))
    crs = "" if index.crs is None else pyproj.CRS.from_user_input(index.crs).to_wkt()
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        format=np.array(INDEX_FORMAT),
        codes=np.array([str(c) for c in index.codes], dtype=np.str_),
        piece_rank=index.piece_rank,
        piece_wkb=np.frombuffer(b"".join(pieces), dtype=np.uint8),
        piece_len=lengths,
        crs=np.array(crs),
        origin=np.array(index.origin, dtype=np.float64),
        cell=np.array(index.cell, dtype=np.float64),
        cells=index.cells,
    )
    return buffer.getvalue()


def index_from_bytes(data: bytes) -> AreaIndex | None:
    """The :class:`AreaIndex` kept by :func:`index_to_bytes`; ``None`` when the bytes are
    of another format (made by another version) or cannot be read."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            if str(z["format"]) != INDEX_FORMAT:
                return None
            wkb = z["piece_wkb"].tobytes()
            ends = np.cumsum(z["piece_len"])
            starts = ends - z["piece_len"]
            geoms = shapely.from_wkb([wkb[s:e] for s, e in zip(starts, ends, strict=True)])
            crs_text = str(z["crs"])
            codes = np.asarray(z["codes"].tolist(), dtype=object)
            index = AreaIndex(
                codes=codes if len(codes) else np.zeros(0, dtype=object),
                piece_rank=z["piece_rank"].astype(np.int64),
                tree=shapely.STRtree(geoms, node_capacity=8),
                crs=pyproj.CRS.from_wkt(crs_text) if crs_text else None,
                origin=(float(z["origin"][0]), float(z["origin"][1])),
                cell=float(z["cell"]),
                cells=z["cells"].astype(np.int32),
            )
    except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile,
            shapely.errors.GEOSException):
        return None
    shapely.prepare(np.asarray(index.tree.geometries))
    return index
