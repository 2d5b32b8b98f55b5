"""Bulk loading into the PostGIS store: COPY into a temporary table, then upsert.

Every function takes an open connection and runs inside the caller's transaction; the
temporary tables are ``ON COMMIT DROP``. Rows go through ``COPY … (FORMAT csv)``, written
column-wise by Arrow's CSV writer (:func:`copy_frame`);
times travel as microseconds since the Unix epoch and become ``timestamptz`` in SQL,
geometries are made in SQL from lon/lat and from the city x/y (the same x/y the embedded
store joins on).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
from psycopg import sql

from geo.model import CANONICAL_FIELDS, DERIVED_FIELDS, TEXT_FIELDS, TIME_FIELDS
from geo.postgis_text import (
    LONG_ID_REASON,
    NUL_FLAG,
    NUL_ID_REASON,
    has_bad,
    scrub,
    scrub_json,
    too_long,
)
from geo.validate import QUARANTINE_COLUMNS, empty_quarantine

#: Columns of ``requests`` written from a batch, in COPY order.
REQUEST_COLUMNS: Final = tuple(CANONICAL_FIELDS) + tuple(DERIVED_FIELDS)
_FLOATS: Final = frozenset({"lat", "lon", "x", "y", "geocode_score"})
_EPOCH: Final = sql.SQL("timestamptz '1970-01-01 00:00:00+00' + {} * interval '1 microsecond'")


def _pg_type(column: str) -> str:
    if column in TIME_FIELDS or column == "row_hash":
        return "int8"
    if column in _FLOATS:
        return "float8"
    if column == "synthetic":
        return "bool"
    return "text"


def copy_frame(
    conn: psycopg.Connection,
    table: str,
    columns: Sequence[str],
    types: Sequence[str],
    data: dict[str, Any],
) -> None:
    """Create ``table`` as a temporary table and COPY column arrays ``data`` into it.

    The columns become an Arrow table and Arrow's CSV writer (C++, no Python loop per
    row) writes them straight into ``COPY … (FORMAT csv)``. Arrow quotes every string
    and leaves nulls empty and unquoted, which is exactly PostgreSQL's CSV rule (``""``
    is the empty string, an empty field is NULL); floats are written in their shortest
    round-trip form.

    Parameters
    ----------
    conn
        Connection inside a transaction.
    table
        Name of the temporary table (dropped at commit).
    columns, types
        Column names and PostgreSQL type names.
    data
        Column name → array from :func:`copy_column`, all of equal length.
    """
    defs = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c), sql.Identifier(t))
        for c, t in zip(columns, types, strict=True)
    )
    conn.execute(
        sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(sql.Identifier(table), defs)
    )
    arrow = pa.table({c: data[c] for c in columns})
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    options = pa_csv.WriteOptions(include_header=False, batch_size=_COPY_CHUNK)
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        for start in range(0, arrow.num_rows, _COPY_CHUNK):
            sink = pa.BufferOutputStream()
            pa_csv.write_csv(arrow.slice(start, _COPY_CHUNK), sink, options)
            copy.write(memoryview(sink.getvalue()))
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))


_COPY_CHUNK: Final = 100_000


def copy_column(frame: pd.DataFrame, column: str, pg_type: str) -> Any:
    """One column of ``frame`` as an array for :func:`copy_frame`.

    Times become epoch microseconds (nullable ``Int64``), ``row_hash`` its int64 bit
    pattern, text an Arrow string array (values that are not ``str`` are converted with
    ``str``; missing values are null).
    """
    n = len(frame)
    if column not in frame.columns:
        return pa.nulls(n, pa.string() if pg_type == "text" else None)
    s = frame[column]
    if pg_type == "int8" and (column in TIME_FIELDS or column == "quarantined_at"):
        times = pd.to_datetime(s, utc=True)
        micros = times.dt.as_unit("ns").array.asi8 // 1000  # type: ignore[attr-defined]
        return pa.array(micros, mask=times.isna().to_numpy(), type=pa.int64())
    if column == "row_hash":
        return s.to_numpy(dtype="uint64").view("int64")
    if pg_type == "int8":
        return pd.to_numeric(s).astype("int64").to_numpy()
    if pg_type == "float8":
        return s.to_numpy(dtype="float64")
    if pg_type == "bool":
        return s.fillna(False).to_numpy(dtype=bool)
    try:
        return pa.array(s, type=pa.string(), from_pandas=True)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        values = s.astype(object).where(s.notna(), None).to_numpy()
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def column_values(frame: pd.DataFrame, column: str) -> list[object]:
    """One column as a list of Python values (times as epoch microseconds).

    Used by the benchmark's ``executemany`` comparison; the load itself uses
    :func:`copy_column`.
    """
    if column not in frame.columns:
        return [None] * len(frame)
    s = frame[column]
    if column in TIME_FIELDS or column == "quarantined_at":
        micros = pd.to_datetime(s, utc=True).dt.as_unit("ns").array.asi8 // 1000  # type: ignore[attr-defined]
        na = s.isna().to_numpy()
        return [None if n else int(m) for m, n in zip(micros, na, strict=True)]
    if column == "row_hash":
        return s.to_numpy(dtype="uint64").view("int64").tolist()
    if column in _FLOATS:
        return s.to_numpy(dtype="float64").tolist()
    if column == "synthetic":
        return s.fillna(False).to_numpy(dtype=bool).tolist()
    arr = s.to_numpy(dtype=object)
    return [None if v is None or (isinstance(v, float) and v != v) else str(v) for v in arr]


def apply_nul_rule(requests: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply the NUL rule (see :mod:`geo.postgis_text`) to a batch's requests.

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


def stage_requests(conn: psycopg.Connection, requests: pd.DataFrame) -> None:
    """COPY a batch's requests into the temporary table ``incoming``."""
    columns = [*REQUEST_COLUMNS, "ord"]
    types = [_pg_type(c) for c in REQUEST_COLUMNS] + ["int8"]
    data = {c: copy_column(requests, c, t) for c, t in zip(REQUEST_COLUMNS, types, strict=False)}
    data["ord"] = np.arange(len(requests), dtype="int64")
    copy_frame(conn, "incoming", columns, types, data)


#: A batch at least this large, and at least as large as the stored table, is upserted
#: with the GiST indexes of ``requests`` dropped and rebuilt (see :func:`upsert_requests`).
BULK_ROWS: Final = 50_000


def upsert_requests(conn: psycopg.Connection, srid: int) -> tuple[int, int]:
    """Upsert ``incoming`` into ``requests``; record the written ids in ``changed``.

    The upsert rule of :mod:`geo.store`: an existing row is replaced when the incoming
    ``updated_datetime`` is newer (or the stored one is missing), or when both are equal
    or both missing and the ``row_hash`` differs.

    A big batch (:data:`BULK_ROWS` rows or more, and no fewer than the rows already
    stored) is written with the GiST indexes of ``requests`` dropped and then rebuilt in
    the same transaction: a sorted GiST build costs less than maintaining the indexes
    row by row (measured about 1.4x on 485k rows into an empty table). DDL is
    transactional, so a failure still leaves the database as it was; the price is an
    ``ACCESS EXCLUSIVE`` lock on ``requests`` until commit, so readers wait for a big
    load instead of seeing the old rows.

    Returns
    -------
    tuple of int
        Rows inserted and rows updated (the rest of ``incoming`` is unchanged).
    """
    rebuild = _bulk_indexes(conn)
    for name, _ in rebuild:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    conn.execute(
        "CREATE TEMP TABLE changed (service_request_id text PRIMARY KEY, inserted boolean NOT NULL)"
        " ON COMMIT DROP"
    )
    targets = [sql.Identifier(c) for c in REQUEST_COLUMNS]
    exprs: list[sql.Composable] = []
    for c in REQUEST_COLUMNS:
        ident = sql.Identifier("i", c)
        if c in TIME_FIELDS:
            exprs.append(_EPOCH.format(ident))
        elif c == "extra":
            exprs.append(sql.SQL("{}::jsonb").format(ident))
        else:
            exprs.append(ident)
    sets = sql.SQL(", ").join(
        sql.SQL("{} = EXCLUDED.{}").format(t, t)
        for t in [*targets[1:], sql.Identifier("geom"), sql.Identifier("geom_city")]
    )
    stmt = sql.SQL(
        "WITH up AS ("
        " INSERT INTO requests AS r ({targets}, geom, geom_city)"
        " SELECT {exprs}, ST_SetSRID(ST_MakePoint(i.lon, i.lat), 4326),"
        "        ST_SetSRID(ST_MakePoint(i.x, i.y), {srid})"
        " FROM incoming AS i ORDER BY i.ord"
        " ON CONFLICT (service_request_id) DO UPDATE SET {sets}"
        " WHERE EXCLUDED.updated_datetime > r.updated_datetime"
        "    OR (EXCLUDED.updated_datetime IS NOT NULL AND r.updated_datetime IS NULL)"
        "    OR (EXCLUDED.updated_datetime IS NOT DISTINCT FROM r.updated_datetime"
        "        AND EXCLUDED.row_hash <> r.row_hash)"
        " RETURNING r.service_request_id, (r.xmax = 0) AS inserted)"
        " INSERT INTO changed SELECT service_request_id, inserted FROM up"
    ).format(
        targets=sql.SQL(", ").join(targets),
        exprs=sql.SQL(", ").join(exprs),
        srid=sql.Placeholder("srid"),
        sets=sets,
    )
    conn.execute(stmt, {"srid": srid})
    for _, definition in rebuild:
        conn.execute(definition.encode())  # pg_get_indexdef output, from the catalogue
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM changed"
    ).fetchone() or (0, 0)
    return int(row[0]), int(row[1])


def _bulk_indexes(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """(name, definition) of the GiST indexes on ``requests`` to rebuild, or none.

    Empty unless ``incoming`` holds at least :data:`BULK_ROWS` rows and no fewer than
    the planner's estimate of the rows in ``requests``.
    """
    row = conn.execute(
        "SELECT (SELECT count(*) FROM incoming),"
        " (SELECT greatest(reltuples, 0)::int8 FROM pg_class WHERE oid = 'requests'::regclass)"
    ).fetchone()
    if row is None or row[0] < BULK_ROWS or row[0] < row[1]:
        return []
    return [
        (str(name), str(definition))
        for name, definition in conn.execute(
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x"
            " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am am ON am.oid = i.relam"
            " WHERE x.indrelid = 'requests'::regclass AND am.amname = 'gist'"
            " ORDER BY i.relname"
        ).fetchall()
    ]


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
    types = [
        "int8" if c == "source_row" else "int8" if c == "quarantined_at" else "text" for c in cols
    ]
    data = {c: copy_column(frame, c, t) for c, t in zip(cols, types, strict=True)}
    data["ord"] = np.arange(len(frame), dtype="int64")
    copy_frame(conn, "incoming_q", [*cols, "ord"], [*types, "int8"], data)
    exprs = [
        _EPOCH.format(sql.Identifier(c)) if c == "quarantined_at" else sql.Identifier(c)
        for c in cols
    ]
    conn.execute(
        sql.SQL(
            "INSERT INTO quarantine ({cols}) SELECT {exprs} FROM incoming_q ORDER BY ord"
            " ON CONFLICT (quarantine_id) DO NOTHING"
        ).format(
            cols=sql.SQL(", ").join(map(sql.Identifier, cols)), exprs=sql.SQL(", ").join(exprs)
        )
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
