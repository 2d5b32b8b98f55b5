"""Stored hotspot runs in the PostGIS store (tables of migrations 0001 and 0002).

Every function takes an open connection and runs in the caller's transaction.
``hotspot_runs`` holds one row per run (parameters and snapshot as jsonb),
``hotspots`` one row per hotspot (integer ``hotspot_id`` = position in rank order, the
content hash in ``hotspot_key``, summary columns in ``attrs``, hull in the city CRS in
``hull_city`` and in WGS84 in ``hull``), ``hotspot_members`` the member ids.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import geopandas as gpd
import pandas as pd
import psycopg
from psycopg.types.json import Jsonb

from geo.store.runs import MEMBER_COLUMNS, PackedRun, runs_frame, unpack_hotspots
from hotspot311.errors import InputError, StoreError


def insert_run(conn: psycopg.Connection, packed: PackedRun, *, srid: int,
               created_at: datetime) -> int:
    """Insert one run with its hotspots and members; return the new run id.

    Parameters
    ----------
    conn
        Connection inside a transaction.
    packed
        From :func:`geo.store.runs.pack_run`.
    srid
        The city SRID of the hull geometries.
    created_at
        Time to record (timezone-aware).
    """
    p, s = packed.params, packed.snapshot
    row = conn.execute(
        "INSERT INTO hotspot_runs (created_at, service_names, window_end, status_filter, eps_m,"
        " min_samples, params, n_requests, n_hotspots, snapshot, n_selected)"
        " VALUES (%s, %s, %s::timestamptz, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING run_id",
        (created_at, list(p.get("services", [])), s.get("window_end"), p.get("status"),
         float(p["eps_m"]), int(p["min_samples"]), Jsonb(p), s.get("n_requests"),
         len(packed.hotspots), Jsonb(s), s.get("n_selected")),
    ).fetchone()
    if row is None:  # pragma: no cover - RETURNING always gives a row
        raise StoreError("hotspot_runs: INSERT … RETURNING gave no run id")
    run_id = int(row[0])
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO hotspots (run_id, hotspot_id, hotspot_key, n_members, n_open, n_overdue,"
            " oldest_open, priority, top_addresses, attrs, hull_city, hull)"
            " VALUES (%(run)s, %(pos)s, %(key)s, %(n)s, %(open)s, %(overdue)s,"
            " %(oldest)s::timestamptz, %(score)s, %(top)s, %(attrs)s,"
            " ST_GeomFromWKB(%(wkb)s, %(srid)s),"
            " ST_Transform(ST_GeomFromWKB(%(wkb)s, %(srid)s), 4326))",
            [
                {"run": run_id, "pos": h["position"], "key": h["hotspot_id"], "n": h["count"],
                 "open": h["attrs"].get("open"), "overdue": h["attrs"].get("overdue"),
                 "oldest": h["attrs"].get("oldest_open_requested"),
                 "score": h["attrs"].get("score"),
                 "top": Jsonb(h["attrs"].get("top_addresses")), "attrs": Jsonb(h["attrs"]),
                 "wkb": h["wkb"], "srid": srid}
                for h in packed.hotspots
            ],
        )
        position = {h["hotspot_id"]: h["position"] for h in packed.hotspots}
        with cur.copy(
            "COPY hotspot_members (run_id, hotspot_id, service_request_id) FROM STDIN"
        ) as copy:
            for hid, rid in packed.members[list(MEMBER_COLUMNS)].itertuples(index=False):
                copy.write_row((run_id, position[hid], rid))
    return run_id


def list_runs(conn: psycopg.Connection) -> pd.DataFrame:
    """The run list (see :func:`geo.store.runs.runs_frame`)."""
    rows = conn.execute(
        "SELECT run_id, created_at, params, snapshot, n_hotspots FROM hotspot_runs"
        " ORDER BY created_at, run_id"
    ).fetchall()
    return runs_frame([
        {"run_id": r[0], "created_at": r[1], "params": r[2], "snapshot": r[3],
         "n_hotspots": r[4]}
        for r in rows
    ])


def load_run(conn: psycopg.Connection, run_id: int, *, crs: object
             ) -> tuple[dict[str, Any], gpd.GeoDataFrame, pd.DataFrame]:
    """Parameters, hotspots and members of a stored run.

    Raises
    ------
    InputError
        When no run has ``run_id``, listing the stored ids.
    """
    head = conn.execute(
        "SELECT params, snapshot FROM hotspot_runs WHERE run_id = %s", (int(run_id),)
    ).fetchone()
    if head is None:
        ids = [r[0] for r in conn.execute("SELECT run_id FROM hotspot_runs ORDER BY run_id")]
        raise InputError(f"run: got {run_id!r}; stored runs: {ids}")
    params, snapshot = head
    hot = conn.execute(
        "SELECT hotspot_key, attrs, ST_AsBinary(hull_city) FROM hotspots WHERE run_id = %s"
        " ORDER BY hotspot_id", (int(run_id),)
    ).fetchall()
    mem = conn.execute(
        "SELECT h.hotspot_key, m.service_request_id FROM hotspot_members m JOIN hotspots h"
        " USING (run_id, hotspot_id) WHERE m.run_id = %s ORDER BY m.hotspot_id,"
        " m.service_request_id COLLATE \"C\"", (int(run_id),)
    ).fetchall()
    members = pd.DataFrame(mem, columns=list(MEMBER_COLUMNS), dtype=object)
    rows = [{"attrs": _json(a), "wkb": bytes(w)} for _, a, w in hot]
    hotspots = unpack_hotspots(rows, members, columns=snapshot["columns"], crs=crs)
    return dict(params), hotspots, members


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
