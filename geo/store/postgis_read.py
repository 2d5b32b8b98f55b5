"""Reading requests out of PostGIS as Arrow, without a Python object per row.

Statements are read by binary COPY, decoded into Arrow by :mod:`geo.store.pgcopy_out`
(:func:`fetch_copy_then`), or through ADBC's PostgreSQL driver
(``adbc-driver-postgresql``, :func:`fetch_arrow_split`), which reads the same binary
COPY output: either way times arrive as ``timestamp[us, UTC]``, numbers as numbers,
text as Arrow strings. The frame built from them has the embedded store's shape and
types (text as Arrow-backed ``str``, missing as NaN, which is what a Parquet file of the
embedded store reads back as), so both stores hand the same frame to every caller.

Statements are composed with :mod:`psycopg.sql` (identifiers and literals quoted by
psycopg); for ADBC they are rendered with a psycopg connection first.
"""

from __future__ import annotations

import ctypes
import functools
import queue
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from contextlib import suppress
from typing import Any, Final, TypeVar

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from geo.ingest.model import TEXT, empty_requests, with_points
from geo.store import adbc_pool, id_order, pgcopy_out
from geo.store.postgis_load import REQUEST_COLUMNS
from hotspot311.schema import STORE_FIELDS, TIME_FIELDS

#: Columns :meth:`PostGISStore.requests` reads: those the loader writes, and problem_id.
READ_COLUMNS: Final = (*REQUEST_COLUMNS, *STORE_FIELDS)

#: What a read hands on for its first statement and for each of the others; what it
#: reads of each of the others.
T = TypeVar("T")
U = TypeVar("U")
R = TypeVar("R")


#: The first statement of every read of several statements: one state of the database,
#: and no writes.
_SNAPSHOT: Final = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"


def adbc_uri(conninfo: str) -> str | None:
    """The URI ADBC connects with, for a libpq connection string.

    A ``postgresql://`` URL is used as it is; an empty string (libpq defaults and the
    ``PG*`` variables) becomes ``postgresql://``. A ``key=value`` string is turned into a
    URI only when it holds nothing but host, port, database, user and password; else
    ``None`` (the caller reads another way).

    Examples
    --------
    >>> adbc_uri(""), adbc_uri("postgresql://u@h:5/d")
    ('postgresql://', 'postgresql://u@h:5/d')
    >>> adbc_uri("host=h port=5 dbname=d user=u")
    'postgresql://u@h:5/d'
    """
    text = conninfo.strip()
    if text == "":
        return "postgresql://"
    if text.startswith(("postgresql://", "postgres://")):
        return text
    try:
        params = conninfo_to_dict(text)
    except psycopg.ProgrammingError:
        return None
    if set(params) - {"host", "port", "dbname", "user", "password"}:
        return None
    if any(any(c in str(v) for c in "@/:?#% ") for v in params.values()):
        return None
    user = str(params.get("user", ""))
    password = f":{params['password']}" if "password" in params else ""
    host = str(params.get("host", ""))
    port = f":{params['port']}" if "port" in params else ""
    auth = f"{user}{password}@" if user or password else ""
    return f"postgresql://{auth}{host}{port}/{params.get('dbname', '')}"


def fetch_arrow(uri: str, statement: str, *, lock_timeout: str | None = None) -> pa.Table:
    """Run one ``SELECT`` through ADBC and return its rows as an Arrow table (on a kept
    connection: :mod:`geo.store.adbc_pool`); with ``lock_timeout`` (a PostgreSQL
    interval, e.g. ``"60s"``) a lock waited for longer fails the read."""
    with adbc_pool.connection(uri) as conn, conn.cursor() as cur:
        if lock_timeout is not None:  # for this transaction only (the pool rolls it back)
            cur.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(lock_timeout))
                        .as_string(None))
        cur.execute(statement)
        return cur.fetch_arrow_table()


def fetch_arrow_snapshot(uri: str, statements: Sequence[str]) -> list[pa.Table]:
    """Run several ``SELECT`` statements through ADBC in one read-only, repeatable-read
    transaction (so all see one state of the database), each as an Arrow table."""
    out: list[pa.Table] = []
    with adbc_pool.connection(uri) as conn, conn.cursor() as cur:
        cur.execute(_SNAPSHOT)
        for statement in statements:
            cur.execute(statement)
            out.append(cur.fetch_arrow_table())
        conn.rollback()
    return out


def fetch_arrow_split(uri: str, first: str, rest: Sequence[str]) -> tuple[pa.Table, list[pa.Table]]:
    """Run ``first`` on one ADBC connection and ``rest`` (in turn) on a second, at the
    same time, both in one read-only snapshot of the database.

    The first connection's repeatable-read transaction exports its snapshot
    (``pg_export_snapshot``) and the second imports it (``SET TRANSACTION SNAPSHOT``)
    before it reads, so every statement sees the state ``first`` sees; the exporting
    transaction stays open until the import is done. The ADBC driver reads without
    holding the GIL, so the server's work and Arrow's decoding of the two streams
    overlap.

    Returns
    -------
    tuple
        ``first``'s table and ``rest``'s tables in order.
    """
    if not rest:
        return fetch_arrow_snapshot(uri, [first])[0], []
    imported = threading.Event()
    with adbc_pool.connection(uri) as conn, conn.cursor() as cur:
        cur.execute(_SNAPSHOT)
        cur.execute("SELECT pg_export_snapshot()")
        row = cur.fetchone()
        if row is None:  # pragma: no cover - the function always returns a row
            raise RuntimeError("pg_export_snapshot() returned no row")
        snapshot = str(row[0])

        def read_rest() -> list[pa.Table]:
            out: list[pa.Table] = []
            try:
                with adbc_pool.connection(uri) as other, other.cursor() as cur2:
                    cur2.execute(_SNAPSHOT)
                    cur2.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(snapshot)
                                 .as_string(None))
                    imported.set()
                    for statement in rest:
                        cur2.execute(statement)
                        out.append(cur2.fetch_arrow_table())
                    other.rollback()
            finally:
                imported.set()
            return out

        with ThreadPoolExecutor(1) as pool:
            later = pool.submit(read_rest)
            cur.execute(first)
            table = cur.fetch_arrow_table()
            imported.wait()  # keep the exported snapshot alive until it is imported
            conn.rollback()
            return table, later.result()


def fetch_copy_then(first_conn: psycopg.Connection, second_conn: psycopg.Connection | None,
                    first: sql.Composable, rest: Sequence[pgcopy_out.Source],
                    on_first: Callable[[pa.Table], T], on_rest: Callable[[T, R], U], *,
                    read_rest: Callable[[psycopg.Connection, pgcopy_out.Source], R]
                    ) -> tuple[T, list[U]]:
    """Read ``first`` and ``rest`` in one snapshot, each by binary COPY, and hand each
    on as soon as it is read: ``on_first(table)`` for ``first``, then
    ``on_rest(that result, what read_rest read)`` for each of ``rest`` in turn
    (``read_rest``: :func:`geo.store.pgcopy_out.copy_table` for a table, or
    :func:`geo.store.pgcopy_out.copy_raw` for the rows not decoded).

    ``first`` runs on ``first_conn`` and ``rest`` (in turn) on ``second_conn``, at the
    same time, in one read-only snapshot (exported by the first transaction, imported by
    the second); without ``second_conn`` all run in turn on ``first_conn``. ``on_first``
    and ``on_rest`` run on the caller's thread while ``second_conn`` reads on: the work
    on a table read overlaps the reading of the next. Both connections must be idle (no
    open transaction); both transactions are rolled back, the second only once nothing
    reads from it any more. When ``first``, ``on_first`` or ``on_rest`` fails, the
    statement running on ``second_conn`` is cancelled; the first error is the one
    raised. The reads and decodes hold no GIL, so the two connections' work overlaps.

    Returns
    -------
    tuple
        ``on_first``'s result and ``on_rest``'s results in the order of ``rest``.
    """
    conns = [first_conn] if second_conn is None or not rest else [first_conn, second_conn]
    try:
        result = _copy_then(first_conn, conns[1] if len(conns) > 1 else None, first, rest,
                            on_first, on_rest, read_rest)
    except BaseException:
        for conn in conns:  # a broken connection must not hide the error that broke it
            with suppress(psycopg.Error):
                conn.rollback()
        raise
    for conn in conns:
        conn.rollback()
    return result


def _copy_then(first_conn: psycopg.Connection, second_conn: psycopg.Connection | None,
               first: sql.Composable, rest: Sequence[pgcopy_out.Source],
               on_first: Callable[[pa.Table], T], on_rest: Callable[[T, R], U],
               read_rest: Callable[[psycopg.Connection, pgcopy_out.Source], R]
               ) -> tuple[T, list[U]]:
    first_conn.execute(_SNAPSHOT)
    if second_conn is None:
        head = on_first(pgcopy_out.copy_table(first_conn, first))
        return head, [on_rest(head, read_rest(first_conn, q)) for q in rest]
    row = first_conn.execute("SELECT pg_export_snapshot()").fetchone()
    if row is None:  # pragma: no cover - the function always returns a row
        raise RuntimeError("pg_export_snapshot() returned no row")
    second_conn.execute(_SNAPSHOT)
    second_conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(str(row[0]))))
    tables: queue.SimpleQueue[R | BaseException] = queue.SimpleQueue()

    def read_all() -> None:  # each statement's rows in turn, or the error that ended it
        try:
            for q in rest:
                tables.put(read_rest(second_conn, q))
        except BaseException as err:
            tables.put(err)

    with ThreadPoolExecutor(1) as pool:
        later = pool.submit(read_all)
        try:
            head = on_first(pgcopy_out.copy_table(first_conn, first))
            results: list[U] = []
            for _ in rest:
                table = tables.get()
                if isinstance(table, BaseException):
                    raise table
                results.append(on_rest(head, table))
        except BaseException:
            with suppress(Exception):  # the cancel could not be sent: rest runs to its end
                second_conn.cancel_safe()
            raise
        finally:  # second_conn is rolled back next: nothing may be reading from it
            pgcopy_out.wait_out(later.done, lambda: futures_wait([later], timeout=0.1))
        return head, results


def frame_from_arrow(table: pa.Table, *, text_columns: Sequence[str] = (),
                     compact: bool = False) -> pd.DataFrame:
    """An Arrow table of request columns as the request frame's types.

    Times become ``datetime64[ns, UTC]``, ``row_hash`` (PostgreSQL ``int8``) its ``uint64``
    bit pattern, text :data:`TEXT`; ``text_columns`` are text even when every value is
    missing (PostgreSQL may then type them otherwise). With ``compact`` the text is
    copied into one tight buffer per column: a table straight from the driver holds
    its batches' buffers, grown by doubling, which the frame would otherwise keep alive
    (a 200k-row window read for the app: about 24 MB more, with
    :func:`return_freed_memory`).
    """
    columns: dict[str, object] = {}
    for name in table.column_names:
        col = table.column(name)
        if isinstance(col.type, pa.ExtensionType):
            col = col.cast(col.type.storage_type)
        if name in TIME_FIELDS or pa.types.is_timestamp(col.type):
            times = (pc.cast(col, pa.timestamp("ns", "UTC"), memory_pool=id_order.TAKEN_INTO)
                     if len(col) else col)
            columns[name] = pd.array(
                times.to_pandas(memory_pool=id_order.TAKEN_INTO) if len(col) else [],
                dtype="datetime64[ns, UTC]")
        elif name == "row_hash":
            columns[name] = col.to_numpy().astype("int64").view("uint64")
        elif (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
              or name in text_columns):
            text = pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
            arrow = col if text else col.cast(pa.large_string())
            if compact:
                arrow = pa.chunked_array([arrow.combine_chunks()], type=arrow.type)
            columns[name] = arrow.to_pandas(  # TEXT holds large_string: taken as it is
                types_mapper={pa.string(): TEXT, pa.large_string(): TEXT}.get).array
        elif pa.types.is_floating(col.type):
            columns[name] = col.to_numpy().astype("float64")
        elif pa.types.is_boolean(col.type):
            columns[name] = col.fill_null(False).to_numpy().astype(bool)
        else:
            columns[name] = col.to_pandas()
    return pd.DataFrame(columns)


def return_freed_memory() -> None:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim``).

    The ADBC driver allocates its buffers with ``malloc``; once a read's table is turned
    into a frame and dropped, glibc keeps those pages for later ``malloc`` calls, which
    a long-lived app process may not make. Elsewhere than glibc, nothing is done.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # another C library (musl has no malloc_trim)
        return None


def render(statement: sql.Composable, conn: object) -> str:
    """A composed statement as the SQL text ADBC runs (quoted by psycopg)."""
    return statement.as_string(conn)  # type: ignore[arg-type]


def read_types(keys: tuple[str, ...]) -> dict[str, pa.DataType]:
    types: dict[str, pa.DataType] = {}
    for c in READ_COLUMNS:
        if c in TIME_FIELDS or c == "row_hash":
            types[c] = pa.int64()
        elif c in ("lat", "lon", "x", "y", "geocode_score"):
            types[c] = pa.float64()
        elif c == "synthetic":
            types[c] = pa.bool_()
        else:
            types[c] = pa.string()
    types.update({k: pa.string() for k in keys})
    return types


def request_frame(data: pa.Buffer, keys: tuple[str, ...]) -> gpd.GeoDataFrame:
    """CSV of the :meth:`PostGISStore.requests` query → the embedded store's frame shape.

    PostgreSQL's CSV leaves NULL empty and unquoted and quotes an empty string, which
    Arrow reads back as null and ``""``.
    """
    if data.size == 0:
        return empty_requests(keys)
    names = [*READ_COLUMNS, *keys]
    convert = pa_csv.ConvertOptions(
        column_types=read_types(keys),
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        true_values=["t"],
        false_values=["f"],
    )
    parse = pa_csv.ParseOptions(newlines_in_values=True)
    try:
        table = pa_csv.read_csv(
            pa.BufferReader(data),
            read_options=pa_csv.ReadOptions(column_names=names, block_size=16 << 20),
            parse_options=parse,
            convert_options=convert,
        )
    except pa.ArrowInvalid:  # a row longer than a block: read the whole text as one block
        table = pa_csv.read_csv(
            pa.BufferReader(data),
            read_options=pa_csv.ReadOptions(
                column_names=names, block_size=min(data.size + 1, 2**31 - 1)
            ),
            parse_options=parse,
            convert_options=convert,
        )
    columns: dict[str, Any] = {}
    for c in names:
        col = table.column(c)
        if c in TIME_FIELDS:
            micros = (
                pd.array(col.to_numpy(zero_copy_only=False), dtype="Int64")
                if col.null_count
                else col.to_numpy()
            )
            if col.null_count:
                micros[np.asarray(col.is_null())] = pd.NA
            columns[c] = pd.to_datetime(micros, unit="us", utc=True).astype("datetime64[ns, UTC]")
        elif c == "row_hash":
            columns[c] = col.to_numpy().astype("int64").view("uint64")
        elif c in ("lat", "lon", "x", "y", "geocode_score"):
            columns[c] = col.to_numpy(zero_copy_only=False).astype("float64")
        elif c == "synthetic":
            columns[c] = col.to_numpy(zero_copy_only=False).astype(bool)
        else:  # text: Arrow-backed, as the ADBC read gives it
            text = col if pa.types.is_string(col.type) else col.cast(pa.string())
            columns[c] = text.to_pandas(types_mapper={pa.string(): TEXT}.get).array
    return with_points(pd.DataFrame(columns))
