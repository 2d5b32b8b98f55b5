"""The NUL rule's column checks (geo.store.postgis_text): a NUL anywhere in a column,
in any of the ways pandas may hold its text, is found in the value that holds it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from geo.store.postgis_text import REPLACEMENT, has_bad, scrub, scrub_json


def _held(values: list[str | None], how: str) -> pd.Series:
    if how == "object":
        return pd.Series(values, dtype=object)
    if how == "str":
        return pd.Series(values, dtype="str")
    # Arrow-backed, in two chunks, the second a slice of a longer array
    head = pa.array(values[:2], pa.large_string())
    tail = pa.array(["\x00skipped", *values[2:]], pa.large_string()).slice(1)
    return pd.Series(pd.arrays.ArrowExtensionArray(pa.chunked_array([head, tail])))


@pytest.mark.parametrize("how", ["object", "str", "arrow chunks"])
def test_a_nul_is_found_in_the_value_that_holds_it(how: str) -> None:
    clean = ["a", None, "b c", "", "é"]
    assert not has_bad(_held(clean, how)).any()
    for at in (0, 2, 4):
        values = list(clean)
        values[at] = f"x\x00{values[at]}"
        assert has_bad(_held(values, how)).tolist() == [j == at for j in range(5)]
    out, changed = scrub(_held(["ok", "a\x00b"], how))
    assert changed.tolist() == [False, True]
    assert list(out) == ["ok", f"a{REPLACEMENT}b"]


def test_a_surrogate_outside_arrow_is_found_one_by_one() -> None:
    values = pd.Series(["ok", "bad \ud800", 3, None], dtype=object)
    assert has_bad(values).tolist() == [False, True, False, False]


def test_json_escapes_of_nul_and_surrogates_are_rewritten_and_no_others() -> None:
    docs = [None, json.dumps({"a": "\x00"}), json.dumps({"b": "A"}).replace("A", "\\u0041"),
            '{"c": "\\ud83d"}', "plain"]
    out, changed = scrub_json(pd.Series(docs, dtype=object))
    assert changed.tolist() == [False, True, False, True, False]
    assert json.loads(out[1]) == {"a": REPLACEMENT}
    assert json.loads(out[3]) == {"c": REPLACEMENT}
    assert out[2] == docs[2] and out[4] == "plain" and out[0] is None
    assert np.array_equal(scrub_json(pd.Series([None, None], dtype=object))[1], [False, False])
