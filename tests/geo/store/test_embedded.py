"""The embedded store: idempotent upserts, atomic snapshots (with a real kill), generations."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from geo.ingest.pipeline import ingest
from geo.store.embedded import EmbeddedStore, _index_by_digest
from hotspot311.cli.demo import generate
from hotspot311.errors import StoreError
from layers.profile import CityProfile, LayerSpec, load_profile
from tests.conftest import REQUESTS, utm_to_lonlat, write_squares

ROOT = Path(__file__).resolve().parents[3]


def _csv(path: Path, rows: list[dict[str, object]]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_reingest_changes_nothing(embedded: EmbeddedStore) -> None:
    path = REQUESTS / "parks-maintenance.csv"
    first = ingest(path, embedded)
    assert first.result.inserted == first.rows_read == 284
    before = embedded.requests()
    second = ingest(path, embedded)
    assert (second.result.inserted, second.result.updated, second.result.unchanged) == (0, 0, 284)
    after = embedded.requests()
    pd.testing.assert_frame_equal(before.drop(columns="batch_id"), after.drop(columns="batch_id"))
    assert len(embedded.batches()) == 2


def test_newest_updated_wins(tmp_path: Path, embedded: EmbeddedStore) -> None:
    base = {
        "service_request_id": "R1",
        "requested_datetime": "2024-05-01 10:00",
        "service_name": "Pothole",
        "lat": 39.9526,
        "lon": -75.1652,
    }
    ingest(
        _csv(
            tmp_path / "a.csv", [{**base, "updated_datetime": "2024-05-02 10:00", "status": "Open"}]
        ),
        embedded,
    )
    older = ingest(
        _csv(
            tmp_path / "b.csv",
            [{**base, "updated_datetime": "2024-05-01 12:00", "status": "Closed"}],
        ),
        embedded,
    )
    assert older.result.unchanged == 1
    assert embedded.requests()["status"].tolist() == ["open"]
    newer = ingest(
        _csv(
            tmp_path / "c.csv",
            [{**base, "updated_datetime": "2024-05-03 10:00", "status": "Closed"}],
        ),
        embedded,
    )
    assert newer.result.updated == 1
    assert embedded.requests()["status"].tolist() == ["closed"]
    tie = ingest(
        _csv(
            tmp_path / "d.csv",
            [
                {
                    **base,
                    "updated_datetime": "2024-05-03 10:00",
                    "status": "Closed",
                    "address": "1400 JFK BLVD",
                }
            ],
        ),
        embedded,
    )
    assert tie.result.updated == 1  # same time, different content: the later ingest wins
    assert len(embedded.requests()) == 1


def test_requests_are_joined_on_write(embedded: EmbeddedStore) -> None:
    ingest(REQUESTS / "parks-maintenance.csv", embedded)
    frame = embedded.requests()
    for key in embedded.profile.layer_keys:
        joined = frame[key].notna().sum()
        outside = frame[key].isna().sum()
        assert joined + outside == len(frame)
        assert joined >= len(frame) - 3, key


def test_join_indexes_are_kept_in_the_store(embedded: EmbeddedStore) -> None:
    """Each active layer's join index is kept under cache/joins by its file's content; a
    new process loads it (here: the process memo cleared); a damaged one is built again."""
    ingest(REQUESTS / "parks-maintenance.csv", embedded)
    kept = sorted((embedded.root / "cache" / "joins").glob("*.npz"))
    assert len(kept) == len(embedded.active())
    before = embedded.requests()
    kept[0].write_bytes(b"damaged")
    _index_by_digest.cache_clear()
    again = EmbeddedStore(embedded.root, embedded.profile)
    again.rejoin()
    pd.testing.assert_frame_equal(before, again.requests())
    assert kept[0].read_bytes()[:2] == b"PK"  # rebuilt and kept again (an .npz is a zip)


def test_other_city_profile_is_refused(tmp_path: Path, phila: CityProfile) -> None:
    store = EmbeddedStore(tmp_path / "s", phila)
    ingest(REQUESTS / "parks-maintenance.csv", store)
    other = load_profile(write_squares(tmp_path))
    with pytest.raises(StoreError, match="holds 'Philadelphia' requests"):
        EmbeddedStore(tmp_path / "s", other)


def test_two_generations_rejoin_only_that_layer(tmp_path: Path) -> None:
    profile = load_profile(write_squares(tmp_path))
    store = EmbeddedStore(tmp_path / "store", profile)
    rows = []
    for i, (x, y) in enumerate([(500500, 4400500), (501500, 4400500), (501200, 4400500)]):
        lon, lat = utm_to_lonlat(x, y)
        rows.append(
            {
                "service_request_id": f"S{i}",
                "requested_datetime": "2024-01-02 09:00",
                "service_name": "Test",
                "lat": lat,
                "lon": lon,
            }
        )
    ingest(_csv(tmp_path / "r.csv", rows), store)
    assert store.requests().sort_values("service_request_id")["square"].tolist() == ["A", "B", "B"]

    # a second layer that must not be touched when "square" gets a new generation
    other = tmp_path / "other.geojson"
    gpd.GeoDataFrame(
        {"k": ["W"]}, geometry=[shapely.box(499000, 4399000, 503000, 4402000)], crs="EPSG:32618"
    ).to_crs("EPSG:4326").to_file(other, driver="GeoJSON")
    store.add_layer_file(LayerSpec("ward", "Ward", other, "k", "k"))
    assert set(store.requests()["ward"]) == {"W"}

    # generation 2 (redrawn 2025): the boundary moves to x = 501300
    redrawn = tmp_path / "squares-2025.geojson"
    gpd.GeoDataFrame(
        {"code": ["A", "B"], "label": ["a", "b"]},
        geometry=[
            shapely.box(500000, 4400000, 501300, 4401000),
            shapely.box(501300, 4400000, 502000, 4401000),
        ],
        crs="EPSG:32618",
    ).to_crs("EPSG:4326").to_file(redrawn, driver="GeoJSON")
    from datetime import date

    gen = store.add_layer_file(
        LayerSpec("square", "Square", redrawn, "code", "label", valid_from=date(2025, 1, 1))
    )
    assert gen.generation == 2
    assert store.active()["square"].generation == 2
    joined = store.requests().sort_values("service_request_id")
    assert joined["square"].tolist() == ["A", "B", "A"]  # S2 at x=501200 moved to A
    assert set(joined["ward"]) == {"W"}
    assert len(store.areas("square", generation=1)) == 2
    assert store.areas("square").geometry.iloc[0].bounds[2] == pytest.approx(501300, abs=0.01)


_KILL_SCRIPT = """
import sys
from geo.store.embedded import EmbeddedStore, _index_by_digest
from geo.ingest.pipeline import ingest
from layers.profile import load_profile
store = EmbeddedStore(sys.argv[1], load_profile("philadelphia"))
ingest(sys.argv[2], store)
"""


@pytest.mark.slow
def test_killed_ingest_leaves_previous_state(tmp_path: Path, phila: CityProfile) -> None:
    store_dir = tmp_path / "store"
    store = EmbeddedStore(store_dir, phila)
    ingest(REQUESTS / "parks-maintenance.csv", store)
    before = store.requests()
    big = tmp_path / "big.csv"
    generate(150_000, seed=5).to_csv(big, index=False)
    snaps = store_dir / "snapshots"
    current = (store_dir / "CURRENT").read_text()
    killed_mid_write = 0
    for delay in (None, 0.3, 1.0, 2.0):
        proc = subprocess.Popen(
            [sys.executable, "-c", _KILL_SCRIPT, str(store_dir), str(big)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        if delay is None:  # wait until the new snapshot is being written, then kill
            while not any(p.name.startswith(".tmp-") for p in snaps.iterdir()):
                assert proc.poll() is None, "ingest finished before it could be killed"
                assert time.monotonic() < deadline
                time.sleep(0.002)
            killed_mid_write += 1
        else:
            time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        reopened = EmbeddedStore(store_dir, phila)
        if delay is not None and (store_dir / "CURRENT").read_text() != current:
            # the commit landed before the kill (or the process finished): the whole new
            # snapshot, never part of it; later rounds would write nothing
            assert len(reopened.batches()) == 2
            assert set(before["service_request_id"]) <= set(reopened.requests()[
                "service_request_id"])
            assert int(reopened.batches()["rows_read"].iloc[-1]) == 150_000
            break
        assert proc.returncode == -signal.SIGKILL
        pd.testing.assert_frame_equal(reopened.requests(), before)
        assert len(reopened.batches()) == 1
    assert killed_mid_write == 1
    # the next writer cleans up and works
    report = ingest(REQUESTS / "parks-maintenance.csv", EmbeddedStore(store_dir, phila))
    assert report.result.unchanged == 284
    assert not any(p.name.startswith(".tmp-") for p in snaps.iterdir())


@pytest.mark.parametrize("reverse", [False, True], ids=["stored in order", "stored reversed"])
def test_upsert_decision_rule_row_by_row(reverse: bool) -> None:
    """The upsert rule on each case, times in different units, and an id stored twice
    decided against its newest version whatever order the stored rows come in."""
    import numpy as np

    from geo.store import embedded_upsert as upsert
    from geo.store.embedded import _decide

    t0, t1 = pd.Timestamp("2026-01-01T00:00:00Z"), pd.Timestamp("2026-02-01T00:00:00Z")
    nat = pd.NaT
    #           id    incoming (time, hash)  stored versions [(time, hash)]     expected
    cases = [("a", (t1, 1), [], "insert"),
             ("b", (t1, 1), [(t0, 1)], "update"),       # newer
             ("c", (t0, 1), [(t1, 1)], "keep"),         # older
             ("d", (t1, 1), [(t1, 1)], "keep"),         # tie, same content
             ("e", (t1, 2), [(t1, 1)], "update"),       # tie, content differs
             ("f", (nat, 2), [(nat, 1)], "update"),     # both missing, content differs
             ("g", (t1, 1), [(nat, 1)], "update"),      # a time where none was
             ("h", (nat, 1), [(t1, 1)], "keep"),        # no time against one
             ("i", (t1, 1), [(t0, 1), (t1, 1)], "keep"),  # stored twice: newest counts
             ("j", (t1, 1), [(t1, 1), (t0, 2)], "keep")]
    incoming = pd.DataFrame({
        "service_request_id": [c[0] for c in cases],
        "updated_datetime": pd.Series([c[1][0] for c in cases], dtype="datetime64[ns, UTC]"),
        "row_hash": np.array([c[1][1] for c in cases], dtype=np.uint64)})
    stored_rows = [(c[0], i, *v) for i, c in enumerate(cases) for v in c[2]]
    if reverse:
        stored_rows.reverse()
    stored = pd.DataFrame({
        "service_request_id": [r[0] for r in stored_rows],
        "updated_datetime": pd.Series([r[2] for r in stored_rows], dtype="datetime64[us, UTC]"),
        "row_hash": pd.array([r[3] for r in stored_rows], dtype="UInt64"),
        upsert.INCOMING: [r[1] for r in stored_rows]})
    got = _decide(stored, incoming)
    assert got.tolist() == [c[3] for c in cases]
    assert _decide(pd.DataFrame(), incoming).eq("insert").all()
    naive = incoming.assign(updated_datetime=incoming["updated_datetime"].dt.tz_localize(None))
    with pytest.raises(TypeError, match="updated_datetime"):
        _decide(stored, naive)
