"""Hilbert-curve order of points: nearby points get nearby ranks.

Rows written in this order end up near their neighbours on disk, so a spatial query
(an area's bounding box) reads a few contiguous pages instead of touching most of
the table.
"""

from __future__ import annotations

import numba
import numpy as np


def hilbert_keys(x: np.ndarray, y: np.ndarray, *, bits: int = 16) -> np.ndarray:
    """Position of each point along a Hilbert curve over the points' bounding box.

    Parameters
    ----------
    x, y
        Coordinates, any units; NaN or infinite where a point is missing.
    bits
        Curve order: the box is cut into ``2**bits`` cells a side (at most 31).

    Returns
    -------
    numpy.ndarray
        ``uint64`` keys; missing points get the largest key, after every real point.

    Examples
    --------
    >>> hilbert_keys(np.array([0.0, 0.0, 1.0, 1.0]), np.array([0.0, 1.0, 1.0, 0.0]), bits=1)
    array([0, 1, 2, 3], dtype=uint64)
    """
    if not 1 <= bits <= 31:
        raise ValueError(f"bits must be between 1 and 31, not {bits}")
    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")
    ok = np.isfinite(x) & np.isfinite(y)
    keys = np.full(len(x), np.iinfo(np.uint64).max, dtype=np.uint64)
    if not ok.any():
        return keys
    side = 1 << bits
    keys[ok] = _curve(_cells(x[ok], side), _cells(y[ok], side), side)
    return keys


@numba.njit(nogil=True, cache=True)
def _curve(xi: np.ndarray, yi: np.ndarray, side: int) -> np.ndarray:  # pragma: no cover
    """Hilbert index of each cell (the classic rotate-and-flip walk, a point at a time:
    1M points in 0.075 s, where the same steps over whole arrays took 0.3 s)."""
    out = np.empty(len(xi), dtype=np.uint64)
    for i in range(len(xi)):
        x, y = xi[i], yi[i]
        d = np.uint64(0)
        s = side >> 1
        while s > 0:
            rx = 1 if (x & s) > 0 else 0
            ry = 1 if (y & s) > 0 else 0
            d += np.uint64(s) * np.uint64(s) * np.uint64((3 * rx) ^ ry)
            # rotate the quadrant so that the curve inside it has the standard orientation
            if ry == 0:
                if rx == 1:
                    x = side - 1 - x
                    y = side - 1 - y
                x, y = y, x
            s >>= 1
        out[i] = d
    return out


def _cells(v: np.ndarray, side: int) -> np.ndarray:
    """Coordinates scaled to integer cells ``0 … side - 1``."""
    lo, hi = float(v.min()), float(v.max())
    span = hi - lo or 1.0
    return np.minimum(((v - lo) / span * side).astype(np.int64), side - 1)
