"""The PostGIS store's feed sources: tables ``sources`` and ``source_services``
(migration 0006). Functions take a connection and run inside the caller's transaction;
the mixin gives :class:`geo.store.postgis.PostGISStore` the store methods."""

from __future__ import annotations

import json
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from geo.store.sources import (
    Source,
    SourceConfig,
    SourceState,
    config_from_json,
    config_to_json,
)
from hotspot311.errors import InputError


def read_sources(conn: psycopg.Connection) -> list[Source]:
    """Every registered source, by name."""
    rows = conn.execute(
        "SELECT name, config, watermark, last_sync, last_outcome, last_error, rows_synced, "
        "pages_synced FROM sources ORDER BY name COLLATE \"C\"").fetchall()
    return [Source(config_from_json(row[1]),
                   SourceState(name=row[0], watermark=row[2], last_sync=row[3],
                               last_outcome=row[4], last_error=row[5], rows=int(row[6]),
                               pages=int(row[7])))
            for row in rows]


def insert_source(conn: psycopg.Connection, config: SourceConfig, *, replace: bool) -> None:
    """Register ``config`` (replacing the stored configuration, state kept, when
    ``replace``).

    Raises
    ------
    InputError
        When a source of that name exists and ``replace`` is false.
    """
    params = {"name": config.name, "kind": config.kind,
              "config": Jsonb(json.loads(config_to_json(config)))}
    if replace:
        conn.execute("INSERT INTO sources (name, kind, config) VALUES (%(name)s, %(kind)s, "
                     "%(config)s) ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, "
                     "config = EXCLUDED.config", params)
        return
    done = conn.execute("INSERT INTO sources (name, kind, config) VALUES (%(name)s, %(kind)s, "
                        "%(config)s) ON CONFLICT (name) DO NOTHING", params)
    if done.rowcount == 0:
        raise InputError(f"source {config.name!r} exists already; remove it first, or "
                         "choose another name")


def write_state(conn: psycopg.Connection, state: SourceState) -> None:
    """Replace the state of ``state.name``.

    Raises
    ------
    InputError
        When no source has that name (it was removed during the sync).
    """
    done = conn.execute(
        "UPDATE sources SET watermark = %s, last_sync = %s, last_outcome = %s, "
        "last_error = %s, rows_synced = %s, pages_synced = %s WHERE name = %s",
        (Jsonb(state.watermark) if state.watermark is not None else None, state.last_sync,
         state.last_outcome, state.last_error, state.rows, state.pages, state.name))
    if done.rowcount == 0:
        raise InputError(f"source {state.name!r} is not registered (was it removed?)")


class PostGISSources:
    """The source methods of :class:`geo.store.postgis.PostGISStore` (a mixin: the store
    provides ``_connection``)."""

    def sources(self) -> list[Source]:
        """Every registered source (see :meth:`geo.store.base.Store.sources`)."""
        with self._connection() as conn, conn.transaction():  # type: ignore[attr-defined]
            return read_sources(conn)

    def save_source(self, config: SourceConfig, *, replace: bool = False) -> None:
        """Register a source (see :meth:`geo.store.base.Store.save_source`)."""
        with self._connection() as conn, conn.transaction():  # type: ignore[attr-defined]
            insert_source(conn, config, replace=replace)

    def remove_source(self, name: str) -> bool:
        """Forget a source, keeping its requests (see :meth:`Store.remove_source`)."""
        with self._connection() as conn, conn.transaction():  # type: ignore[attr-defined]
            return conn.execute("DELETE FROM sources WHERE name = %s", (name,)).rowcount > 0

    def save_source_state(self, state: SourceState) -> None:
        """Replace a source's state alone (see :meth:`Store.save_source_state`)."""
        with self._connection() as conn, conn.transaction():  # type: ignore[attr-defined]
            write_state(conn, state)

    def save_source_services(self, name: str, services: list[dict[str, Any]]) -> None:
        """Replace a source's service list (see :meth:`Store.save_source_services`)."""
        with self._connection() as conn, conn.transaction():  # type: ignore[attr-defined]
            if conn.execute("SELECT 1 FROM sources WHERE name = %s", (name,)).fetchone() is None:
                raise InputError(f"source {name!r} is not registered (was it removed?)")
            conn.execute(
                "INSERT INTO source_services (source, services) VALUES (%s, %s) "
                "ON CONFLICT (source) DO UPDATE SET services = EXCLUDED.services, "
                "fetched_at = now()", (name, Jsonb([dict(s) for s in services])))

    def source_services(self, name: str) -> list[dict[str, Any]]:
        """A source's stored service list (see :meth:`Store.source_services`)."""
        with self._connection() as conn, conn.transaction():  # type: ignore[attr-defined]
            row = conn.execute("SELECT services FROM source_services WHERE source = %s",
                               (name,)).fetchone()
        return list(row[0]) if row else []
