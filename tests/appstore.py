"""A small demo store for the app tests: generated Philadelphia requests, ingested."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from clustering.problems import ProblemAssigner, ProblemRules
from geo.ingest.pipeline import ingest
from geo.store.base import open_store
from hotspot311.cli.demo import generate
from layers.profile import load_profile

#: Latest request time of the test data (fixed, so counts are stable).
END = datetime(2026, 6, 30, 12, tzinfo=UTC)


def build_store(directory: Path, n: int = 2000, *, seed: int = 1) -> Path:
    """Ingest ``n`` generated requests into an embedded store at ``directory / "store"``.

    Returns
    -------
    pathlib.Path
        The store directory.
    """
    store_dir = directory / "store"
    csv = directory / "requests.csv"
    generate(n, seed=seed, end=END).to_csv(csv, index=False)
    store = open_store(store_dir, load_profile("philadelphia"))
    ingest(csv, store, now=END,
           problems=ProblemAssigner(ProblemRules.for_city(store.profile)))
    return store_dir
