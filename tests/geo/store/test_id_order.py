"""Request rows put in id order, and each layer's area codes matched to them, as
:mod:`geo.store.id_order` does for a PostGIS read."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pytest

from geo.store import id_order


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
        monkeypatch.setattr(id_order, "hash_text", _prints_of(prints))
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
    order = sorted(range(n), key=lambda j: ids[j].encode("utf-8"))
    for threads in (1, 3):
        table = id_order.with_codes(rows, codes, id_column="i", threads=threads)
        assert table.column_names == ["v", *codes]
        assert table.column("v").to_pylist() == [int(values[j]) for j in order]
        for key, got in expected.items():
            assert table.column(key).to_pylist() == [got.get(ids[j]) for j in order]
    # one layer at a time, as a reader matches each layer when it arrives; the ids kept
    with ThreadPoolExecutor(2) as pool:
        ordered = id_order.order_rows(rows, "i", pool, keep_id=True)
    assert ordered.rows.column_names == ["i", "v"]
    assert ordered.rows.column("i").to_pylist() == [ids[j] for j in order]
    for key in reversed(list(codes)):
        assert ordered.codes_of(codes[key]).to_pylist() == [
            expected[key].get(ids[j]) for j in order]


def test_ids_kept_in_their_place_and_every_row_matched_once() -> None:
    """``keep_id`` puts the sorted ids back where the id column was; a table of no rows
    and a layer of no rows give empty and all-null columns."""
    rows = pa.table({"a": [1, 2, 3], "i": ["c", "a", "b"], "z": [1.0, 2.0, 3.0]})
    table = id_order.with_codes(rows, {"k": pa.table({"service_request_id": ["b"],
                                                      "code": ["x"]})},
                                id_column="i", keep_id=True)
    assert table.to_pydict() == {"a": [2, 3, 1], "i": ["a", "b", "c"], "z": [2.0, 3.0, 1.0],
                                 "k": [None, "x", None]}
    empty_codes = pa.table({"service_request_id": pa.array([], pa.string()),
                            "code": pa.array([], pa.string())})
    assert id_order.with_codes(rows, {"k": empty_codes}, id_column="i").column(
        "k").to_pylist() == [None, None, None]
    none = id_order.with_codes(rows.slice(0, 0), {"k": empty_codes}, id_column="i")
    assert none.num_rows == 0 and none.column_names == ["a", "z", "k"]
    # the id alone (request_columns(["service_request_id", "ward"])), kept or not
    only_id = rows.select(["i"])
    codes = {"k": pa.table({"service_request_id": ["c"], "code": ["y"]})}
    assert id_order.with_codes(only_id, codes, id_column="i", keep_id=True).to_pydict() == {
        "i": ["a", "b", "c"], "k": [None, None, "y"]}
    assert id_order.with_codes(only_id, codes, id_column="i").to_pydict() == {
        "k": [None, None, "y"]}


@pytest.mark.parametrize("keep_id", [False, True])
def test_rows_already_in_id_order_are_used_as_read(keep_id: bool) -> None:
    """Rows that come in strictly increasing id order (a table clustered by id) are not
    copied: the columns are the ones read; one id out of place, a repeated id or a
    missing one, and the rows are sorted as ever."""
    ids = [f"R-{v:05d}" for v in range(2000)]
    rows = pa.Table.from_batches([pa.record_batch({"v": list(range(0, 1000)), "i": ids[:1000]}),
                                  pa.record_batch({"v": list(range(1000, 2000)),
                                                   "i": ids[1000:]})])
    with ThreadPoolExecutor(2) as pool:
        ordered = id_order.order_rows(rows, "i", pool, keep_id=keep_id)
        assert ordered.rows.column_names == (["v", "i"] if keep_id else ["v"])
        assert ordered.sorted_ids.to_pylist() == ids
        read = rows.column("v").chunk(1).buffers()[1].address
        assert ordered.rows.column("v").chunk(1).buffers()[1].address == read
        codes = pa.table({"service_request_id": ids[::-2], "code": ["c"] * 1000})
        assert ordered.codes_of(codes).to_pylist() == [None, "c"] * 1000
        for broken in ([*ids[:7], ids[8], ids[7], *ids[9:]],  # two swapped
                       [*ids[:-1], ids[-2]],  # the last repeated
                       [*ids[:-1], None]):
            table = rows.set_column(1, "i", pa.array(broken))
            again = id_order.order_rows(table, "i", pool, keep_id=True)
            expected = sorted(range(2000), key=lambda j: (broken[j] is None,
                                                          broken[j] or ""))
            assert again.rows.column("v").to_pylist() == expected
