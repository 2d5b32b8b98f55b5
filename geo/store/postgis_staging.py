"""The per-run staging tables of the parallel PostGIS load, and cleaning up after dead runs.

:func:`geo.store.postgis_parallel.ingest_parallel` stages the workers' rows in three
``UNLOGGED`` tables per run (:class:`Staging`: ``ingest_staging_<run>_requests``,
``_areas``, ``_quarantine``) and drops them at the end, whether the run succeeded or not.

A run holds a session advisory lock (:attr:`Staging.live_key`) on one connection from
before its staging tables are made until they are dropped (:func:`open_staging`,
:func:`close_staging`). If the client process dies in between, its tables stay but the
lock goes with its connection: :func:`clean_staging` (``hotspot311 db clean-staging``)
drops the staging tables whose run holds no lock and leaves those of live runs alone.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Final

import psycopg
from psycopg import sql

from geo.ingest.validate import QUARANTINE_COLUMNS

__all__ = ["STAGING_PREFIX", "CleanReport", "Staging", "clean_staging", "close_staging",
           "create_staging", "drop_staging", "open_staging", "staging_tables"]

#: Every staging table's name starts with this (``<prefix><run>_requests`` …).
STAGING_PREFIX: Final = "ingest_staging_"
#: A staging table's name: the prefix, the run id (16 hex digits), what it holds.
_STAGING_NAME: Final = re.compile(
    rf"{STAGING_PREFIX}(?P<run>[0-9a-f]{{16}})_(?:requests|areas|quarantine)")


@dataclass(frozen=True)
class Staging:
    """The names of one run's staging tables."""

    run: str

    @classmethod
    def new(cls) -> Staging:
        """Names for a new run (a random run id)."""
        return cls(uuid.uuid4().hex[:16])

    @property
    def requests(self) -> str:
        return f"{STAGING_PREFIX}{self.run}_requests"

    @property
    def areas(self) -> str:
        return f"{STAGING_PREFIX}{self.run}_areas"

    @property
    def quarantine(self) -> str:
        return f"{STAGING_PREFIX}{self.run}_quarantine"

    @property
    def tables(self) -> tuple[str, str, str]:
        return (self.requests, self.areas, self.quarantine)

    @property
    def lock_key(self) -> int:
        """First key of the advisory lock that serializes re-runs of one file's task."""
        return int(self.run[:7], 16)

    @property
    def live_key(self) -> int:
        """Key of the session advisory lock the run's client holds while it runs (the
        one-``bigint`` lock space, apart from the workers' two-``int4`` locks)."""
        return int(self.run[:15], 16)


def create_staging(conn: psycopg.Connection, staging: Staging) -> None:
    """Create the run's staging tables (committed: the workers' connections see them)."""
    q_cols = sql.SQL(", ").join(map(sql.Identifier, QUARANTINE_COLUMNS))
    with conn.transaction():
        conn.execute(sql.SQL(
            "CREATE UNLOGGED TABLE {} (LIKE requests, file_no int4 NOT NULL)"
        ).format(sql.Identifier(staging.requests)))
        conn.execute(sql.SQL(
            "CREATE UNLOGGED TABLE {} (service_request_id text NOT NULL, file_no int4 NOT NULL,"
            " layer_key text NOT NULL, code text NOT NULL)"
        ).format(sql.Identifier(staging.areas)))
        conn.execute(sql.SQL(
            "CREATE UNLOGGED TABLE {} AS SELECT {}, 0::int4 AS file_no, 0::int8 AS ord"
            " FROM quarantine WITH NO DATA"
        ).format(sql.Identifier(staging.quarantine), q_cols))


def drop_staging(conn: psycopg.Connection, staging: Staging) -> None:
    """Drop the run's staging tables (those that exist)."""
    with conn.transaction():
        for name in staging.tables:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))


def open_staging(conn: psycopg.Connection, staging: Staging) -> None:
    """Take the run's liveness lock on ``conn`` (a session lock: keep ``conn`` open for
    the run), then create its staging tables."""
    conn.execute("SELECT pg_advisory_lock(%s)", (staging.live_key,))
    conn.commit()
    create_staging(conn, staging)


def close_staging(conn: psycopg.Connection, staging: Staging) -> None:
    """Drop the run's staging tables, then release its liveness lock."""
    try:
        drop_staging(conn, staging)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (staging.live_key,))
        conn.commit()


def staging_tables(conn: psycopg.Connection) -> list[str]:
    """Names of every staging table visible in the database (live runs' and leftovers)."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c WHERE c.relkind = 'r'"
        " AND starts_with(c.relname, %s) AND pg_table_is_visible(c.oid) ORDER BY 1",
        (STAGING_PREFIX,),
    ).fetchall()
    return [str(r[0]) for r in rows]


@dataclass
class CleanReport:
    """What :func:`clean_staging` found.

    Attributes
    ----------
    dropped
        Tables of runs that are gone (dropped unless ``dry_run``).
    in_use
        Tables of runs whose client is still connected (left alone).
    unknown
        Tables with the staging prefix but not a staging table's name (left alone).
    """

    dropped: list[str] = field(default_factory=list)
    in_use: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


def clean_staging(conn: psycopg.Connection, *, dry_run: bool = False) -> CleanReport:
    """Drop the staging tables left by runs whose client died; keep live runs' tables.

    A run is live while its client holds the run's session advisory lock
    (:attr:`Staging.live_key`, taken by :func:`open_staging` before the tables exist).
    Each run found is tested with ``pg_try_advisory_xact_lock``: when the lock is free
    the run is gone, and its tables are dropped in the same transaction, so a run cannot
    start using them meanwhile (run ids are random and never reused).

    Parameters
    ----------
    conn
        A connection not inside a transaction.
    dry_run
        Only report: test the locks, drop nothing.

    Returns
    -------
    CleanReport
        The tables dropped (or that would be), those in use and those not recognised.
    """
    report = CleanReport()
    runs: dict[str, list[str]] = {}
    for name in staging_tables(conn):
        match = _STAGING_NAME.fullmatch(name)
        if match is None:
            report.unknown.append(name)
        else:
            runs.setdefault(match["run"], []).append(name)
    for run, names in sorted(runs.items()):
        with conn.transaction():
            row = conn.execute("SELECT pg_try_advisory_xact_lock(%s)",
                               (Staging(run).live_key,)).fetchone()
            if not (row and row[0]):
                report.in_use.extend(names)
                continue
            if not dry_run:
                for name in names:
                    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
            report.dropped.extend(names)
    return report
