"""Byte order of text ids by 8-byte words (:func:`geo.store.id_merge.byte_order`)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from geo.store.id_merge import MAX_SORT_WORDS, byte_order, radix_order


def _random_ids(rng: np.random.Generator, n: int, max_len: int) -> list[str]:
    """Ids sharing long prefixes, some a prefix of another, with NUL, high and
    multi-byte characters: the cases where padding and length decide the order."""
    alphabet = ["\x00", "\x01", "0", "1", "9", "A", "a", "z", "\x7f", "é", "€", "😀"]
    prefixes = ["", "SYN-B1-0000", "1385", "x" * 15, "y" * 16]
    out = []
    for _ in range(n):
        tail = "".join(rng.choice(alphabet, size=int(rng.integers(0, max_len))))
        out.append(str(rng.choice(prefixes)) + tail)
    return out + [value + "\x00" for value in out[:200]]  # equal but for a NUL after


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("max_len", [1, 4, 9, 20, 40])
def test_byte_order_is_arrows_sort(seed: int, max_len: int) -> None:
    """The same positions as Arrow's stable sort, duplicates included, for ids sorted by
    words and for ids long enough to go to Arrow."""
    rng = np.random.default_rng(seed)
    ids = _random_ids(rng, 3000, max_len)
    ids += list(rng.choice(ids, size=500))  # repeats keep their order
    array = pa.array(ids)
    expected = pc.sort_indices(array).to_numpy()
    assert byte_order(array).tolist() == expected.tolist()
    sliced = array.slice(700, 1800)  # an array with an offset into its buffers
    assert byte_order(sliced).tolist() == pc.sort_indices(sliced).to_numpy().tolist()
    chunked = pa.chunked_array([array.slice(0, 1000), array.slice(1000)])
    assert byte_order(chunked).tolist() == expected.tolist()


def test_ids_shorter_than_one_word_and_the_edges() -> None:
    assert byte_order(pa.array(["9", "10", "1", "", "100"])).tolist() == [3, 2, 1, 4, 0]
    assert byte_order(pa.array([], pa.string())).tolist() == []
    assert byte_order(pa.array(["only"])).tolist() == [0]
    assert byte_order(pa.array(["", ""])).tolist() == [0, 1]
    with_null = pa.array(["b", None, "a"])
    assert byte_order(with_null).tolist() == pc.sort_indices(with_null).to_numpy().tolist()
    longest = "z" * (8 * MAX_SORT_WORDS)
    words = pa.array([longest, longest[:-1] + "y", longest + "a"])
    assert byte_order(words).tolist() == [1, 0, 2]


@pytest.mark.parametrize("seed", range(4))
def testradix_order_is_lexsorts_stable_order(seed: int) -> None:
    """Keys with every 16-bit digit in play, keys alike but in one digit (the passes
    skipped), a key the same everywhere, and many repeats (stability): the order of
    NumPy's lexsort, last key first."""
    rng = np.random.default_rng(seed)
    n = 5000
    wide = rng.integers(0, 2**63, n, dtype=np.uint64) * np.uint64(2) + np.uint64(seed % 2)
    one_digit = np.uint64(0xABCD_0000_1234_0000) | (rng.integers(0, 7, n, dtype=np.uint64)
                                                    << np.uint64(32))
    same = np.full(n, 42, dtype=np.uint64)
    repeats = rng.integers(0, 3, n, dtype=np.uint64) << np.uint64(48)
    for keys in ([wide], [one_digit], [repeats], [wide, repeats], [one_digit, repeats, same],
                 [same, one_digit, wide, repeats]):
        stacked = np.stack(keys)
        assert radix_order(stacked).tolist() == np.lexsort(tuple(keys)).tolist()


def test_fixed_width_ids_alike_but_for_their_digits() -> None:
    """Ids of one length that share their first bytes (a city's numbered requests): only
    the differing bytes are sorted by, and the order is still Arrow's."""
    rng = np.random.default_rng(7)
    ids = pa.array([f"SR-2026-{i:07d}" for i in rng.permutation(20_000)]
                   + ["SR-2026-0000001", "SR-2026-0000001"])
    assert byte_order(ids).tolist() == pc.sort_indices(ids).to_numpy().tolist()
    same = pa.array(["SR-1"] * 5)
    assert byte_order(same).tolist() == [0, 1, 2, 3, 4]
