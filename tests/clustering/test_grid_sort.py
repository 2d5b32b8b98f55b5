"""The stable sort of grid-cell keys behind DBSCAN (:func:`clustering._grid.argsort_keys`)."""

from __future__ import annotations

import numpy as np
import pytest

from clustering._grid import argsort_keys


@pytest.mark.parametrize("top", [1, 2_000, 4_000_000, 2**62])
def test_order_is_numpys_stable_argsort(top: int) -> None:
    """Keys with many repeats (the points of one cell keep their order), from a single
    cell to keys of 62 bits."""
    keys = np.random.default_rng(top % 97).integers(0, top, 50_000, dtype=np.int64)
    order, sorted_keys = argsort_keys(keys)
    assert order.tolist() == np.argsort(keys, kind="stable").tolist()
    assert sorted_keys.tolist() == np.sort(keys).tolist()
    assert sorted_keys.dtype == np.int64


def test_no_keys() -> None:
    order, sorted_keys = argsort_keys(np.zeros(0, dtype=np.int64))
    assert len(order) == 0 and len(sorted_keys) == 0
