"""Validation's whole-column helpers give what the row-by-row rules they replace give."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from geo.ingest import validate
from geo.ingest.hashing import hash_columns
from geo.ingest.model import TEXT
from geo.ingest.validate import (
    _all_distinct,
    _Picker,
    constant_text,
    normalize_status,
    normalize_zip,
    numbers,
)

_WORDS = ["Open", " closed ", "COMPLETED", "in progress", "Pending", "weird", "", None,
          "Resolved", "new", "cancelled", "DONE!", "réouvert", "\u00a0open\u00a0"]
_ZIPS = ["19122", "19122.0", "19122-1234", " 19103 ", "1914", "191220", "abcde", None, ""]


def _status_by_row(status: pd.Series, closed: pd.Series) -> tuple[list[str], list[bool]]:
    """The status rule applied one value at a time (what the columns must give)."""
    words, unknown = [], []
    for word, shut in zip(status.tolist(), closed.notna().tolist(), strict=True):
        low = None if word is None or word is pd.NA else str(word).strip().lower()
        is_closed = low is not None and re.search(r"clos|complet|resolv|done|cancel", low)
        known = low in {"open", "in-progress", "in progress", "pending", "acknowledged", "new",
                        "assigned", "started", "submitted", "received", "reopened"}
        words.append("closed" if is_closed or (low is None and shut) else "open")
        unknown.append(low is not None and not is_closed and not known)
    return words, unknown


@pytest.mark.parametrize("seed", range(4))
def test_status_and_zip_by_distinct_value_equal_the_row_rules(seed: int) -> None:
    rng = np.random.default_rng(seed)
    status = pd.Series(rng.choice(np.array(_WORDS, dtype=object), 500), dtype=object,
                       index=np.arange(500) + 10)
    closed = pd.Series(np.where(rng.random(500) < 0.5, pd.Timestamp("2024-01-01", tz="UTC"),
                                pd.NaT), dtype="datetime64[ns, UTC]", index=status.index)
    for column in (status, status.astype("string"), status.astype(TEXT)):
        words, unknown = normalize_status(column, closed)
        expected_words, expected_unknown = _status_by_row(status, closed)
        assert words.tolist() == expected_words
        assert unknown.tolist() == expected_unknown
        assert words.index.equals(column.index)

    zips = pd.Series(rng.choice(np.array(_ZIPS, dtype=object), 500), index=np.arange(500) * 3,
                     dtype=object)
    five, bad = normalize_zip(zips)
    for value, got, flagged in zip(zips.tolist(), five.tolist(), bad.tolist(), strict=True):
        text = None if value is None else value.strip()
        match = re.fullmatch(r"(\d{5})(?:\.0+)?(?:-\d{4})?", text) if text else None
        assert (got if isinstance(got, str) else None) == (match.group(1) if match else None)
        assert flagged == (text is not None and match is None)
    assert five.index.equals(zips.index)


def test_picker_equals_boolean_indexing_for_every_column_type() -> None:
    n = 300
    rng = np.random.default_rng(7)
    keep = rng.random(n) < 0.8
    columns = {
        "text": pd.Series(pd.array(["é" * (i % 4) if i % 5 else None for i in range(n)],
                                   dtype=TEXT)),
        "string": pd.Series([f"v{i}" if i % 7 else None for i in range(n)], dtype="string"),
        "chunked": pd.Series(pd.array(pa.chunked_array(
            [pa.array([f"c{i}" for i in range(100)], pa.large_string()),
             pa.array([f"d{i}" for i in range(200)], pa.large_string())]), dtype=TEXT)),
        "times": pd.Series(pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")),
        "floats": pd.Series(rng.random(n)),
        "objects": pd.Series([None if i % 3 else f"o{i}" for i in range(n)], dtype=object),
        "bools": pd.Series(rng.random(n) < 0.5),
    }
    for picker in (_Picker(keep), _Picker(np.ones(n, dtype=bool))):
        for name, values in columns.items():
            got = picker(values.rename(name))
            expected = values[picker.keep].reset_index(drop=True).rename(name)
            pd.testing.assert_series_equal(got, expected, check_index_type=True)
            assert got.index.equals(pd.RangeIndex(picker.n))


def test_constant_text_and_distinct_check() -> None:
    column = constant_text("20240101T000000Z-abc", 4)
    assert column.dtype == TEXT and column.tolist() == ["20240101T000000Z-abc"] * 4
    assert constant_text("x", 0).empty
    ids = pd.Series(pd.array(["a", "b", "c", "b"], dtype=TEXT))
    assert not _all_distinct(ids)
    assert _all_distinct(ids[:3])
    assert not _all_distinct(pd.Series(["a", "a"], dtype=object))


@pytest.mark.parametrize("collide", [False, True], ids=["fingerprints", "every print equal"])
def test_distinct_check_matches_a_count_of_values(collide: bool,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Equal fingerprints send the check to the values: a collision never makes distinct
    ids look repeated, and repeated ids are found either way."""
    if collide:
        monkeypatch.setattr(validate, "hash_text",
                            lambda values: np.zeros(len(values), dtype=np.uint64))
    rng = np.random.default_rng(7)
    for n in (1, 2, 500):
        values = [f"SYN-{v}" for v in rng.choice(10 * n, size=n, replace=False)]
        ids = pd.Series(pd.array(values, dtype=TEXT))
        assert _all_distinct(ids) == (len(set(values)) == n)
        repeated = pd.Series(pd.array([*values, values[-1]], dtype=TEXT))
        assert not _all_distinct(repeated)


def test_row_hash_of_chunked_text_equals_the_whole_column() -> None:
    values = [f"v{i}" if i % 4 else None for i in range(50)]
    whole = pd.DataFrame({"t": pd.Series(pd.array(pa.array(values, pa.large_string()),
                                                  dtype=TEXT)),
                          "at": pd.date_range("2024-03-10", periods=50, freq="37min",
                                              tz="UTC")})
    chunked = pd.DataFrame({
        "t": pd.Series(pd.array(pa.chunked_array([pa.array(values[:13], pa.large_string()),
                                                  pa.array(values[13:], pa.large_string())]),
                                dtype=TEXT)),
        # the same instants in another zone hash the same wall-clock-free way as before
        "at": whole["at"],
    })
    assert (hash_columns(whole, ["t", "at"]) == hash_columns(chunked, ["t", "at"])).all()
    local = whole.assign(at=whole["at"].dt.tz_convert("America/New_York"))
    naive = whole.assign(at=whole["at"].dt.tz_convert("America/New_York").dt.tz_localize(None))
    assert (hash_columns(local, ["at"]) == hash_columns(naive, ["at"])).all()


_TEXTS = ["39.95", "-75.16", "+5", ".5", "5.", "+.5", "1e5", "1E-3", "1e400", "-0",
          "00.1", "1-2", ".", "-", "e", "1.5e", "--1", "1.2.3", "E5", "+", "nan", "inf",
          "-Infinity", "1_0", "0x1A", " 4 ", "١٢", None]


@pytest.mark.parametrize("texts", [[*_TEXTS[:11], None], _TEXTS],
                         ids=["plain decimals", "with everything else"])
def test_numbers_read_as_pandas_reads_them(texts: list[str | None]) -> None:
    values = pd.Series(texts, dtype="string")
    got = numbers(values)
    expected = pd.to_numeric(values, errors="coerce").astype("float64")
    pd.testing.assert_series_equal(got, expected)
    assert np.array_equal(np.signbit(got.to_numpy()[:10]), np.signbit(expected.to_numpy()[:10]))
    # each value alone too: a column that Arrow refuses goes to pandas as a whole
    for text in texts:
        one = pd.Series([text], dtype="string")
        pd.testing.assert_series_equal(
            numbers(one), pd.to_numeric(one, errors="coerce").astype("float64"))


@pytest.mark.parametrize("dropped", [[], [0], [9_999], [0, 1, 2, 500, 501, 9_999],
                                     list(range(0, 10_000, 7))],
                         ids=["none", "first", "last", "runs", "more than sliced"])
def test_kept_rows_are_picked_alike_by_slices_and_by_filter(dropped: list[int]) -> None:
    """A column's kept rows are the same whether the text is sliced around a few dropped
    rows or filtered (over :data:`_SLICED_DROPS` dropped), and numbered 0…n-1."""
    n = 10_000
    text = pd.Series(pd.array([None if i % 11 == 0 else f"v{i}" for i in range(n)],
                              dtype=TEXT), index=range(100, 100 + n))
    numbers = pd.Series(np.arange(n, dtype="float64"))
    keep = np.ones(n, dtype=bool)
    keep[dropped] = False
    picker = _Picker(keep)
    assert (picker._runs is None) == (not dropped or len(dropped) > validate._SLICED_DROPS)
    got = picker(text)
    expected = [v for v, k in zip(text.tolist(), keep, strict=True) if k]
    assert got.tolist() == expected and got.dtype == text.dtype
    assert got.index.tolist() == list(range(len(expected)))
    assert picker(numbers).tolist() == numbers[keep].tolist()
