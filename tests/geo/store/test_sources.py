"""Feed sources in both stores: register, replace, remove, state and service lists, and
the state written in the same transaction as a batch (or not at all)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pandas as pd
import pytest

from geo.feeds.config import make_config
from geo.ingest.mapping import ColumnMapping, apply_mapping
from geo.ingest.readers import ROW_COLUMN, Format
from geo.ingest.validate import validate
from geo.store.base import Store
from hotspot311.errors import InputError
from tests.geo.store.stores import NOW


def config(name: str = "nyc", **kw: object):  # type: ignore[no-untyped-def]
    return make_config(name, kind="socrata", url="https://data.example.org",
                       dataset="erm2-nwe9", maps=["service_request_id=unique_key"],
                       token_env="NYC_TOKEN", **kw)  # type: ignore[arg-type]


def test_register_replace_remove(store: Store) -> None:
    assert store.sources() == []
    store.save_source(config())
    store.save_source(config("a-first", page_size=10))
    assert [s.config.name for s in store.sources()] == ["a-first", "nyc"]
    got = store.source("nyc")
    assert got.config == config() and got.config.token_env == "NYC_TOKEN"
    assert (got.state.watermark, got.state.rows, got.state.last_outcome) == (None, 0, None)
    with pytest.raises(InputError, match="'nyc' exists already"):
        store.save_source(config())
    moved = replace(got.state, watermark={"updated": "2024-01-01T00:00:00.000Z", "id": "r1"},
                    rows=7, pages=1, last_outcome="ok",
                    last_sync=datetime(2024, 1, 2, tzinfo=UTC))
    store.save_source_state(moved)
    store.save_source(config(page_size=500), replace=True)
    again = store.source("nyc")
    assert again.config.page_size == 500 and again.state == moved  # state kept
    store.save_source_services("nyc", [{"service_code": "A", "service_name": "<b>x</b>"}])
    assert store.source_services("nyc") == [{"service_code": "A", "service_name": "<b>x</b>"}]
    assert store.remove_source("nyc") is True
    assert store.remove_source("nyc") is False
    assert store.source_services("nyc") == []
    with pytest.raises(InputError, match="no source named 'nyc'; registered: a-first"):
        store.source("nyc")
    with pytest.raises(InputError, match="not registered"):
        store.save_source_state(moved)


def _batch(store: Store, ids: list[str]):  # type: ignore[no-untyped-def]
    raw = pd.DataFrame({ROW_COLUMN: range(1, len(ids) + 1), "service_request_id": ids,
                        "requested_datetime": "2024-05-01T10:00:00Z",
                        "service_name": "Pothole", "lat": "40.0", "lon": "-75.1"})
    mapped = apply_mapping(raw, ColumnMapping(), fmt=Format.CSV)
    return validate(mapped, profile=store.profile, batch_id="b1", source_file="feed", now=NOW)


def test_state_goes_with_the_batch(store: Store) -> None:
    store.save_source(config())
    state = replace(store.source("nyc").state, watermark={"updated": "u1", "id": "i1"},
                    rows=2, pages=1)
    store.write_batch(_batch(store, ["A", "B"]), info={"batch_id": "b1"}, source_state=state)
    assert store.source("nyc").state == state
    assert sorted(store.requests()["service_request_id"]) == ["A", "B"]
    # a write whose state names no source fails whole: the batch is not stored either
    gone = replace(state, name="removed")
    with pytest.raises(InputError, match="not registered"):
        store.write_batch(_batch(store, ["C"]), info={"batch_id": "b2"}, source_state=gone)
    assert sorted(store.requests()["service_request_id"]) == ["A", "B"]
    assert store.source("nyc").state == state
