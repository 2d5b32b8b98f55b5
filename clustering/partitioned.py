"""Exact DBSCAN on a Dask cluster: square tiles with halos, merged into the single-machine answer.

:func:`dbscan_partitioned` returns the labels of :func:`clustering.dbscan.dbscan` — the same
numbers, not only the same partition — for any tiling. How:

1. **Plan.** A pass over the input blocks finds the extent and a density histogram; the
   tile side is the largest whose tiles, halo included, hold at most the points the memory
   budget allows (``memory_per_tile``), never less than four ``eps``.
2. **Split.** Each input block sends every point to the tile that owns it (square tiles of
   side ``T`` from the lower-left corner of the extent) and, as a halo copy, to each tile
   whose box is within ``2·eps`` of it (Chebyshev distance, with a rounding margin).
3. **Tiles, pass 1** (one Dask task per non-empty tile). The tile's own points and its
   ``eps``-halo have every ``eps``-neighbour inside the ``2·eps`` halo, so the existing
   numba DBSCAN on the tile gives their exact core flags. The core points among them are
   joined into local components (DBSCAN with ``min_samples=1`` on the core points): every
   edge between two core points with one end in the tile is seen there.
4. **Merge** (on the client, over small arrays). A core point in a tile's ``eps``-halo is
   owned by another tile; a union-find over (tile, component) nodes joins the two
   components that share it. That gives the global clusters; each is numbered by the
   smallest input index of its core points, as :func:`~clustering.dbscan.dbscan` does.
5. **Tiles, pass 2.** Core points take their cluster's number; every other point of the
   tile takes the smallest number among the core points within ``eps`` (all of them are in
   the tile or its ``eps``-halo), the single-machine border rule, or -1.

Memory per worker is the tile's points with their halo (about ``_BYTES_PER_POINT`` bytes
each while a tile is worked on) plus, without ``spill_dir``, its share of the input: the
blocks until they are split, the split pieces until pass 1 has used them, the tile states
until pass 2. With ``spill_dir`` those go to files (:mod:`clustering._spill`) and a worker
holds one block (at most ``block_rows`` points) or one tile at a time, whatever the number
of points (both measured by ``bench/distributed.py``). The client holds the halo and rim
points' component ids and, at the end, the labels (8 bytes a point). A tile cannot be
smaller than ``4·eps``: where more than the budget's points lie within such a square (for
example many identical points) that tile exceeds the budget.

A worker lost mid-run is recomputed by Dask from the task lineage (input blocks, splits,
tiles); the answer does not change.
"""

from __future__ import annotations

import math
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from clustering import _spill, _tiles
from clustering.dbscan import _validate
from hotspot311.errors import InputError, describe

if TYPE_CHECKING:
    import dask.array as da
    from distributed import Client, Future

__all__ = ["TilePlan", "dbscan_partitioned", "plan_tiles"]

#: Bytes a point costs while its tile is clustered (input, halo copies, two DBSCAN runs).
_BYTES_PER_POINT: Final = 200
#: Default memory budget for one tile (its points and halo).
DEFAULT_MEMORY_PER_TILE: Final = 256 * 2**20
#: Rows per input block when a NumPy array is given.
DEFAULT_BLOCK_ROWS: Final = 1_000_000
#: Histogram bins along the longer side of the extent (for the tile plan).
_HIST_BINS: Final = 1024

Stage = Callable[[str], None]
#: Called with a pass's futures; returns when they are done (e.g. draws a progress bar).
Watch = Callable[[list[Any]], None]


@dataclass(frozen=True)
class TilePlan:
    """Square tiles over the extent of the points.

    Attributes
    ----------
    origin_x, origin_y
        Lower-left corner of tile (0, 0).
    side
        Tile side, in the units of the points.
    nx, ny
        Tiles along x and y.
    eps_halo
        Chebyshev distance from a tile box within which a point's core flag is needed
        (``eps`` plus a rounding margin).
    halo
        Chebyshev distance from a tile box within which points are copied to the tile
        (``2·eps`` plus rounding margins).
    largest_tile
        Estimated points in the fullest tile, halo included (from the histogram; 0 when
        the side was given).
    """

    origin_x: float
    origin_y: float
    side: float
    nx: int
    ny: int
    eps_halo: float
    halo: float
    largest_tile: int = 0

    @property
    def n_tiles(self) -> int:
        """Number of tiles in the grid (empty ones included)."""
        return self.nx * self.ny


def plan_tiles(
    bounds: Sequence[float],
    *,
    eps: float,
    histogram: npt.NDArray[np.int64] | None = None,
    bin_side: float | None = None,
    memory_per_tile: int = DEFAULT_MEMORY_PER_TILE,
    tile_size: float | None = None,
    max_abs: float | None = None,
) -> TilePlan:
    """Choose the tile grid from the data's extent, density and a memory budget.

    Parameters
    ----------
    bounds
        ``(xmin, ymin, xmax, ymax)`` of the points.
    eps
        The DBSCAN radius.
    histogram
        Point counts on square bins of side ``bin_side`` from ``(xmin, ymin)``, shape
        ``(bins_x, bins_y)``. Needed unless ``tile_size`` is given.
    bin_side
        Side of the histogram bins.
    memory_per_tile
        Bytes one tile may use while it is clustered; the tile side is the largest whose
        fullest tile (halo included) fits, but at least ``4·eps``.
    tile_size
        Use this tile side instead of choosing one.
    max_abs
        Largest absolute coordinate (for the rounding margin; from ``bounds`` if omitted).

    Returns
    -------
    TilePlan
        The grid.

    Raises
    ------
    InputError
        If ``tile_size`` is not a positive finite number or ``memory_per_tile`` is not a
        positive integer.
    """
    problems = []
    if tile_size is not None and not (
        isinstance(tile_size, int | float) and math.isfinite(tile_size) and tile_size > 0
    ):
        problems.append(f"tile_size must be a finite number > 0; got {describe(tile_size)}")
    if not isinstance(memory_per_tile, int) or isinstance(memory_per_tile, bool) or (
        memory_per_tile <= 0
    ):
        problems.append(
            f"memory_per_tile must be a whole number of bytes > 0; got {describe(memory_per_tile)}"
        )
    if problems:
        raise InputError(problems)
    xmin, ymin, xmax, ymax = (float(v) for v in bounds)
    scale = max_abs if max_abs is not None else max(abs(xmin), abs(ymin), abs(xmax), abs(ymax))
    margin = 1e-9 * (scale + eps)
    eps_halo = eps + margin
    halo = eps_halo + eps + margin
    largest = 0
    if tile_size is not None:
        side = float(tile_size)
    else:
        if histogram is None or bin_side is None:
            raise InputError("plan_tiles needs histogram and bin_side when tile_size is None")
        budget = max(memory_per_tile // _BYTES_PER_POINT, 1)
        side, largest = _side_for_budget(histogram, bin_side, halo, budget)
        side = max(side, 4.0 * eps)
    nx = max(1, math.ceil((xmax - xmin) / side))
    ny = max(1, math.ceil((ymax - ymin) / side))
    return TilePlan(xmin, ymin, side, nx, ny, eps_halo, halo, largest)


def _side_for_budget(
    hist: npt.NDArray[np.int64], h: float, halo: float, budget: int
) -> tuple[float, int]:
    """Largest side (a whole number of bins) whose fullest tile with halo fits the budget."""
    bx, by = hist.shape
    cs = np.zeros((bx + 1, by + 1), dtype=np.int64)
    np.cumsum(np.cumsum(hist, axis=0), axis=1, out=cs[1:, 1:])
    hb = math.ceil(halo / h)
    k = max(bx, by)
    while True:
        lo_x = np.clip(np.arange(0, bx, k) - hb, 0, bx)
        hi_x = np.clip(np.arange(0, bx, k) + k + hb, 0, bx)
        lo_y = np.clip(np.arange(0, by, k) - hb, 0, by)
        hi_y = np.clip(np.arange(0, by, k) + k + hb, 0, by)
        sums = (
            cs[hi_x][:, hi_y] - cs[lo_x][:, hi_y] - cs[hi_x][:, lo_y] + cs[lo_x][:, lo_y]
        )
        largest = int(sums.max()) if sums.size else 0
        if largest <= budget or k == 1:
            return k * h, largest
        k = max(1, int(k * 0.7))


# --------------------------------------------------------------------------- the driver


def _merge(summaries: list[Any]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Global label of every (tile, component) node; returns labels and node offsets."""
    import scipy.sparse  # here: only a partitioned run needs it (an app process need not)
    from scipy.sparse.csgraph import connected_components

    sizes = np.array([s[0] for s in summaries], dtype=np.int64)
    offsets = np.zeros(len(summaries) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    n_nodes = int(offsets[-1])
    if n_nodes == 0:
        return np.empty(0, dtype=np.int64), offsets
    smallest = np.concatenate([s[1] for s in summaries])
    own_index = np.concatenate([s[2] for s in summaries])
    own_node = np.concatenate([s[3] + offsets[t] for t, s in enumerate(summaries)])
    halo_index = np.concatenate([s[4] for s in summaries])
    halo_node = np.concatenate([s[5] + offsets[t] for t, s in enumerate(summaries)])
    order = np.argsort(own_index)
    pos = np.searchsorted(own_index[order], halo_index)
    if halo_index.size and (
        (pos >= own_index.size).any() or (own_index[order][np.minimum(pos, own_index.size - 1)]
                                           != halo_index).any()
    ):
        raise RuntimeError("a halo core point has no owning tile (tile split is inconsistent)")
    partner = own_node[order][pos]
    graph = scipy.sparse.coo_matrix(
        (np.ones(halo_node.size, dtype=np.int8), (halo_node, partner)), shape=(n_nodes, n_nodes)
    )
    n_clusters, component = connected_components(graph, directed=False)
    first = np.full(n_clusters, _tiles.NO_INDEX, dtype=np.int64)
    np.minimum.at(first, component, smallest)
    rank = np.empty(n_clusters, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(n_clusters)
    return rank[component], offsets


def dbscan_partitioned(
    xy: npt.ArrayLike | da.Array,
    *,
    eps: float,
    min_samples: int,
    client: Client,
    sample_weight: npt.ArrayLike | None = None,
    tile_size: float | None = None,
    memory_per_tile: int = DEFAULT_MEMORY_PER_TILE,
    block_rows: int = DEFAULT_BLOCK_ROWS,
    spill_dir: str | Path | None = None,
    watch: Watch | None = None,
    on_stage: Stage | None = None,
    info: dict[str, Any] | None = None,
) -> npt.NDArray[np.int64]:
    """Cluster 2-D points with DBSCAN, tile by tile, on a Dask cluster.

    Parameters
    ----------
    xy
        Points, shape ``(n, 2)``: a NumPy array (cut into blocks of ``block_rows``) or a
        ``dask.array`` whose blocks are made on the workers; a third column, if present
        in a Dask array, is the weight.
    eps, min_samples
        As for :func:`clustering.dbscan.dbscan`.
    client
        A ``distributed.Client`` (a ``LocalCluster`` or a remote scheduler).
    sample_weight
        Weight of each point (NumPy input only; default 1).
    tile_size
        Tile side in the units of ``xy``; default: chosen from the density and
        ``memory_per_tile``.
    memory_per_tile
        Bytes one tile may use while it is clustered.
    block_rows
        Rows per input block (Dask input with longer blocks is cut to this length).
    spill_dir
        A directory every worker can write and read at this path (local disk for a
        ``LocalCluster``, a shared file system otherwise). Given, the input blocks, the
        points sent to each tile and the tile states between the two passes go to files
        in a subdirectory removed at the end, so a worker holds only one block or one tile
        (with its halo) at a time, whatever the number of points. Without it they stay
        in the workers' memory (Dask's own spilling applies).
    watch
        Called with the futures of each pass over the tiles (``"cores"``, then
        ``"labelled"``), before they are gathered; it should return when they are done
        (a progress bar: ``hotspot311.cli.engine.task_progress`` draws one on stderr).
    on_stage
        Called with ``"planned"``, ``"split"``, ``"cores"``, ``"merged"`` and ``"labelled"``
        as the run reaches each stage (progress reporting).
    info
        If given, filled with what the run did: ``plan`` (:class:`TilePlan`), ``tiles``
        (non-empty tiles), ``points_in_tiles`` (halo copies included), ``largest_tile``,
        ``halo_core_points`` (merged on the client) and ``seconds`` per stage.

    Returns
    -------
    numpy.ndarray
        ``int64`` labels equal to ``clustering.dbscan.dbscan(xy, ...)``.

    Raises
    ------
    InputError
        As for :func:`clustering.dbscan.dbscan`, and for a bad ``tile_size``,
        ``memory_per_tile`` or ``block_rows``.

    Examples
    --------
    >>> from distributed import Client, LocalCluster
    >>> with LocalCluster(n_workers=1, processes=False) as cluster, Client(cluster) as c:
    ...     dbscan_partitioned([[0, 0], [0, 1], [0, 2], [10, 10]], eps=1, min_samples=2,
    ...                        client=c, tile_size=1.5).tolist()
    [0, 0, 0, -1]
    """
    import time

    import dask.array as dsa

    info = {} if info is None else info
    info["seconds"] = {}
    started = [time.perf_counter()]

    def stage(name: str) -> None:
        now = time.perf_counter()
        info["seconds"][name] = now - started[0]
        started[0] = now
        if on_stage is not None:
            on_stage(name)

    if not isinstance(block_rows, int) or isinstance(block_rows, bool) or block_rows < 1:
        raise InputError(f"block_rows must be an integer >= 1; got {describe(block_rows)}")
    if isinstance(xy, dsa.Array):
        if xy.ndim != 2 or xy.shape[1] not in (2, 3):
            raise InputError(f"xy must have shape (n, 2) or (n, 3); got shape {xy.shape}")
        _validate(np.zeros((0, 2)), eps, min_samples, None)
        arr = xy
        if arr.shape[1] == 2:
            ones = dsa.ones((arr.shape[0], 1), chunks=(arr.chunks[0], 1))
            arr = dsa.concatenate([arr, ones], axis=1)
        if max(arr.chunks[0], default=0) > block_rows:
            arr = arr.rechunk({0: block_rows})
        delayed = list(arr.rechunk({1: 3}).to_delayed().ravel())
    else:
        points, weights, _, _ = _validate(xy, eps, min_samples, sample_weight)
        if points.shape[0] == 0:
            return np.empty(0, dtype=np.int64)
        stacked = np.column_stack([points, weights])
        arr = dsa.from_array(stacked, chunks=(block_rows, 3))
        delayed = list(arr.to_delayed().ravel())
    if spill_dir is not None:
        run_dir = Path(spill_dir) / f"dbscan-{uuid.uuid4().hex}"
        run_dir.mkdir(parents=True)
        try:
            return _run_spilled(delayed, str(run_dir), float(eps), int(min_samples), client,
                                tile_size, memory_per_tile, watch, stage, info)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
    blocks = client.compute(delayed)
    return _run(blocks, float(eps), int(min_samples), client, tile_size, memory_per_tile,
                watch, stage, info)


def _plan(
    stats: npt.NDArray[np.float64],
    eps: float,
    tile_size: float | None,
    memory_per_tile: int,
    histogram: Callable[[tuple[float, float], float, tuple[int, int]], Any],
) -> TilePlan:
    """The tile plan from the blocks' statistics (and their histogram, when needed)."""
    sizes = stats[:, 4].astype(np.int64)
    bad = ~np.isfinite(stats[sizes > 0, :4]).all()
    if bad:
        raise InputError("xy must hold finite coordinates; some blocks hold NaN or infinity")
    xmin, ymin = np.nanmin(stats[:, 0]), np.nanmin(stats[:, 1])
    xmax, ymax = np.nanmax(stats[:, 2]), np.nanmax(stats[:, 3])
    max_abs = float(stats[:, 5].max())
    if tile_size is not None:
        return plan_tiles((xmin, ymin, xmax, ymax), eps=eps, tile_size=tile_size,
                          memory_per_tile=memory_per_tile, max_abs=max_abs)
    span = max(xmax - xmin, ymax - ymin)
    h = max(span / _HIST_BINS, eps)
    shape = (int((xmax - xmin) // h) + 1, int((ymax - ymin) // h) + 1)
    hist = histogram((xmin, ymin), h, shape)
    return plan_tiles((xmin, ymin, xmax, ymax), eps=eps, histogram=hist, bin_side=h,
                      memory_per_tile=memory_per_tile, max_abs=max_abs)


def _run(
    blocks: list[Future],
    eps: float,
    min_samples: int,
    client: Client,
    tile_size: float | None,
    memory_per_tile: int,
    watch: Watch | None,
    stage: Stage,
    info: dict[str, Any],
) -> npt.NDArray[np.int64]:
    """Plan, split, pass 1, merge, pass 2, assemble."""
    stats = np.array(client.gather(client.map(_tiles.block_bounds, blocks, pure=False)))
    sizes = stats[:, 4].astype(np.int64)
    n = int(sizes.sum())
    if n == 0:
        return np.empty(0, dtype=np.int64)

    def histogram(origin: tuple[float, float], h: float, shape: tuple[int, int]) -> Any:
        hists = client.map(_tiles.block_histogram, blocks, origin=origin, h=h, shape=shape,
                           pure=False)
        return np.sum(client.gather(hists), axis=0)

    plan = _plan(stats, eps, tile_size, memory_per_tile, histogram)
    stage("planned")
    offsets = np.r_[0, np.cumsum(sizes)[:-1]]
    splits = [client.submit(_tiles.block_split, b, int(o), plan, pure=False)
              for b, o in zip(blocks, offsets, strict=True)]
    touched = client.gather(client.map(_tiles.split_tiles, splits, pure=False))
    # The splits hold every point now: let the workers drop the input blocks (the caller's
    # list too). Dask keeps their recipe and recomputes them if a lost split needs them.
    blocks.clear()
    by_tile: dict[int, list[int]] = {}
    for b, tiles in enumerate(touched):
        for t in tiles.tolist():
            by_tile.setdefault(t, []).append(b)
    stage("split")
    states = []
    for t in sorted(by_tile):
        pieces = [client.submit(_tiles.take, splits[b], t, pure=False) for b in by_tile[t]]
        states.append(client.submit(_tiles.tile_pass1, eps, min_samples, *pieces, pure=False))
    del pieces, splits
    if watch is not None:
        watch(states)
    summaries = client.gather(client.map(_tiles.tile_summary, states, pure=False))
    stage("cores")
    received = [int(s[6]) for s in summaries]
    info.update(plan=plan, tiles=len(received), points_in_tiles=sum(received),
                largest_tile=max(received), halo_core_points=sum(s[4].size for s in summaries))
    node_labels, node_offsets = _merge(summaries)
    del summaries
    stage("merged")
    results = [
        client.submit(_tiles.tile_pass2, state,
                      node_labels[node_offsets[i]:node_offsets[i + 1]], eps, pure=False)
        for i, state in enumerate(states)
    ]
    del states
    if watch is not None:
        watch(results)
    labels = _assemble(results, n)
    stage("labelled")
    return labels


def _assemble(results: list[Future], n: int) -> npt.NDArray[np.int64]:
    """The labels of all points from the tiles' pass-2 results (taken in order)."""
    labels = np.full(n, -1, dtype=np.int64)
    seen = 0
    results.reverse()
    while results:  # release each tile's labels on its worker once they are here
        index, tile_labels = results.pop().result()
        labels[index] = tile_labels
        seen += index.size
    if seen != n:
        raise RuntimeError(f"tiles labelled {seen} points of {n} (tile split is inconsistent)")
    return labels


def _run_spilled(
    delayed: list[Any],
    directory: str,
    eps: float,
    min_samples: int,
    client: Client,
    tile_size: float | None,
    memory_per_tile: int,
    watch: Watch | None,
    stage: Stage,
    info: dict[str, Any],
) -> npt.NDArray[np.int64]:
    """:func:`_run` with the blocks, tile pieces and tile states in files (see :mod:`_spill`).

    The blocks are made, saved and forgotten by one task each; later tasks read what they
    need of the files, and the futures between the tasks hold only small results.
    """
    import dask

    saved = client.compute([dask.delayed(_spill.save_block)(d, directory, b)
                            for b, d in enumerate(delayed)])
    stats = np.array(client.gather(saved))
    del saved
    sizes = stats[:, 4].astype(np.int64)
    n = int(sizes.sum())
    if n == 0:
        return np.empty(0, dtype=np.int64)
    numbers = list(range(len(sizes)))

    def histogram(origin: tuple[float, float], h: float, shape: tuple[int, int]) -> Any:
        hists = client.map(_spill.block_histogram, [directory] * len(numbers), numbers,
                           origin=origin, h=h, shape=shape, pure=False)
        return np.sum(client.gather(hists), axis=0)

    plan = _plan(stats, eps, tile_size, memory_per_tile, histogram)
    stage("planned")
    offsets = np.r_[0, np.cumsum(sizes)[:-1]]
    splits = client.gather([client.submit(_spill.split_block, directory, b, int(offsets[b]),
                                          plan, pure=False) for b in numbers])
    for b in numbers:  # the blocks are split: their files are not needed again
        (Path(directory) / f"b{b}.npy").unlink(missing_ok=True)
    parts: dict[int, list[tuple[int, int, int]]] = {}
    for b, (tiles, starts) in enumerate(splits):
        for k, t in enumerate(tiles.tolist()):
            parts.setdefault(t, []).append((b, int(starts[k]), int(starts[k + 1])))
    del splits
    stage("split")
    order = sorted(parts)
    firsts = [client.submit(_spill.tile_pass1, eps, min_samples, directory, t, parts[t],
                            pure=False) for t in order]
    if watch is not None:
        watch(firsts)
    summaries = client.gather(firsts)
    stage("cores")
    received = [int(s[6]) for s in summaries]
    info.update(plan=plan, tiles=len(received), points_in_tiles=sum(received),
                largest_tile=max(received), halo_core_points=sum(s[4].size for s in summaries))
    node_labels, node_offsets = _merge(summaries)
    del summaries
    stage("merged")
    results = [
        client.submit(_spill.tile_pass2, directory, t,
                      node_labels[node_offsets[i]:node_offsets[i + 1]], eps, first,
                      pure=False)
        for i, (t, first) in enumerate(zip(order, firsts, strict=True))
    ]
    del firsts
    if watch is not None:
        watch(results)
    labels = _assemble(results, n)
    stage("labelled")
    return labels
