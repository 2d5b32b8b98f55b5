"""Fixtures of the feed tests: the real Philadelphia rows, a store of either kind."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from geo.store.base import Store
from layers.profile import CityProfile
from tests.geo.feeds.servers import Row, graffiti_rows
from tests.geo.store.stores import open_test_store

#: The sync's "now": after every row of the sample.
NOW = datetime(2026, 12, 1, tzinfo=UTC)
#: Fast retries, short timeouts: the servers are local.
FAST = {"timeout": 1.0, "backoff": 0.01, "max_backoff": 2.0, "random_state": 0}


@pytest.fixture
def rows() -> list[Row]:
    """The 528 real graffiti requests, fresh for each test."""
    return graffiti_rows()


@pytest.fixture(params=["embedded", pytest.param("postgis", marks=pytest.mark.postgis)])
def feed_store(request: pytest.FixtureRequest, tmp_path: Path,
               phila: CityProfile) -> Iterator[Store]:
    """An empty Philadelphia store of each kind."""
    store = open_test_store(request.param, tmp_path, request, phila)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def embedded_store(tmp_path: Path, phila: CityProfile) -> Iterator[Store]:
    """An empty embedded Philadelphia store."""
    from geo.store.embedded import EmbeddedStore

    yield EmbeddedStore(tmp_path / "emb", phila)
