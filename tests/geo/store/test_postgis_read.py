"""Reading PostGIS as Arrow: two connections in one snapshot, and the Arrow join of
each layer's codes to the rows."""

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


def _prints_of(mode: str) -> object:
    """``hash_text`` for a mode: every id the same print (the rows' prints collide), or
    a stranger's print equal to a row's (``ghost-`` is not hashed)."""
    from geo.ingest.hashing import hash_text

    def ghostly(values: pa.Array) -> np.ndarray:
        return hash_text(pa.compute.replace_substring(values, "ghost-", ""))

    if mode == "every print equal":
        return lambda values: np.zeros(len(values), dtype=np.uint64)
    return ghostly


@pytest.mark.parametrize("layout", ["shuffled", "in id order", "in order, then appended"])
@pytest.mark.parametrize("prints", ["real", "every print equal", "a stranger's print"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_codes_join_equals_a_dictionary_join(seed: int, prints: str, layout: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows' codes per layer, whatever the ids' fingerprints and the code rows'
    order: codes in id order are merged, the rest looked up; equal fingerprints of row
    ids send the look-up to Arrow's hash table, and a code row whose id is not a row's
    but shares a row's fingerprint gives that row nothing."""
    if prints != "real":
        monkeypatch.setattr(postgis_read, "hash_text", _prints_of(prints))
    rng = np.random.default_rng(seed)
    n = 3000
    ids = [f"R-{v}" for v in rng.permutation(n)]
    ids[3] = "R-é"  # sorts after every ASCII id by its UTF-8 bytes
    values = rng.integers(0, 100, n)
    half = n // 2
    rows = pa.Table.from_batches([
        pa.record_batch({"i": ids[:half], "v": values[:half]}),
        pa.record_batch({"i": ids[half:], "v": values[half:]}),
    ])
    codes: dict[str, pa.Table] = {}
    expected: dict[str, dict[str, str]] = {}
    for k in range(5):
        have = [i for i in ids if rng.random() < 0.9]  # some rows have no code
        rng.shuffle(have)
        got = {i: f"c{k}-{rng.integers(0, 20)}" for i in have}
        strangers = {f"ghost-{i}": "stranger" for i in ids[:50]}  # ids of no row
        both = list({**got, **strangers}.items())
        rng.shuffle(both)
        if layout != "shuffled":  # as a whole-layer load writes them
            cut = len(both) if layout == "in id order" else int(len(both) * 0.8)
            both[:cut] = sorted(both[:cut], key=lambda item: item[0].encode("utf-8"))
        codes[f"layer{k}"] = pa.table({"service_request_id": [i for i, _ in both],
                                       "code": [c for _, c in both]})
        expected[f"layer{k}"] = got
    for threads in (1, 3):
        table = postgis_read.with_codes(rows, codes, id_column="i", threads=threads)
        order = sorted(range(n), key=lambda j: ids[j].encode("utf-8"))
        assert table.column_names == ["v", *codes]
        assert table.column("v").to_pylist() == [int(values[j]) for j in order]
        for key, got in expected.items():
            assert table.column(key).to_pylist() == [got.get(ids[j]) for j in order]


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
