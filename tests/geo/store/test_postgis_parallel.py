"""geo.store.postgis_parallel on a LocalCluster of 2 worker processes and a real PostGIS:
files staged by the workers' own COPY, applied in one transaction, give what ingesting
the files one after another through the store gives; twice changes nothing; a failure
half-way (a bad file, the server refusing the final step) leaves the store as it was; a
worker killed after staging a file does not stage it twice."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geo.ingest.pipeline import IngestReport, ingest
from geo.store.postgis import PostGISStore
from geo.store.postgis_parallel import ingest_parallel, staging_tables
from hotspot311.errors import InputError, StoreError
from layers.profile import CityProfile
from tests.geo.ingest import test_partitioned as cases
from tests.geo.store.stores import NOW, TESTVILLE, normalized
from tests.postgis_server import PostgresServer

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.postgis

PARKS = Path(__file__).resolve().parents[3] / "data/philadelphia/requests/parks-maintenance.csv"


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                 dashboard_address=":0") as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


@pytest.fixture
def open_store(postgis_server: PostgresServer) -> Iterator:
    """Open stores on fresh databases; all closed and dropped after the test."""
    opened: list[tuple[PostGISStore, str]] = []

    def make(profile: CityProfile) -> PostGISStore:
        url = postgis_server.clone("par")
        store = PostGISStore.open(url, profile)
        opened.append((store, url))
        return store

    yield make
    for store, url in opened:
        store.close()
        postgis_server.drop(url)


def parks_files(directory: Path, parts: int = 4, *, changed: bool = False) -> list[Path]:
    """The real parks file in parts, and one more with two bad rows, three repeats and,
    with ``changed``, another version of one request with the same (missing) updated
    time: the later file wins (and wins again over the earlier one on a re-run)."""
    directory.mkdir()
    raw = pd.read_csv(PARKS, dtype=str)
    paths = []
    for i, chunk in enumerate(np.array_split(np.arange(len(raw)), parts)):
        paths.append(directory / f"parks-{i}.csv")
        raw.iloc[chunk].to_csv(paths[-1], index=False)
    extra = raw.iloc[:6].copy()
    extra.loc[extra.index[0], "request_id"] = ""  # missing_id
    extra.loc[extra.index[1], "start_time"] = "not a time"  # unparseable_time
    if changed:
        extra.loc[extra.index[5], "status"] = "New" if raw.iloc[5]["status"] != "New" else "Closed"
    paths.append(directory / "parks-extra.csv")
    extra.to_csv(paths[-1], index=False)
    return paths


def areas(store: PostGISStore) -> list[tuple[str, str, str]]:
    with store.pool.connection() as conn:
        rows = conn.execute("SELECT service_request_id, layer_key, code FROM request_areas"
                            " ORDER BY 1, 2").fetchall()
    return [tuple(r) for r in rows]


def counts(reports: list[IngestReport]) -> list[tuple[int, int, int, int, int]]:
    return [(r.rows_read, r.result.inserted, r.result.updated, r.result.unchanged,
             sum(r.result.quarantined.values())) for r in reports]


def snapshot(store: PostGISStore) -> tuple[pd.DataFrame, list, pd.DataFrame, int]:
    q = store.quarantine().drop(columns=["seq", "quarantined_at"], errors="ignore")
    q = q.sort_values("quarantine_id").reset_index(drop=True)
    return normalized(store.requests()), areas(store), q, len(store.batches())


def assert_same_store(a: PostGISStore, b: PostGISStore) -> None:
    ra, aa, qa, _ = snapshot(a)
    rb, ab, qb, _ = snapshot(b)
    pd.testing.assert_frame_equal(ra.drop(columns=["problem_id"], errors="ignore"),
                                  rb.drop(columns=["problem_id"], errors="ignore"))
    assert aa == ab
    pd.testing.assert_frame_equal(qa, qb)


def no_staging_left(store: PostGISStore) -> bool:
    with store.pool.connection() as conn:
        return staging_tables(conn) == []


def test_parallel_copy_equals_file_by_file_and_twice_changes_nothing(
    tmp_path: Path, client: distributed.Client, open_store, phila: CityProfile
) -> None:
    paths = parks_files(tmp_path / "in")
    reference = open_store(phila)
    expected = [ingest(p, reference, now=NOW) for p in paths]
    store = open_store(phila)
    got = ingest_parallel(paths, store, client=client, now=NOW)
    assert [r.path for r in got] == paths
    assert counts(got) == counts(expected)
    assert all(r.balanced for r in got)
    assert sum(r.result.unchanged for r in got) >= 3
    assert_same_store(store, reference)
    assert len(areas(store)) > len(store.requests())  # codes of several layers per request
    assert list(store.batches()["source_file"]) == [str(p) for p in paths]
    assert no_staging_left(store)

    before = snapshot(store)
    again = ingest_parallel(paths, store, client=client, now=NOW)
    t = cases.totals(again)
    assert t["inserted"] == t["updated"] == 0
    assert t["unchanged"] + t["quarantined"] == t["read"] == sum(r.rows_read for r in got)
    after = snapshot(store)
    pd.testing.assert_frame_equal(after[0], before[0])
    assert after[1] == before[1]
    pd.testing.assert_frame_equal(after[2], before[2])
    assert after[3] == before[3] + len(paths)  # one batch record per file, nothing else


def test_repeats_across_files_decide_as_in_order(
    tmp_path: Path, client: distributed.Client, open_store, phila: CityProfile
) -> None:
    paths = cases.files(tmp_path)
    reference = open_store(TESTVILLE)
    expected = [ingest(p, reference, now=NOW) for p in paths]
    store = open_store(TESTVILLE)
    got = ingest_parallel(paths, store, client=client, now=NOW)
    assert counts(got) == counts(expected)
    assert cases.totals(got) == {"read": 10, "inserted": 6, "updated": 1, "unchanged": 1,
                                 "quarantined": 2}
    assert_same_store(store, reference)
    assert store.requests().set_index("service_request_id").loc["r2", "status"] == "closed"
    # the same time and another row: the later file wins, run after run, as in order
    parks = parks_files(tmp_path / "parks", parts=2, changed=True)
    reference, store = open_store(phila), open_store(phila)
    for _ in range(2):
        expected = [ingest(p, reference, now=NOW) for p in parks]
        got = ingest_parallel(parks, store, client=client, now=NOW)
        assert counts(got) == counts(expected)
        assert sum(r.result.updated for r in got) >= 1
        assert_same_store(store, reference)


def test_a_bad_file_stores_nothing(
    tmp_path: Path, client: distributed.Client, open_store, phila: CityProfile
) -> None:
    paths = parks_files(tmp_path / "in", parts=2)
    store = open_store(phila)
    ingest_parallel(paths[:1], store, client=client, now=NOW)
    before = snapshot(store)
    bad = tmp_path / "in" / "binary.csv"
    bad.write_bytes(b"\x00\x01\x02\xff" * 100)
    with pytest.raises(InputError):
        ingest_parallel([paths[1], bad, paths[2]], store, client=client, now=NOW)
    after = snapshot(store)
    pd.testing.assert_frame_equal(after[0], before[0])
    assert after[1] == before[1]
    pd.testing.assert_frame_equal(after[2], before[2])
    assert after[3] == before[3]
    assert no_staging_left(store)


def test_server_refusing_the_final_step_leaves_the_store_as_it_was(
    tmp_path: Path, client: distributed.Client, open_store, phila: CityProfile
) -> None:
    paths = parks_files(tmp_path / "in", parts=2)
    store = open_store(phila)
    ingest_parallel(paths[:1], store, client=client, now=NOW)
    before = snapshot(store)
    # a real refusal from the server at the last statement of the transaction, after the
    # requests, codes and quarantine rows were written
    with store.pool.connection() as conn:
        conn.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'no room for the batch record'; END $$")
        conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON batches"
                     " FOR EACH ROW EXECUTE FUNCTION refuse()")
    with pytest.raises(StoreError, match="no room for the batch record"):
        ingest_parallel(paths[1:], store, client=client, now=NOW)
    after = snapshot(store)
    pd.testing.assert_frame_equal(after[0], before[0])
    assert after[1] == before[1]
    pd.testing.assert_frame_equal(after[2], before[2])
    assert after[3] == before[3]
    assert no_staging_left(store)


def test_worker_killed_after_staging_a_file_gives_the_same_answer(
    tmp_path: Path, client: distributed.Client, open_store, phila: CityProfile
) -> None:
    paths = parks_files(tmp_path / "in", parts=6)
    reference = open_store(phila)
    expected = [ingest(p, reference, now=NOW) for p in paths]
    store = open_store(phila)
    killed: list[int] = []

    def kill_after_first(futures: list) -> None:
        first = next(iter(distributed.as_completed(futures)))
        holder = next(iter(client.who_has(first)[first.key]))
        pid = client.run(os.getpid, workers=[holder])[holder]
        os.kill(pid, signal.SIGKILL)  # its staged file's result is lost: Dask runs it again
        killed.append(pid)

    got = ingest_parallel(paths, store, client=client, now=NOW, watch=kill_after_first)
    assert killed
    assert counts(got) == counts(expected)
    assert_same_store(store, reference)
    assert no_staging_left(store)
    client.wait_for_workers(2, timeout=60)


def test_clean_staging_keeps_a_running_ingests_tables(
    tmp_path: Path, client: distributed.Client, open_store, phila: CityProfile
) -> None:
    from geo.store.postgis_staging import clean_staging

    paths = parks_files(tmp_path / "in", parts=2)
    store = open_store(phila)
    seen: list[tuple[list[str], list[str]]] = []

    def clean_meanwhile(futures: list) -> None:  # the staging tables exist, the run is live
        distributed.wait(futures)
        with store.pool.connection() as conn:
            report = clean_staging(conn)
            seen.append((report.dropped, sorted(report.in_use)))
            conn.commit()

    reports = ingest_parallel(paths, store, client=client, now=NOW, watch=clean_meanwhile)
    [(dropped, in_use)] = seen
    assert dropped == [] and len(in_use) == 3 and all(n.startswith("ingest_staging_")
                                                      for n in in_use)
    inserted = sum(r.result.inserted for r in reports)  # the run went on and finished
    assert inserted == len(store.requests()) > 150
    assert no_staging_left(store)
    with store.pool.connection() as conn:  # the run's lock went with it
        assert conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                            ).fetchone() == (0,)


def index_oids(store: PostGISStore) -> dict[str, int]:
    """Indexes of ``requests`` and the ``request_areas`` partitions, by name: a rebuilt
    one gets a new oid."""
    with store.pool.connection() as conn:
        rows = conn.execute(
            "SELECT c.relname, c.oid::int8 FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid"
            " WHERE x.indrelid = 'requests'::regclass"
            " UNION ALL SELECT c.relname, c.oid::int8 FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'request_areas'::regclass").fetchall()
    return {str(name): int(oid) for name, oid in rows}


def test_a_big_first_load_takes_the_loaders_bulk_path(
    tmp_path: Path, client: distributed.Client, open_store, phila: CityProfile,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from geo.store import postgis_load

    paths = parks_files(tmp_path / "in", changed=True)
    reference = open_store(phila)
    expected = [ingest(p, reference, now=NOW) for p in paths]
    store = open_store(phila)
    store.ensure_profile_layers()
    before = index_oids(store)
    assert {"requests_pkey", "requests_geom_city_gist"} <= set(before)
    assert sum(n.startswith("ra_layer_") for n in before) == len(phila.layer_keys)
    monkeypatch.setattr(postgis_load, "BULK_ROWS", 100)  # these files are a big load
    got = ingest_parallel(paths, store, client=client, now=NOW)
    after = index_oids(store)
    assert set(after) == set(before)  # the same indexes and partitions
    kept = sorted(name for name in before if after[name] == before[name])
    assert kept == ["ra_default"]  # the default partition; the rest rebuilt or swapped in
    assert counts(got) == counts(expected)
    assert_same_store(store, reference)
    assert no_staging_left(store)
    with store.pool.connection() as conn:  # the swapped-in partitions have statistics
        stats = conn.execute(
            "SELECT c.relname, c.reltuples::int8,"
            " EXISTS (SELECT 1 FROM pg_stats s WHERE s.tablename = c.relname"
            "         AND s.attname = 'service_request_id')"
            " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'request_areas'::regclass AND c.relname <> 'ra_default'"
        ).fetchall()
        rows = dict(conn.execute("SELECT 'ra_layer_' || layer_key, count(*) FROM request_areas"
                                 " GROUP BY layer_key").fetchall())
    assert len(stats) == len(phila.layer_keys)
    assert all(analyzed and tuples == rows.get(name, 0) for name, tuples, analyzed in stats)
    # a small load on top: through the indexes, which stay as they are
    monkeypatch.setattr(postgis_load, "BULK_ROWS", 50_000)
    extra = paths[-1].with_name("again.csv")
    raw = pd.read_csv(paths[-1], dtype=str)
    raw.loc[raw.index[2], "status"] = "Closed" if raw.iloc[2]["status"] != "Closed" else "New"
    raw.to_csv(extra, index=False)
    got = ingest_parallel([extra], store, client=client, now=NOW)
    assert [ingest(extra, reference, now=NOW).result.updated] == [
        r.result.updated for r in got] == [1]
    assert index_oids(store) == after
    assert_same_store(store, reference)
