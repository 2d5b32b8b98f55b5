"""Parallel load into PostGIS: files staged by Dask workers, applied in one transaction.

:func:`ingest_parallel` runs an ingest of many files on a Dask cluster:

1. **Staging.** Three per-run ``UNLOGGED`` tables are made (:class:`Staging`: requests,
   their area codes, quarantine rows), each with a ``file_no`` column.
2. **One task per file, on a worker** (:func:`stage_file`): the file is read, mapped and
   validated (:func:`geo.ingest.pipeline.prepare`), the NUL rule applied, every request
   located in each active layer by :func:`geo.joins.locate` (the layer indexes are shipped
   to each worker once), and the rows COPYed by the worker over its own connection into
   the staging tables, in one transaction that first removes that file's rows (a task
   Dask runs again after a lost worker stages the file once, not twice).
3. **Apply** (:func:`apply_staging`, one transaction on the client's connection): each
   staged request is decided against the stored row with the upsert rule of
   :mod:`geo.store.base`, files taken in the order given, so the per-file counts and the
   stored result are those of ingesting the files one after another; the winning row of
   each id is inserted or updated, its area codes replace the old ones, ``problem_id`` is
   brought up to date, the quarantine rows are added (``ON CONFLICT DO NOTHING``) and one
   batch record per file is written.
4. The staging tables are dropped, whether the run succeeded or not.

The staging tables and the run's liveness lock are :mod:`geo.store.postgis_staging`'s:
a client that dies mid-run leaves its tables, which ``hotspot311 db clean-staging``
drops once no live run holds them.

A failure anywhere (a file that cannot be used, a worker error, the server refusing the
final transaction) leaves the store as it was: nothing outside the staging tables is
written before step 3, and step 3 is one transaction. Re-running the same files changes
nothing (every row decides ``unchanged``).

The workers connect with the store's connection string (they must reach the server and,
for the files, see them at the same paths). What this module takes from the
single-process loader (:mod:`geo.store.postgis_load`: row encoding, the NUL rule, the
batch record) is imported in one place, :data:`_LOAD`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
from psycopg import sql

from geo.ingest.mapping import ColumnMapping
from geo.ingest.partitioned import ProfileOnly
from geo.ingest.pipeline import IngestReport, prepare
from geo.ingest.readers import Format
from geo.ingest.sink import ProblemAssigner, WriteResult
from geo.ingest.validate import QUARANTINE_COLUMNS
from geo.joins import AreaIndex, build_index, locate
from geo.store import postgis_load as _LOAD
from geo.store import postgis_problems
from geo.store.base import BATCH_COLUMNS
from geo.store.pgcopy import copy_arrow
from geo.store.postgis_join import swap_partition
from geo.store.postgis_staging import (
    STAGING_PREFIX,
    Staging,
    close_staging,
    open_staging,
    staging_tables,
)
from geo.store.postgis_text import scrub
from layers.profile import CityProfile

if TYPE_CHECKING:
    from distributed import Client

    from geo.store.postgis import PostGISStore

__all__ = ["STAGING_PREFIX", "Staging", "apply_staging", "ingest_parallel", "stage_file",
           "staging_tables"]

#: Columns of a staged request row, as the loader encodes them, then ``file_no``.
_ROW_COLUMNS: Final = (*_LOAD.REQUEST_COLUMNS, "geom", "geom_city")
#: Quarantine text columns scrubbed of what PostgreSQL cannot store (as the loader does).
_Q_TEXT: Final = ("quarantine_id", "batch_id", "source_file", "reason", "detail",
                  "service_request_id", "address", "raw")


@dataclass(frozen=True)
class Job:
    """What every worker task needs, shipped once per task (small: the indexes go apart)."""

    conninfo: str
    staging: Staging
    profile: CityProfile
    srid: int
    fmt: str
    mapping: ColumnMapping | None
    now: datetime


@dataclass
class StagedFile:
    """What a worker reports of one staged file (the rows are in the staging tables)."""

    file_no: int
    info: dict[str, object]
    rows_read: int
    staged: int
    quarantined: dict[str, int] = field(default_factory=dict)
    flags: dict[str, int] = field(default_factory=dict)
    located: int = 0
    outside: int = 0


# --------------------------------------------------------------------------- worker task


def stage_file(job: Job, indexes: Mapping[str, AreaIndex], file_no: int, path: str) -> StagedFile:
    """Validate and locate one file and COPY it into the staging tables (a worker task).

    Parameters
    ----------
    job
        The run's settings.
    indexes
        Layer key → index of its active generation.
    file_no
        Position of the file in the run (decides which file wins a tie, as in order).
    path
        The file, at a path the worker can read.

    Returns
    -------
    StagedFile
        Counts and the batch record fields of the file.

    Raises
    ------
    InputError
        When the file or the mapping cannot be used (nothing of the run is stored).
    """
    batch, info = prepare(Path(path), ProfileOnly(job.profile), fmt=job.fmt,
                          mapping=job.mapping, now=job.now)
    requests, rejected = _LOAD.apply_nul_rule(batch.current())
    quarantine = batch.quarantine
    if len(rejected):
        frames = [f for f in (quarantine, _LOAD.nul_id_quarantine(rejected, info)) if len(f)]
        quarantine = pd.concat(frames, ignore_index=True)
    requests = _LOAD.spatial_order(requests) if len(requests) else requests
    rows = _request_rows(requests, job.srid, file_no)
    areas = _area_rows(requests, indexes, file_no)
    q_rows = _quarantine_rows(quarantine, file_no)
    with psycopg.connect(job.conninfo) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (job.staging.lock_key, file_no))
        for name in job.staging.tables:
            conn.execute(sql.SQL("DELETE FROM {} WHERE file_no = %s").format(
                sql.Identifier(name)), (file_no,))
        if rows.num_rows:
            copy_arrow(conn, job.staging.requests, rows, jsonb=("extra",))
        if areas.num_rows:
            copy_arrow(conn, job.staging.areas, areas)
        if q_rows.num_rows:
            copy_arrow(conn, job.staging.quarantine, q_rows)
    return StagedFile(
        file_no=file_no, info=info, rows_read=batch.rows_read, staged=len(requests),
        quarantined={str(k): int(v) for k, v in quarantine["reason"].value_counts().items()},
        flags=dict(batch.flags), located=batch.located, outside=batch.outside,
    )


def _request_rows(requests: pd.DataFrame, srid: int, file_no: int) -> pa.Table:
    """Staged request rows: the loader's encoding and ``file_no``."""
    table = _LOAD.request_rows(requests, srid)
    return table.append_column("file_no", pa.array(np.full(len(requests), file_no, "int32")))


def _area_rows(requests: pd.DataFrame, indexes: Mapping[str, AreaIndex], file_no: int
               ) -> pa.Table:
    """One row per request and layer it falls in: id, ``file_no``, layer key, code."""
    x = requests["x"].to_numpy(dtype="float64")
    y = requests["y"].to_numpy(dtype="float64")
    ids = requests["service_request_id"].to_numpy(dtype=object)
    parts: dict[str, list[Any]] = {"service_request_id": [], "layer_key": [], "code": []}
    for key, index in indexes.items():
        codes = np.asarray(locate(x, y, index), dtype=object)
        found = pd.notna(codes)
        parts["service_request_id"].extend(ids[found].tolist())
        parts["layer_key"].extend([key] * int(found.sum()))
        parts["code"].extend(str(c) for c in codes[found])
    n = len(parts["code"])
    return pa.table({
        "service_request_id": pa.array(parts["service_request_id"], type=pa.string()),
        "file_no": pa.array(np.full(n, file_no, "int32")),
        "layer_key": pa.array(parts["layer_key"], type=pa.string()),
        "code": pa.array(parts["code"], type=pa.string()),
    })


def _quarantine_rows(frame: pd.DataFrame, file_no: int) -> pa.Table:
    """Staged quarantine rows, text scrubbed as :func:`~geo.store.postgis_load.write_quarantine`
    does, in file order."""
    frame = frame.copy()
    changed = np.zeros(len(frame), dtype=bool)
    for column in _Q_TEXT:
        if column in frame.columns and len(frame):
            frame[column], mask = scrub(frame[column].astype(object))
            changed |= np.asarray(mask, dtype=bool)
    if changed.any():
        frame.loc[changed, "detail"] = [
            f"{d or ''} [U+0000 or unpaired surrogates replaced by U+FFFD]"
            for d in frame.loc[changed, "detail"]
        ]
    data = {c: _LOAD.arrow_column(frame, c) for c in QUARANTINE_COLUMNS}
    data["file_no"] = pa.array(np.full(len(frame), file_no, "int32"))
    data["ord"] = pa.array(np.arange(len(frame), dtype="int64"))
    return pa.table(data)


# --------------------------------------------------------------------------- apply


_RULE: Final = sql.SQL(
    "k.updated_datetime > r.updated_datetime"
    " OR (k.updated_datetime IS NOT NULL AND r.updated_datetime IS NULL)"
    " OR (k.updated_datetime IS NOT DISTINCT FROM r.updated_datetime"
    "     AND k.row_hash <> r.row_hash)"
)
"""The upsert rule of :mod:`geo.store.base` between an incoming ``k`` and a stored ``r``."""


def apply_staging(
    conn: psycopg.Connection,
    staging: Staging,
    staged: Sequence[StagedFile],
    *,
    problems: ProblemAssigner | None = None,
    layer_keys: Sequence[str] = (),
) -> list[WriteResult]:
    """Upsert the staged rows into the store, as if the files were written in order.

    Parameters
    ----------
    conn
        Connection inside the caller's transaction.
    staging
        The run's staging tables, filled by :func:`stage_file`.
    staged
        What the workers reported, one per file.
    problems
        The problem rule (``problem_id`` of the written rows).
    layer_keys
        The layers located by the workers: their old codes of written rows are replaced.

    Returns
    -------
    list of WriteResult
        One per file, in ``staged`` order; inserted + updated + unchanged + quarantined
        equals the file's rows read.
    """
    stg = sql.Identifier(staging.requests)
    conn.execute("LOCK TABLE requests IN SHARE ROW EXCLUSIVE MODE")
    for name in staging.tables:  # the workers' rows: statistics for the plans below
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(name)))
    conn.execute("SELECT set_config('jit', 'off', true)")
    conn.execute(
        "CREATE TEMP TABLE decided (service_request_id text, file_no int4, outcome text,"
        " existed bool) ON COMMIT DROP"
    )
    conn.execute(sql.SQL(
        "CREATE TEMP TABLE repeated ON COMMIT DROP AS SELECT service_request_id FROM {}"
        " GROUP BY service_request_id HAVING count(*) > 1"
    ).format(stg))
    # ids staged once: the rule against the stored row, in one statement
    conn.execute(sql.SQL(
        "INSERT INTO decided SELECT k.service_request_id, k.file_no,"
        " CASE WHEN r.service_request_id IS NULL THEN 'insert'"
        "      WHEN {rule} THEN 'update' ELSE 'keep' END,"
        " r.service_request_id IS NOT NULL"
        " FROM {} k LEFT JOIN requests r USING (service_request_id)"
        " WHERE NOT EXISTS (SELECT 1 FROM repeated m"
        "                   WHERE m.service_request_id = k.service_request_id)"
    ).format(stg, rule=_RULE))
    _decide_repeated(conn, stg)
    conn.execute(
        "CREATE TEMP TABLE winners ON COMMIT DROP AS SELECT DISTINCT ON (service_request_id)"
        " service_request_id, file_no, existed FROM decided WHERE outcome <> 'keep'"
        " ORDER BY service_request_id, file_no DESC"
    )
    written = _write_winners(conn, stg, sql.Identifier(staging.areas), layer_keys)
    if written:
        postgis_problems.update_problems(conn, problems)
    q_cols = sql.SQL(", ").join(map(sql.Identifier, QUARANTINE_COLUMNS))
    conn.execute(sql.SQL(
        "INSERT INTO quarantine ({cols}) SELECT {cols} FROM {q} ORDER BY file_no, ord"
        " ON CONFLICT (quarantine_id) DO NOTHING"
    ).format(cols=q_cols, q=sql.Identifier(staging.quarantine)))
    counts = {
        int(f): (int(i), int(u), int(k)) for f, i, u, k in conn.execute(
            "SELECT file_no, count(*) FILTER (WHERE outcome = 'insert'),"
            " count(*) FILTER (WHERE outcome = 'update'), count(*) FILTER (WHERE outcome = 'keep')"
            " FROM decided GROUP BY file_no"
        ).fetchall()
    }
    results = []
    for item in staged:
        inserted, updated, unchanged = counts.get(item.file_no, (0, 0, 0))
        result = WriteResult(inserted=inserted, updated=updated, unchanged=unchanged,
                             quarantined=dict(item.quarantined))
        record = {c: item.info.get(c) for c in BATCH_COLUMNS if c != "ingested_at"}
        record.update(rows_read=item.rows_read, inserted=inserted, updated=updated,
                      unchanged=unchanged, quarantined=sum(item.quarantined.values()))
        _LOAD.record_batch(conn, record)
        results.append(result)
    return results


def _decide_repeated(conn: psycopg.Connection, stg: sql.Identifier) -> None:
    """Ids staged by more than one file: the rule applied file after file, in Python."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL(
            "SELECT k.service_request_id, k.file_no, k.updated_datetime, k.row_hash,"
            " r.service_request_id IS NOT NULL, r.updated_datetime, r.row_hash"
            " FROM {} k JOIN repeated m USING (service_request_id)"
            " LEFT JOIN requests r USING (service_request_id)"
            " ORDER BY k.service_request_id, k.file_no"
        ).format(stg))
        rows = cur.fetchall()
    if not rows:
        return
    out: list[tuple[str, int, str, bool]] = []
    current: tuple[Any, Any] | None = None
    last_id = None
    for rid, file_no, upd, row_hash, existed, stored_upd, stored_hash in rows:
        if rid != last_id:
            last_id = rid
            current = (stored_upd, stored_hash) if existed else None
        if current is None:
            outcome = "insert"
        elif _replaces(upd, row_hash, *current):
            outcome = "update"
        else:
            outcome = "keep"
        if outcome != "keep":
            current = (upd, row_hash)
        out.append((rid, file_no, outcome, bool(existed)))
    with conn.cursor() as cur, cur.copy(
        "COPY decided (service_request_id, file_no, outcome, existed) FROM STDIN"
    ) as copy:
        for item in out:
            copy.write_row(item)


def _replaces(upd: datetime | None, row_hash: int, old_upd: datetime | None,
              old_hash: int) -> bool:
    """The upsert rule: newer ``updated_datetime``, or the same and another row hash."""
    if upd is not None and (old_upd is None or upd > old_upd):
        return True
    return upd == old_upd and row_hash != old_hash


def _write_winners(conn: psycopg.Connection, stg: sql.Identifier, areas: sql.Identifier,
                   layer_keys: Sequence[str]) -> int:
    """Insert or update each written id's last winning row; replace its area codes.

    Fills ``changed`` (id, ord, inserted) as the loader does, for the problem update.
    A bulk write (:func:`geo.store.postgis_load.is_bulk`) takes the loader's bulk path:
    the indexes of ``requests`` are dropped and rebuilt, and each layer's codes go into a
    fresh partition swapped in. Returns the rows written.
    """
    cols = sql.SQL(", ").join(map(sql.Identifier, _ROW_COLUMNS))
    conn.execute(
        "CREATE TEMP TABLE changed ON COMMIT DROP AS SELECT service_request_id,"
        " (row_number() OVER (ORDER BY service_request_id))::int8 AS ord,"
        " NOT existed AS inserted FROM winners"
    )
    row = conn.execute("SELECT count(*) FROM changed").fetchone()
    n = int(row[0]) if row else 0
    if n == 0:
        return 0
    stored = _LOAD.stored_estimate(conn)
    bulk = _LOAD.is_bulk(n, stored)
    rebuild = _LOAD.drop_bulk_indexes(conn) if bulk else []
    conn.execute(sql.SQL(
        "INSERT INTO requests ({cols}) SELECT {scols} FROM {stg} s"
        " JOIN winners w USING (service_request_id, file_no) WHERE NOT w.existed"
    ).format(cols=cols, stg=stg,
             scols=sql.SQL(", ").join(sql.Identifier("s", c) for c in _ROW_COLUMNS)))
    targets = sql.SQL(", ").join(map(sql.Identifier, _ROW_COLUMNS[1:]))
    values = sql.SQL(", ").join(sql.Identifier("s", c) for c in _ROW_COLUMNS[1:])
    conn.execute(sql.SQL(
        "UPDATE requests AS r SET ({targets}) = ({values}) FROM {stg} s"
        " JOIN winners w USING (service_request_id, file_no)"
        " WHERE w.existed AND r.service_request_id = s.service_request_id"
    ).format(targets=targets, values=values, stg=stg))
    _LOAD.rebuild_bulk_indexes(conn, rebuild)
    if _LOAD.needs_analyze(n, stored):
        conn.execute("ANALYZE requests")
    if bulk:
        _swap_area_partitions(conn, areas, layer_keys)
        return n
    conn.execute(
        "DELETE FROM request_areas ra USING winners w"
        " WHERE w.existed AND ra.service_request_id = w.service_request_id"
        " AND ra.layer_key = ANY(%s)", (list(layer_keys),))
    conn.execute(sql.SQL(
        "INSERT INTO request_areas (service_request_id, layer_key, code)"
        " SELECT a.service_request_id, a.layer_key, a.code FROM {} a"
        " JOIN winners w USING (service_request_id, file_no)"
    ).format(areas))
    return n


def _swap_area_partitions(conn: psycopg.Connection, areas: sql.Identifier,
                          layer_keys: Sequence[str]) -> None:
    """A bulk load's area codes: per layer, a fresh partition holding the kept codes and
    the winners' staged ones, swapped in (as the single-process loader's bulk path,
    :func:`geo.store.postgis_areas.load_area_rows`)."""
    for key in layer_keys:
        fresh = sql.Identifier(f"ra_fresh_{key}")
        conn.execute(sql.SQL(
            "CREATE TABLE {} AS SELECT ra.service_request_id, ra.layer_key, ra.code"
            " FROM request_areas ra WHERE ra.layer_key = %s AND NOT EXISTS ("
            " SELECT 1 FROM changed c WHERE c.service_request_id = ra.service_request_id)"
        ).format(fresh), (key,))
        conn.execute(sql.SQL(
            "INSERT INTO {} (service_request_id, layer_key, code)"
            " SELECT a.service_request_id, a.layer_key, a.code FROM {} a"
            " JOIN winners w USING (service_request_id, file_no) WHERE a.layer_key = %s"
        ).format(fresh, areas), (key,))
        swap_partition(conn, key)


# --------------------------------------------------------------------------- the driver


def ingest_parallel(
    paths: Sequence[str | Path],
    store: PostGISStore,
    *,
    client: Client,
    fmt: Format | str = Format.AUTO,
    mapping: ColumnMapping | None = None,
    now: datetime | None = None,
    problems: ProblemAssigner | None = None,
    watch: Callable[[list[Any]], None] | None = None,
) -> list[IngestReport]:
    """Ingest files into a PostGIS store: staged in parallel by the workers, applied at once.

    Parameters
    ----------
    paths
        Request files (CSV, JSON, GeoJSON), readable by the workers at these paths.
    store
        The PostGIS store (its server reachable from the workers).
    client
        A ``distributed.Client``.
    fmt, mapping, now, problems
        As for :func:`geo.ingest.pipeline.ingest` (``now`` is shared by every file).
    watch
        Called with the staging tasks' futures once they are submitted (a progress bar).

    Returns
    -------
    list of IngestReport
        One per file, in the order given; the counts are those of ingesting the files
        one after another.

    Raises
    ------
    InputError
        When a file or the mapping cannot be used: nothing of the run is stored.
    StoreError, StoreConnectionError
        When the server refuses or loses the final transaction: nothing is stored.
    """
    started = now or datetime.now(UTC)
    store.ensure_profile_layers()
    active = store.active()
    indexes = {key: build_index(store.areas(key)) for key in active}
    staging = Staging.new()
    conninfo = store.pool.conninfo
    job = Job(conninfo=conninfo() if callable(conninfo) else conninfo, staging=staging,
              profile=store.profile, srid=store.srid, fmt=str(Format(fmt).value),
              mapping=mapping, now=started)
    futures: list[Any] = []
    with store._connection() as guard:  # holds the run's liveness lock until the end
        open_staging(guard, staging)
        try:
            [shipped] = client.scatter([indexes], broadcast=True, hash=False)
            futures = [client.submit(stage_file, job, shipped, i, str(p), pure=False)
                       for i, p in enumerate(paths)]
            if watch is not None:
                watch(futures)
            staged: list[StagedFile] = client.gather(futures)
            with store._connection() as conn, conn.transaction():
                results = apply_staging(conn, staging, staged, problems=problems,
                                        layer_keys=list(active))
        finally:
            client.cancel(futures)
            close_staging(guard, staging)
    return [
        IngestReport(
            batch_id=str(item.info["batch_id"]), path=Path(path),
            format=str(item.info["format"]), encoding=str(item.info["encoding"]),
            rows_read=item.rows_read, result=result, flags=item.flags, located=item.located,
            outside=item.outside, city=store.profile.name,
        )
        for path, item, result in zip(paths, staged, results, strict=True)
    ]
