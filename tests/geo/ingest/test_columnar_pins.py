"""The columnar read path pinned to the general one, and the row hash to its old values.

``read_requests`` reads a UTF-8 CSV straight from its bytes with Arrow, detecting the
format from the first line only; every other file takes the general path (decode the
whole text, detect, read). Both must give the same frame, format and encoding. The row
hashes of every corpus file's requests must stay what the code before this change gave
(``corpus/expected/row_hashes.json``, made from commit 620b744), or a store written
before would see every row as changed on its next ingest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from geo.ingest import readers
from geo.ingest.arrowtext import trim_is_noop
from geo.ingest.mapping import apply_mapping
from geo.ingest.readers import ROW_COLUMN, Format, read_requests
from geo.ingest.validate import validate
from hotspot311.errors import InputError
from layers.profile import CityProfile
from tests.geo.ingest.quarantine_corpus import BATCH, EXPECTED, NOW, Entry, entries

ENTRIES = entries()
ROW_HASHES = json.loads((EXPECTED / "row_hashes.json").read_text(encoding="utf-8"))


def general(path: Path, fmt: str) -> tuple[pd.DataFrame, Format, str]:
    """What ``read_requests`` gave before the columnar path: the whole text decoded."""
    data = path.read_bytes()
    text, encoding = readers.decode(data)
    kind = Format(fmt)
    if kind is Format.AUTO:
        kind = readers._detect(text, path)
    if kind in (Format.OPEN311, Format.GEOJSON) or (
            kind is Format.PHILA and text.lstrip()[:1] in "[{"):
        frame = readers._read_json(text, path, kind)
    else:
        utf8 = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
        frame = readers._read_csv(text, path, utf8 if encoding == "utf-8-sig" else None)
    frame.insert(0, ROW_COLUMN, range(1, len(frame) + 1))
    return frame, kind, encoding


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_reader_gives_what_the_general_path_gives(entry: Entry) -> None:
    raw = read_requests(entry.path, fmt=entry.fmt)
    frame, kind, encoding = general(entry.path, entry.fmt)
    assert (raw.format, raw.encoding) == (kind, encoding)
    pd.testing.assert_frame_equal(raw.frame, frame)
    assert raw.digest == hashlib.sha1(entry.path.read_bytes()).hexdigest()


def test_utf8_csv_files_take_the_columnar_path() -> None:
    by_name = {e.name: e for e in ENTRIES}
    for name in ("parks-maintenance.csv", "messy.csv", "messy-bom.csv", "bad-input.csv"):
        e = by_name[name]
        assert readers._utf8_csv(e.path.read_bytes(), e.path, Format(e.fmt)) is not None, name
    for name in ("messy-latin1.csv", "messy-crlf-cp1252.csv", "graffiti-sample.json"):
        e = by_name[name]
        assert readers._utf8_csv(e.path.read_bytes(), e.path, Format(e.fmt)) is None, name


@pytest.mark.parametrize("content", [
    "\n\n  \r\nservice_request_id,requested_datetime,Caf\u00e9\n1,2024-05-01 10:00,x\n",
    "\ufeffrequest_id,start_time\n7,2024-05-01\n",
    "x" * 70_000 + ",service_request_id,requested_datetime\n1,2,3\n",
    "a,b\n1,2,3\n4\n",  # ragged: pandas reads it (Arrow refuses)
    "  [1, 2]\n",
    "\u3000 service_request_id,requested_datetime\n1,2024-05-01\n",
], ids=["blank-lines-utf8-header", "bom-renamed", "long-first-line", "ragged", "json",
        "unicode-space"])
def test_edge_files_read_as_before(tmp_path: Path, content: str) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(content.encode("utf-8"))
    try:
        raw = read_requests(path)
    except InputError as err:
        with pytest.raises(InputError) as before:
            general(path, "auto")
        assert str(err) == str(before.value)
        return
    frame, kind, encoding = general(path, "auto")
    assert (raw.format, raw.encoding) == (kind, encoding)
    pd.testing.assert_frame_equal(raw.frame, frame)


def test_whitespace_only_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "blank.csv"
    path.write_bytes(b" \t\r\n\x0b\x0c\n")
    with pytest.raises(InputError, match="the file is empty"):
        read_requests(path)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_row_hashes_are_the_old_ones(entry: Entry, phila: CityProfile) -> None:
    raw = read_requests(entry.path, fmt=entry.fmt)
    mapped = apply_mapping(raw.frame, entry.mapping, fmt=raw.format)
    batch = validate(mapped, profile=phila, batch_id=BATCH, source_file=entry.name, now=NOW)
    hashes = batch.requests["row_hash"].to_numpy(dtype=np.uint64)
    want = ROW_HASHES[entry.name]
    assert len(hashes) == want["rows"]
    assert (raw.encoding, raw.format.value) == (want["encoding"], want["format"])
    assert hashlib.sha256(hashes.astype("<u8").tobytes()).hexdigest() == want["row_hash_sha256"]


@pytest.mark.parametrize("values", [
    ["a", "b c", None], ["a ", "b"], [" a"], [""], ["a\u00a0"], ["\u3000a"], ["a\x1c"],
    ["\tb"], ["caf\u00e9"], [None, None], ["x\u2028"], ["\u0085y"], ["ok", "fine", "0"],
])
def test_trim_is_noop_only_when_stripping_changes_nothing(values: list[str | None]) -> None:
    for array in (pa.array(values, type=pa.string()), pa.array(values, type=pa.large_string()),
                  pa.chunked_array([pa.array(values, type=pa.string()),
                                   pa.array(values[::-1], type=pa.string())])):
        trimmed = pc.utf8_trim_whitespace(array)
        changes = pc.all(pc.equal(trimmed, array)).as_py() not in (True, None) or (
            pc.any(pc.equal(array, "")).as_py() is True)
        assert not (changes and trim_is_noop(array)), values
    assert trim_is_noop(pa.array(["a", "b c", None])) is True
    assert trim_is_noop(pa.array([" a"])) is False
