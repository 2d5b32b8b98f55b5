"""Significance of hot spots: Getis-Ord Gi* on a hexagon grid or on areas, FDR-corrected.

Counts (or rates) per cell are tested with the local Getis-Ord Gi* statistic, the cell
itself included in its neighbourhood (``star``), binary weights: on the hexagon grid a
cell's neighbours are the six cells around it, on an area layer the areas it touches
(queen contiguity). z-scores are analytic (normal approximation); p-values are
two-sided, ``2·(1 − Φ(|z|))``, or, with ``permutations > 0``, ``min(1, 2·p_sim)`` from
esda's conditional randomization with the fixed ``seed``.

Multiple testing: the Benjamini–Hochberg false discovery rate correction, as ArcGIS's
Hot Spot Analysis does it. A cell is significant at level α when its BH-adjusted p-value
(q-value) is at most α; its confidence bin is ±3 (99 %), ±2 (95 %), ±1 (90 %) by the
smallest α met and the sign of z, 0 when not significant at 90 %.

Engine: PySAL ``esda.G_Local(star=True, transform="B")`` with ``libpysal`` weights when
installed (``engine="esda"``), else the same formula in numpy (``engine="numpy"``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import sparse, stats

from hotspot311.errors import InputError

#: (alpha, bin) pairs, strictest first.
LEVELS: Final = ((0.01, 3), (0.05, 2), (0.10, 1))
ENGINES: Final = ("auto", "esda", "numpy")


def hex_grid(
    bounds: tuple[float, float, float, float],
    *,
    size: float,
    crs: object,
    within: shapely.Geometry | None = None,
) -> gpd.GeoDataFrame:
    """A plain hexagon grid (pointy-top) covering ``bounds``.

    Parameters
    ----------
    bounds
        ``(minx, miny, maxx, maxy)`` in CRS units.
    size
        Distance between neighbouring cell centres (= width across flats), CRS units.
    crs
        The CRS of the bounds.
    within
        Keep only cells whose centre lies in this polygon (e.g. the city extent).

    Returns
    -------
    geopandas.GeoDataFrame
        ``cell_id`` (``r<row>c<col>``), ``cx``, ``cy`` and the hexagons.

    Raises
    ------
    InputError
        When ``size`` is not positive or the grid would exceed 2 million cells.

    Examples
    --------
    >>> g = hex_grid((0, 0, 100, 100), size=50, crs=None)
    >>> round(float(g.geometry.area.iloc[0]), 1)  # sqrt(3)/2 * size**2
    2165.1
    """
    if not (isinstance(size, int | float) and size > 0):
        raise InputError(f"grid size: got {size!r}; allowed: a number > 0")
    minx, miny, maxx, maxy = (float(b) for b in bounds)
    dy = size * math.sqrt(3) / 2
    radius = size / math.sqrt(3)
    n_rows = math.ceil((maxy - miny) / dy) + 2
    n_cols = math.ceil((maxx - minx) / size) + 2
    if n_rows * n_cols > 2_000_000:
        raise InputError(
            f"grid size: {size:g} gives {n_rows * n_cols:,} cells; allowed: up to 2,000,000"
        )
    grid_rows, grid_cols = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    rows, cols = grid_rows.ravel(), grid_cols.ravel()
    cx = minx - size / 2 + cols * size + (rows % 2) * size / 2
    cy = miny - dy / 2 + rows * dy
    if within is not None:
        keep = shapely.contains_xy(within, cx, cy)
        rows, cols, cx, cy = rows[keep], cols[keep], cx[keep], cy[keep]
    angles = np.deg2rad(30 + 60 * np.arange(6))
    ring = np.stack([
        cx[:, None] + radius * np.cos(angles)[None, :],
        cy[:, None] + radius * np.sin(angles)[None, :],
    ], axis=-1)
    hexes = shapely.polygons(ring)
    ids = [f"r{r}c{c}" for r, c in zip(rows.tolist(), cols.tolist(), strict=True)]
    return gpd.GeoDataFrame({"cell_id": ids, "cx": cx, "cy": cy},
                            geometry=gpd.GeoSeries(hexes, crs=crs), crs=crs)


def count_points(cells: gpd.GeoDataFrame, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Number of points in each cell (a point on a shared edge counts once)."""
    counts = np.zeros(len(cells), dtype="int64")
    if len(x) == 0 or len(cells) == 0:
        return counts
    tree = shapely.STRtree(cells.geometry.to_numpy())
    pidx, cidx = tree.query(shapely.points(np.asarray(x), np.asarray(y)), predicate="intersects")
    first = pd.Series(cidx).groupby(pidx).min()
    np.add.at(counts, first.to_numpy(), 1)
    return counts


def neighbours(geoms: Sequence[shapely.Geometry] | np.ndarray, *, hexagons: bool,
               size: float | None = None) -> list[list[int]]:
    """Neighbour lists: hexagons sharing an edge (centres ``size`` apart) or touching areas.

    Parameters
    ----------
    geoms
        Cells or areas.
    hexagons
        True for a grid from :func:`hex_grid` (then ``size`` is needed).
    size
        The grid's cell size.

    Returns
    -------
    list of list of int
        Sorted neighbour positions of each geometry, itself excluded.
    """
    arr = np.asarray(geoms, dtype=object)
    tree = shapely.STRtree(arr)
    if hexagons:
        if size is None:
            raise InputError("neighbours: a hexagon grid needs its size")
        centres = shapely.centroid(arr)
        left, right = tree.query(centres, predicate="dwithin", distance=size * 0.75)
        # centres of neighbours are size apart; within 0.75·size of a centre lie only the
        # neighbours' hexagons (their nearest edge is size/2 away, the next ring's ≥ size)
    else:
        left, right = tree.query(arr, predicate="intersects")
    out: list[list[int]] = [[] for _ in range(len(arr))]
    for a, b in zip(left.tolist(), right.tolist(), strict=True):
        if a != b:
            out[a].append(b)
    return [sorted(set(n)) for n in out]


def gi_star(
    values: np.ndarray,
    nbrs: list[list[int]],
    *,
    permutations: int = 0,
    seed: int = 0,
    engine: str = "auto",
) -> pd.DataFrame:
    """Local Getis-Ord Gi* with binary weights, the location itself included.

    Parameters
    ----------
    values
        Count or rate per location.
    nbrs
        Neighbour positions per location (see :func:`neighbours`).
    permutations
        Conditional randomization draws for pseudo p-values (0: analytic p only).
    seed
        Seed of the permutations.
    engine
        ``esda``, ``numpy`` or ``auto`` (esda when installed).

    Returns
    -------
    pandas.DataFrame
        ``z``, ``p`` (two-sided), ``p_fdr`` (Benjamini–Hochberg) and ``bin`` per location.

    Raises
    ------
    InputError
        For an unknown engine, mismatched lengths, or permutations without esda.
    """
    y = np.asarray(values, dtype="float64")
    problems = []
    if engine not in ENGINES:
        problems.append(f"engine: got {engine!r}; allowed: {', '.join(ENGINES)}")
    if len(nbrs) != len(y):
        problems.append(f"neighbours: got {len(nbrs)} lists for {len(y)} values")
    if not isinstance(permutations, int) or permutations < 0:
        problems.append(f"permutations: got {permutations!r}; allowed: a whole number >= 0")
    if problems:
        raise InputError(problems)
    if engine == "auto":
        engine = "esda" if _has_esda() else "numpy"
    if len(y) < 3 or np.var(y) == 0:
        z = np.zeros(len(y))
        p = np.ones(len(y))
    elif engine == "esda":
        z, p = _gi_esda(y, nbrs, permutations=permutations, seed=seed)
    else:
        if permutations:
            raise InputError("permutations: need the esda package (pip install esda)")
        z = gi_star_reference(y, nbrs)
        p = 2 * stats.norm.sf(np.abs(z))
    q = fdr_adjust(p)
    return pd.DataFrame({"z": z, "p": p, "p_fdr": q, "bin": confidence_bins(z, q)})


def gi_star_reference(values: np.ndarray, nbrs: list[list[int]]) -> np.ndarray:
    """Gi* z-scores by the textbook formula (Getis & Ord 1992; Ord & Getis 1995).

    ``z_i = (Σ_j w_ij x_j − x̄ W_i) / (s · sqrt((n S1_i − W_i²) / (n − 1)))`` with
    binary ``w_ij`` (``w_ii = 1``), ``W_i = Σ_j w_ij``, ``S1_i = Σ_j w_ij²``,
    ``x̄`` the mean and ``s`` the population standard deviation of all ``n`` values.
    """
    y = np.asarray(values, dtype="float64")
    n = len(y)
    w = _sparse(nbrs, n) + sparse.identity(n, format="csr")
    wi = np.asarray(w.sum(axis=1)).ravel()
    s1 = np.asarray(w.multiply(w).sum(axis=1)).ravel()
    mean = y.mean()
    s = math.sqrt((y**2).mean() - mean**2)
    return np.asarray((w @ y - mean * wi) / (s * np.sqrt((n * s1 - wi**2) / (n - 1))))


def fdr_adjust(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values), in the input order.

    Examples
    --------
    >>> fdr_adjust(np.array([0.01, 0.04, 0.03, 0.2])).round(4).tolist()
    [0.04, 0.0533, 0.0533, 0.2]
    """
    p = np.asarray(p, dtype="float64")
    m = len(p)
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum.accumulate(scaled[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(q_sorted, 1.0)
    return q


def confidence_bins(z: np.ndarray, q: np.ndarray) -> np.ndarray:
    """±3/±2/±1 for q ≤ 0.01/0.05/0.10 with the sign of z; 0 otherwise."""
    z, q = np.asarray(z, dtype="float64"), np.asarray(q, dtype="float64")
    level = np.zeros(len(z), dtype="int64")
    for alpha, b in reversed(LEVELS):
        level[q <= alpha] = b
    return np.asarray(level * np.sign(z), dtype="int64")


def hex_hotspots(
    x: np.ndarray,
    y: np.ndarray,
    *,
    size: float,
    crs: object,
    within: shapely.Geometry | None = None,
    permutations: int = 0,
    seed: int = 0,
    engine: str = "auto",
) -> gpd.GeoDataFrame:
    """Gi* of point counts on a hexagon grid (see :func:`hex_grid`, :func:`gi_star`).

    Parameters
    ----------
    x, y
        Point coordinates in the CRS.
    size
        Cell size in CRS units.
    crs
        The CRS.
    within
        Keep cells whose centre is inside (the grid covers the points' bounds otherwise).
    permutations, seed, engine
        See :func:`gi_star`.

    Returns
    -------
    geopandas.GeoDataFrame
        ``cell_id``, ``count``, ``z``, ``p``, ``p_fdr``, ``bin``, hexagons.
    """
    x, y = np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64")
    if within is not None:
        b = shapely.bounds(within).tolist()
        bounds = (b[0], b[1], b[2], b[3])
    elif len(x):
        bounds = (x.min(), y.min(), x.max(), y.max())
    else:
        raise InputError("significance: no points and no extent to lay the grid on")
    cells = hex_grid(bounds, size=size, crs=crs, within=within)
    counts = count_points(cells, x, y)
    nbrs = neighbours(cells.geometry.to_numpy(), hexagons=True, size=size)
    stats_ = gi_star(counts, nbrs, permutations=permutations, seed=seed, engine=engine)
    out = cells[["cell_id"]].assign(count=counts)
    for c in stats_.columns:
        out[str(c)] = stats_[c].to_numpy()
    return gpd.GeoDataFrame(out, geometry=cells.geometry, crs=crs)


def area_hotspots(
    areas: gpd.GeoDataFrame,
    x: np.ndarray,
    y: np.ndarray,
    *,
    denominator: np.ndarray | None = None,
    permutations: int = 0,
    seed: int = 0,
    engine: str = "auto",
) -> gpd.GeoDataFrame:
    """Gi* of point counts (or rates) per area of a layer, queen contiguity.

    Parameters
    ----------
    areas
        ``code`` and polygons in the points' CRS.
    x, y
        Point coordinates.
    denominator
        Per area (e.g. land km², population): the statistic uses ``count / denominator``
        (a zero or missing denominator gives rate 0).
    permutations, seed, engine
        See :func:`gi_star`.

    Returns
    -------
    geopandas.GeoDataFrame
        ``code``, ``count``, ``rate`` (with a denominator), ``z``, ``p``, ``p_fdr``,
        ``bin`` and the area polygons.
    """
    counts = count_points(areas, np.asarray(x), np.asarray(y))
    values = counts.astype("float64")
    out = pd.DataFrame({"code": areas["code"].to_numpy(), "count": counts})
    if denominator is not None:
        den = np.asarray(denominator, dtype="float64")
        if den.shape != values.shape:
            raise InputError(f"denominator: got {den.shape[0]} values for {len(values)} areas")
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(np.isfinite(den) & (den > 0), values / den, 0.0)
        out["rate"] = values
    nbrs = neighbours(areas.geometry.to_numpy(), hexagons=False)
    stats_ = gi_star(values, nbrs, permutations=permutations, seed=seed, engine=engine)
    for c in stats_.columns:
        out[str(c)] = stats_[c].to_numpy()
    return gpd.GeoDataFrame(out, geometry=areas.geometry.to_numpy(), crs=areas.crs)


def flag_significant(hotspots: gpd.GeoDataFrame, cells: gpd.GeoDataFrame, *,
                     min_bin: int = 2) -> pd.Series:
    """Whether each hotspot hull meets a significant hot cell (``bin >= min_bin``).

    Parameters
    ----------
    hotspots
        Hotspots with hull geometry.
    cells
        From :func:`hex_hotspots` or :func:`area_hotspots`, same CRS.
    min_bin
        1, 2 or 3: hot at 90, 95 or 99 % confidence after FDR (default 95 %).

    Returns
    -------
    pandas.Series
        Boolean, the hotspots' index.
    """
    if min_bin not in (1, 2, 3):
        raise InputError(f"min_bin: got {min_bin!r}; allowed: 1, 2, 3")
    hot = cells[cells["bin"] >= min_bin]
    flags = np.zeros(len(hotspots), dtype=bool)
    if len(hot) and len(hotspots):
        tree = shapely.STRtree(hot.geometry.to_numpy())
        idx, _ = tree.query(hotspots.geometry.to_numpy(), predicate="intersects")
        flags[np.unique(idx)] = True
    return pd.Series(flags, index=hotspots.index, name="significant")


def _has_esda() -> bool:
    try:
        import esda  # noqa: F401
        import libpysal  # noqa: F401
    except ImportError:
        return False
    return True


def _sparse(nbrs: list[list[int]], n: int) -> sparse.csr_matrix:
    rows = np.repeat(np.arange(n), [len(x) for x in nbrs])
    cols = np.fromiter((j for x in nbrs for j in x), dtype="int64", count=len(rows))
    return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))


def _gi_esda(y: np.ndarray, nbrs: list[list[int]], *, permutations: int,
             seed: int) -> tuple[np.ndarray, np.ndarray]:
    from esda.getisord import G_Local
    from libpysal.weights import W

    w = W({i: list(n) for i, n in enumerate(nbrs)}, id_order=list(range(len(nbrs))),
          silence_warnings=True)
    with warnings.catch_warnings():
        # esda's crand announces a future default (two-sided); G_Local cannot pass
        # ``alternative`` yet, and we double the folded p_sim ourselves below
        warnings.filterwarnings("ignore", "The alternative hypothesis", DeprecationWarning)
        g = G_Local(y, w, transform="B", star=True, permutations=permutations, seed=seed,
                    n_jobs=1, keep_simulations=False)
    z = np.asarray(g.Zs, dtype="float64")
    if permutations:
        p = np.minimum(1.0, 2 * np.asarray(g.p_sim, dtype="float64"))
    else:
        p = 2 * stats.norm.sf(np.abs(z))
    return z, p
