"""PostgreSQL binary COPY from Arrow columns, and EWKB points built without shapely.

Binary COPY sends every value in the server's own wire form (``int8``, ``float8``,
``timestamptz`` as microseconds, ``geometry`` as EWKB), so the server does no text
parsing; the Arrow → wire encoding is done by ``pgpq`` (Rust), a batch at a time.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Final

import numpy as np
import psycopg
import pyarrow as pa
from pgpq import ArrowToPostgresBinaryEncoder
from pgpq.encoders import StringEncoderBuilder
from pgpq.schema import Jsonb
from psycopg import sql

#: Rows encoded and sent per COPY message batch.
CHUNK_ROWS: Final = 50_000

_POINT: Final = np.dtype(
    [("order", "u1"), ("type", "<u4"), ("srid", "<u4"), ("x", "<f8"), ("y", "<f8")]
)
_EWKB_POINT_WITH_SRID: Final = 1 | 0x20000000


def ewkb_points(x: np.ndarray, y: np.ndarray, srid: int) -> pa.BinaryArray:
    """Points as little-endian EWKB with an SRID, one 25-byte value per point.

    Parameters
    ----------
    x, y
        Coordinates; where either is NaN or infinite the value is null.
    srid
        Spatial reference id written into every value.

    Returns
    -------
    pyarrow.BinaryArray
        Ready for a ``geometry`` column in binary COPY (``geometry_recv`` reads EWKB).
    """
    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")
    n = len(x)
    points = np.zeros(n, dtype=_POINT)
    points["order"] = 1
    points["type"] = _EWKB_POINT_WITH_SRID
    points["srid"] = srid
    points["x"] = x
    points["y"] = y
    offsets = np.arange(n + 1, dtype=np.int32) * _POINT.itemsize
    ok = np.isfinite(x) & np.isfinite(y)
    validity = None if ok.all() else pa.array(ok).buffers()[1]
    return pa.Array.from_buffers(
        pa.binary(),
        n,
        [validity, pa.py_buffer(offsets), pa.py_buffer(points.view(np.uint8))],
        null_count=int(n - ok.sum()),
    )


def copy_arrow(
    conn: psycopg.Connection,
    table: str,
    data: pa.Table,
    *,
    jsonb: Collection[str] = (),
    freeze: bool = False,
    rows: np.ndarray | None = None,
) -> None:
    """``COPY table (columns of data) FROM STDIN (FORMAT binary)``.

    Parameters
    ----------
    conn
        Open connection (inside the caller's transaction).
    table
        Target table; its columns must accept the wire form of each Arrow type
        (string → text, int64 → int8, float64 → float8, bool → boolean,
        timestamp[us] → timestamptz in UTC, binary → bytea or geometry).
    data
        The rows; column names are the target columns.
    jsonb
        String columns sent as ``jsonb`` (each value must be JSON text).
    freeze
        Write the rows already frozen (``FREEZE``): only for a table created or
        truncated in the current (sub)transaction, which no other transaction can see
        before it commits. Its pages are then all-visible from the commit on (index-only
        scans visit no heap page; vacuum has no freezing pass to make over them), where
        otherwise they wait for autovacuum.
    rows
        Positions of the rows of ``data`` to send, in that order; each batch is taken
        as it is about to be sent, so the server stores one while the next is made
        (default: every row, in order).
    """
    encoders = {f.name: ArrowToPostgresBinaryEncoder.infer_encoder(f) for f in data.schema}
    for name in jsonb:
        encoders[name] = StringEncoderBuilder.new_with_output(data.schema.field(name), Jsonb())
    encoder = ArrowToPostgresBinaryEncoder.new_with_encoders(data.schema, encoders)
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary{})").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, data.column_names)),
        sql.SQL(", FREEZE") if freeze else sql.SQL(""))
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        copy.write(encoder.write_header())
        for batch in _batches(data, rows):
            copy.write(encoder.write_batch(batch))
        copy.write(encoder.finish())


def _batches(data: pa.Table, rows: np.ndarray | None) -> Iterator[pa.RecordBatch]:
    if rows is None:
        yield from data.to_batches(max_chunksize=CHUNK_ROWS)
        return
    # each batch's take from columns of one chunk, not of many (a frame read from a file
    # holds one per block read): 0.70 s against 0.84 s for 1M requests of 90 chunks
    data = data.combine_chunks()
    for start in range(0, len(rows), CHUNK_ROWS):
        part = data.take(pa.array(rows[start:start + CHUNK_ROWS], type=pa.int64()))
        yield from part.to_batches()
