"""ADBC connections kept between reads: reused, rolled back, checked, closed."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from geo.store import adbc_pool, postgis_read
from geo.store.postgis import PostGISStore
from layers.profile import load_profile


@pytest.fixture
def counted(postgis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[int]]]:
    """(ADBC URI, list growing by one per new ADBC connection) on a table of 2 rows."""
    with psycopg.connect(postgis_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE counted (n int)")
        conn.execute("INSERT INTO counted VALUES (1), (2)")
    real_connect = adbc_pool.adbc.connect
    opened: list[int] = []

    def connect(*args: Any, **kwargs: Any) -> Any:
        opened.append(1)
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(adbc_pool.adbc, "connect", connect)
    uri = postgis_read.adbc_uri(postgis_url)
    assert uri is not None
    yield uri, opened
    adbc_pool.close_idle(uri)


COUNT = "SELECT count(*) AS n FROM counted"


def test_reads_reuse_one_connection_and_see_later_commits(postgis_url: str,
                                                          counted: tuple[str, list[int]]) -> None:
    uri, opened = counted
    assert postgis_read.fetch_arrow(uri, COUNT).column("n").to_pylist() == [2]
    assert adbc_pool.idle_count(uri) == 1
    with psycopg.connect(postgis_url, autocommit=True) as writer:
        writer.execute("INSERT INTO counted VALUES (3)")
    # the kept connection's transaction was rolled back: no stale snapshot
    assert postgis_read.fetch_arrow(uri, COUNT).column("n").to_pylist() == [3]
    tables = postgis_read.fetch_arrow_snapshot(uri, [COUNT, "SELECT 7 AS seven"])
    assert [t.column(0).to_pylist() for t in tables] == [[3], [7]]
    assert len(opened) == 1 and adbc_pool.idle_count(uri) == 1


def test_a_failed_read_closes_its_connection(counted: tuple[str, list[int]]) -> None:
    uri, opened = counted
    postgis_read.fetch_arrow(uri, COUNT)
    with pytest.raises(Exception, match="no_such_table"):
        postgis_read.fetch_arrow(uri, "SELECT * FROM no_such_table")
    assert adbc_pool.idle_count(uri) == 0
    assert postgis_read.fetch_arrow(uri, COUNT).column("n").to_pylist() == [2]
    assert len(opened) == 2


def test_a_kept_connection_the_server_ended_is_replaced_at_once(
        postgis_url: str, counted: tuple[str, list[int]]) -> None:
    uri, opened = counted
    postgis_read.fetch_arrow(uri, COUNT)
    with psycopg.connect(postgis_url, autocommit=True) as admin:
        ended = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend'").fetchall()
    assert ended and all(row[0] for row in ended)
    assert postgis_read.fetch_arrow(uri, COUNT).column("n").to_pylist() == [2]
    assert len(opened) == 2 and adbc_pool.idle_count(uri) == 1


def test_no_more_than_max_idle_are_kept(counted: tuple[str, list[int]],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    uri, opened = counted
    monkeypatch.setattr(adbc_pool, "MAX_IDLE", 1)
    with adbc_pool.connection(uri), adbc_pool.connection(uri):
        pass  # two at once: the second given back finds the idle list full
    assert len(opened) == 2 and adbc_pool.idle_count(uri) == 1


def _child_read(uri: str, out: Any) -> None:
    out.put((adbc_pool.idle_count(uri),
             postgis_read.fetch_arrow(uri, COUNT).column("n").to_pylist()))


def test_a_forked_child_opens_its_own_and_leaves_the_parents_alone(
        counted: tuple[str, list[int]]) -> None:
    uri, _ = counted
    postgis_read.fetch_arrow(uri, COUNT)
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    child = context.Process(target=_child_read, args=(uri, out))
    child.start()
    got = out.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0 and got == (0, [2])
    # the parent's kept connection still works after the child exited
    assert adbc_pool.idle_count(uri) == 1
    assert postgis_read.fetch_arrow(uri, COUNT).column("n").to_pylist() == [2]
    assert adbc_pool.idle_count(uri) == 1


def test_closing_the_store_closes_its_idle_connections(
        postgis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from geo.store import pgcopy_out

    monkeypatch.setattr(pgcopy_out, "available", lambda: False)  # requests() through ADBC
    store = PostGISStore.open(postgis_url, load_profile("philadelphia"))
    uri = postgis_read.adbc_uri(postgis_url)
    assert uri is not None
    try:
        store.requests()
        assert adbc_pool.idle_count(uri) >= 1
    finally:
        store.close()
    assert adbc_pool.idle_count(uri) == 0
