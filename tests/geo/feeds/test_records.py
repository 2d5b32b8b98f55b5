"""Feed pages as frames: Arrow-backed text like the CSV reader's, values that are not text
written as text, and JSON read by the client the way ``json`` reads it."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from geo.feeds.client import FeedClient
from geo.feeds.records import records_frame
from geo.ingest.readers import ROW_COLUMN
from hotspot311.errors import FeedError
from tests.geo.feeds.servers import Table, serve


def test_text_records_become_arrow_text_with_missing_values() -> None:
    frame = records_frame([{"a": "x", "b": "1"}, {"a": "y", "c": "z"}], columns=["d"])
    assert list(frame.columns) == [ROW_COLUMN, "a", "b", "c", "d"]
    for name in "abcd":
        assert isinstance(frame[name].dtype, pd.StringDtype), name
        assert frame[name].dtype.storage == "pyarrow", name
    assert frame["a"].tolist() == ["x", "y"]
    assert frame["b"].isna().tolist() == [False, True]
    assert frame["d"].isna().all()
    assert frame[ROW_COLUMN].tolist() == [1, 2]


def test_values_that_are_not_text_are_written_as_text() -> None:
    frame = records_frame([{"n": 7, "f": 1.5, "b": True, "o": {"k": [1]}, "s": "t"},
                           {"n": 2.0, "f": None, "b": False, "o": [], "s": None}])
    assert frame["n"].tolist() == ["7", "2"]
    assert frame["f"].iloc[0] == "1.5" and pd.isna(frame["f"].iloc[1])
    assert frame["b"].tolist() == ["true", "false"]
    assert frame["o"].tolist() == ['{"k": [1]}', "[]"]
    assert frame["s"].iloc[0] == "t" and pd.isna(frame["s"].iloc[1])


def test_text_utf8_cannot_carry_stays_python_text() -> None:
    frame = records_frame([{"a": "ok\ud800", "b": "fine"}])
    assert frame["a"].tolist() == ["ok\ud800"]
    assert frame["b"].tolist() == ["fine"]


def test_a_feed_column_named_like_a_reserved_one_is_renamed() -> None:
    frame = records_frame([{ROW_COLUMN: "9", "a": "x"}])
    assert frame[f"{ROW_COLUMN}.feed"].tolist() == ["9"]
    assert frame[ROW_COLUMN].tolist() == [1]


def _route(body: bytes, content_type: str = "application/json") -> Any:
    def route(handler: Any, path: str, q: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Content-Type": content_type}, body
    return route


@pytest.mark.parametrize("body", [
    b'[{"a": "x", "n": 12345678901234567890123, "f": 1e400}]',  # json alone reads these
    b'[{"a": NaN}]',
    '[{"a": "caf\u00e9 \u2713"}]'.encode(),
])
def test_the_client_reads_json_as_json_does(body: bytes) -> None:
    with serve(_route(body), Table([])) as server, \
            FeedClient("nyc", rate_limit=0, timeout=5.0) as client:
        doc, _ = client.get_json(server.url + "/resource/x.json")
    expected = json.loads(body.decode("utf-8"))
    assert repr(doc) == repr(expected)
    if isinstance(expected[0]["a"], float):
        assert np.isnan(doc[0]["a"])


def test_a_latin1_body_is_read_in_its_charset() -> None:
    body = '[{"a": "caf\u00e9"}]'.encode("latin-1")
    with serve(_route(body, "application/json; charset=iso-8859-1"), Table([])) as server, \
            FeedClient("nyc", rate_limit=0, timeout=5.0) as client:
        doc, _ = client.get_json(server.url + "/resource/x.json")
    assert doc == [{"a": "caf\u00e9"}]


def test_a_truncated_body_is_named_with_json_s_message() -> None:
    with serve(_route(b'[{"a": "x"}, {"a": "y'), Table([])) as server, \
            FeedClient("nyc", rate_limit=0, timeout=5.0, retries=0) as client, \
            pytest.raises(FeedError, match=r"page 3 .*not complete JSON \(Unterminated string "
                                           r"starting at at character 19 of 21; truncated\?\)"):
        client.get_json(server.url + "/resource/x.json", page=3)
