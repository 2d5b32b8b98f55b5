"""The data-quality page lists the feed sources; the map says "data as of …"."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from geo.feeds.config import make_config
from geo.ingest.mapping import ColumnMapping
from geo.ingest.pipeline import ingest
from geo.store.embedded import EmbeddedStore
from layers.profile import CityProfile
from tests.conftest import REQUESTS

ROOT = Path(__file__).resolve().parents[1]


def run_page(monkeypatch: pytest.MonkeyPatch, store: Path, script: str) -> AppTest:
    monkeypatch.setenv("HOTSPOT311_STORE", str(store))
    monkeypatch.setenv("HOTSPOT311_TILES", "plain")
    at = AppTest.from_file(str(ROOT / script), default_timeout=120)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_sources_on_the_pages(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                              phila: CityProfile) -> None:
    store = EmbeddedStore(tmp_path / "s", phila)
    ingest(REQUESTS / "graffiti-sample.json", store,
           mapping=ColumnMapping(constants={"service_name": "Graffiti Removal"}))
    store.save_source(make_config("nyc", kind="socrata", url="https://data.example.org",
                                  dataset="erm2-nwe9"))
    state = store.source("nyc").state
    store.save_source_state(replace(
        state, last_sync=datetime(2026, 11, 30, 13, 15, tzinfo=UTC), last_outcome="ok",
        rows=1234, watermark={"updated": "2026-11-30T13:00:00.000Z", "id": "row-1"}))
    store.save_source(make_config("broken", kind="carto", url="https://x.example/api/v2/sql",
                                  table="public_cases_fc"))
    store.save_source_state(replace(store.source("broken").state, last_outcome="error",
                                    last_error="<b>HTTP 500</b> =1+1"))

    at = run_page(monkeypatch, tmp_path / "s", "pages/1_Data_quality.py")
    assert "Feeds" in [s.value for s in at.subheader]
    feeds = next(d.value for d in at.dataframe if "watermark" in d.value.columns)
    by_name = feeds.set_index("name")
    assert by_name.loc["nyc", "rows"] == 1234
    assert by_name.loc["nyc", "last_sync"] == "2026-11-30T13:15:00+00:00"
    assert by_name.loc["nyc", "watermark"] == "updated=2026-11-30T13:00:00.000Z id=row-1"
    assert by_name.loc["broken", "last_error"] == "<b>HTTP 500</b> =1+1"  # text, in a table

    at = run_page(monkeypatch, tmp_path / "s", "app.py")
    # the newest good sync, in the city's time zone
    assert any(c.value == "Data as of 2026-11-30 08:15 EST" for c in at.caption)
