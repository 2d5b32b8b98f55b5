"""Reading PostGIS as Arrow: two connections in one snapshot, and the frame made of
the Arrow tables read."""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pytest

from geo.store import adbc_pool, postgis_read


def test_split_read_sees_one_snapshot_across_both_connections(
        postgis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A row committed after the first connection exported its snapshot and before the
    second one reads is seen by neither: the second reads the first's snapshot."""
    with psycopg.connect(postgis_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE counted (n int)")
        conn.execute("INSERT INTO counted VALUES (1), (2)")
    real_connect = adbc_pool.adbc.connect
    opened: list[int] = []

    def connect_then_write(*args: Any, **kwargs: Any) -> Any:
        opened.append(1)
        if len(opened) == 2:  # the second connection: commit a row before it reads
            with psycopg.connect(postgis_url, autocommit=True) as writer:
                writer.execute("INSERT INTO counted VALUES (3)")
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(adbc_pool.adbc, "connect", connect_then_write)
    uri = postgis_read.adbc_uri(postgis_url)
    assert uri is not None
    count = "SELECT count(*) AS n FROM counted"
    first, rest = postgis_read.fetch_arrow_split(uri, count, [count, "SELECT 7 AS seven"])
    assert len(opened) == 2
    assert first.column("n").to_pylist() == [2]
    assert [t.column(0).to_pylist() for t in rest] == [[2], [7]]
    monkeypatch.setattr(adbc_pool.adbc, "connect", real_connect)
    # a read after the writer's commit sees the new row
    again, _ = postgis_read.fetch_arrow_split(uri, count, [count])
    assert again.column("n").to_pylist() == [3]


def test_split_read_passes_on_an_error_of_the_second_connection(postgis_url: str) -> None:
    uri = postgis_read.adbc_uri(postgis_url)
    assert uri is not None
    with pytest.raises(Exception, match="no_such_table"):
        postgis_read.fetch_arrow_split(uri, "SELECT 1 AS one", ["SELECT * FROM no_such_table"])


def test_a_compact_frame_equals_the_plain_one_and_holds_only_its_text() -> None:
    """``compact`` copies each text column out of the driver's batches into one buffer
    sized to the text; the frame is the same, and it no longer keeps the batches'
    grown buffers alive."""
    import pandas as pd

    rng = np.random.default_rng(5)
    words = np.array(["Pothole", "Straße", "中文", "", "N 5th St & W Lehigh Ave"], dtype=object)
    batches = []
    for n in (700, 1, 300):
        names = rng.choice(words, n)
        names[rng.random(n) < 0.1] = None
        batches.append(pa.record_batch({
            "service_name": pa.array(names, type=pa.string()),
            "x": pa.array(rng.random(n)),
        }))
    table = pa.Table.from_batches(batches)
    # a slice, as a batch whose buffers were grown past what it holds
    table = pa.concat_tables([table, table]).slice(5, 1500)
    plain = postgis_read.frame_from_arrow(table, text_columns=["service_name"])
    tight = postgis_read.frame_from_arrow(table, text_columns=["service_name"], compact=True)
    pd.testing.assert_frame_equal(plain, tight, check_exact=True)
    held = pa.array(tight["service_name"].array)
    text_bytes = sum(len(v.encode()) for v in tight["service_name"].dropna())
    assert held.buffers()[2].size == text_bytes
    plain_held = pa.chunked_array(pa.array(plain["service_name"].array)).chunks
    assert sum(c.buffers()[2].size for c in plain_held) > text_bytes  # the batches' text
    postgis_read.return_freed_memory()  # harmless wherever it runs


def test_merge_matches_ids_in_byte_order_only() -> None:
    """The merge's order is the bytes' (Arrow's sort, the C collation): an accented id
    sorts after every ASCII one, a prefix before its extensions; a run ends at the
    first value not above the one before it, or at once on a missing value."""
    from geo.store import id_merge

    keys = pa.array(sorted(["a", "ab", "b", "z", "é", "éa"], key=str.encode))
    ids = pa.array(["ab", "b", "c", "éa"])
    out = np.full(len(keys), -1, dtype=np.int64)
    id_merge.merge_positions(keys, ids, out)
    assert dict(zip(keys.to_pylist(), out.tolist(), strict=True)) == {
        "a": -1, "ab": 0, "b": 1, "z": -1, "é": -1, "éa": 3}
    assert id_merge.increasing_run(pa.array(["a", "b", "b", "c"])) == 2
    assert id_merge.increasing_run(pa.array(["b", "a"])) == 1
    assert id_merge.increasing_run(pa.array(["a", None])) == 0
    assert id_merge.increasing_run(pa.array(["x", "é", "y"]).slice(1)) == 1
