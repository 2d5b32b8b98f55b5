"""Exact, fast, memory-bounded DBSCAN for projected 2-D points.

The answer is the exact DBSCAN answer with the neighbour test
``dx*dx + dy*dy <= eps*eps`` (boundary inclusive, each point its own neighbour), the
test scikit-learn's KD-tree applies to individual points. Core points, the clusters of
core points and the label numbers equal those of :class:`sklearn.cluster.DBSCAN`.

Labels are numbered 0..k-1 in order of the smallest input index of a core point in each
cluster; -1 is noise.

**Border rule.** A point that is not core but lies within ``eps`` of one or more core
points takes the *smallest* label among those core points. scikit-learn expands clusters
in the same label order, so its border labels are the same.

How it works: points are sorted into grid cells of side ``eps/√2`` (coarser only when
that grid would need more than 2**30 cells a side); a cell whose points are all within
``eps`` of each other and whose weight reaches ``min_samples`` is core as a whole; other
points count neighbours over the nearby cells with early exit; core cells are joined by
union-find when one pair of their core points is within ``eps``. No neighbour lists are
built, so memory is O(n) whatever ``eps`` and the density (measured by ``bench/dbscan.py``:
about 70 bytes a point above the input at 5 million points).

Floating point: every shortcut is proved from cell bounding boxes with monotone rounded
arithmetic, so it never changes the answer of the plain test above. scikit-learn's tree
also accepts whole nodes using ``sqrt``-rounded bounds, and its brute-force path (used
when there are 11 points or fewer) computes distances as ``|x|² - 2x·y + |y|²``; for
points within a rounding error of exactly ``eps`` apart those paths can disagree with the
plain test and with each other. With weights that are not whole numbers, sums taken in a
different order can differ in the last bit at exactly ``min_samples``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from clustering import _grid
from hotspot311.errors import InputError, describe

__all__ = ["DBSCAN", "dbscan", "dbscan_core"]

#: Largest number of grid cells along one axis (keeps cell keys well inside int64 and
#: the cell index exact in floating point).
_MAX_CELLS_PER_AXIS = 2**30
#: Largest absolute coordinate accepted: squared distances must stay finite.
_MAX_ABS_COORDINATE = 1e150
_MAX_ROWS_REPORTED = 5


def dbscan(
    xy: npt.ArrayLike,
    *,
    eps: float,
    min_samples: int,
    sample_weight: npt.ArrayLike | None = None,
) -> npt.NDArray[np.int64]:
    """Cluster 2-D points with DBSCAN.

    Parameters
    ----------
    xy
        Points, shape ``(n, 2)``, in a projected coordinate system (the units of ``eps``).
    eps
        Neighbourhood radius; points exactly ``eps`` apart are neighbours.
    min_samples
        Weighted number of points within ``eps`` (the point itself included) that makes a
        point core.
    sample_weight
        Weight of each point (default 1). Negative weights are allowed, as in
        scikit-learn: they keep their neighbours from becoming core.

    Returns
    -------
    numpy.ndarray
        ``int64`` label per point: -1 for noise, clusters 0..k-1 numbered in order of the
        smallest input index of a core point; a border point takes the smallest label
        among the core points within ``eps``.

    Raises
    ------
    InputError
        If ``xy`` is not an ``(n, 2)`` array of finite numbers, ``eps`` is not a positive
        finite number, ``min_samples`` is not an integer >= 1, or ``sample_weight`` is not
        ``n`` finite numbers. Every problem is listed.

    Examples
    --------
    >>> dbscan([[0, 0], [0, 1], [0, 2], [10, 10]], eps=1, min_samples=2).tolist()
    [0, 0, 0, -1]
    """
    labels, _ = dbscan_core(xy, eps=eps, min_samples=min_samples, sample_weight=sample_weight)
    return labels


def dbscan_core(
    xy: npt.ArrayLike,
    *,
    eps: float,
    min_samples: int,
    sample_weight: npt.ArrayLike | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Cluster 2-D points with DBSCAN and also return which points are core.

    Parameters
    ----------
    xy, eps, min_samples, sample_weight
        As for :func:`dbscan`.

    Returns
    -------
    labels : numpy.ndarray
        As for :func:`dbscan`.
    core : numpy.ndarray
        Boolean mask of the core points.

    Raises
    ------
    InputError
        As for :func:`dbscan`.

    Examples
    --------
    >>> labels, core = dbscan_core([[0, 0], [0, 1], [0, 3]], eps=1, min_samples=2)
    >>> labels.tolist(), core.tolist()
    ([0, 0, -1], [True, True, False])
    """
    points, weights, eps_f, min_samples_f = _validate(xy, eps, min_samples, sample_weight)
    n = points.shape[0]
    if n == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.bool_)
    return _cluster(points, weights, eps_f, min_samples_f)


class DBSCAN:
    """scikit-learn-style estimator over :func:`dbscan`.

    Parameters
    ----------
    eps
        Neighbourhood radius (inclusive).
    min_samples
        Weighted neighbour count, the point itself included, that makes a point core.

    Attributes
    ----------
    labels_ : numpy.ndarray
        Label per point, -1 for noise.
    core_sample_indices_ : numpy.ndarray
        Indices of the core points, ascending.
    n_clusters_ : int
        Number of clusters.

    Examples
    --------
    >>> model = DBSCAN(eps=1.0, min_samples=2).fit([[0, 0], [0, 1], [5, 5]])
    >>> model.labels_.tolist(), model.core_sample_indices_.tolist(), model.n_clusters_
    ([0, 0, -1], [0, 1], 1)
    """

    labels_: npt.NDArray[np.int64]
    core_sample_indices_: npt.NDArray[np.int64]
    n_clusters_: int

    def __init__(self, eps: float = 0.5, min_samples: int = 5) -> None:
        self.eps = eps
        self.min_samples = min_samples

    def fit(
        self, X: npt.ArrayLike, y: Any = None, sample_weight: npt.ArrayLike | None = None
    ) -> Self:
        """Cluster ``X``.

        Parameters
        ----------
        X
            Points, shape ``(n, 2)``.
        y
            Ignored (scikit-learn convention).
        sample_weight
            Weight of each point (default 1).

        Returns
        -------
        DBSCAN
            This estimator, fitted.

        Raises
        ------
        InputError
            As for :func:`dbscan`.
        """
        labels, core = dbscan_core(
            X, eps=self.eps, min_samples=self.min_samples, sample_weight=sample_weight
        )
        self.labels_ = labels
        self.core_sample_indices_ = np.flatnonzero(core).astype(np.int64)
        self.n_clusters_ = int(labels.max()) + 1 if labels.size else 0
        return self

    def fit_predict(
        self, X: npt.ArrayLike, y: Any = None, sample_weight: npt.ArrayLike | None = None
    ) -> npt.NDArray[np.int64]:
        """Cluster ``X`` and return the labels.

        Parameters
        ----------
        X, y, sample_weight
            As for :meth:`fit`.

        Returns
        -------
        numpy.ndarray
            ``labels_``.

        Raises
        ------
        InputError
            As for :func:`dbscan`.
        """
        return self.fit(X, sample_weight=sample_weight).labels_


def _validate(
    xy: npt.ArrayLike,
    eps: float,
    min_samples: int,
    sample_weight: npt.ArrayLike | None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], float, float]:
    """Check every input, collect every problem and raise once."""
    problems: list[str] = []
    try:
        points = np.asarray(xy, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InputError(
            f"xy must be an (n, 2) array of numbers; got {describe(xy)} ({err})"
        ) from err
    if points.ndim == 1 and points.size == 0:
        points = points.reshape(0, 2)
    if points.ndim != 2 or points.shape[1] != 2:
        problems.append(f"xy must have shape (n, 2); got shape {points.shape}")
    else:
        bad = ~np.isfinite(points).all(axis=1)
        if bad.any():
            rows = np.flatnonzero(bad)
            shown = ", ".join(
                f"row {i}: ({float(points[i, 0])!r}, {float(points[i, 1])!r})"
                for i in rows[:_MAX_ROWS_REPORTED]
            )
            more = f" and {rows.size - _MAX_ROWS_REPORTED} more" if rows.size > 5 else ""
            problems.append(
                f"xy must hold finite coordinates; {rows.size} rows do not ({shown}{more})"
            )
        elif points.size and np.abs(points).max() > _MAX_ABS_COORDINATE:
            row = int(np.abs(points).max(axis=1).argmax())
            problems.append(
                f"xy coordinates must be within ±{_MAX_ABS_COORDINATE:g} so that squared "
                f"distances stay finite; row {row} is "
                f"({float(points[row, 0])!r}, {float(points[row, 1])!r})"
            )
    eps_ok = (
        isinstance(eps, numbers.Real)
        and not isinstance(eps, bool)
        and math.isfinite(float(eps))
        and float(eps) > 0
    )
    if not eps_ok:
        problems.append(f"eps must be a finite number > 0; got {describe(eps)}")
    ms_ok = (
        isinstance(min_samples, numbers.Integral)
        and not isinstance(min_samples, bool)
        and int(min_samples) >= 1
    )
    if not ms_ok:
        problems.append(f"min_samples must be an integer >= 1; got {describe(min_samples)}")
    n = points.shape[0] if points.ndim >= 1 else 0
    weights = np.ones(n, dtype=np.float64)
    if sample_weight is not None:
        try:
            weights = np.asarray(sample_weight, dtype=np.float64)
        except (TypeError, ValueError) as err:
            problems.append(f"sample_weight must be n numbers; got {describe(sample_weight)}")
            weights = np.ones(n, dtype=np.float64)
            del err
        if weights.shape != (n,):
            problems.append(
                f"sample_weight must have shape ({n},), one weight per point; "
                f"got shape {weights.shape}"
            )
        else:
            bad_w = np.flatnonzero(~np.isfinite(weights))
            if bad_w.size:
                shown = ", ".join(
                    f"index {i}: {float(weights[i])!r}" for i in bad_w[:_MAX_ROWS_REPORTED]
                )
                problems.append(
                    f"sample_weight must be finite; {bad_w.size} weights are not ({shown})"
                )
    if problems:
        raise InputError(problems)
    return points, weights, float(eps), float(min_samples)


def _grid_spec(points: npt.NDArray[np.float64], eps: float) -> tuple[float, int]:
    """Return the cell side and how many cells away a neighbour can be.

    Cells of side ``eps/√2`` need neighbours up to 2 cells away. When that grid would be
    too fine (tiny ``eps`` over a large extent) the side grows to just over
    ``max(eps, extent / 2**30)`` and neighbours are at most 1 cell away.
    """
    span = float(np.max(points.max(axis=0) - points.min(axis=0)))
    side = eps / math.sqrt(2.0)
    if side > 0 and span / side <= _MAX_CELLS_PER_AXIS:
        return side, 2
    side = max(eps, span / _MAX_CELLS_PER_AXIS) * (1.0 + 2.0**-20)
    return side, 1


def _cluster(
    points: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64],
    eps: float,
    min_samples: float,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Run the grid DBSCAN on validated, non-empty input."""
    n = points.shape[0]
    eps2 = eps * eps
    side, reach = _grid_spec(points, eps)
    lo = points.min(axis=0)
    ix = np.floor((points[:, 0] - lo[0]) / side).astype(np.int64)
    iy = np.floor((points[:, 1] - lo[1]) / side).astype(np.int64)
    nx = int(ix.max()) + 1
    ny = int(iy.max()) + 1
    keys_all = ix * ny + iy
    del ix, iy
    order, sorted_keys = _grid.argsort_keys(keys_all)
    del keys_all
    keys, starts = _grid.cell_bounds(sorted_keys)
    del sorted_keys
    xs, ys, ws = _grid.gather(points, weights, order)
    nonneg = bool((weights >= 0).all())
    bbox, wsum, tight = _grid.cell_stats(xs, ys, ws, starts, eps2)
    core = _grid.core_flags(
        xs, ys, ws, keys, starts, bbox, wsum, tight, nx, ny, reach, eps2, min_samples, nonneg
    )
    del ws
    corepos = np.flatnonzero(core)
    cxs = xs[corepos]
    cys = ys[corepos]
    cstarts = np.zeros(keys.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.add.reduceat(core.astype(np.int64), starts[:-1]), out=cstarts[1:])
    roots = _grid.union_core(cxs, cys, cstarts, keys, bbox, tight, nx, ny, reach, eps2)
    clabels = _grid.number_components(roots, order[corepos])
    del roots, corepos
    sorted_labels = _grid.border_labels(
        xs, ys, core, starts, cxs, cys, clabels, cstarts, keys, bbox, tight, nx, ny, reach, eps2
    )
    labels = np.empty(n, dtype=np.int64)
    labels[order] = sorted_labels
    core_mask = np.empty(n, dtype=np.bool_)
    core_mask[order] = core
    return labels, core_mask
