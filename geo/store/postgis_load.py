"""Bulk loading into the PostGIS store: decide with a narrow COPY, write with a wide one.

Every function takes an open connection and runs inside the caller's transaction;
temporary tables are ``ON COMMIT DROP``. Rows travel by binary COPY
(:func:`geo.store.pgcopy.copy_arrow`): times as ``timestamptz``, geometries as EWKB built
from lon/lat and from the city x/y (the same x/y the embedded store joins on), so the
server parses no text. :func:`upsert_requests` first sends only the keys (id,
``updated_datetime``, ``row_hash``) and lets one hash join decide what is new or newer;
then new rows are copied straight into ``requests`` and changed rows are copied into a
temporary table and applied with one ``UPDATE``. Unchanged rows are never sent twice."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Final

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
from psycopg import sql

from geo.ingest.validate import QUARANTINE_COLUMNS, empty_quarantine
from geo.store.hilbert import hilbert_keys
from geo.store.pgcopy import copy_arrow, ewkb_points
from geo.store.postgis_text import (
    LONG_ID_REASON,
    NUL_FLAG,
    NUL_ID_REASON,
    has_bad,
    scrub,
    scrub_json,
    too_long,
)
from hotspot311.schema import CANONICAL_FIELDS, DERIVED_FIELDS, TEXT_FIELDS, TIME_FIELDS

#: Columns of ``requests`` written from a batch, in COPY order.
REQUEST_COLUMNS: Final = tuple(CANONICAL_FIELDS) + tuple(DERIVED_FIELDS)
#: Columns sent as ``float8``.
FLOAT_COLUMNS: Final = frozenset({"lat", "lon", "x", "y", "geocode_score"})


def _kind(column: str) -> str:
    """The PostgreSQL type a ``requests`` or ``quarantine`` column is sent as."""
    if column in TIME_FIELDS or column == "quarantined_at":
        return "timestamptz"
    if column in ("row_hash", "source_row"):
        return "int8"
    if column in FLOAT_COLUMNS:
        return "float8"
    if column == "synthetic":
        return "bool"
    return "text"


def arrow_column(frame: pd.DataFrame, column: str) -> pa.Array:
    """One column of ``frame`` as the Arrow array binary COPY sends for it.

    Times become UTC ``timestamp[us]``, ``row_hash`` its int64 bit pattern, floats
    ``float64`` with NaN as null, text an Arrow string array (values that are not
    ``str`` are converted with ``str``); a column missing from ``frame`` is all null.
    """
    kind = _kind(column)
    n = len(frame)
    arrow_type = {
        "timestamptz": pa.timestamp("us"),
        "int8": pa.int64(),
        "float8": pa.float64(),
        "bool": pa.bool_(),
        "text": pa.string(),
    }[kind]
    if column not in frame.columns:
        return pa.nulls(n, arrow_type)
    s = frame[column]
    if kind == "timestamptz":
        times = pd.to_datetime(s, utc=True)
        micros = times.dt.as_unit("ns").array.asi8 // 1000  # type: ignore[attr-defined]
        return pa.array(micros, mask=times.isna().to_numpy(), type=pa.int64()).cast(arrow_type)
    if column == "row_hash":
        return pa.array(s.to_numpy(dtype="uint64").view("int64"))
    if kind == "int8":
        return pa.array(pd.to_numeric(s).astype("int64").to_numpy())
    if kind == "float8":
        return pa.array(s.to_numpy(dtype="float64"), from_pandas=True)
    if kind == "bool":
        return pa.array(s.fillna(False).to_numpy(dtype=bool))
    try:
        return pa.array(s, type=pa.string(), from_pandas=True)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        values = s.astype(object).where(s.notna(), None).to_numpy()
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def request_rows(requests: pd.DataFrame, srid: int) -> pa.Table:
    """Requests as the Arrow table of ``requests`` rows, geometries included."""
    columns = {c: arrow_column(requests, c) for c in REQUEST_COLUMNS}
    columns["geom"] = ewkb_points(
        requests["lon"].to_numpy(dtype="float64"), requests["lat"].to_numpy(dtype="float64"), 4326
    )
    columns["geom_city"] = ewkb_points(
        requests["x"].to_numpy(dtype="float64"), requests["y"].to_numpy(dtype="float64"), srid
    )
    return pa.table(columns)


def apply_nul_rule(requests: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply the NUL rule (see :mod:`geo.store.postgis_text`) to a batch's requests.

    Returns
    -------
    tuple
        Requests to store (cleaned, flagged) and requests whose id must be quarantined.
    """
    bad_id = has_bad(requests["service_request_id"]) | too_long(requests["service_request_id"])
    out = requests[~bad_id]
    rejected = requests[bad_id]
    changed = np.zeros(len(out), dtype=bool)
    cleaned: dict[str, pd.Series] = {}
    for column in (*TEXT_FIELDS, "geocode_match_type", "batch_id"):
        if column in out.columns:
            values, mask = scrub(out[column])
            if mask.any():
                cleaned[column] = values
                changed |= mask
    if "extra" in out.columns:
        values, mask = scrub_json(out["extra"])
        if mask.any():
            cleaned["extra"] = values
            changed |= mask
    if changed.any():
        out = out.copy()
        for column, values in cleaned.items():
            out[column] = values
        flags = out["quality_flags"].to_numpy(dtype=object)
        out["quality_flags"] = [
            (f"{f};{NUL_FLAG}" if f else NUL_FLAG) if c else f
            for f, c in zip(flags, changed, strict=True)
        ]
    return out, rejected


def nul_id_quarantine(rejected: pd.DataFrame, info: dict[str, object]) -> pd.DataFrame:
    """Quarantine rows for requests whose id breaks the NUL rule."""
    if rejected.empty:
        return empty_quarantine()
    fields = [c for c in CANONICAL_FIELDS if c in rejected.columns]
    raw = [
        json.dumps({c: _jsonable(r[c]) for c in fields}, ensure_ascii=True)
        for _, r in rejected.iterrows()
    ]
    ids, _ = scrub(rejected["service_request_id"])
    addresses, _ = scrub(rejected["address"]) if "address" in rejected.columns else (None, None)
    long_id = too_long(rejected["service_request_id"])
    reasons = np.where(long_id, LONG_ID_REASON, NUL_ID_REASON)
    details = np.where(
        long_id,
        "service_request_id is longer than PostgreSQL can index (row number unknown: -1)",
        "service_request_id holds U+0000 or an unpaired surrogate, which PostgreSQL cannot store"
        " (row number unknown: -1)",
    )
    qid = [
        hashlib.sha1(f"{r}\x1f{why}".encode()).hexdigest()[:20]
        for r, why in zip(raw, reasons, strict=True)
    ]
    return pd.DataFrame(
        {
            "quarantine_id": qid,
            "batch_id": info.get("batch_id"),
            "source_file": info.get("source_file"),
            "source_row": np.full(len(raw), -1, dtype="int64"),
            "reason": reasons.astype(object),
            "detail": details.astype(object),
            "service_request_id": [v[:200] for v in ids.to_numpy(dtype=object)],
            "address": addresses.to_numpy(dtype=object) if addresses is not None else None,
            "raw": raw,
            "quarantined_at": pd.Timestamp(datetime.now(UTC)),
        }
    )


def _jsonable(value: object) -> object:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, (np.generic,)):
        return value.item()
    return value if isinstance(value, (str, int, float, bool)) else str(value)


def spatial_order(requests: pd.DataFrame) -> pd.DataFrame:
    """Requests in Hilbert order of their city x/y (:func:`geo.store.hilbert.hilbert_keys`).

    Written in this order, new rows land in ``requests`` near their neighbours, and an
    area join reads a few contiguous pages per area instead of most of the table.
    """
    return requests.iloc[spatial_positions(requests, np.arange(len(requests)))]


def spatial_positions(requests: pd.DataFrame, positions: np.ndarray) -> np.ndarray:
    """Rows of ``requests`` in Hilbert order of their city x/y, without reordering the
    whole frame (the curve spans the box of these rows, not of the whole frame).

    Parameters
    ----------
    requests
        Requests with ``x`` and ``y``.
    positions
        Positions of some of its rows.

    Returns
    -------
    numpy.ndarray
        ``positions`` in that order (int64).

    Examples
    --------
    >>> frame = pd.DataFrame({"x": [5.0, 0.0, 9.0, 0.1], "y": [5.0, 0.0, 9.0, 0.1]})
    >>> spatial_positions(frame, np.array([0, 1, 3])).tolist()
    [1, 3, 0]
    """
    positions = np.asarray(positions, dtype=np.int64)
    keys = hilbert_keys(requests["x"].to_numpy(dtype="float64")[positions],
                        requests["y"].to_numpy(dtype="float64")[positions])
    return positions[np.argsort(keys, kind="stable")]


#: At least this many rows written, and no fewer than the rows already stored: the
#: indexes of ``requests`` are dropped and rebuilt (see :func:`upsert_requests`).
BULK_ROWS: Final = 50_000
#: A write of at least this many rows, and at least :data:`ANALYZE_SHARE` of the rows
#: stored before it, refreshes the planner's statistics of ``requests`` before commit.
ANALYZE_ROWS: Final = 1_000
ANALYZE_SHARE: Final = 0.1


def upsert_requests(conn: psycopg.Connection, requests: pd.DataFrame, srid: int) -> tuple[int, int]:
    """Upsert ``requests`` (see :func:`upsert_request_rows`).

    Returns
    -------
    tuple of int
        Rows inserted and rows updated (the rest are unchanged).
    """
    new, newer = upsert_request_rows(conn, requests, srid)
    return len(new), len(newer)


def upsert_request_rows(conn: psycopg.Connection, requests: pd.DataFrame, srid: int, *,
                        decided: Callable[[np.ndarray, np.ndarray], None] | None = None,
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Upsert ``requests`` into the table ``requests``; list the written ids in ``changed``.

    The upsert rule of :mod:`geo.store.base`: an existing row is replaced when the incoming
    ``updated_datetime`` is newer (or the stored one is missing), or when both are equal
    or both missing and the ``row_hash`` differs.

    Decide first, then write. The keys go to ``incoming_keys`` and one hash join
    against ``requests`` writes ``changed`` (id, position, inserted). New rows are then
    copied straight into ``requests``; changed rows go to ``incoming`` and one
    ``UPDATE`` applies them; unchanged rows are not sent again (re-ingesting a file
    writes nothing). ``requests`` is locked against other writers (``SHARE ROW
    EXCLUSIVE``; readers go on), so the decision holds until commit. Into an empty
    table (a first load: every row is new, so the keys go straight to ``changed``, with
    no join to decide: 0.4 s less at 1M rows), a thread makes the rows as Arrow and
    their Hilbert order while the server decides, and each COPY batch is taken from
    them as it is sent, so the server stores one batch while the next is made (a 1M
    first load: 16.0-16.2 s against 17.3 s when the rows were all made before the COPY
    began). Otherwise only the written rows are made, once they are known.

    When :data:`BULK_ROWS` rows or more are written, and no fewer than the rows already
    stored (:func:`is_bulk`), the indexes of ``requests`` (:data:`_BULK_INDEXES`, primary
    key included) are dropped and rebuilt in the same transaction: one sorted build costs less than
    maintaining them row by row, all the more as rows arrive in spatial order, not key
    order (measured at 1M rows: 8.7 s to copy and rebuild against 17.6 s to copy through
    the indexes). DDL is
    transactional, so a failure still leaves the database as it was; the price is an
    ``ACCESS EXCLUSIVE`` lock on ``requests`` until commit, so readers wait for a big
    load instead of seeing the old rows.

    Parameters
    ----------
    conn
        Connection inside a transaction.
    requests
        Validated requests with unique ids, passed through :func:`apply_nul_rule`; new
        rows are written in Hilbert order (:func:`spatial_positions`), so they land in
        ``requests`` near their neighbours, and only the written rows are ordered.
    srid
        The city SRID.
    decided
        Called with the positions to insert and to update as soon as they are known,
        before the rows are sent (work on the written rows can then run beside the
        server's COPY and index builds).

    Returns
    -------
    tuple of numpy.ndarray
        Positions in ``requests`` of the rows inserted and of the rows updated (the
        rest are unchanged).
    """
    if stored_estimate(conn) > 0:  # rows may be unchanged: make only those written
        return _upsert(conn, requests, srid, None, None, decided)
    # a first load (every row will be new): made on a thread while the server decides,
    # the rows as Arrow and their order; the COPY then starts as soon as the server asks
    pool = ThreadPoolExecutor(1, thread_name_prefix="rows")
    table = pool.submit(request_rows, requests, srid)
    everything = pool.submit(spatial_positions, requests, np.arange(len(requests)))
    try:
        return _upsert(conn, requests, srid, table, everything, decided)
    finally:  # a failure: the thread's work is not waited for
        pool.shutdown(wait=False, cancel_futures=True)


def _upsert(conn: psycopg.Connection, requests: pd.DataFrame, srid: int,
            table: Future[pa.Table] | None, everything: Future[np.ndarray] | None,
            decided: Callable[[np.ndarray, np.ndarray], None] | None
            ) -> tuple[np.ndarray, np.ndarray]:
    conn.execute("LOCK TABLE requests IN SHARE ROW EXCLUSIVE MODE")
    ids = arrow_column(requests, "service_request_id")
    order = pa.array(np.arange(len(requests), dtype="int64"))
    if table is not None and _empty(conn):  # every row is new: nothing to decide
        conn.execute("CREATE TEMP TABLE changed (service_request_id text, ord int8,"
                     " inserted bool) ON COMMIT DROP")
        copy_arrow(conn, "changed", pa.table({
            "service_request_id": ids, "ord": order,
            "inserted": pa.array(np.ones(len(requests), dtype=bool))}))
        index_changed(conn)
        n_new = n_written = len(requests)
        stored = 0
    else:
        n_new, n_written, stored = _decide(conn, requests, ids, order)
    if n_written == 0:
        return np.zeros(0, dtype="int64"), np.zeros(0, dtype="int64")
    if n_new == len(requests):  # a first load: every row is new
        new, newer = np.arange(len(requests)), np.zeros(0, dtype="int64")
    else:
        with conn.cursor() as cur:
            cur.execute("SELECT ord, inserted FROM changed ORDER BY ord")
            ordered = np.array(cur.fetchall(), dtype="int64").reshape(-1, 2)
        new, newer = ordered[ordered[:, 1] == 1, 0], ordered[ordered[:, 1] == 0, 0]
    if decided is not None:
        decided(new, newer)
    def send(target: str, positions: np.ndarray) -> None:
        if table is not None:  # made ahead: each batch taken as it is sent
            copy_arrow(conn, target, table.result(), jsonb=("extra",), rows=positions)
        else:
            copy_arrow(conn, target, request_rows(requests.iloc[positions], srid),
                       jsonb=("extra",))

    rebuild = drop_bulk_indexes(conn) if is_bulk(n_written, stored) else []
    if len(new):
        send("requests", everything.result()
             if everything is not None and len(new) == len(requests)
             else spatial_positions(requests, new))
    if len(newer):
        conn.execute("CREATE TEMP TABLE incoming (LIKE requests) ON COMMIT DROP")
        send("incoming", newer)
        targets = sql.SQL(", ").join(map(sql.Identifier, _ROW_COLUMNS[1:]))
        values = sql.SQL(", ").join(sql.Identifier("i", c) for c in _ROW_COLUMNS[1:])
        conn.execute(
            sql.SQL(
                "UPDATE requests AS r SET ({targets}) = ({values}) FROM incoming AS i"
                " WHERE r.service_request_id = i.service_request_id"
            ).format(targets=targets, values=values)
        )
    rebuild_bulk_indexes(conn, rebuild)
    if needs_analyze(n_written, stored):
        conn.execute("ANALYZE requests")
    return new, newer


def _empty(conn: psycopg.Connection) -> bool:
    """Whether ``requests`` holds no row (in this transaction's view of it)."""
    row = conn.execute("SELECT NOT EXISTS (SELECT FROM requests)").fetchone()
    return bool(row and row[0])


def _decide(conn: psycopg.Connection, requests: pd.DataFrame, ids: pa.Array,
            order: pa.Array) -> tuple[int, int, int]:
    """Write ``changed``: the incoming rows to insert or update (the upsert rule of
    :func:`upsert_request_rows`), by one hash join of their keys against ``requests``.
    Returns the rows to insert, to write in all, and the planner's count of stored rows.
    """
    conn.execute(
        "CREATE TEMP TABLE incoming_keys (service_request_id text, updated_datetime timestamptz,"
        " row_hash int8, ord int8) ON COMMIT DROP"
    )
    keys = pa.table(
        {
            "service_request_id": ids,
            "updated_datetime": arrow_column(requests, "updated_datetime"),
            "row_hash": arrow_column(requests, "row_hash"),
            "ord": order,
        }
    )
    copy_arrow(conn, "incoming_keys", keys)
    conn.execute(
        "CREATE TEMP TABLE changed ON COMMIT DROP AS"
        " SELECT k.service_request_id, k.ord, r.service_request_id IS NULL AS inserted"
        " FROM incoming_keys k LEFT JOIN requests r USING (service_request_id)"
        " WHERE r.service_request_id IS NULL"
        "    OR k.updated_datetime > r.updated_datetime"
        "    OR (k.updated_datetime IS NOT NULL AND r.updated_datetime IS NULL)"
        "    OR (k.updated_datetime IS NOT DISTINCT FROM r.updated_datetime"
        "        AND k.row_hash <> r.row_hash)"
    )
    index_changed(conn)
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE inserted), count(*),"
        " (SELECT greatest(reltuples, 0)::int8 FROM pg_class WHERE oid = 'requests'::regclass)"
        " FROM changed"
    ).fetchone()
    n_new, n_written, stored = (int(v) for v in row) if row else (0, 0, 0)
    return n_new, n_written, stored


def index_changed(conn: psycopg.Connection) -> None:
    """Index the temporary table ``changed`` by id and give the planner its statistics.

    Without statistics the joins on it (the codes of the written rows, the problem
    update) may be planned as scans of every stored row (0.3-0.6 s at 1M for a
    1,000-row write); without the index, a plan made on stale statistics of ``requests``
    probes a big write's new rows with a scan of ``changed`` each. Safe to call again.
    """
    conn.execute("CREATE INDEX IF NOT EXISTS changed_ids ON changed (service_request_id)")
    conn.execute("ANALYZE changed")


def needs_analyze(written: int, stored: int) -> bool:
    """Whether ``written`` rows change ``requests`` (``stored`` rows before) enough that
    its planner statistics are refreshed in the writing transaction.

    Autovacuum would analyze such a table too, but only after its next nap and after
    vacuuming it, which at 1M new rows takes minutes; until then the planner works from
    the old statistics (an empty table's, after a first load) and an Open311 page of
    one service scans and sorts 140,000 rows (330 ms) instead of walking
    ``requests_service_order`` (1 ms). ``ANALYZE`` samples 30,000 rows whatever the
    table's size: 0.5 s at 1M rows, with the display-only columns left out (migration
    0015).

    Examples
    --------
    >>> needs_analyze(1_000_000, 0), needs_analyze(5_000, 1_000_000), needs_analyze(10, 0)
    (True, False, False)
    """
    return written >= ANALYZE_ROWS and written >= ANALYZE_SHARE * stored


def is_bulk(written: int, stored: int) -> bool:
    """The bulk rule: ``written`` rows are a big load on ``stored`` ones (at least
    :data:`BULK_ROWS`, and no fewer than those stored), so the indexes of ``requests`` are
    dropped and rebuilt (and a layer's area codes go into a fresh partition)."""
    return written >= BULK_ROWS and written >= stored


def stored_estimate(conn: psycopg.Connection) -> int:
    """The planner's count of stored requests (what :func:`is_bulk` compares with)."""
    row = conn.execute(
        "SELECT greatest(reltuples, 0)::int8 FROM pg_class WHERE oid = 'requests'::regclass"
    ).fetchone()
    return int(row[0]) if row else 0


def drop_bulk_indexes(conn: psycopg.Connection) -> list[str]:
    """Drop the indexes of ``requests`` a bulk load rebuilds (:data:`_BULK_INDEXES` that
    exist; others stay), inside the caller's transaction.

    Returns
    -------
    list of str
        Their names, for :func:`rebuild_bulk_indexes` in the same transaction.
    """
    names = _bulk_indexes(conn)
    for name in names:
        drop, _ = _BULK_INDEXES[name]
        conn.execute(drop.format(sql.Identifier(name)))
    return names


def rebuild_bulk_indexes(conn: psycopg.Connection, names: Iterable[str]) -> None:
    """Build again the indexes :func:`drop_bulk_indexes` dropped (one sorted build each)."""
    for name in names:
        _, create = _BULK_INDEXES[name]
        conn.execute(create.format(sql.Identifier(name)))


#: Columns of a ``requests`` row as :func:`request_rows` makes it (the key first).
_ROW_COLUMNS: Final = (*REQUEST_COLUMNS, "geom", "geom_city")


#: Indexes of ``requests`` (migrations 0001, 0004, 0007, 0012) that a bulk load drops and
#: builds again: name → (drop, create), each formatted with the name.
_BULK_INDEXES: Final = {
    "requests_pkey": (
        sql.SQL("ALTER TABLE requests DROP CONSTRAINT {}"),
        sql.SQL("ALTER TABLE requests ADD CONSTRAINT {} PRIMARY KEY (service_request_id)"),
    ),
    "requests_geom_city_gist": (
        sql.SQL("DROP INDEX {}"),
        sql.SQL("CREATE INDEX {} ON requests USING gist (geom_city)"),
    ),
    "requests_requested": (
        sql.SQL("DROP INDEX {}"),
        sql.SQL("CREATE INDEX {} ON requests (requested_datetime)"),
    ),
    "requests_problem": (  # migration 0004
        sql.SQL("DROP INDEX {}"),
        sql.SQL("CREATE INDEX {} ON requests (problem_id)"),
    ),
    "requests_open311_order": (  # migration 0007
        sql.SQL("DROP INDEX {}"),
        sql.SQL('CREATE INDEX {} ON requests (requested_datetime, service_request_id COLLATE "C")'),
    ),
    "requests_updated": (  # migration 0007, redefined by 0012 (the last change)
        sql.SQL("DROP INDEX {}"),
        sql.SQL("CREATE INDEX {} ON requests ((coalesce(updated_datetime, requested_datetime)))"),
    ),
    "requests_service_order": (  # migration 0012
        sql.SQL("DROP INDEX {}"),
        sql.SQL('CREATE INDEX {} ON requests ((left(service_name, 200)), requested_datetime, '
                'service_request_id COLLATE "C")'),
    ),
}


def _bulk_indexes(conn: psycopg.Connection) -> list[str]:
    """The :data:`_BULK_INDEXES` present on ``requests`` (others are left in place)."""
    rows = conn.execute(
        "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
        " WHERE x.indrelid = 'requests'::regclass AND i.relname = ANY(%s) ORDER BY i.relname",
        (list(_BULK_INDEXES),),
    ).fetchall()
    return [str(r[0]) for r in rows]


def write_quarantine(conn: psycopg.Connection, frame: pd.DataFrame, release: Iterable[str]) -> int:
    """Release quarantine ids, then add ``frame``'s rows not already quarantined.

    Returns
    -------
    int
        Rows released.
    """
    released = 0
    ids = list(release)
    if ids:
        cur = conn.execute("DELETE FROM quarantine WHERE quarantine_id = ANY(%s)", (ids,))
        released = cur.rowcount
    if frame.empty:
        return released
    frame = frame.copy()
    changed = np.zeros(len(frame), dtype=bool)
    for column in (
        "quarantine_id",
        "batch_id",
        "source_file",
        "reason",
        "detail",
        "service_request_id",
        "address",
        "raw",
    ):
        if column in frame.columns:
            frame[column], mask = scrub(frame[column].astype(object))
            changed |= mask
    if changed.any():
        frame.loc[changed, "detail"] = [
            f"{d or ''} [U+0000 or unpaired surrogates replaced by U+FFFD]"
            for d in frame.loc[changed, "detail"]
        ]
    cols = list(QUARANTINE_COLUMNS)
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE incoming_q ON COMMIT DROP AS"
            " SELECT {}, 0::int8 AS ord FROM quarantine WITH NO DATA"
        ).format(sql.SQL(", ").join(map(sql.Identifier, cols)))
    )
    data = {c: arrow_column(frame, c) for c in cols}
    data["ord"] = pa.array(np.arange(len(frame), dtype="int64"))
    copy_arrow(conn, "incoming_q", pa.table(data))
    names = sql.SQL(", ").join(map(sql.Identifier, cols))
    conn.execute(
        sql.SQL(
            "INSERT INTO quarantine ({cols}) SELECT {cols} FROM incoming_q ORDER BY ord"
            " ON CONFLICT (quarantine_id) DO NOTHING"
        ).format(cols=names)
    )
    return released


def record_batch(conn: psycopg.Connection, record: dict[str, object]) -> None:
    """Append one row to the ingest log (``batches``)."""
    names = [c for c in record if c != "ingested_at"]
    conn.execute(
        sql.SQL("INSERT INTO batches ({}) VALUES ({})").format(
            sql.SQL(", ").join(map(sql.Identifier, names)),
            sql.SQL(", ").join(sql.Placeholder(n) for n in names),
        ),
        {n: _text_or_int(record[n]) for n in names},
    )


def _text_or_int(value: object) -> object:
    if value is None or isinstance(value, (int, np.integer)):
        return None if value is None else int(value)
    text, _ = scrub(pd.Series([str(value)], dtype=object))
    return text.iloc[0]
