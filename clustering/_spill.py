"""Tasks of the partitioned DBSCAN when it spills to disk (private).

With a spill directory (shared by the workers), what a worker would otherwise hold
between tasks goes to files, so that a worker holds only what its current task works
on — one input block, or one tile with its halo — whatever the number of points:

- ``b<B>.npy``: input block ``B`` (x, y, weight), written by :func:`save_block` as the
  block is made, read back memory-mapped;
- ``s<B>-xyw.npy``, ``s<B>-idx.npy``, ``s<B>-role.npy``: the block's points sent to their
  tiles (:func:`split_block`), sorted by tile; each tile reads only its rows;
- ``t<T>.npz``: tile ``T``'s state after pass 1 (:func:`tile_pass1`), read by pass 2.

Every file is written to a temporary name and renamed, so a task that Dask runs again
after a lost worker writes the same file again and never leaves half a file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from clustering import _tiles

if TYPE_CHECKING:
    from clustering.partitioned import TilePlan


def _save(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        write(handle)
    os.replace(tmp, path)


def save_block(block: npt.NDArray[np.float64], directory: str, number: int
               ) -> npt.NDArray[np.float64]:
    """Write input block ``number``; return its :func:`~clustering._tiles.block_bounds`."""
    block = np.ascontiguousarray(block, dtype=np.float64)
    _save(Path(directory) / f"b{number}.npy", lambda h: np.save(h, block))
    return _tiles.block_bounds(block)


def _block(directory: str, number: int) -> npt.NDArray[np.float64]:
    return np.load(Path(directory) / f"b{number}.npy", mmap_mode="r")


def block_histogram(directory: str, number: int, origin: tuple[float, float], h: float,
                    shape: tuple[int, int]) -> npt.NDArray[np.int64]:
    """:func:`~clustering._tiles.block_histogram` of a saved block."""
    return _tiles.block_histogram(np.asarray(_block(directory, number)), origin, h, shape)


def split_block(directory: str, number: int, offset: int, plan: TilePlan
                ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Send a saved block's points to their tiles; write them sorted by tile.

    Returns
    -------
    tuple
        The tiles the block touches and, for each, the start of its rows (one more
        entry: the end).
    """
    pieces = _tiles.block_split(np.asarray(_block(directory, number)), offset, plan)
    tiles = np.array(sorted(pieces), dtype=np.int64)
    starts = np.zeros(tiles.size + 1, dtype=np.int64)
    np.cumsum([pieces[int(t)][1].size for t in tiles], out=starts[1:])
    base = Path(directory)
    for k, suffix in enumerate(("xyw", "idx", "role")):
        if tiles.size:
            data = np.concatenate([pieces[int(t)][k] for t in tiles])
        else:
            data = np.empty((0, 3) if k == 0 else 0, dtype=(np.float64, np.int64, np.int8)[k])
        _save(base / f"s{number}-{suffix}.npy", lambda h, d=data: np.save(h, d))
    del pieces
    return tiles, starts


def tile_pass1(eps: float, min_samples: int, directory: str, tile: int,
               parts: list[tuple[int, int, int]]) -> tuple[Any, ...]:
    """Pass 1 of a tile from its rows in the split files; the state goes to ``t<T>.npz``.

    Parameters
    ----------
    parts
        ``(block, start, end)`` of the tile's rows in each block's split files.

    Returns
    -------
    tuple
        :func:`~clustering._tiles.tile_summary` of the tile.
    """
    base = Path(directory)
    pieces = []
    for number, start, end in parts:
        pieces.append(tuple(
            np.array(np.load(base / f"s{number}-{suffix}.npy", mmap_mode="r")[start:end])
            for suffix in ("xyw", "idx", "role")))
    state = _tiles.tile_pass1(eps, min_samples, *pieces)
    del pieces
    _save(base / f"t{tile}.npz", lambda h: np.savez(
        h, xy=state.xy, index=state.index, role=state.role, core=state.core, comp=state.comp,
        meta=np.array([state.n_comp, state.n_input], dtype=np.int64)))
    return _tiles.tile_summary(state)


def tile_pass2(directory: str, tile: int, comp_labels: npt.NDArray[np.int64], eps: float,
               _after: Any = None) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Pass 2 of a tile from its saved state (``_after``: the pass-1 result it follows)."""
    with np.load(Path(directory) / f"t{tile}.npz") as saved:
        meta = saved["meta"]
        state = _tiles.TileState(saved["xy"], saved["index"], saved["role"], saved["core"],
                                 saved["comp"], int(meta[0]), int(meta[1]))
    return _tiles.tile_pass2(state, comp_labels, eps)
