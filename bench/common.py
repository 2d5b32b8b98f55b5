"""Shared helpers for the benchmarks: synthetic volume on Philadelphia's real streets."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def city_requests(n: int, *, seed: int = 1) -> pd.DataFrame:
    """``n`` canonical requests at real Philadelphia intersections (labelled synthetic)."""
    from hotspot311.cli.demo import generate

    if n <= 200_000:
        return generate(n, seed=seed)
    base = generate(200_000, seed=seed)
    reps = int(np.ceil(n / len(base)))
    frame = pd.concat([base] * reps, ignore_index=True).iloc[:n].copy()
    frame["service_request_id"] = [f"SYN-B{seed}-{i:08d}" for i in range(n)]
    rng = np.random.default_rng(seed)
    frame["lat"] = (frame["lat"] + rng.normal(0, 1e-4, n)).round(7)
    frame["lon"] = (frame["lon"] + rng.normal(0, 1e-4, n)).round(7)
    return frame


@contextmanager
def timer(label: str, results: dict[str, float]) -> Iterator[None]:
    """Record the wall time of a block under ``label``."""
    start = time.perf_counter()
    yield
    results[label] = time.perf_counter() - start
    print(f"  {label:<44} {results[label]:8.2f} s", flush=True)


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far, GiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def best_of(repeat: int, func: Callable[[], Any]) -> float:
    """Fastest of ``repeat`` runs, seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write a CSV and return its path."""
    frame.to_csv(path, index=False)
    return path
