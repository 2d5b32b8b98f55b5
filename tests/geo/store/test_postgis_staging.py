"""Staging tables of the parallel PostGIS load: a dead run's are dropped, a live run's kept.

A "run" here is a real process that opens a run's staging the way
:func:`geo.store.postgis_parallel.ingest_parallel` does (:func:`open_staging`: the
liveness lock, then the tables) and then waits; killing it with SIGKILL leaves what a
client killed mid-ingest leaves.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql

from geo.store.postgis import conninfo_for
from geo.store.postgis_staging import Staging, clean_staging, staging_tables
from tests.conftest import ROOT

pytestmark = pytest.mark.postgis

_RUN = """
import sys, time, psycopg
from geo.store.postgis_staging import Staging, open_staging
conn = psycopg.connect(sys.argv[1])
staging = Staging.new()
open_staging(conn, staging)
print(staging.run, conn.info.backend_pid, flush=True)
time.sleep(600)
"""


@dataclass
class Run:
    """A process holding a run's staging tables open."""

    process: subprocess.Popen[str]
    staging: Staging
    backend_pid: int

    def kill(self, url: str) -> None:
        """SIGKILL the process; wait until the server has let its connection go."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        deadline = time.monotonic() + 30
        with psycopg.connect(conninfo_for(url), autocommit=True) as conn:
            while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                               (self.backend_pid,)).fetchone() != (0,):
                assert time.monotonic() < deadline, "the server kept the dead run's connection"
                time.sleep(0.1)


@contextmanager
def running(url: str) -> Iterator[Run]:
    """Start a run in another process; kill it at the end if it is still there."""
    process = subprocess.Popen([sys.executable, "-c", _RUN, conninfo_for(url)], cwd=ROOT,
                               stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert process.stdout is not None
        line = process.stdout.readline().split()
        assert len(line) == 2, "the run did not start"
        yield Run(process, Staging(line[0]), int(line[1]))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def test_clean_drops_a_killed_runs_tables_and_keeps_a_live_runs(postgis_url: str) -> None:
    with running(postgis_url) as dead, running(postgis_url) as live, \
            psycopg.connect(conninfo_for(postgis_url)) as conn:
        with conn.transaction():  # a table with the prefix but not a staging table's name
            conn.execute("CREATE TABLE ingest_staging_notes (x int)")
        everything = sorted([*dead.staging.tables, *live.staging.tables,
                             "ingest_staging_notes"])
        assert staging_tables(conn) == everything
        # both runs alive: nothing to drop
        report = clean_staging(conn)
        assert report.dropped == [] and sorted(report.in_use) == sorted(
            [*dead.staging.tables, *live.staging.tables])
        assert report.unknown == ["ingest_staging_notes"]
        dead.kill(postgis_url)
        # a dry run reports, drops nothing
        report = clean_staging(conn, dry_run=True)
        assert sorted(report.dropped) == sorted(dead.staging.tables)
        assert sorted(report.in_use) == sorted(live.staging.tables)
        assert staging_tables(conn) == everything
        report = clean_staging(conn)
        assert sorted(report.dropped) == sorted(dead.staging.tables)
        assert sorted(report.in_use) == sorted(live.staging.tables)
        assert staging_tables(conn) == sorted([*live.staging.tables, "ingest_staging_notes"])
        # the live run's tables still work: it can go on writing
        with conn.transaction():
            conn.execute(sql.SQL("INSERT INTO {} VALUES ('r1', 0, 'zip', '19104')").format(
                sql.Identifier(live.staging.areas)))
        live.kill(postgis_url)
        assert sorted(clean_staging(conn).dropped) == sorted(live.staging.tables)
        assert staging_tables(conn) == ["ingest_staging_notes"]
        assert clean_staging(conn).dropped == []


def test_run_ids_give_distinct_lock_keys() -> None:
    a, b = Staging("0123456789abcdef"), Staging("0123456789abcdee")
    assert a.live_key == int("0123456789abcde", 16) and a.live_key < 2**63
    assert a.lock_key == b.lock_key  # the workers' per-file locks are a separate space
    assert Staging.new().run != Staging.new().run
