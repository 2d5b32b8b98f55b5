"""The quarantine (and the requests) of every corpus file, byte for byte as before issue 19.

The expected exports were made by the code before the readers and validation became
columnar (see :mod:`tests.geo.ingest.quarantine_corpus`): the same rows quarantined,
with the same reasons, details, raw values and ids, and the same requests kept.
"""

from __future__ import annotations

import json

import pytest

from layers.profile import CityProfile
from tests.geo.ingest.quarantine_corpus import (
    REQUEST_DIGESTS,
    Entry,
    digest,
    entries,
    expected_quarantine,
    exported,
)

ENTRIES = entries()


def test_the_corpus_is_all_there() -> None:
    names = {e.name for e in ENTRIES}
    assert {"parks-maintenance.csv", "graffiti-sample.json", "illegal-dumping-2024-points.csv",
            "bad-input.csv", "messy.csv", "messy.geojson", "messy-open311.json"} <= names
    assert set(json.loads(REQUEST_DIGESTS.read_text())) == names


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_same_quarantine_and_requests(entry: Entry, phila: CityProfile) -> None:
    quarantine, requests = exported(entry, phila)
    want = expected_quarantine(entry).read_bytes()
    if quarantine != want:  # show the first line that differs
        got_lines, want_lines = quarantine.split(b"\r\n"), want.split(b"\r\n")
        for i, (g, w) in enumerate(zip(got_lines, want_lines, strict=False)):
            assert g == w, f"line {i + 1} of the quarantine differs"
        assert len(got_lines) == len(want_lines)
    assert digest(requests) == json.loads(REQUEST_DIGESTS.read_text())[entry.name]
