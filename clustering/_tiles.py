"""Tasks of the partitioned DBSCAN (private): block statistics, the split into tiles, and
the two passes over a tile. See :mod:`clustering.partitioned` for the method."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from clustering import _grid
from clustering.dbscan import _grid_spec, dbscan, dbscan_core

if TYPE_CHECKING:
    from clustering.partitioned import TilePlan

#: Point roles inside a tile.
INNER: Final = 0  # owned by the tile
INNER_SHARED: Final = 1  # owned, and in another tile's eps-halo
HALO: Final = 2  # within eps of the tile box (exact core flag here)
OUTER: Final = 3  # within 2 eps only (needed for the halo's core flags)
NO_INDEX: Final = np.iinfo(np.int64).max


# --------------------------------------------------------------------------- block tasks


def block_bounds(block: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``xmin, ymin, xmax, ymax, n, max|coord|`` of a block (NaNs when empty)."""
    if block.shape[0] == 0:
        return np.array([np.nan] * 4 + [0.0, 0.0])
    xy = block[:, :2]
    lo = xy.min(axis=0)
    hi = xy.max(axis=0)
    return np.array([lo[0], lo[1], hi[0], hi[1], block.shape[0], np.abs(xy).max()])


def block_histogram(
    block: npt.NDArray[np.float64], origin: tuple[float, float], h: float, shape: tuple[int, int]
) -> npt.NDArray[np.int64]:
    """Point counts of a block on the planning bins."""
    ix = np.clip(((block[:, 0] - origin[0]) // h).astype(np.int64), 0, shape[0] - 1)
    iy = np.clip(((block[:, 1] - origin[1]) // h).astype(np.int64), 0, shape[1] - 1)
    counts = np.bincount(ix * shape[1] + iy, minlength=shape[0] * shape[1])
    return counts.reshape(shape).astype(np.int64)


def block_split(
    block: npt.NDArray[np.float64], offset: int, plan: TilePlan
) -> dict[int, tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int8]]]:
    """Send a block's points to their tiles: ``{tile: (x y w rows, input indices, roles)}``."""
    n = block.shape[0]
    if n == 0:
        return {}
    x = block[:, 0]
    y = block[:, 1]
    side = plan.side
    ix = np.clip(((x - plan.origin_x) // side).astype(np.int64), 0, plan.nx - 1)
    iy = np.clip(((y - plan.origin_y) // side).astype(np.int64), 0, plan.ny - 1)
    reach = math.ceil(plan.halo / side)
    tiles: list[npt.NDArray[np.int64]] = [ix * plan.ny + iy]
    rows: list[npt.NDArray[np.int64]] = [np.arange(n)]
    roles: list[npt.NDArray[np.int8]] = []
    shared = np.zeros(n, dtype=bool)
    for di in range(-reach, reach + 1):
        for dj in range(-reach, reach + 1):
            if di == 0 and dj == 0:
                continue
            tx = ix + di
            ty = iy + dj
            x0 = plan.origin_x + tx * side
            y0 = plan.origin_y + ty * side
            gap = np.maximum(
                np.maximum(np.maximum(x0 - x, x - (x0 + side)), 0.0),
                np.maximum(np.maximum(y0 - y, y - (y0 + side)), 0.0),
            )
            keep = (tx >= 0) & (tx < plan.nx) & (ty >= 0) & (ty < plan.ny) & (gap <= plan.halo)
            near = keep & (gap <= plan.eps_halo)
            shared |= near
            idx = np.flatnonzero(keep)
            tiles.append(tx[idx] * plan.ny + ty[idx])
            rows.append(idx)
            roles.append(np.where(near[idx], HALO, OUTER).astype(np.int8))
    roles.insert(0, np.where(shared, INNER_SHARED, INNER).astype(np.int8))
    tile_all = np.concatenate(tiles)
    row_all = np.concatenate(rows)
    role_all = np.concatenate(roles)
    order = np.argsort(tile_all, kind="stable")
    tile_all = tile_all[order]
    row_all = row_all[order]
    role_all = role_all[order]
    cuts = np.flatnonzero(np.diff(tile_all)) + 1
    out = {}
    for t_rows, t_roles, start in zip(
        np.split(row_all, cuts), np.split(role_all, cuts), np.r_[0, cuts], strict=True
    ):
        out[int(tile_all[start])] = (block[t_rows], t_rows.astype(np.int64) + offset, t_roles)
    return out


def split_tiles(split: dict[int, Any]) -> npt.NDArray[np.int64]:
    return np.fromiter(split.keys(), dtype=np.int64, count=len(split))


def take(split: dict[int, Any], tile: int) -> Any:
    return split[tile]


# --------------------------------------------------------------------------- tile tasks


def _one_numba_thread() -> None:
    """Run this task's numba kernels on one thread: Dask already runs tiles in parallel, and
    waking a thread pool for every small tile costs more than the tile (setting is per thread).
    """
    import numba

    numba.set_num_threads(1)


@dataclass
class TileState:
    """What pass 1 keeps of a tile on its worker for pass 2."""

    xy: npt.NDArray[np.float64]  # points of roles inner, inner-shared and halo
    index: npt.NDArray[np.int64]  # their input indices
    role: npt.NDArray[np.int8]
    core: npt.NDArray[np.bool_]
    comp: npt.NDArray[np.int64]  # local component of core points, -1 otherwise
    n_comp: int
    n_input: int  # points the tile received, halos included


def tile_pass1(eps: float, min_samples: int, *pieces: Any) -> TileState:
    """Exact core flags of the tile and its eps-halo; local components of those cores."""
    _one_numba_thread()
    block = np.concatenate([p[0] for p in pieces])
    index = np.concatenate([p[1] for p in pieces])
    role = np.concatenate([p[2] for p in pieces])
    _, core_all = dbscan_core(
        block[:, :2], eps=eps, min_samples=min_samples, sample_weight=block[:, 2]
    )
    keep = role <= HALO
    xy = np.ascontiguousarray(block[keep, :2])
    core = core_all[keep]
    comp = np.full(xy.shape[0], -1, dtype=np.int64)
    if core.any():
        comp[core] = dbscan(xy[core], eps=eps, min_samples=1)
    n_comp = int(comp.max()) + 1 if comp.size else 0
    return TileState(xy, index[keep], role[keep], core, comp, n_comp, block.shape[0])


def tile_summary(state: TileState) -> tuple[Any, ...]:
    """Components, their smallest owned core index, and the shared core points' components."""
    owned_core = state.core & (state.role <= INNER_SHARED)
    smallest = np.full(state.n_comp, NO_INDEX, dtype=np.int64)
    np.minimum.at(smallest, state.comp[owned_core], state.index[owned_core])
    shared = state.core & (state.role == INNER_SHARED)
    halo = state.core & (state.role == HALO)
    return (
        state.n_comp,
        smallest,
        state.index[shared],
        state.comp[shared],
        state.index[halo],
        state.comp[halo],
        state.n_input,
    )


def tile_pass2(
    state: TileState, comp_labels: npt.NDArray[np.int64], eps: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Input indices and final labels of the tile's own points."""
    _one_numba_thread()
    owned = state.role <= INNER_SHARED
    core_lab = np.full(state.xy.shape[0], -1, dtype=np.int64)
    core_lab[state.core] = comp_labels[state.comp[state.core]]
    labels = core_lab[owned]
    todo = owned & ~state.core
    if todo.any() and state.core.any():
        labels[~state.core[owned]] = _border(
            state.xy[todo], state.xy[state.core], core_lab[state.core], eps
        )
    return state.index[owned], labels


def _border(
    points: npt.NDArray[np.float64],
    core_xy: npt.NDArray[np.float64],
    core_labels: npt.NDArray[np.int64],
    eps: float,
) -> npt.NDArray[np.int64]:
    """Smallest label among the core points within eps of each point, or -1."""
    allxy = np.concatenate([core_xy, points])
    nc = core_xy.shape[0]
    is_core = np.zeros(allxy.shape[0], dtype=np.bool_)
    is_core[:nc] = True
    eps2 = eps * eps
    side, reach = _grid_spec(allxy, eps)
    lo = allxy.min(axis=0)
    ix = np.floor((allxy[:, 0] - lo[0]) / side).astype(np.int64)
    iy = np.floor((allxy[:, 1] - lo[1]) / side).astype(np.int64)
    nx = int(ix.max()) + 1
    ny = int(iy.max()) + 1
    order, sorted_keys = _grid.argsort_keys(ix * ny + iy)
    keys, starts = _grid.cell_bounds(sorted_keys)
    xs, ys, ws = _grid.gather(allxy, np.zeros(allxy.shape[0]), order)
    bbox, _, tight = _grid.cell_stats(xs, ys, ws, starts, eps2)
    core = is_core[order]
    corepos = np.flatnonzero(core)
    cstarts = np.zeros(keys.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.add.reduceat(core.astype(np.int64), starts[:-1]), out=cstarts[1:])
    clabels = core_labels[order[corepos]]
    sorted_labels = _grid.border_labels(
        xs, ys, core, starts, xs[corepos], ys[corepos], clabels, cstarts, keys, bbox, tight,
        nx, ny, reach, eps2,
    )
    labels = np.empty(allxy.shape[0], dtype=np.int64)
    labels[order] = sorted_labels
    return labels[nc:]
