"""The heat map's cells coarsened from a store's grid counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hotspot311.web.mapdata import DECIMALS, coarsen_cells


def dense_reference(cells: pd.DataFrame, grid_deg: float, max_cells: int) -> pd.DataFrame:
    """The earlier formulation: a dense grid over the cells' box, 2x2 blocks (aligned on
    even absolute indices) summed until at most ``max_cells`` are non-empty."""
    row = cells["row"].to_numpy(np.int64)
    col = cells["col"].to_numpy(np.int64)
    r0, c0 = int(row.min()), int(col.min())
    height, width = int(row.max()) - r0 + 1, int(col.max()) - c0 + 1
    dense = np.bincount((row - r0) * width + (col - c0), weights=cells["n"],
                        minlength=height * width).astype(np.int64).reshape(height, width)
    size = grid_deg
    while np.count_nonzero(dense) > max_cells:
        top, left = r0 % 2, c0 % 2
        h, w = dense.shape[0] + top, dense.shape[1] + left
        padded = np.zeros((h + h % 2, w + w % 2), dtype=np.int64)
        padded[top:top + dense.shape[0], left:left + dense.shape[1]] = dense
        dense = padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2).sum(axis=(1, 3))
        r0, c0, size = (r0 - top) // 2, (c0 - left) // 2, size * 2
    rows, cols = np.nonzero(dense)
    out = pd.DataFrame({"lat": ((rows + r0 + 0.5) * size).round(DECIMALS),
                        "lon": ((cols + c0 + 0.5) * size).round(DECIMALS),
                        "n": dense[rows, cols].astype(np.int64)})
    out = out.sort_values("n", ascending=False, kind="stable").reset_index(drop=True)
    out.attrs["grid_deg"] = size
    return out


@pytest.mark.parametrize(("seed", "max_cells"), [(0, 12_000), (1, 2_000), (2, 50), (3, 1)])
def test_coarsening_equals_the_dense_grid(seed: int, max_cells: int) -> None:
    rng = np.random.default_rng(seed)
    n = 30_000
    # a city around (39.95, -75.16) on a 0.0003-degree grid: negative columns, odd starts
    row = np.floor(rng.normal(39.95, 0.05, n) / 0.0003).astype(np.int64)
    col = np.floor(rng.normal(-75.16, 0.05, n) / 0.0003).astype(np.int64)
    cells = (pd.DataFrame({"row": row, "col": col, "n": rng.integers(1, 9, n)})
             .groupby(["row", "col"], as_index=False)["n"].sum()
             .sample(frac=1.0, random_state=seed))  # a store need not sort them
    got = coarsen_cells(cells, grid_deg=0.0003, max_cells=max_cells)
    expected = dense_reference(cells, 0.0003, max_cells)
    pd.testing.assert_frame_equal(got, expected)
    assert got.attrs["grid_deg"] == expected.attrs["grid_deg"]
    assert len(got) <= max_cells and got["n"].sum() == cells["n"].sum()


def test_a_wide_box_of_few_cells_is_not_coarsened() -> None:
    """Two far-apart clusters span a box of billions of fine cells but hold few cells:
    they stay at the store's grid."""
    cells = pd.DataFrame({"row": [0, 1, 10_000_000], "col": [0, 1, -9_000_000],
                          "n": [3, 1, 2]})
    got = coarsen_cells(cells, grid_deg=0.0003, max_cells=10)
    assert got.attrs["grid_deg"] == 0.0003
    assert got["n"].tolist() == [3, 2, 1]
    assert coarsen_cells(cells.iloc[:0], grid_deg=0.0003).empty
