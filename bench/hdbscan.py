"""Benchmark the ``hdbscan`` package against ``sklearn.cluster.HDBSCAN``.

Same city-like points as ``bench/dbscan.py`` (uniform background, tight clusters,
duplicate addresses), both single-threaded, the same ``min_cluster_size`` and
``min_samples``. Prints each time, the ratio, and how alike the two partitions are
(adjusted Rand index; the two libraries break ties differently, so they need not agree
exactly).

Usage::

    python -m bench.hdbscan --sizes 100000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# run as a script, this file's directory comes first on sys.path and its name would
# hide the hdbscan package: drop it
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for bench.*

from sklearn.metrics import adjusted_rand_score  # noqa: E402

from bench.dbscan import city_like  # noqa: E402
from clustering.hdbscan_method import hdbscan_labels  # noqa: E402


def main() -> None:
    """Time both engines at each size and print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100000")
    parser.add_argument("--min-cluster-size", type=int, default=20)
    parser.add_argument("--min-samples", type=int, default=10)
    args = parser.parse_args()
    for n in (int(s) for s in args.sizes.split(",")):
        xy = city_like(n, seed=0)
        times, labels = {}, {}
        for engine in ("hdbscan", "sklearn"):
            start = time.perf_counter()
            labels[engine] = hdbscan_labels(xy, min_cluster_size=args.min_cluster_size,
                                            min_samples=args.min_samples, engine=engine)
            times[engine] = time.perf_counter() - start
            print(f"n={n:>9,} {engine:<8} {times[engine]:8.2f} s  "
                  f"{labels[engine].max() + 1:>6,} clusters", flush=True)
        ari = adjusted_rand_score(labels["hdbscan"], labels["sklearn"])
        print(f"n={n:>9,} sklearn / hdbscan time ratio {times['sklearn'] / times['hdbscan']:.2f}"
              f"  (adjusted Rand index {ari:.3f})")


if __name__ == "__main__":
    main()
