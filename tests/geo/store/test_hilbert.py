"""Hilbert keys (geo.store.hilbert) against the curve's textbook definition, written
over whole arrays, and the curve's defining property: neighbours along it are
neighbouring cells."""

from __future__ import annotations

import numpy as np
import pytest

from geo.store.hilbert import hilbert_keys


def _textbook(x: np.ndarray, y: np.ndarray, bits: int) -> np.ndarray:
    """The rotate-and-flip walk of the curve, a bit level at a time over all points."""
    ok = np.isfinite(x) & np.isfinite(y)
    keys = np.full(len(x), np.iinfo(np.uint64).max, dtype=np.uint64)
    side = 1 << bits

    def cells(v: np.ndarray) -> np.ndarray:
        lo, hi = float(v.min()), float(v.max())
        return np.minimum(((v - lo) / (hi - lo or 1.0) * side).astype(np.int64), side - 1)

    xi, yi = cells(x[ok]), cells(y[ok])
    d = np.zeros(len(xi), dtype=np.uint64)
    s = side >> 1
    while s > 0:
        rx, ry = (xi & s) > 0, (yi & s) > 0
        d += np.uint64(s) * np.uint64(s) * ((3 * rx.astype(np.uint64)) ^ ry.astype(np.uint64))
        flip = ~ry & rx
        xi, yi = np.where(flip, side - 1 - xi, xi), np.where(flip, side - 1 - yi, yi)
        xi, yi = np.where(~ry, yi, xi), np.where(~ry, xi, yi)
        s >>= 1
    keys[ok] = d
    return keys


@pytest.mark.parametrize("bits", [1, 2, 7, 16, 31])
def test_keys_are_the_textbook_curve(bits: int) -> None:
    rng = np.random.default_rng(bits)
    x, y = rng.normal(size=20_000), rng.uniform(-3, 5, size=20_000)
    x[::97] = np.nan
    y[::89] = np.inf
    assert np.array_equal(hilbert_keys(x, y, bits=bits), _textbook(x, y, bits))


def test_consecutive_cells_of_the_curve_touch() -> None:
    """Every cell of an 8 x 8 grid once, each next to the one before it."""
    side = 8
    gx, gy = np.meshgrid(np.arange(side, dtype=float), np.arange(side, dtype=float))
    keys = hilbert_keys(gx.ravel(), gy.ravel(), bits=3)
    assert sorted(keys.tolist()) == list(range(side * side))
    walk = np.argsort(keys)
    steps = np.abs(np.diff(gx.ravel()[walk])) + np.abs(np.diff(gy.ravel()[walk]))
    assert (steps == 1).all()
