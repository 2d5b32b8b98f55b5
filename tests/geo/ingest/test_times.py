"""Time parsing: every form real feeds use, the city time zone, DST edges."""

from __future__ import annotations

import pandas as pd
import pytest

from geo.ingest.times import parse_times

TZ = "America/New_York"


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1422517500000, "2015-01-29 07:45"),  # epoch ms (graffiti sample)
        ("1422517500000", "2015-01-29 07:45"),
        ("1422517500", "2015-01-29 07:45"),  # epoch seconds
        ("2/15/2023 21:56", "2023-02-16 02:56"),  # M/D/YYYY H:MM, EST
        ("7/4/2024 9:05", "2024-07-04 13:05"),  # EDT
        ("2021/01/06 12:22", "2021-01-06 17:22"),  # parks file
        ("2024-07-01T12:00:00-04:00", "2024-07-01 16:00"),
        ("2024-07-01T12:00:00Z", "2024-07-01 12:00"),
        ("2024-07-01 08:00:00", "2024-07-01 12:00"),  # naive ISO: city time
        ("2024-03-10 02:30", "2024-03-10 07:00"),  # skipped by DST: moved forward to 03:00 EDT
        ("2024-11-03 01:30", "2024-11-03 05:30"),  # ambiguous: first (EDT) occurrence
        ("2024-03-10 00:00", "2024-03-10 05:00"),  # midnight on the spring change
    ],
)
def test_parse_forms(raw: object, expected: str) -> None:
    got = parse_times(pd.Series([raw], dtype=object), tz=TZ).iloc[0]
    assert got == utc(expected)


@pytest.mark.parametrize("raw", ["soon", "", None, "13/45/2020 10:00", "nan", float("nan")])
def test_unreadable_is_nat(raw: object) -> None:
    assert pd.isna(parse_times(pd.Series([raw], dtype=object), tz=TZ).iloc[0])


def test_mixed_column_keeps_index_and_dtype() -> None:
    s = pd.Series(
        ["2/15/2023 21:56", 1422517500000, None, "2024-07-01T12:00:00Z"],
        index=[10, 11, 12, 13],
        dtype=object,
    )
    out = parse_times(s, tz=TZ)
    assert list(out.index) == [10, 11, 12, 13]
    assert str(out.dtype) == "datetime64[ns, UTC]"
    assert out.isna().tolist() == [False, False, True, False]


def test_empty() -> None:
    assert parse_times(pd.Series([], dtype=object), tz=TZ).empty


@pytest.mark.parametrize("values", [
    ["2024-05-01T10:00:00Z", "2024-11-03 05:30:00+00:00", None, "2024-05-01T10:00:00.123456-04:00",
     "2262-04-10T00:00:00Z"],
    ["2024-05-01 10:00", "2024-11-03 01:30", "2024-03-10T02:30:00", None, "2024-05-01T10:00:00.5",
     "2024-02-30 10:00"],
    ["9999-12-31T00:00:00Z", "2024-05-01T10:00:00Z"],
])
def test_plain_iso_columns_parse_as_on_the_general_path(values: list[str | None]) -> None:
    """A column of plain ISO times takes Arrow's parser; one odd value sends the column
    down the general path: the common values come out the same either way."""
    fast = parse_times(pd.Series(values), tz="America/New_York")
    general = parse_times(pd.Series([*values, "5/1/2024 10:00"]), tz="America/New_York")
    pd.testing.assert_series_equal(fast, general.iloc[:-1])
    assert general.iloc[-1] == pd.Timestamp("2024-05-01 14:00", tz="UTC")


def test_fixed_layout_check_agrees_with_the_regular_expressions() -> None:
    """Where the byte check gives an answer, it is the regular expressions' answer."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from geo.ingest.times import _ISO_OFFSET, _ISO_WALL, _fixed_shape

    rng = np.random.default_rng(3)
    bases = ["2024-07-01T12:00:00Z", "2024-07-01 12:00:00Z", "2024-07-01T12:00:00",
             "2024-07-01T12:00", "2024-07-01T12:00:00+01:00", "2024-07-01T12:00:00.5Z"]
    answered = 0
    for _ in range(3000):
        base = bases[rng.integers(len(bases))]
        values: list[str | None] = []
        for _ in range(int(rng.integers(1, 6))):
            chars = list(base)
            if rng.random() < 0.3:  # one byte changed: a letter, digit, sign, space or é
                chars[rng.integers(len(chars))] = str(rng.choice(list("0x-: TZ+é9")))
            values.append(None if rng.random() < 0.1 else "".join(chars))
        arrow = pa.chunked_array([pa.array(values[:2], pa.large_string()),
                                  pa.array(values[2:], pa.large_string())])
        got = _fixed_shape(arrow)
        if got is None:
            continue
        answered += 1
        aware = bool(pc.all(pc.match_substring_regex(arrow, _ISO_OFFSET)).as_py())
        wall = bool(pc.all(pc.match_substring_regex(arrow, _ISO_WALL)).as_py())
        assert (aware if got else wall), values
        assert not (got and wall) and not (not got and aware), values
    assert answered > 500
