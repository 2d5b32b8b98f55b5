"""A small demo store for the app tests: generated Philadelphia requests, ingested into
either store (the same rows, so the app shows the same numbers on both)."""

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


def fill_store(location: str | Path, csv: Path, n: int, *, seed: int = 1) -> str:
    """Ingest ``n`` generated requests (written to ``csv``) into the store at ``location``.

    Returns
    -------
    str
        The store location (a directory or a ``postgresql://`` URL).
    """
    if not csv.exists():
        generate(n, seed=seed, end=END).to_csv(csv, index=False)
    store = open_store(location, load_profile("philadelphia"))
    try:
        ingest(csv, store, now=END,
               problems=ProblemAssigner(ProblemRules.for_city(store.profile)))
    finally:
        store.close()
    return str(location)


def build_store(directory: Path, n: int = 2000, *, seed: int = 1) -> Path:
    """Ingest ``n`` generated requests into an embedded store at ``directory / "store"``.

    Returns
    -------
    pathlib.Path
        The store directory.
    """
    store_dir = directory / "store"
    fill_store(store_dir, directory / "requests.csv", n, seed=seed)
    return store_dir
