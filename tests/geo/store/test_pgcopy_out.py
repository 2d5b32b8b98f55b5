"""Binary COPY out of PostgreSQL into Arrow (geo.store.pgcopy_out): the decoder against
hand-made COPY bytes, and the reader against a real server and psycopg's own fetch."""

from __future__ import annotations

import struct
import threading
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pytest
from psycopg import sql

from geo.store import pgcopy_out, postgis_read
from geo.store.pgcopy_out import BOOL, FLOAT8, INT4, INT8, TEXT, TIMESTAMPTZ, CopyOutError


def fetch_copy_split(first_conn: psycopg.Connection, second_conn: psycopg.Connection | None,
                     first: sql.Composable, rest: list[sql.Composable]
                     ) -> tuple[pa.Table, list[pa.Table]]:
    """:func:`postgis_read.fetch_copy_then` handing on the tables as they are read."""
    return postgis_read.fetch_copy_then(first_conn, second_conn, first, rest,
                                        lambda table: table, lambda _, table: table,
                                        read_rest=pgcopy_out.copy_table)


_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_US = datetime(2000, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _PG_EPOCH


def _encode(rows: list[list[Any]], kinds: list[int], *, trailer: bool = True) -> np.ndarray:
    """Rows as PostgreSQL's binary COPY format (header, rows, trailer)."""
    out = bytearray(b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 4) + b"ext!")
    for row in rows:
        out += struct.pack(">h", len(row))
        for value, kind in zip(row, kinds, strict=True):
            if value is None:
                out += struct.pack(">i", -1)
                continue
            if kind == TEXT:
                data = value.encode()
            elif kind == INT8:
                data = struct.pack(">q", value)
            elif kind == INT4:
                data = struct.pack(">i", value)
            elif kind == FLOAT8:
                data = struct.pack(">d", value)
            elif kind == TIMESTAMPTZ:
                data = struct.pack(">q", value if isinstance(value, int)
                                   else (value - _PG_EPOCH) // _US)
            else:
                data = bytes([value])
            out += struct.pack(">i", len(data)) + data
    if trailer:
        out += struct.pack(">h", -1)
    return np.frombuffer(bytes(out), dtype=np.uint8)


_KINDS = [TEXT, INT8, FLOAT8, TIMESTAMPTZ, BOOL, INT4, TEXT]
_ROWS: list[list[Any]] = [
    ["b", 1, 1.5, datetime(2024, 3, 1, 12, 30, 0, 7, tzinfo=UTC), 1, 7, "x"],
    ["", None, -0.0, None, 0, None, None],
    ["Ω ünïcode", -2**63, float("inf"), datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC), None,
     -2**31, "tab\tand\nline"],
    [None, 2**63 - 1, None, 2**63 - 1, 1, 2**31 - 1, ""],  # 'infinity' timestamp
]


def _table(arrays: list[pa.Array]) -> pa.Table:
    return pa.table(arrays, names=[f"c{i}" for i in range(len(arrays))])


def test_a_chunk_decodes_every_kind_and_null() -> None:
    got = _table(pgcopy_out._decode_chunk(_encode(_ROWS, _KINDS), np.asarray(_KINDS, np.int8),
                                          first=True))
    got.validate(full=True)
    assert got.schema.types == [pa.large_string(), pa.int64(), pa.float64(),
                                pa.timestamp("us", "UTC"), pa.bool_(), pa.int32(),
                                pa.large_string()]
    columns = got.to_pydict()
    assert columns["c0"] == ["b", "", "Ω ünïcode", None]
    assert columns["c1"] == [1, None, -2**63, 2**63 - 1]
    assert columns["c2"][:3] == [1.5, -0.0, float("inf")] and columns["c2"][3] is None
    assert np.signbit(columns["c2"][1])
    assert columns["c3"] == [datetime(2024, 3, 1, 12, 30, 0, 7, tzinfo=UTC), None,
                             datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC), None]
    assert columns["c4"] == [True, False, None, True]
    assert columns["c5"] == [7, None, -2**31, 2**31 - 1]
    assert columns["c6"] == ["x", None, "tab\tand\nline", ""]
    assert got.column("c0").null_count == 1 and got.column("c6").null_count == 1


def test_chunks_after_the_first_have_no_header_and_may_lack_the_trailer() -> None:
    kinds = np.asarray(_KINDS, np.int8)
    whole = _encode(_ROWS, _KINDS)
    header = 19 + 4
    middle = _encode(_ROWS[:2], _KINDS, trailer=False)[header:]
    got = _table(pgcopy_out._decode_chunk(middle, kinds, first=False))
    assert got.equals(_table(pgcopy_out._decode_chunk(whole, kinds, first=True)).slice(0, 2))
    empty = _table(pgcopy_out._decode_chunk(whole[:header], kinds, first=True))
    assert empty.num_rows == 0 and empty.schema.types[0] == pa.large_string()


@pytest.mark.parametrize(("cut", "message"), [
    ("signature", "no signature"),
    ("fields", "expected 7 fields"),
    ("short row", "expected 7 fields"),
    ("length", "length does not fit its type"),
])
def test_output_the_decoder_cannot_read_is_refused(cut: str, message: str) -> None:
    kinds = np.asarray(_KINDS, np.int8)
    data = bytearray(_encode(_ROWS, _KINDS).tobytes())
    if cut == "signature":
        data[0:1] = b"X"
    elif cut == "fields":
        data = bytearray(_encode([[*r, "extra"] for r in _ROWS], [*_KINDS, TEXT]).tobytes())
    elif cut == "short row":
        data = data[:30]
    else:  # 4-byte values in the int8 column
        data = bytearray(_encode(_ROWS[:1], [TEXT, INT4, *_KINDS[2:]]).tobytes())
    with pytest.raises(CopyOutError, match=message):
        pgcopy_out._decode_chunk(np.frombuffer(bytes(data), np.uint8), kinds, first=True)


# --- against a server ------------------------------------------------------------------

_CREATE = """
CREATE TABLE kinds (
    k int4, t text, v varchar(20), i8 bigint, f8 double precision, ts timestamptz, b boolean
)"""
_VALUES = [
    (1, "plain", "v", 1, 1.25, datetime(2024, 3, 1, 12, 30, 0, 7, tzinfo=UTC), True),
    (2, "", "", -9223372036854775808, float("-inf"), datetime(1970, 1, 1, tzinfo=UTC), False),
    (3, None, None, None, None, None, None),
    (4, "naïve – “quoted”, \\ back\tslash\nnew line 😀", "x" * 20, 9223372036854775807,
     float("nan"), datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), True),
    (5, "=HYPERLINK(\"x\")", "@a", 0, -0.0, datetime(2038, 1, 19, 3, 14, 8, tzinfo=UTC), None),
]


@pytest.fixture
def kinds_url(postgis_url: str) -> str:
    with psycopg.connect(postgis_url, autocommit=True) as conn:
        conn.execute(_CREATE)
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO kinds VALUES (%s, %s, %s, %s, %s, %s, %s)", _VALUES)
            cur.execute("INSERT INTO kinds (k, t, ts) VALUES (6, 'inf', 'infinity')")
            cur.execute("INSERT INTO kinds (k, t, i8) SELECT 100 + g, repeat('r', g % 50), g"
                        " FROM generate_series(1, 3000) g")
    return postgis_url


_QUERY = sql.SQL("SELECT k, t, v, i8, f8, ts, b FROM kinds ORDER BY k")


def _by_psycopg(url: str) -> list[tuple[Any, ...]]:
    """The rows of :data:`_QUERY` as psycopg loads them ('infinity', which it cannot
    load, as null)."""
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT k, t, v, i8, f8, CASE WHEN isfinite(ts) THEN ts END, b"
                            " FROM kinds ORDER BY k").fetchall()


@pytest.mark.parametrize("chunk_bytes", [pgcopy_out.CHUNK_BYTES, 64, 1])
def test_a_table_read_by_copy_is_what_psycopg_fetches(kinds_url: str, chunk_bytes: int) -> None:
    """Every type and edge value, in chunks of every size down to one row a chunk."""
    with psycopg.connect(kinds_url) as conn:
        conn.execute("SET client_encoding TO 'LATIN1'")  # the read sets UTF-8 for itself
        conn.commit()
        names, kinds = pgcopy_out.column_kinds(conn, _QUERY)
        with pgcopy_out.copy_batches(conn, _QUERY, kinds, chunk_bytes=chunk_bytes) as chunks:
            batches = list(chunks)
        conn.rollback()
        assert conn.execute("SHOW client_encoding").fetchone() == ("LATIN1",)
    assert names == ["k", "t", "v", "i8", "f8", "ts", "b"]
    assert kinds == [INT4, TEXT, TEXT, INT8, FLOAT8, TIMESTAMPTZ, BOOL]
    assert (len(batches) == 1) == (chunk_bytes == pgcopy_out.CHUNK_BYTES)
    table = pa.Table.from_batches([pa.RecordBatch.from_arrays(b, names=names) for b in batches])
    table.validate(full=True)
    got = [tuple(row.values()) for row in table.to_pylist()]
    expected = _by_psycopg(kinds_url)
    assert len(got) == len(expected) == 3006
    assert got[5][:2] == (6, "inf") and got[5][5] is None  # 'infinity': no instant, null
    for mine, theirs in zip(got, expected, strict=True):
        assert len(mine) == len(theirs)
        for a, b in zip(mine, theirs, strict=True):
            if isinstance(b, float) and b != b:
                assert a != a
            else:
                assert a == b and type(a) is type(b)


def test_copy_table_of_no_rows_keeps_the_types(kinds_url: str) -> None:
    with psycopg.connect(kinds_url) as conn:
        table = pgcopy_out.copy_table(conn, sql.SQL("SELECT t, i8, ts FROM kinds WHERE false"))
    assert table.num_rows == 0
    assert table.schema == pa.schema([("t", pa.large_string()), ("i8", pa.int64()),
                                      ("ts", pa.timestamp("us", "UTC"))])


def test_table_columns_read_the_same_rows_as_their_select(kinds_url: str) -> None:
    """``COPY table (columns)`` gives what the ``SELECT`` of those columns gives, in
    the columns' order, and quotes the names (a table and column a query could not
    name bare)."""
    with psycopg.connect(kinds_url) as conn:
        conn.execute('CREATE TABLE "we ird""s" ("a b" text, k int8)')
        conn.execute("""INSERT INTO "we ird""s" SELECT t, k FROM kinds""")
        source = pgcopy_out.TableColumns('we ird"s', ("k", "a b"))
        assert source.select().as_string(conn) == 'SELECT "k", "a b" FROM "we ird""s"'
        got = pgcopy_out.copy_table(conn, source)
        expected = pgcopy_out.copy_table(conn, sql.SQL("SELECT t AS \"a b\", k FROM kinds"))
    assert got.column_names == ["k", "a b"]
    assert got.num_rows == 3006
    assert sorted(zip(*got.to_pydict().values(), strict=True)) == sorted(
        zip(expected["k"].to_pylist(), expected["a b"].to_pylist(), strict=True))


def test_table_columns_of_a_missing_table_fail_with_the_servers_message(
        kinds_url: str) -> None:
    with psycopg.connect(kinds_url) as conn, pytest.raises(
            psycopg.errors.UndefinedTable, match="no_such_table"):
        pgcopy_out.copy_table(conn, pgcopy_out.TableColumns("no_such_table", ("k",)))


def test_a_type_the_reader_does_not_decode_is_named(kinds_url: str) -> None:
    with psycopg.connect(kinds_url) as conn, pytest.raises(
            CopyOutError, match=r"column 'n': PostgreSQL type 1700 is not decoded \(allowed"):
        pgcopy_out.copy_table(conn, sql.SQL("SELECT k, 1.5::numeric AS n FROM kinds"))


def test_a_statement_failing_mid_copy_gives_the_servers_message(kinds_url: str) -> None:
    """The server breaks off after rows were sent (a division by zero at row 2,000, in
    chunks of 64 bytes): the read fails with the server's message and the connection is
    usable after rollback."""
    failing = sql.SQL("SELECT g, 10 / (g - 2000) AS q FROM generate_series(1, 3000) g")
    with psycopg.connect(kinds_url) as conn:
        _, kinds = pgcopy_out.column_kinds(conn, failing)
        got: list[list[pa.Array]] = []
        with pytest.raises(CopyOutError, match="division by zero"), \
                pgcopy_out.copy_batches(conn, failing, kinds, chunk_bytes=64) as chunks:
            for batch in chunks:
                got.append(batch)
        assert got and got[0][0].to_pylist()[0] == 1
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM kinds").fetchone() == (3006,)


def test_a_read_left_early_cancels_the_statement(kinds_url: str) -> None:
    """Leaving the block after the first chunk of a long statement does not wait for it
    to end: the statement is cancelled (rows of 20 kB, so the server sends each at once),
    and the connection is usable after rollback."""
    slow = sql.SQL("SELECT g::int8 AS g, repeat('x', 20000)"
                   " || pg_sleep(CASE WHEN g = 50 THEN 30 ELSE 0 END)::text AS s"
                   " FROM generate_series(1, 100) g")
    with psycopg.connect(kinds_url) as conn, \
            psycopg.connect(kinds_url, autocommit=True) as watcher:
        def running() -> int:
            row = watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
                                  " AND query LIKE 'COPY (SELECT g::int8%'").fetchone()
            return int(row[0]) if row else 0

        _, kinds = pgcopy_out.column_kinds(conn, slow)
        with pgcopy_out.copy_batches(conn, slow, kinds, chunk_bytes=64) as chunks:
            first = next(chunks)
            assert first[0].to_pylist() == [1]
            assert running() == 1
            started = time.monotonic()
        assert time.monotonic() - started < 10
        assert running() == 0
        conn.rollback()
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_split_copy_read_sees_one_snapshot(kinds_url: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The second connection reads the first's snapshot: a row committed between the
    export and the second connection's reads is seen by neither; without a second
    connection every statement runs on the first, in its one snapshot."""
    count = sql.SQL("SELECT count(*) AS n FROM kinds")
    with psycopg.connect(kinds_url) as first, psycopg.connect(kinds_url) as second:
        real = pgcopy_out.copy_table
        seen: list[int] = []

        def write_first(conn: psycopg.Connection, query: sql.Composable) -> pa.Table:
            if conn is second and not seen:
                seen.append(1)
                with psycopg.connect(kinds_url, autocommit=True) as writer:
                    writer.execute("INSERT INTO kinds (k) VALUES (-1)")
            return real(conn, query)

        monkeypatch.setattr(pgcopy_out, "copy_table", write_first)
        rows, rest = fetch_copy_split(first, second, count,
                                                   [count, sql.SQL("SELECT 7 AS seven")])
        monkeypatch.undo()
        assert seen
        assert rows.column("n").to_pylist() == [3006]
        assert [t.column(0).to_pylist() for t in rest] == [[3006], [7]]
        for conn in (first, second):
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        rows, rest = fetch_copy_split(first, None, count, [count])
        assert rows.column("n").to_pylist() == [3007] and rest[0].column("n").to_pylist() == [3007]


def test_notices_sent_during_the_copy_reach_psycopg(kinds_url: str) -> None:
    """A statement that raises notices while its rows are read: libpq hands them to
    psycopg's handlers from the reading thread, and the rows arrive whole."""
    with psycopg.connect(kinds_url) as conn:
        conn.execute("CREATE FUNCTION noisy(i int) RETURNS int LANGUAGE plpgsql AS"
                     " $$ BEGIN RAISE NOTICE 'row %', i; RETURN i; END $$")
        heard: list[str] = []
        conn.add_notice_handler(lambda diag: heard.append(diag.message_primary or ""))
        table = pgcopy_out.copy_table(conn, sql.SQL(
            "SELECT noisy(g) AS n, repeat('y', 9000) AS pad FROM generate_series(1, 200) g"))
        conn.rollback()
    assert table.column("n").to_pylist() == list(range(1, 201))
    assert heard[:2] == ["row 1", "row 2"] and len(heard) == 200


def test_a_timestamp_arrow_cannot_hold_reads_as_null() -> None:
    """PostgreSQL's timestamps reach year 294276; microseconds since 1970 in an int64
    end in 294247: the last one that fits is read, the first that does not is null."""
    last = 2**63 - 1 - 946_684_800_000_000
    kinds = [TIMESTAMPTZ]
    got = pgcopy_out._decode_chunk(_encode([[last], [last + 1], [-2**63 + 1]], kinds),
                                   np.asarray(kinds, np.int8), first=True)[0]
    assert got.cast(pa.int64()).to_pylist() == [2**63 - 1, None, -2**63 + 1 + 946_684_800_000_000]


def test_wait_out_raises_an_interrupt_only_once_the_work_is_done() -> None:
    finished = threading.Event()

    def work() -> None:
        time.sleep(0.3)
        finished.set()

    worker = threading.Thread(target=work)
    worker.start()
    calls: list[int] = []

    def step() -> None:
        calls.append(1)
        if len(calls) <= 2:
            raise KeyboardInterrupt  # Ctrl-C twice while waiting
        worker.join(0.05)

    with pytest.raises(KeyboardInterrupt):
        pgcopy_out.wait_out(lambda: not worker.is_alive(), step)
    assert finished.is_set() and len(calls) > 2


def test_an_autocommit_connection_is_refused(kinds_url: str) -> None:
    with psycopg.connect(kinds_url, autocommit=True) as conn, \
            pytest.raises(CopyOutError, match="in a transaction"):
        pgcopy_out.copy_table(conn, _QUERY)


_SLOW_ROWS = ("SELECT g::int8 AS g, repeat('x', 20000)"
              " || pg_sleep(CASE WHEN g = 5 THEN {} ELSE 0 END)::text AS s"
              " FROM generate_series(1, 10) g")


@pytest.mark.parametrize("failure", ["refused", "interrupted"])
def test_when_the_cancel_fails_the_read_waits_for_its_statement(
        kinds_url: str, monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    """The cancel cannot be sent (or Ctrl-C lands on it): leaving the block still waits
    until the reading thread is out of libpq (the statement, 2 s, runs to its end), so
    the connection can be rolled back and used; an interrupt is raised after that."""
    slow = sql.SQL(_SLOW_ROWS.format(2))

    def no_cancel(self: psycopg.Connection) -> None:
        if failure == "interrupted":
            raise KeyboardInterrupt
        raise psycopg.OperationalError("cancel refused")

    monkeypatch.setattr(psycopg.Connection, "cancel_safe", no_cancel)
    with psycopg.connect(kinds_url) as conn:
        _, kinds = pgcopy_out.column_kinds(conn, slow)
        started = time.monotonic()
        raised: list[BaseException] = []
        try:
            with pgcopy_out.copy_batches(conn, slow, kinds, chunk_bytes=64) as chunks:
                next(chunks)
        except KeyboardInterrupt as err:
            raised.append(err)
        assert time.monotonic() - started >= 1.9
        assert not [t for t in threading.enumerate() if t.name == "pgcopy-read"]
        assert bool(raised) == (failure == "interrupted")
        conn.rollback()
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_failing_first_statement_cancels_the_second_connections(kinds_url: str) -> None:
    """The requests statement fails while the second connection reads a long one: the
    second is cancelled, not waited for, the first statement's error is raised, and both
    connections are rolled back and usable."""
    failing = sql.SQL("SELECT g, 10 / (g - 2000) AS q FROM generate_series(1, 3000) g")
    slow = sql.SQL(_SLOW_ROWS.format(30))
    with psycopg.connect(kinds_url) as first, psycopg.connect(kinds_url) as second:
        started = time.monotonic()
        with pytest.raises(CopyOutError, match="division by zero"):
            fetch_copy_split(first, second, failing, [slow])
        assert time.monotonic() - started < 10
        for conn in (first, second):
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_each_table_is_handed_on_while_the_next_is_read(kinds_url: str) -> None:
    """``fetch_copy_then`` hands the first table on before the rest are all read, and
    each of the rest, in order, with the first's result; on one connection too."""
    count = sql.SQL("SELECT count(*) AS n FROM kinds")
    slow = sql.SQL(_SLOW_ROWS.format(1))
    events: list[str] = []
    real = pgcopy_out.copy_table

    def noted(conn: psycopg.Connection, query: sql.Composable) -> pa.Table:
        table = real(conn, query)
        events.append(f"read {table.num_rows}")
        return table

    def on_first(table: pa.Table) -> int:
        events.append("first")
        return int(table.column("n")[0].as_py())

    def on_rest(n: int, table: pa.Table) -> tuple[int, int]:
        events.append("rest")
        return n, table.num_rows

    with psycopg.connect(kinds_url) as first, psycopg.connect(kinds_url) as second:
        for other in (second, None):
            events.clear()
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(pgcopy_out, "copy_table", noted)
                head, rest = postgis_read.fetch_copy_then(
                    first, other, count, [count, slow], on_first, on_rest,
                    read_rest=pgcopy_out.copy_table)
            slow_rows = rest[1][1]
            assert head == 3006 and rest == [(3006, 1), (3006, slow_rows)]
            if other is not None:  # the first handed on before the slow read ended
                assert events.index("first") < events.index(f"read {slow_rows}")
            assert events.count("rest") == 2
            for conn in (first, second):
                assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_a_failing_hand_on_cancels_the_second_connections_read(kinds_url: str) -> None:
    """An error of ``on_first`` is raised at once: the second connection's long read
    is cancelled, not waited for, and both connections are rolled back and usable."""
    slow = sql.SQL(_SLOW_ROWS.format(30))

    def refuse(table: pa.Table) -> None:
        raise ValueError("no thank you")

    with psycopg.connect(kinds_url) as first, psycopg.connect(kinds_url) as second:
        started = time.monotonic()
        with pytest.raises(ValueError, match="no thank you"):
            postgis_read.fetch_copy_then(first, second, sql.SQL("SELECT 1 AS one"), [slow],
                                         refuse, lambda _, table: table,
                                         read_rest=pgcopy_out.copy_table)
        assert time.monotonic() - started < 10
        for conn in (first, second):
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize(("failing", "error", "message"), [
    ("SELECT * FROM no_such_table", psycopg.errors.UndefinedTable, "no_such_table"),
    ("SELECT g, 10 / (g - 2000) AS q FROM generate_series(1, 3000) g", CopyOutError,
     "division by zero"),
])
def test_an_error_of_the_second_connection_is_raised_and_both_are_usable(
        kinds_url: str, failing: str, error: type[Exception], message: str) -> None:
    """A statement of ``rest`` that fails, before its COPY (the check of its column
    types) or during it, gives its server's error; both connections are rolled back and
    usable."""
    count = sql.SQL("SELECT count(*) AS n FROM kinds")
    with psycopg.connect(kinds_url) as first, psycopg.connect(kinds_url) as second:
        with pytest.raises(error, match=message):
            postgis_read.fetch_copy_then(first, second, count, [count, sql.SQL(failing)],
                                         lambda table: table, lambda _, table: table,
                                         read_rest=pgcopy_out.copy_raw)
        for conn in (first, second):
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            assert conn.execute("SELECT 1").fetchone() == (1,)
