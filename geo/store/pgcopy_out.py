"""PostgreSQL binary COPY out, read and decoded into Arrow arrays by compiled loops.

A ``COPY (SELECT …) TO STDOUT (FORMAT binary)`` is run on a psycopg connection through
the very libpq that connection uses (its ``PQexec``, ``PQgetCopyData``, ``PQgetResult``),
and its rows are copied by a numba loop that releases the GIL, on a thread of its own:
libpq hands over one row per call, which the loop appends to a chunk of about 16 MB.
Each full chunk is decoded by a second compiled loop, in one pass, into Arrow's own
layout (offsets and bytes for text, 8-byte numbers, validity bits) while the next chunk
is read, so the server never waits for the decoding; a read holds at most six chunks
of raw rows at a time (decoded ones are reused), not the whole output.

Against ADBC's PostgreSQL driver, which reads the same binary COPY: about 15 ns a field
here against about 80; ``bench/postgis.py`` times ``requests()`` both ways in turn.

Types decoded: ``text``, ``varchar`` (and anything cast to text), ``int4``, ``int8``,
``float8``, ``timestamptz`` (microseconds, UTC; ``±infinity``, and the years after
294246 that Arrow's microseconds since 1970 cannot hold, read as null) and
``bool``. Text comes out as Arrow ``large_string`` (64-bit offsets): the offsets as
decoded, and the type pandas keeps its Arrow-backed text in, so a frame made of the
table takes the text without a copy; the statement's result types are checked before the COPY runs
(:func:`column_kinds`), so a value is never decoded as another type. Text is read in
UTF-8 (the transaction's ``client_encoding`` is set to it).

Where the libpq of psycopg cannot be found in this process (another platform, two
libpq libraries loaded), :func:`available` is false and callers read another way.
"""

from __future__ import annotations

import ctypes
import functools
import queue
import sys
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numba
import numpy as np
import psycopg
import pyarrow as pa
from psycopg import sql

#: The kinds of column decoded, by PostgreSQL type OID.
TEXT: Final = 0
INT8: Final = 1
FLOAT8: Final = 2
TIMESTAMPTZ: Final = 3
BOOL: Final = 4
INT4: Final = 5
_KIND_OF_OID: Final = {25: TEXT, 1043: TEXT, 20: INT8, 701: FLOAT8, 1184: TIMESTAMPTZ, 16: BOOL,
                       23: INT4}

#: Microseconds from 1970-01-01 to PostgreSQL's epoch, 2000-01-01 (UTC).
_PG_EPOCH_US: Final = 946_684_800_000_000
_INT64_MIN: Final = np.iinfo(np.int64).min
_INT64_MAX: Final = np.iinfo(np.int64).max
#: ``PGRES_COMMAND_OK`` and ``PGRES_COPY_OUT`` of libpq's ``ExecStatusType``.
_COMMAND_OK: Final = 1
_COPY_OUT: Final = 3
_SIGNATURE: Final = b"PGCOPY\n\xff\r\n\x00"
#: The Arrow type of each kind.
_ARROW_TYPE: Final = {TEXT: pa.large_string(), INT8: pa.int64(), FLOAT8: pa.float64(),
                      TIMESTAMPTZ: pa.timestamp("us", "UTC"), BOOL: pa.bool_(),
                      INT4: pa.int32()}
#: A text value at most this long is copied as this many bytes, when both the chunk and
#: its column's room have them: one fixed-size copy instead of one of a varying length
#: (a fifth less decoding time for a 1M-row ``requests()``).
_WIDE: Final = 16
#: Bytes of rows decoded at a time (a row longer than this is a chunk of its own).
CHUNK_BYTES: Final = 16 << 20


class CopyOutError(RuntimeError):
    """The server refused or broke off a COPY, or sent what this reader cannot decode."""


@dataclass(frozen=True)
class TableColumns:
    """Some columns of every row of one table, read by ``COPY table (columns) TO
    STDOUT``: the server sends the rows without running a query (0.125 s against
    0.148 s for ``COPY (SELECT …)`` of a 1M-row, two-column table, with
    ``TO '/dev/null'``).

    Attributes
    ----------
    table
        The table's name (quoted as an identifier).
    columns
        Its columns, in the order wanted.
    """

    table: str
    columns: tuple[str, ...]

    def select(self) -> sql.Composed:
        """The same rows as a ``SELECT``."""
        return sql.SQL("SELECT {} FROM {}").format(self._columns(), sql.Identifier(self.table))

    def copy_source(self) -> sql.Composed:
        """What follows ``COPY`` to read these rows."""
        return sql.SQL("{} ({})").format(sql.Identifier(self.table), self._columns())

    def _columns(self) -> sql.Composed:
        return sql.SQL(", ").join(map(sql.Identifier, self.columns))


#: What a COPY reads: a ``SELECT`` statement, or some columns of a whole table.
Source = sql.Composable | TableColumns


def select_of(source: Source) -> sql.Composable:
    """``source`` as a ``SELECT`` statement."""
    return source.select() if isinstance(source, TableColumns) else source


@dataclass(frozen=True)
class _LibPQ:
    exec_: Any
    conn_error: Any
    result_status: Any
    error_message: Any
    clear: Any
    get_result: Any
    get_copy_data: Any
    freemem: Any
    memcpy: Any


def available() -> bool:
    """Whether this process can read COPY output through psycopg's libpq."""
    return _libpq() is not None


@functools.cache
def _libpq() -> _LibPQ | None:
    path = _libpq_path()
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(path)
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    vp, i = ctypes.c_void_p, ctypes.c_int

    def fn(owner: Any, name: str, res: Any, *args: Any) -> Any:
        f = getattr(owner, name)
        f.restype, f.argtypes = res, list(args)
        return f

    return _LibPQ(
        exec_=fn(lib, "PQexec", vp, vp, ctypes.c_char_p),
        conn_error=fn(lib, "PQerrorMessage", ctypes.c_char_p, vp),
        result_status=fn(lib, "PQresultStatus", i, vp),
        error_message=fn(lib, "PQresultErrorMessage", ctypes.c_char_p, vp),
        clear=fn(lib, "PQclear", None, vp),
        get_result=fn(lib, "PQgetResult", vp, vp),
        get_copy_data=fn(lib, "PQgetCopyData", i, vp, vp, i),
        freemem=fn(lib, "PQfreemem", None, vp),
        memcpy=fn(libc, "memcpy", vp, vp, vp, ctypes.c_size_t),
    )


def _libpq_path() -> str | None:
    """The file of the one libpq mapped into this process after psycopg's is loaded."""
    if not sys.platform.startswith("linux"):
        return None
    psycopg.pq.version()  # make sure psycopg's libpq is loaded
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    fields = (line.split(None, 5) for line in maps.splitlines())  # the 6th: the file
    found = {f[5] for f in fields if len(f) == 6 and Path(f[5]).name.startswith("libpq")}
    return found.pop() if len(found) == 1 else None


def column_kinds(conn: psycopg.Connection, query: Source) -> tuple[list[str], list[int]]:
    """The names and decoding kinds of the columns ``query`` returns (their types, from
    a run of the query with no rows).

    Raises
    ------
    CopyOutError
        When a column's type is not one this reader decodes.
    """
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT * FROM ({}) q LIMIT 0").format(select_of(query)))
        description = cur.description or []
    kinds: list[int] = []
    for column in description:
        kind = _KIND_OF_OID.get(column.type_code)
        if kind is None:
            raise CopyOutError(f"column {column.name!r}: PostgreSQL type {column.type_code}"
                               " is not decoded (allowed: text, varchar, int4, int8, float8,"
                               " timestamptz, bool)")
        kinds.append(kind)
    return [column.name for column in description], kinds


def copy_table(conn: psycopg.Connection, query: Source) -> pa.Table:
    """The rows of ``query`` (a ``SELECT``, or :class:`TableColumns`) as an Arrow
    table, read by binary COPY in ``conn``'s open transaction (see
    :func:`copy_batches`)."""
    names, kinds = column_kinds(conn, query)
    with copy_batches(conn, query, kinds) as chunks:
        return _table_of(names, kinds, list(chunks))


def _table_of(names: Sequence[str], kinds: Sequence[int],
              batches: Sequence[list[pa.Array]]) -> pa.Table:
    schema = pa.schema([(name, _ARROW_TYPE[kind]) for name, kind in zip(names, kinds,
                                                                        strict=True)])
    return pa.Table.from_batches(
        [pa.RecordBatch.from_arrays(b, schema=schema) for b in batches], schema=schema)


@dataclass(frozen=True)
class RawCopy:
    """A binary COPY's rows as read, not decoded (:func:`copy_raw`).

    Attributes
    ----------
    names, kinds
        The columns' names and decoding kinds (:func:`column_kinds`).
    chunks
        Buffers of whole rows, in the order sent: the header left out, the trailer at
        the end of the last.
    """

    names: list[str]
    kinds: list[int]
    chunks: list[np.ndarray]

    def table(self) -> pa.Table:
        """The rows decoded, as :func:`copy_table` gives them."""
        kinds = np.asarray(self.kinds, dtype=np.int8)
        return _table_of(self.names, self.kinds,
                         [_decode_chunk(chunk, kinds, first=False) for chunk in self.chunks])

    def after(self, chunk: int, byte: int) -> RawCopy:
        """The rows from byte ``byte`` (where a row begins) of chunk ``chunk`` on."""
        return RawCopy(self.names, self.kinds,
                       [self.chunks[chunk][byte:], *self.chunks[chunk + 1:]])


def copy_raw(conn: psycopg.Connection, query: Source, *,
             chunk_bytes: int = CHUNK_BYTES) -> RawCopy:
    """The rows of ``query`` read by binary COPY in ``conn``'s open transaction (as
    :func:`copy_batches` reads them), kept as received, for a reader that decodes only
    what it needs (:mod:`geo.store.copy_merge`)."""
    names, kinds = column_kinds(conn, query)
    rows = _rows(conn, query, chunk_bytes, queue.SimpleQueue())  # no buffer reused
    try:
        chunks = list(rows)
    finally:
        rows.close()
    if chunks:
        chunks[0] = chunks[0][_header_end(chunks[0]):]
    return RawCopy(names, kinds, chunks)


@contextmanager
def copy_batches(conn: psycopg.Connection, query: Source, kinds: Sequence[int], *,
                 chunk_bytes: int = CHUNK_BYTES) -> Iterator[Iterator[list[pa.Array]]]:
    """The binary COPY output of ``query`` (a ``SELECT``, or :class:`TableColumns`, whose
    columns have ``kinds``, :func:`column_kinds`), decoded a chunk of about
    ``chunk_bytes`` at a time.

    Yields
    ------
    Iterator
        One list of Arrow arrays (one per column) per chunk, rows in the order sent.
        The statement starts with the first chunk asked for; it runs in ``conn``'s open
        transaction (``client_encoding`` set to UTF-8 for the rest of it), and ``conn``
        must not be used otherwise inside the block. A thread reads the rows from libpq
        into chunks (a compiled loop that holds no GIL) while the caller decodes the
        chunks before it, so the server never waits for the decoding. Leaving the block
        before the last chunk cancels the statement and waits for that thread to end
        (the connection is then in a failed transaction: roll it back).

    Raises
    ------
    CopyOutError
        With the server's message when the statement fails, or when the output does
        not have the columns and types given.
    """
    batches = _batches(conn, query, kinds, chunk_bytes)
    try:
        yield batches
    finally:
        batches.close()


def _batches(conn: psycopg.Connection, query: Source, kinds: Sequence[int],
             chunk_bytes: int) -> Generator[list[pa.Array]]:
    spare: queue.SimpleQueue[np.ndarray] = queue.SimpleQueue()  # buffers decoded already
    rows = _rows(conn, query, chunk_bytes, spare)
    try:
        kinds_arr = np.asarray(kinds, dtype=np.int8)
        first = True
        for chunk in rows:
            decoded = _decode_chunk(chunk, kinds_arr, first=first)
            spare.put(chunk.base if isinstance(chunk.base, np.ndarray) else chunk)  # reused
            yield decoded
            first = False
    finally:
        rows.close()


def _rows(conn: psycopg.Connection, query: Source, chunk_bytes: int,
          spare: queue.SimpleQueue[np.ndarray]) -> Generator[np.ndarray]:
    """The COPY output of ``query`` in chunks of whole rows (the first begins with the
    header), read by a thread of its own, in buffers taken from ``spare`` when it holds
    one; closing the generator before the end cancels the statement."""
    lib = _libpq()
    if lib is None:
        raise CopyOutError("psycopg's libpq is not reachable in this process")
    if conn.autocommit:  # SET LOCAL would not hold: text could come in another encoding
        raise CopyOutError("a COPY is read in a transaction: the connection is in autocommit")
    if conn.info.encoding != "utf-8":  # for this transaction only
        conn.execute("SET LOCAL client_encoding TO 'UTF8'")
    source = (query.copy_source() if isinstance(query, TableColumns)
              else sql.SQL("({})").format(query))
    statement = sql.SQL("COPY {} TO STDOUT (FORMAT binary)").format(source).as_bytes(conn)
    ptr = getattr(conn.pgconn, "pgconn_ptr", None)  # both psycopg libpq wrappers have it
    if ptr is None:
        raise CopyOutError("the connection is closed")
    res = lib.exec_(ptr, statement)
    if not res:  # no result at all: the connection failed
        raise CopyOutError((lib.conn_error(ptr) or b"no result").decode("utf-8", "replace")
                           .strip())
    try:
        if lib.result_status(res) != _COPY_OUT:
            raise CopyOutError(_message(lib, res))
    finally:
        lib.clear(res)
    chunks: queue.Queue[np.ndarray | BaseException | None] = queue.Queue(maxsize=4)
    stop = threading.Event()

    def read() -> None:
        try:
            for chunk in _chunks(lib, ptr, chunk_bytes, spare):
                if not stop.is_set():  # else drain what the server sends until it stops
                    chunks.put(chunk)
            chunks.put(None)
        except BaseException as err:  # handed to the decoding thread
            chunks.put(err)

    reader = threading.Thread(target=read, name="pgcopy-read", daemon=True)
    done = False
    try:
        reader.start()
        while True:
            item = chunks.get()
            if item is None:
                done = True
                return
            if isinstance(item, BaseException):
                done = True
                raise item
            yield item
    finally:
        _end_reader(conn, reader, chunks, stop, cancel=not done)


def _end_reader(conn: psycopg.Connection, reader: threading.Thread,
                chunks: queue.Queue[np.ndarray | BaseException | None], stop: threading.Event,
                *, cancel: bool) -> None:
    """Make sure the reading thread is out of libpq before the caller's thread goes on
    (it may roll back or close the connection next, which would free what the thread
    reads from): cancel the statement if asked, then take and drop the thread's chunks
    until it has ended. If the cancel fails, the thread reads the statement to its end;
    an interrupt (Ctrl-C) meanwhile is raised once the thread has ended."""
    interrupted: BaseException | None = None
    if cancel:
        stop.set()
        try:
            conn.cancel_safe()
        except Exception:  # the cancel could not be sent: the statement runs to its end
            pass
        except (KeyboardInterrupt, SystemExit) as err:
            interrupted = err

    def drop_one() -> None:
        with suppress(queue.Empty):
            chunks.get(timeout=0.1)

    wait_out(lambda: not reader.is_alive(), drop_one)
    if interrupted is not None:
        raise interrupted


def wait_out(done: Callable[[], bool], step: Callable[[], object]) -> None:
    """Call ``step`` (a short wait) until ``done()``; a ``KeyboardInterrupt`` or
    ``SystemExit`` meanwhile is raised only then (the first of them).

    For the end of work on another thread that must not be left running: a thread that
    uses a connection the caller is about to roll back or close.
    """
    interrupted: BaseException | None = None
    while True:
        try:
            if done():
                break
            step()
        except (KeyboardInterrupt, SystemExit) as err:
            interrupted = interrupted or err
    if interrupted is not None:
        raise interrupted


def _chunks(lib: _LibPQ, ptr: int, chunk_bytes: int,
            spare: queue.SimpleQueue[np.ndarray]) -> Iterator[np.ndarray]:
    """The rows libpq receives, as buffers of whole rows (about ``chunk_bytes`` each):
    views of buffers taken from ``spare`` (those decoded already) or made anew."""
    pending = np.zeros(2, dtype=np.intp)  # a row read but not yet copied: pointer, length
    while True:
        need = max(chunk_bytes, int(pending[1]))
        try:
            chunk = spare.get_nowait()
        except queue.Empty:
            chunk = np.empty(need, dtype=np.uint8)
        if len(chunk) < need:
            chunk = np.empty(need, dtype=np.uint8)
        used, status = _drain(lib.get_copy_data, lib.freemem, lib.memcpy, ptr, chunk, pending)
        if used:
            yield chunk[:used]
        if status < 0:
            break
    final = _finish(lib, ptr)
    if status == -2 or final is not None:
        raise CopyOutError(final or "the COPY broke off")


def _finish(lib: _LibPQ, ptr: int) -> str | None:
    """Collect the COPY's closing results; the first error's message, if any."""
    error: str | None = None
    while True:
        res = lib.get_result(ptr)
        if not res:
            return error
        if lib.result_status(res) != _COMMAND_OK and error is None:
            error = _message(lib, res)
        lib.clear(res)


def _message(lib: _LibPQ, res: int | None) -> str:
    text = lib.error_message(res) if res else None
    return (text or b"no result").decode("utf-8", "replace").strip()


@numba.njit(nogil=True, cache=True)
def _drain(get: Any, free: Any, memcpy: Any, conn: int, chunk: np.ndarray,
           pending: np.ndarray) -> tuple[int, int]:  # pragma: no cover - compiled
    """Copy rows from libpq into ``chunk`` until the next would not fit (kept in
    ``pending``, pointer and length, for the next chunk) or the COPY ends. Returns the
    bytes used and 0 (chunk full), -1 (the COPY ended) or -2 (an error)."""
    slot = np.zeros(1, dtype=np.intp)
    used = 0
    if pending[1] > 0:
        memcpy(chunk.ctypes.data, pending[0], pending[1])
        used = pending[1]
        free(pending[0])
        pending[1] = 0
    while True:
        n = get(conn, slot.ctypes.data, 0)
        if n < 0:
            return used, n
        if used + n > len(chunk):
            pending[0] = slot[0]
            pending[1] = n
            return used, 0
        memcpy(chunk[used:].ctypes.data, slot[0], n)
        used += n
        free(slot[0])


def _header_end(chunk: np.ndarray) -> int:
    """Where the rows begin in the first chunk of a binary COPY (after its header)."""
    if len(chunk) < 19 or bytes(chunk[:11]) != _SIGNATURE:
        raise CopyOutError("not PostgreSQL binary COPY output (no signature)")
    return 19 + int.from_bytes(bytes(chunk[15:19]), "big")


def _decode_chunk(chunk: np.ndarray, kinds: np.ndarray, *, first: bool) -> list[pa.Array]:
    start = _header_end(chunk) if first else 0
    rows, totals, bad = _count(chunk, start, len(kinds))
    if bad >= 0:
        raise CopyOutError(f"row {rows} of a chunk: expected {len(kinds)} fields (byte {bad})")
    return _columns(chunk, start, rows, totals, kinds)


@numba.njit(nogil=True, cache=True)
def _count(buf: np.ndarray, start: int, ncols: int
           ) -> tuple[int, np.ndarray, int]:  # pragma: no cover - compiled
    """The rows from ``start`` to the end of ``buf`` or the trailer, and each column's
    bytes of values; -1, or where a row is cut short or has another number of fields."""
    totals = np.zeros(ncols, dtype=np.int64)
    p = start
    rows = 0
    end = len(buf)
    while p < end:
        if p + 2 > end:
            return rows, totals, p
        nf = np.int16((np.uint16(buf[p]) << 8) | np.uint16(buf[p + 1]))
        if nf == -1:
            return rows, totals, -1
        if nf != ncols:
            return rows, totals, p
        p += 2
        for c in range(ncols):
            if p + 4 > end:
                return rows, totals, p
            n = be_int32(buf, p)
            p += 4
            if n > 0:
                totals[c] += n
                p += n
        if p > end:
            return rows, totals, p
        rows += 1
    return rows, totals, -1


@numba.njit(inline="always")
def be_int32(buf: np.ndarray, p: int) -> int:  # pragma: no cover - compiled
    """The big-endian 32-bit integer at byte ``p`` of ``buf`` (a field's length)."""
    return int(np.int32((np.uint32(buf[p]) << 24) | (np.uint32(buf[p + 1]) << 16)
                    | (np.uint32(buf[p + 2]) << 8) | np.uint32(buf[p + 3])))


@numba.njit(inline="always")
def _int64(buf: np.ndarray, p: int) -> np.int64:  # pragma: no cover - compiled
    v = np.uint64(0)
    for k in range(8):
        v = (v << np.uint64(8)) | np.uint64(buf[p + k])
    return np.int64(v)


@numba.njit(nogil=True, cache=True)
def _decode(buf: np.ndarray, start: int, rows: int, kinds: np.ndarray, slot: np.ndarray,
            offsets: np.ndarray, data: np.ndarray, base: np.ndarray, fixed: np.ndarray,
            valid: np.ndarray) -> int:  # pragma: no cover - compiled
    """Decode the columns with a ``slot`` (-1: skipped) of ``rows`` rows, in one pass.

    A text column's offsets go to ``offsets[slot]`` (``rows + 1``, from 0) and its bytes
    to ``data`` from ``base[slot]``; another column's 8-byte values to ``fixed[slot]``.
    ``valid[c, i]``: row ``i`` of wanted column ``c`` is not null. Returns -1, or a
    column with a value whose length its type does not allow.
    """
    ncols = len(kinds)
    end = len(buf)
    fill = base.copy()
    for s in range(len(offsets)):
        offsets[s, 0] = 0
    p = start
    for i in range(rows):
        p += 2
        for c in range(ncols):
            n = be_int32(buf, p)
            p += 4
            s = slot[c]
            if s < 0:
                if n > 0:
                    p += n
                continue
            k = kinds[c]
            valid[c, i] = n >= 0
            if k == TEXT:
                if n > 0:
                    at = fill[s]
                    if n <= _WIDE and p + _WIDE <= end and at + _WIDE <= base[s + 1]:
                        # the bytes past n are overwritten by the column's next value
                        data[at:at + _WIDE] = buf[p:p + _WIDE]
                    else:
                        data[at:at + n] = buf[p:p + n]
                    fill[s] = at + n
                offsets[s, i + 1] = fill[s] - base[s]
            elif n < 0:
                fixed[s, i] = 0
                continue
            elif k == BOOL:
                if n != 1:
                    return c
                fixed[s, i] = buf[p]
            elif k == INT4:
                if n != 4:
                    return c
                fixed[s, i] = be_int32(buf, p)
            else:
                if n != 8:
                    return c
                v = _int64(buf, p)
                if k == TIMESTAMPTZ:
                    if v > _INT64_MAX - _PG_EPOCH_US or v <= _INT64_MIN:  # no such instant
                        valid[c, i] = False  # ('infinity', or after year 294246)
                        v = np.int64(0)
                    else:
                        v += _PG_EPOCH_US
                fixed[s, i] = v
            if n > 0:
                p += n
    return -1


def _columns(buf: np.ndarray, start: int, rows: int, text_bytes: np.ndarray,
             kinds: np.ndarray) -> list[pa.Array]:
    ncols = len(kinds)
    which = range(ncols)
    text = [c for c in which if kinds[c] == TEXT]
    other = [c for c in which if kinds[c] != TEXT]
    slot = np.full(ncols, -1, dtype=np.int64)
    slot[text] = np.arange(len(text))
    slot[other] = np.arange(len(other))
    sizes = np.asarray([int(text_bytes[c]) for c in text], dtype=np.int64)
    base = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    data = np.empty(int(base[-1]), dtype=np.uint8)
    offsets = np.empty((len(text), rows + 1), dtype=np.int64)
    fixed = np.empty((len(other), rows), dtype=np.int64)
    valid = np.empty((ncols, rows), dtype=np.bool_)
    bad = _decode(buf, start, rows, kinds, slot, offsets, data, base, fixed, valid)
    if bad >= 0:
        raise CopyOutError(f"column {bad}: a value's length does not fit its type")
    out: list[pa.Array] = []
    for c in which:
        s = int(slot[c])
        nulls = rows - int(np.count_nonzero(valid[c]))
        bitmap = pa.py_buffer(np.packbits(valid[c], bitorder="little")) if nulls else None
        kind = int(kinds[c])
        if kind == TEXT:  # the offsets as decoded: large_string's are 64-bit
            values = pa.py_buffer(data[base[s]:base[s + 1]])
            out.append(pa.Array.from_buffers(
                pa.large_string(), rows, [bitmap, pa.py_buffer(offsets[s]), values],
                null_count=nulls))
        elif kind == BOOL:
            bits = pa.py_buffer(np.packbits(fixed[s] != 0, bitorder="little"))
            out.append(pa.Array.from_buffers(pa.bool_(), rows, [bitmap, bits], null_count=nulls))
        else:
            typ = _ARROW_TYPE[kind]
            values = (fixed[s].view(np.float64) if kind == FLOAT8
                      else fixed[s].astype(np.int32) if kind == INT4 else fixed[s])
            out.append(pa.Array.from_buffers(typ, rows, [bitmap, pa.py_buffer(values)],
                                           null_count=nulls))
    return out
