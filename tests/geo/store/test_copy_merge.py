"""A layer's codes matched to the sorted request ids straight from binary COPY rows
(geo.store.copy_merge, RowsInIdOrder.codes_of_copy): against a dictionary join, on
hand-made rows and on rows a real server sends."""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psycopg
import pyarrow as pa
import pytest
from psycopg import sql

from geo.store import id_order, pgcopy_out
from geo.store.copy_merge import merge_codes
from geo.store.pgcopy_out import TEXT, CopyOutError, RawCopy


def _rows(pairs: list[tuple[str | None, str | None]], *, trailer: bool = True) -> bytes:
    """(id, code) rows in PostgreSQL's binary COPY layout, without the header."""
    out = bytearray()
    for pair in pairs:
        out += struct.pack(">h", 2)
        for value in pair:
            if value is None:
                out += struct.pack(">i", -1)
            else:
                data = value.encode()
                out += struct.pack(">i", len(data)) + data
    if trailer:
        out += struct.pack(">h", -1)
    return bytes(out)


def _raw(pairs: list[tuple[str | None, str | None]], *, cuts: int = 1) -> RawCopy:
    """The rows split into ``cuts`` chunks of whole rows, as a read gives them."""
    chunks = []
    for i, part in enumerate(np.array_split(np.arange(len(pairs)), cuts)):
        last = i == cuts - 1
        chunks.append(np.frombuffer(_rows([pairs[j] for j in part], trailer=last),
                                    dtype=np.uint8))
    return RawCopy(["service_request_id", "code"], [TEXT, TEXT], chunks)


def _sorted(ids: list[str]) -> pa.Array:
    return pa.array(sorted(ids, key=str.encode), pa.large_string())


def test_rows_in_order_are_merged_whole_with_strangers_and_null_codes() -> None:
    """Ids with no row, rows with no request (before, between and after the ids), a null
    code and ids that sort by their UTF-8 bytes: one pass, nothing left over."""
    ids = _sorted(["a", "b", "bb", "c", "é", "z"])
    pairs = [("0", "before"), ("a", "A"), ("ba", "stranger"), ("bb", None), ("c", "C"),
             ("zz", "stranger"), ("é", "E"), ("éé", "after")]  # z < zz < é in UTF-8 bytes
    for cuts in (1, 3, 7):
        codes, rest = merge_codes(_raw(pairs, cuts=cuts), ids)
        codes.validate(full=True)
        assert rest is None
        assert codes.type == pa.large_string()
        assert ids.to_pylist() == ["a", "b", "bb", "c", "z", "é"]
        assert codes.to_pylist() == ["A", None, None, "C", None, "E"]


def test_the_first_row_out_of_order_and_all_after_it_are_left() -> None:
    ids = _sorted(["a", "b", "c", "d"])
    codes, rest = merge_codes(_raw([("a", "1"), ("c", "3"), ("b", "2"), ("d", "4")],
                                   cuts=2), ids)
    assert codes.to_pylist() == ["1", None, "3", None]
    assert rest is not None
    assert rest.table().to_pydict() == {"service_request_id": ["b", "d"], "code": ["2", "4"]}
    # a row repeating the id passed last is out of order too; a null id is left as well
    codes, rest = merge_codes(_raw([("a", "1"), ("a", "again")]), ids)
    assert codes.to_pylist() == ["1", None, None, None]
    assert rest is not None and rest.table().column("code").to_pylist() == ["again"]
    _, rest = merge_codes(_raw([("a", "1"), (None, "x")]), ids)
    assert rest is not None and rest.table().column("code").to_pylist() == ["x"]


def test_no_ids_and_no_rows() -> None:
    empty = pa.array([], pa.large_string())
    codes, rest = merge_codes(_raw([("a", "1")]), empty)
    assert len(codes) == 0 and rest is None
    codes, rest = merge_codes(RawCopy(["i", "c"], [TEXT, TEXT], []), _sorted(["a"]))
    assert codes.to_pylist() == [None] and rest is None


def test_rows_cut_short_or_of_other_kinds_are_refused() -> None:
    whole = _rows([("a", "1"), ("b", "2")])
    ids = _sorted(["a", "b"])
    with pytest.raises(CopyOutError, match="cut short"):
        merge_codes(RawCopy(["i", "c"], [TEXT, TEXT],
                            [np.frombuffer(whole[:-5], dtype=np.uint8)]), ids)
    three = bytes(struct.pack(">h", 3)) + whole[2:]
    with pytest.raises(CopyOutError, match="not of two fields"):
        merge_codes(RawCopy(["i", "c"], [TEXT, TEXT], [np.frombuffer(three, np.uint8)]), ids)
    with pytest.raises(CopyOutError, match="kinds"):
        merge_codes(RawCopy(["i", "n"], [TEXT, pgcopy_out.INT8], []), ids)


@pytest.mark.parametrize("layout", ["in id order", "in order, then appended", "shuffled"])
def test_codes_from_a_server_equal_a_dictionary_join(postgis_url: str, layout: str) -> None:
    """A layer's rows as the server sends them (in chunks of every size), matched by
    ``codes_of_copy``: the same codes as a dictionary join and as ``codes_of`` of the
    decoded table, whatever the rows' order."""
    rng = np.random.default_rng(7)
    n = 4000
    ids = [f"R-{v}" for v in rng.permutation(n)]
    ids[5] = "R-é"
    have = [i for i in ids if rng.random() < 0.9]
    got = {i: f"c{rng.integers(0, 30)}" for i in have}
    got.update({f"R-{n + k}x": "stranger" for k in range(40)})  # no request has these
    pairs = sorted(got.items(), key=lambda item: item[0].encode())
    if layout == "shuffled":
        rng.shuffle(pairs)
    elif layout != "in id order":  # small writes appended after the ordered run
        cut = int(len(pairs) * 0.8)
        tail = pairs[cut:]
        rng.shuffle(tail)
        pairs = pairs[:cut] + tail
    with psycopg.connect(postgis_url) as conn:
        conn.execute("CREATE TEMP TABLE layer (service_request_id text, code text)")
        with conn.cursor().copy("COPY layer FROM STDIN") as copy:
            for pair in pairs:
                copy.write_row(pair)
        with ThreadPoolExecutor(2) as pool:
            ordered = id_order.order_rows(pa.table({"i": ids}), "i", pool)
        expected = [got.get(i) for i in ordered.sorted_ids.to_pylist()]
        source = pgcopy_out.TableColumns("layer", ("service_request_id", "code"))
        for chunk_bytes in (pgcopy_out.CHUNK_BYTES, 4096, 1):
            raw = pgcopy_out.copy_raw(conn, source, chunk_bytes=chunk_bytes)
            assert ordered.codes_of_copy(raw).to_pylist() == expected
            assert ordered.codes_of(raw.table()).to_pylist() == expected
        _, rest = merge_codes(raw, ordered.sorted_ids)
        assert (rest is None) == (layout == "in id order")
        by_select = pgcopy_out.copy_raw(conn, sql.SQL("SELECT * FROM layer"))
        assert ordered.codes_of_copy(by_select).to_pylist() == expected
