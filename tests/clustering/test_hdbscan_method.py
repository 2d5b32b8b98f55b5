"""HDBSCAN engines, the fallback, and ``method="hdbscan"`` in a hotspot run."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from clustering.hdbscan_method import available_engine, hdbscan_labels
from clustering.selection import HotspotQuery
from hotspot311.errors import InputError
from tests.clustering.history_cases import cluster, frame, run


def blobs() -> np.ndarray:
    rng = np.random.default_rng(5)
    return np.concatenate([
        rng.normal((0, 0), 5, (60, 2)),
        rng.normal((500, 0), 5, (40, 2)),
        rng.uniform(-1000, 1500, (30, 2)),
    ])


@pytest.mark.parametrize("engine", ["hdbscan", "sklearn"])
def test_engines_find_the_blobs(engine: str) -> None:
    if engine == "hdbscan":
        pytest.importorskip("hdbscan")
    labels = hdbscan_labels(blobs(), min_cluster_size=10, engine=engine)
    assert labels.max() == 1
    first, second = labels[:60], labels[60:100]
    assert len(set(first)) == 1 and len(set(second)) == 1 and first[0] != second[0]
    assert (labels[100:] == -1).mean() > 0.8


def test_fallback_without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hdbscan", None)  # import hdbscan → ImportError
    assert available_engine("auto") == "sklearn"
    assert hdbscan_labels(blobs(), min_cluster_size=10).max() == 1


def test_errors_and_tiny_input() -> None:
    with pytest.raises(InputError, match="min_cluster_size: got 1"):
        hdbscan_labels(blobs(), min_cluster_size=1)
    with pytest.raises(InputError, match="engine: got 'x'"):
        available_engine("x")
    assert hdbscan_labels(np.zeros((3, 2)), min_cluster_size=5).tolist() == [-1, -1, -1]
    with pytest.raises(InputError, match="method: got 'optics'"):
        HotspotQuery(method="optics").validate()


def test_run_with_hdbscan() -> None:
    data = frame(cluster("A", 0, 0, 12), cluster("B", 3000, 0, 9), cluster("N", 9000, 0, 1))
    query = HotspotQuery(days=30, eps_m=30.0, min_samples=4, method="hdbscan",
                         min_cluster_size=5)
    result = run(data, query)
    assert sorted(result.hotspots["count"]) == [9, 12]
    assert result.query.params()["method"] == "hdbscan"
    assert HotspotQuery.from_params(result.query.params()) == query
