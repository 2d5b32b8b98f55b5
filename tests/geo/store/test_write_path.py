"""The write path of both stores: the same requests and area codes after the same ingests,
updates included, and a SIGKILL mid-ingest leaves the previous state (issue 19).

PostGIS locates a write's requests in Python with the embedded store's index and loads
the codes by binary COPY, so the codes agree by construction; these tests check it on
Philadelphia's seven layers with the messy corpus file (every time, coordinate, ZIP and
status form) and an update file that moves requests across areas, both through the small
path (delete and COPY through the indexes) and the bulk one (fresh partitions swapped in).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest

import geo.store.postgis_load
from geo.ingest.pipeline import ingest
from geo.store.base import Store
from hotspot311.cli.demo import generate
from layers.profile import CityProfile
from tests.geo.ingest.quarantine_corpus import INPUTS
from tests.geo.store.stores import NOW, normalized, open_test_store

ROOT = Path(__file__).resolve().parents[3]


def _updates(path: Path, base: Path) -> Path:
    """Rows of ``base`` changed: a newer time and a new place (other areas), a new
    description at the same time (a tie that differs), and new ids."""
    frame = pd.read_csv(base, dtype=str, keep_default_na=False).iloc[:400].copy()
    moved = frame.index[::2]
    frame.loc[moved, "updated_datetime"] = "2026-06-01T10:00:00Z"
    rng = np.random.default_rng(19)
    frame.loc[moved, "lat"] = [f"{v:.6f}" for v in rng.uniform(39.90, 40.08, len(moved))]
    frame.loc[moved, "lon"] = [f"{v:.6f}" for v in rng.uniform(-75.25, -75.02, len(moved))]
    frame.loc[frame.index[1::2], "description"] = "changed at the same time"
    extra = frame.iloc[:50].copy()
    extra["request_id"] = [f"NEW-{i}" for i in range(len(extra))]  # the parks file's id
    pd.concat([frame, extra]).to_csv(path, index=False)
    return path


def _ingests(store: Store, tmp_path: Path, philly_layers: dict) -> list[tuple[int, int, int]]:
    for spec in store.profile.layers:
        store.add_generation(spec, philly_layers[spec.key])
    messy = INPUTS / "messy.csv"
    parks = ROOT / "data" / "philadelphia" / "requests" / "parks-maintenance.csv"
    counts = []
    for path in (parks, messy, _updates(tmp_path / "updates.csv", parks), messy):
        r = ingest(path, store, now=NOW).result
        counts.append((r.inserted, r.updated, r.unchanged))
    # a new generation of a layer over the stored requests: other lines, other codes
    council = next(spec for spec in store.profile.layers if spec.key == "council_district")
    redrawn = philly_layers["council_district"].copy()
    redrawn["geometry"] = redrawn.geometry.translate(xoff=2500.0)
    redrawn["code"] = redrawn["code"].astype(str) + "-2028"
    store.add_generation(council, redrawn)
    return counts


@pytest.mark.postgis
@pytest.mark.parametrize("bulk_rows", [1, 50_000], ids=["bulk-partitions", "delete-and-copy"])
def test_both_stores_hold_the_same_requests_and_codes(
    request: pytest.FixtureRequest, tmp_path: Path, philly_profile: CityProfile,
    philly_layers: dict, monkeypatch: pytest.MonkeyPatch, bulk_rows: int,
) -> None:
    monkeypatch.setattr(geo.store.postgis_load, "BULK_ROWS", bulk_rows)
    frames, counts, quarantines = [], [], []
    for kind in ("embedded", "postgis"):
        (tmp_path / kind).mkdir()
        s = open_test_store(kind, tmp_path / kind, request, philly_profile)
        try:
            counts.append(_ingests(s, tmp_path / kind, philly_layers))
            frames.append(normalized(s.requests()))
            q = s.quarantine().drop(columns="source_file").astype(
                {"detail": object, "service_request_id": object, "address": object})
            quarantines.append(q.where(q.notna(), None).sort_values("quarantine_id")
                               .reset_index(drop=True))
        finally:
            s.close()
    assert counts[0] == counts[1]
    inserted, updated, _ = counts[0][2]
    # (82 parks rows lie after NOW: quarantined as time_in_future in every file)
    assert inserted >= 45 and updated >= 150  # new ids; moved (newer) and tie-but-changed rows
    assert counts[0][3][:2] == (0, 0)  # the messy file again changes nothing
    emb, pg = frames
    keys = list(philly_profile.layer_keys)
    pd.testing.assert_frame_equal(emb[["service_request_id", *keys]],
                                  pg[["service_request_id", *keys]])
    pd.testing.assert_frame_equal(emb, pg, check_dtype=False)
    moved = emb[emb["updated_datetime"] == pd.Timestamp("2026-06-01T10:00:00Z")]
    assert len(moved) > 80 and moved["council_district"].nunique() > 3
    assert emb["council_district"].dropna().str.endswith("-2028").all()
    assert emb["council_district"].notna().sum() > 0.8 * len(emb)
    pd.testing.assert_frame_equal(quarantines[0], quarantines[1], check_dtype=False)


def _half_moved(path: Path, base: Path) -> Path:
    """Every row of ``base``: the even ones moved (newer, elsewhere), the odd ones as
    they are, and as many new ids as there are rows, so the file outnumbers the store."""
    frame = pd.read_csv(base, dtype=str, keep_default_na=False)
    moved = frame.index[::2]
    frame.loc[moved, "updated_datetime"] = "2026-06-01T10:00:00Z"
    rng = np.random.default_rng(23)
    frame.loc[moved, "lat"] = [f"{v:.6f}" for v in rng.uniform(39.90, 40.08, len(moved))]
    frame.loc[moved, "lon"] = [f"{v:.6f}" for v in rng.uniform(-75.25, -75.02, len(moved))]
    extra = frame.copy()
    extra["request_id"] = [f"NEW-{i}" for i in range(len(extra))]
    pd.concat([frame, extra]).to_csv(path, index=False)
    return path


@pytest.mark.postgis
def test_a_big_write_with_unchanged_rows_loads_the_codes_of_the_written_ones(
    request: pytest.FixtureRequest, tmp_path: Path, philly_profile: CityProfile,
    philly_layers: dict, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A write big on the store (fresh partitions) with unchanged, moved and new rows:
    the codes loaded are those of the written rows, the unchanged rows keep theirs
    (PostGIS equals the embedded store, no duplicate code rows)."""
    monkeypatch.setattr(geo.store.postgis_load, "BULK_ROWS", 1)
    parks = ROOT / "data" / "philadelphia" / "requests" / "parks-maintenance.csv"
    again = _half_moved(tmp_path / "again.csv", parks)
    frames, counts = [], []
    for kind in ("embedded", "postgis"):
        (tmp_path / kind).mkdir()
        s = open_test_store(kind, tmp_path / kind, request, philly_profile)
        try:
            for spec in s.profile.layers:
                s.add_generation(spec, philly_layers[spec.key])
            ingest(parks, s, now=NOW)
            r = ingest(again, s, now=NOW).result
            counts.append((r.inserted, r.updated, r.unchanged))
            frames.append(normalized(s.requests()))
        finally:
            s.close()
    assert counts[0] == counts[1]
    inserted, updated, unchanged = counts[0]
    assert inserted > 0 and updated > 0 and unchanged > 0
    pd.testing.assert_frame_equal(frames[0], frames[1], check_dtype=False)


_KILL_SCRIPT = """
import sys
from geo.store.postgis import PostGISStore
from geo.ingest.pipeline import ingest
from layers.profile import load_profile
store = PostGISStore.open(sys.argv[1], load_profile("philadelphia"))
print("open", flush=True)
ingest(sys.argv[2], store)
"""


def _in_transaction(url: str) -> bool:
    """Whether another session of this database has a transaction open (the ingest's)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND xact_start IS NOT NULL").fetchone()
    return bool(row and row[0])


@pytest.mark.postgis
@pytest.mark.slow
def test_killed_postgis_ingest_leaves_previous_state(
    postgis_url: str, tmp_path: Path, philly_profile: CityProfile, philly_layers: dict,
) -> None:
    """A real ``SIGKILL`` of the ingesting process, at several moments of the write: the
    server rolls the open transaction back, and the store is as it was."""
    from geo.store.postgis import PostGISStore

    store = PostGISStore.open(postgis_url, philly_profile)
    try:
        for spec in philly_profile.layers:
            store.add_generation(spec, philly_layers[spec.key])
        ingest(ROOT / "data" / "philadelphia" / "requests" / "parks-maintenance.csv", store)
        before = normalized(store.requests())
        batches = len(store.batches())
    finally:
        store.close()
    big = tmp_path / "big.csv"
    generate(120_000, seed=5).to_csv(big, index=False)
    killed_in_transaction = 0
    for after in (0.0, 0.4, 1.5, 4.0):  # seconds after its write transaction began
        proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, postgis_url, str(big)],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert proc.stdout is not None
        with proc.stdout:
            assert proc.stdout.readline().strip() == b"open"
        deadline = time.monotonic() + 300
        while not _in_transaction(postgis_url) and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(after)
        inside = _in_transaction(postgis_url)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        store = PostGISStore.open(postgis_url, philly_profile)
        if len(store.batches()) != batches:
            # the commit landed before the kill (or the process finished): all of the
            # write, never part of it; later rounds would write nothing
            try:
                assert len(store.batches()) == batches + 1
                assert int(store.batches()["rows_read"].iloc[-1]) == 120_000
                assert set(before["service_request_id"]) <= set(
                    store.requests()["service_request_id"])
            finally:
                store.close()
            break
        assert proc.returncode == -signal.SIGKILL
        killed_in_transaction += int(inside)
        try:
            deadline = time.monotonic() + 30  # the server notices the dead client
            while True:
                try:
                    pd.testing.assert_frame_equal(normalized(store.requests()), before)
                    break
                except AssertionError:
                    assert time.monotonic() < deadline
                    time.sleep(0.5)
            assert len(store.batches()) == batches
        finally:
            store.close()
    assert killed_in_transaction >= 1
    store = PostGISStore.open(postgis_url, philly_profile)
    try:  # the next writer works
        report = ingest(ROOT / "data" / "philadelphia" / "requests" / "parks-maintenance.csv",
                        store)
        assert report.result.unchanged == 284
    finally:
        store.close()


@pytest.mark.postgis
@pytest.mark.parametrize("bulk_rows", [1, 50_000], ids=["bulk", "through-the-indexes"])
def test_new_rows_are_written_in_hilbert_order(
    request: pytest.FixtureRequest, tmp_path: Path, philly_profile: CityProfile,
    monkeypatch: pytest.MonkeyPatch, bulk_rows: int,
) -> None:
    """The rows a write inserts land in the table in Hilbert order of their city x/y (an
    area's rows on a few pages): those of a first load, and the new ids of a second file
    whose other rows are unchanged or moved."""
    from geo.store.hilbert import hilbert_keys

    monkeypatch.setattr(geo.store.postgis_load, "BULK_ROWS", bulk_rows)
    parks = ROOT / "data" / "philadelphia" / "requests" / "parks-maintenance.csv"
    again = _half_moved(tmp_path / "again.csv", parks)
    s = open_test_store("postgis", tmp_path, request, philly_profile)
    url = request.getfixturevalue("postgis_url")
    query = "SELECT service_request_id, x, y FROM requests ORDER BY ctid"
    try:
        first = ingest(parks, s, now=NOW).result.inserted
        with psycopg.connect(url) as conn:
            loaded = pd.DataFrame(conn.execute(query).fetchall(), columns=["id", "x", "y"])
        second = ingest(again, s, now=NOW).result.inserted
        with psycopg.connect(url) as conn:
            after = pd.DataFrame(conn.execute(query).fetchall(), columns=["id", "x", "y"])
    finally:
        s.close()
    news = after[after["id"].str.startswith("NEW-")]
    assert len(loaded) == first > 100 and len(news) == second > 100
    for part in (loaded, news):
        keys = hilbert_keys(part["x"].to_numpy(float), part["y"].to_numpy(float))
        assert (np.diff(keys.astype(np.int64)) >= 0).all()


@pytest.mark.postgis
def test_a_failure_while_locating_on_the_thread_leaves_the_store_as_it_was(
    request: pytest.FixtureRequest, tmp_path: Path, philly_profile: CityProfile,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The written rows are located on a thread beside the server's COPY: an error there
    reaches the caller and rolls the whole write back."""
    import geo.store.postgis_areas

    parks = ROOT / "data" / "philadelphia" / "requests" / "parks-maintenance.csv"
    s = open_test_store("postgis", tmp_path, request, philly_profile)
    try:
        ingest(parks, s, now=NOW)
        before = normalized(s.requests())
        batches = len(s.batches())

        def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("locate failed on its thread")

        monkeypatch.setattr(geo.store.postgis_areas, "area_rows", broken)
        with pytest.raises(RuntimeError, match="on its thread"):
            ingest(_half_moved(tmp_path / "again.csv", parks), s, now=NOW)
        pd.testing.assert_frame_equal(normalized(s.requests()), before)
        assert len(s.batches()) == batches
    finally:
        s.close()


def _planner_view(url: str) -> tuple[float, set[str]]:
    """The planner's row count of ``requests`` and the columns it has statistics for."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT reltuples FROM pg_class WHERE oid = 'requests'::regclass").fetchone()
        assert row is not None
        columns = {r[0] for r in conn.execute(
            "SELECT attname FROM pg_stats WHERE tablename = 'requests'").fetchall()}
    return float(row[0]), columns


@pytest.mark.postgis
@pytest.mark.slow
def test_a_big_write_leaves_the_planner_statistics_of_what_it_wrote(
    postgis_url: str, tmp_path: Path, philly_profile: CityProfile
) -> None:
    """A write of many rows analyzes ``requests`` in its transaction (a first load's
    plans otherwise come from an empty table's statistics until autovacuum gets there,
    minutes later at 1M rows), without the display-only columns, and ``problem_id`` again
    once the problem ids are written; a trickle does not."""
    from clustering.problems import ProblemAssigner, ProblemRules
    from geo.store.postgis import PostGISStore

    first = tmp_path / "first.csv"
    generate(6_000, seed=7).to_csv(first, index=False)
    store = PostGISStore.open(postgis_url, philly_profile)
    try:
        assert _planner_view(postgis_url)[1] == set()  # nothing stored, nothing analyzed
        problems = ProblemAssigner(ProblemRules.for_city(philly_profile))
        stored = ingest(first, store, problems=problems).result.inserted
        assert stored > 5_000
        counted, columns = _planner_view(postgis_url)
        assert counted == stored  # ANALYZE counts every row of a table this small
        assert {"service_name", "status", "requested_datetime", "lat"} <= columns
        assert not columns & {"description", "address", "status_notes", "extra", "row_hash"}
        # problem_id's statistics are of the ids as written (after the first analyze)
        with psycopg.connect(postgis_url) as conn:
            row = conn.execute(
                "SELECT (SELECT null_frac FROM pg_stats WHERE tablename = 'requests'"
                " AND attname = 'problem_id'), avg((problem_id IS NULL)::int) FROM requests"
            ).fetchone()
        assert row is not None and row[1] < 0.5
        assert row[0] == pytest.approx(float(row[1]), abs=1e-6)
        few = tmp_path / "few.csv"
        generate(20, seed=8).assign(
            service_request_id=lambda f: [f"TRICKLE-{i}" for i in range(len(f))]
        ).to_csv(few, index=False)
        assert ingest(few, store).result.inserted > 0
        assert _planner_view(postgis_url)[0] == counted  # 20 rows: left to autovacuum
    finally:
        store.close()
