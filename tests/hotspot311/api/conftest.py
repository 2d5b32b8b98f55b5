"""Fixtures of the Open311 tests: a demo store of each kind served by a live uvicorn."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from geo.geocode.geocoder import Geocoder
from geo.store.base import Store
from hotspot311.api.app import create_app
from hotspot311.api.settings import ApiSettings
from layers.profile import CityProfile, load_profile
from tests.hotspot311.api.live import Keys, add_accounts, build_demo_store, live_server


@dataclass
class Served:
    """A store served by a live Open311 server."""

    url: str
    store: Store
    keys: Keys
    settings: ApiSettings
    kind: str


def open_kind(kind: str, root: Path, request: pytest.FixtureRequest,
              profile: CityProfile) -> Store:
    """An empty store of ``kind`` (PostGIS: a fresh database of the test server)."""
    if kind == "embedded":
        from geo.store.embedded import EmbeddedStore

        return EmbeddedStore(root / "store", profile)
    from geo.store.postgis import PostGISStore

    server = request.getfixturevalue("postgis_server")
    return PostGISStore.open(server.clone("api"), profile, max_size=8)


@pytest.fixture(scope="session", params=["embedded",
                                         pytest.param("postgis", marks=pytest.mark.postgis)])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           philly: Geocoder) -> Iterator[Served]:
    """The demo data (real files plus 2,000 synthetic requests) in each store, with four
    accounts, served on a free port; generous limits (the limit tests make their own app)."""
    root = tmp_path_factory.mktemp(f"api-{request.param}")
    profile = load_profile("philadelphia")
    store = open_kind(request.param, root, request, profile)
    build_demo_store(store, root / "work")
    keys = add_accounts(store)
    settings = ApiSettings(media_dir=root / "media", secret="test-secret",
                           read_rate="100000/minute", write_rate="100000/minute",
                           track_rate="100000/minute", max_photo_bytes=300_000,
                           max_body_bytes=1_000_000)
    app = create_app(store, settings=settings, geocoder=lambda: philly)
    try:
        with live_server(app) as url:
            yield Served(url, store, keys, settings, request.param)
    finally:
        store.close()
