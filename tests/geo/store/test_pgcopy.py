"""Binary COPY from Arrow: the rows chosen, in the order chosen, batch by batch."""

from __future__ import annotations

import numpy as np
import psycopg
import pyarrow as pa
import pytest

from geo.store import pgcopy

pytestmark = pytest.mark.postgis


def test_the_rows_given_are_sent_in_their_order_across_batches(
    postgis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pgcopy, "CHUNK_ROWS", 3)  # several batches, the last one short
    data = pa.table({"k": [f"r{i}" for i in range(10)], "v": pa.array(range(10), pa.int64()),
                     "note": [None, "=1+2", "", "x", None, "é", "a\nb", "c", "d", "e"]})
    rows = np.array([9, 2, 5, 0, 7, 1, 6], dtype=np.int64)
    with psycopg.connect(postgis_url) as conn:
        conn.execute("CREATE TEMP TABLE sent (n serial, k text, v int8, note text)")
        pgcopy.copy_arrow(conn, "sent", data, rows=rows)
        pgcopy.copy_arrow(conn, "sent", data.slice(0, 2))  # no rows given: all, in order
        got = conn.execute("SELECT k, v, note FROM sent ORDER BY n").fetchall()
    expected = data.to_pylist()
    assert got == [tuple(expected[i].values()) for i in [*rows.tolist(), 0, 1]]
