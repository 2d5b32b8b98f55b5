"""HDBSCAN as an alternative to DBSCAN: clusters of varying density, no search distance.

Two engines give the HDBSCAN answer: the ``hdbscan`` package (McInnes et al.) and
``sklearn.cluster.HDBSCAN``. ``bench/hdbscan.py`` times both at 100k city-like points;
:data:`PREFERRED` is the faster there, and ``auto`` falls back to scikit-learn when the
``hdbscan`` package is not installed. Both run single-threaded with the
default excess-of-mass cluster selection.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from hotspot311.errors import InputError

#: The faster engine at 100k points in ``bench/hdbscan.py`` (this machine, one thread:
#: hdbscan 5.3 s, scikit-learn 68.6 s, ratio 13.0; adjusted Rand index 0.87 between them).
PREFERRED: Final = "hdbscan"
ENGINES: Final = ("auto", "hdbscan", "sklearn")


def available_engine(engine: str = "auto") -> str:
    """The engine ``engine`` resolves to (``auto``: :data:`PREFERRED` if importable)."""
    if engine not in ENGINES:
        raise InputError(f"engine: got {engine!r}; allowed: {', '.join(ENGINES)}")
    if engine != "auto":
        return engine
    try:
        import hdbscan  # noqa: F401
    except ImportError:
        return "sklearn"
    return PREFERRED


def hdbscan_labels(
    xy: np.ndarray, *, min_cluster_size: int, min_samples: int | None = None,
    engine: str = "auto",
) -> np.ndarray:
    """HDBSCAN cluster labels of points.

    Parameters
    ----------
    xy
        ``(n, 2)`` coordinates in a projected CRS.
    min_cluster_size
        Smallest cluster.
    min_samples
        Neighbourhood size for core distances (``min_cluster_size`` when None).
    engine
        ``hdbscan``, ``sklearn`` or ``auto``.

    Returns
    -------
    numpy.ndarray
        One label per point, -1 for noise, clusters numbered from 0.

    Raises
    ------
    InputError
        For a bad ``min_cluster_size`` or engine.
    """
    if not isinstance(min_cluster_size, int) or min_cluster_size < 2:
        raise InputError(
            f"min_cluster_size: got {min_cluster_size!r}; allowed: a whole number >= 2"
        )
    xy = np.asarray(xy, dtype="float64")
    if len(xy) < max(min_cluster_size, min_samples or 0, 2):
        return np.full(len(xy), -1, dtype=np.int64)
    chosen = available_engine(engine)
    if chosen == "hdbscan":
        import hdbscan

        model = hdbscan.HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples,
                                core_dist_n_jobs=1)
        labels = model.fit_predict(xy)
    else:
        from sklearn.cluster import HDBSCAN

        labels = HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples,
                         copy=True).fit_predict(xy)
    return np.asarray(labels, dtype=np.int64)
