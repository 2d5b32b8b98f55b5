"""Streaming ingest: batches give what the whole file gives (requests, quarantine, counts),
and a failure half-way leaves the store as it was."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from geo.ingest.pipeline import ingest
from geo.ingest.stream import ingest_stream, read_batches
from geo.ingest.validate import ValidatedBatch
from geo.store.embedded import EmbeddedStore
from layers.profile import load_profile
from tests.geo.ingest.quarantine_corpus import INPUTS, NOW, PLAIN, REAL

PROFILE = load_profile("philadelphia")
NO_LAYERS = dataclasses.replace(PROFILE, layers=())  # Philadelphia's rules, no joins


def _store(root: Path) -> EmbeddedStore:
    return EmbeddedStore(root, NO_LAYERS)


def _requests(store: EmbeddedStore) -> pd.DataFrame:
    frame = store.requests()
    wkb = frame.geometry.to_wkb()
    out = pd.DataFrame(frame.drop(columns=["geometry"]))
    out["geometry"] = wkb.to_numpy()
    return out.sort_values("service_request_id").reset_index(drop=True)


def _quarantine(store: EmbeddedStore) -> pd.DataFrame:
    return store.quarantine().sort_values("quarantine_id").reset_index(drop=True)


def test_batches_are_the_file_in_pieces() -> None:
    from geo.ingest.readers import read_requests

    path = INPUTS / "messy.csv"
    whole = read_requests(path).frame
    pieces = pd.concat(list(read_batches(path, batch_rows=701)), ignore_index=True)
    assert [len(p) for p in read_batches(path, batch_rows=1000)] == [1000, 1000, 1000]
    pd.testing.assert_frame_equal(pieces, whole)


@pytest.mark.parametrize(("name", "mapping"), [("messy.csv", None), ("messy-bom.csv", None),
                                               ("plain-mapped.csv", PLAIN),
                                               ("bad-input.csv", None)])
def test_stream_equals_whole_file(tmp_path: Path, name: str, mapping: object) -> None:
    path = INPUTS / name
    whole, streamed = _store(tmp_path / "whole"), _store(tmp_path / "streamed")
    a = ingest(path, whole, now=NOW, mapping=mapping)  # type: ignore[arg-type]
    b = ingest_stream(path, streamed, now=NOW, mapping=mapping,  # type: ignore[arg-type]
                      batch_rows=97)
    assert (b.result.inserted, b.result.updated, b.result.unchanged) == (
        a.result.inserted, a.result.updated, a.result.unchanged)
    assert b.result.quarantined == a.result.quarantined
    assert (b.rows_read, b.located, b.outside, b.flags, b.batch_id, b.format) == (
        a.rows_read, a.located, a.outside, a.flags, a.batch_id, a.format)
    assert b.balanced
    pd.testing.assert_frame_equal(_requests(streamed), _requests(whole), check_dtype=False)
    pd.testing.assert_frame_equal(_quarantine(streamed), _quarantine(whole))
    if name == "messy.csv":  # duplicates across batches were resolved file-wide
        q = whole.quarantine()
        assert (q["reason"] == "duplicate_id").sum() > 0
    # the same file again changes nothing
    again = ingest_stream(path, streamed, now=NOW, mapping=mapping,  # type: ignore[arg-type]
                          batch_rows=97)
    assert again.result.inserted == again.result.updated == 0
    assert again.result.unchanged == a.result.inserted + a.result.updated + a.result.unchanged
    assert len(streamed.batches()) == 2


def test_stream_updates_a_store_and_falls_back_for_other_files(tmp_path: Path) -> None:
    store = _store(tmp_path / "s")
    ingest(REAL / "parks-maintenance.csv", store, now=NOW)
    before = store.count()
    changed = pd.read_csv(REAL / "parks-maintenance.csv", dtype=str, keep_default_na=False)
    changed = changed.iloc[:40].copy()
    changed["status"] = "Closed"
    changed["updated_datetime"] = "2024-12-01 10:00:00"
    path = tmp_path / "changed.csv"
    changed.to_csv(path, index=False)
    report = ingest_stream(path, store, now=NOW, batch_rows=7)
    assert report.result.updated == 40 and store.count() == before
    frame = store.requests().set_index("service_request_id")
    assert frame.index.is_unique
    # a cp1252 file is not streamed: it is read whole, with the same result as ingest
    other = _store(tmp_path / "o")
    cp = ingest_stream(INPUTS / "messy-crlf-cp1252.csv", other, now=NOW, batch_rows=50)
    assert cp.encoding == "cp1252" and cp.balanced


def test_a_failure_half_way_leaves_the_store(tmp_path: Path) -> None:
    store = _store(tmp_path / "s")
    ingest(INPUTS / "messy.csv", store, now=NOW)
    before, q_before = _requests(store), _quarantine(store)
    current = (store.root / "CURRENT").read_text()
    from geo.ingest import stream

    new = pd.read_csv(INPUTS / "messy.csv", dtype=str, keep_default_na=False)
    new["service_request_id"] = "X" + new["service_request_id"]
    new.to_csv(tmp_path / "new.csv", index=False)
    batches = list(stream._validated(tmp_path / "new.csv", NO_LAYERS, stream.ColumnMapping(),
                                     stream.Format.CSV, "b", NOW, 1000, {}))
    assert len(batches) == 3 and len(batches[0].requests) > 0

    def failing() -> Iterator[ValidatedBatch]:
        yield batches[0]
        yield batches[1]
        raise OSError(28, "No space left on device")

    with pytest.raises(Exception, match="No space left"):
        store.write_stream(failing(), info={"batch_id": "b"})
    assert (store.root / "CURRENT").read_text() == current
    pd.testing.assert_frame_equal(_requests(store), before)
    pd.testing.assert_frame_equal(_quarantine(store), q_before)
    assert not list((store.root / "snapshots").glob(".stage-*"))
