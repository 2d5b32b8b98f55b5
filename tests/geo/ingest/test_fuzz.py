"""Property-based tests of every reader (issue 20, part 5).

Arbitrary CSV, JSON and GeoJSON bytes, in every format and with arbitrary mappings, go
through the whole ingest into an embedded store. The outcome is always one of two: an
:class:`InputError` with a message, or every row read accounted for (stored, unchanged or
quarantined). Never another exception.

Example counts are modest (CI time) and the examples derandomized, so a run is
repeatable (see :data:`FUZZ` for a longer search).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from geo.ingest.mapping import ColumnMapping
from geo.ingest.pipeline import ingest
from geo.ingest.readers import ROW_COLUMN, Format
from geo.store.embedded import EmbeddedStore
from hotspot311.errors import InputError
from hotspot311.schema import CANONICAL_FIELDS
from tests.geo.store.stores import NOW, TESTVILLE

#: A fixed, modest set of examples for CI; HOTSPOT311_FUZZ_EXAMPLES=N with
#: HOTSPOT311_FUZZ_RANDOM=1 searches further (new examples each run).
FUZZ = settings(
    max_examples=int(os.environ.get("HOTSPOT311_FUZZ_EXAMPLES", "80")),
    deadline=None,
    derandomize=not os.environ.get("HOTSPOT311_FUZZ_RANDOM"),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

#: Column names a file may use: canonical ones, known aliases, our internal names, others.
NAMES = st.one_of(
    st.sampled_from([*CANONICAL_FIELDS, "long", "request_id", "start_time", "Latitude",
                     "X", "Y", "id", "type", ROW_COLUMN, "_geometry_error", "src:x", "",
                     " lat ", "LAT", "extra", "geometry"]),
    st.text(max_size=12),
)
#: Cell values: times, coordinates, ids and anything else.
CELLS = st.one_of(
    st.sampled_from(["", "2024-05-01T10:00:00", "1714557600000", "5/1/2024 10:00",
                     "39.95", "-75.16", "40.0", "-75.0", "0", "nan", "inf", "-1e400",
                     "19122.0", "Closed", "open", "1", "1.0", "  ", "NULL", "=1+1",
                     "\u2028", "\x85", "a\nb", "a\rb", '"', "\ufeff"]),
    st.text(max_size=20),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
)
JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=15),
    st.sampled_from(["2024-05-01T10:00:00", "39.95", "-75.16", 1714557600000, 39.95,
                     -75.16, 40.0, -75.0]),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)
#: Values that a field of that name usually holds (most rows look like requests).
TYPICAL = {
    "service_request_id": st.one_of(st.sampled_from(["1", "2", "A-1", "8992784.0", ""]),
                                    st.text(max_size=8)),
    "requested_datetime": st.sampled_from(["2024-05-01T10:00:00", "1714557600000",
                                           "5/1/2024 10:00", "2024/05/01 10:00", "soon",
                                           "2099-01-01T00:00:00Z", ""]),
    "lat": st.one_of(st.floats(39.86, 40.14).map(str), CELLS),
    "lon": st.one_of(st.floats(-75.29, -74.96).map(str), CELLS),
    "address": st.one_of(st.sampled_from(["1001 LONEY ST", ""]), st.text(max_size=12)),
}
GOOD = ("service_request_id", "requested_datetime", "lat", "lon")


@st.composite
def records(draw: st.DrawFn) -> list[dict[str, object]]:
    """JSON records: mostly request-shaped (the typical keys), with odd keys and values."""
    out = []
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        record: dict[str, object] = {}
        if draw(st.integers(0, 3)):
            for name in (*GOOD, "address"):
                if draw(st.integers(0, 5)):
                    record[name] = draw(st.one_of(TYPICAL[name], JSON_SCALARS))
        record.update(draw(st.dictionaries(NAMES, st.one_of(JSON_VALUES, CELLS), max_size=4)))
        out.append(record)
    return out


RECORDS = records()
FORMATS = st.sampled_from([f.value for f in Format])
ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "latin-1", "utf-16"])


@st.composite
def mappings(draw: st.DrawFn, columns: list[str] | None = None) -> ColumnMapping:
    """``--map`` and ``--set`` pairs: canonical or unknown fields, present or absent
    columns (built through the CLI's parser, so its checks apply)."""
    if draw(st.integers(0, 2)) == 0:
        return ColumnMapping()
    fields = st.one_of(st.sampled_from(CANONICAL_FIELDS), st.sampled_from(CANONICAL_FIELDS),
                       st.text(max_size=8))
    cols = st.one_of(st.sampled_from(columns), st.sampled_from(columns),
                     st.text(max_size=8)) if columns else st.text(max_size=8)
    pairs = draw(st.lists(st.tuples(fields, cols), max_size=4))
    consts = draw(st.lists(st.tuples(fields, CELLS), max_size=2))
    return ColumnMapping.from_pairs([f"{k}={v}" for k, v in pairs],
                                    [f"{k}={v}" for k, v in consts])


def csv_text(header: list[str], rows: list[list[str]], sep: str, quote_all: bool) -> str:
    def cell(v: str) -> str:
        if quote_all or any(c in v for c in (sep, '"', "\n", "\r")):
            return '"' + v.replace('"', '""') + '"'
        return v

    return "".join(sep.join(cell(v) for v in line) + "\n" for line in [header, *rows])


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    header = draw(st.lists(NAMES, min_size=0, max_size=6))
    if draw(st.integers(0, 3)):  # mostly a request file with odd columns around
        header = list(draw(st.permutations([*GOOD, "address"]))) + header

    def cell(name: str) -> st.SearchStrategy[str]:
        return st.one_of(TYPICAL[name], CELLS) if name in TYPICAL else CELLS

    def row(n: int) -> st.SearchStrategy[list[str]]:
        names = [*header, *[""] * max(0, n - len(header))][:n]
        return st.tuples(*(cell(name) for name in names)).map(list)

    ragged = st.integers(min_value=0, max_value=len(header) + 2)
    width = st.one_of(st.just(len(header)), st.just(len(header)), ragged)
    rows = draw(st.lists(width.flatmap(row), max_size=6))
    text = csv_text(header, rows, draw(st.sampled_from([",", ",", ";", "\t"])),
                    draw(st.booleans()))
    if draw(st.booleans()):
        text = text.replace("\n", "\r\n")
    cut = draw(st.integers(min_value=0, max_value=len(text)))
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        text = text[:cut]  # a truncated file
    try:
        data = text.encode(draw(ENCODINGS))
    except (UnicodeEncodeError, UnicodeError):
        data = text.encode("utf-8")
    return data, header


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedStore:
    return EmbeddedStore(tmp_path_factory.mktemp("fuzz") / "store", TESTVILLE)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-files")


def note(what: str) -> None:
    """Count an outcome in hypothesis' statistics (``--hypothesis-show-statistics``)."""
    if currently_in_test_context():
        event(what)


def outcome(data: bytes, name: str, workdir: Path, store: EmbeddedStore, fmt: str,
            mapping: ColumnMapping) -> None:
    """Ingest ``data``: an InputError with a message, or every row accounted for."""
    path = workdir / name
    path.write_bytes(data)
    try:
        report = ingest(path, store, fmt=fmt, mapping=mapping, now=NOW)
    except InputError as err:
        assert str(err).strip(), "an InputError needs a message"
        note("input error")
        return
    note("ingested" if report.rows_read else "ingested, no rows")
    r = report.result
    assert report.balanced, (report.rows_read, r)
    assert r.inserted + r.updated + r.unchanged + sum(r.quarantined.values()) == (
        report.rows_read)


@FUZZ
@given(data=st.binary(max_size=400), fmt=FORMATS, suffix=st.sampled_from(
    [".csv", ".json", ".geojson", ".txt"]))
def test_arbitrary_bytes(store: EmbeddedStore, workdir: Path, data: bytes, fmt: str,
                         suffix: str) -> None:
    outcome(data, f"bytes{suffix}", workdir, store, fmt, ColumnMapping())


VALID = (
    b"service_request_id,requested_datetime,lat,lon,address,note\n"
    b"1,2024-05-01T10:00:00,39.95,-75.16,1001 LONEY ST,a\n"
    b"2,5/1/2024 10:00,-75.16,39.95,,\"b,\n c\"\n"
    b'3,1714557600000,0,0,,"x"\n',
    json.dumps([{"service_request_id": 1, "requested_datetime": "2024-05-01T10:00:00",
                 "lat": 39.95, "long": -75.16, "extra": {"k": [1, 2]}},
                {"service_request_id": "2", "requested_datetime": 1714557600000}]).encode(),
    json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-75.16, 39.95]},
         "properties": {"service_request_id": "g1", "requested_datetime": "2024-05-01"}},
        {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[0, 0]]},
         "properties": {"service_request_id": "g2", "requested_datetime": "2024-05-01"}},
    ]}).encode(),
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid request file with a few bytes changed, inserted or removed."""
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        at = draw(st.integers(min_value=0, max_value=len(data)))
        kind = draw(st.sampled_from(["set", "insert", "delete"]))
        byte = draw(st.one_of(st.sampled_from(list(b',"\n\r{}[]:;\t\x00\xff-.0')),
                              st.integers(0, 255)))
        if kind == "insert" or at == len(data):
            data[at:at] = bytes([byte])
        elif kind == "set":
            data[at] = byte
        else:
            del data[at]
    return bytes(data)


@FUZZ
@given(data=mutated(), fmt=st.one_of(st.just("auto"), FORMATS),
       suffix=st.sampled_from([".csv", ".json", ".geojson"]))
def test_mutated_request_files(store: EmbeddedStore, workdir: Path, data: bytes, fmt: str,
                               suffix: str) -> None:
    outcome(data, f"mutated{suffix}", workdir, store, fmt, ColumnMapping())


@FUZZ
@given(file=csv_files(), fmt=st.sampled_from(["auto", "phila", "csv", "auto"]),
       data=st.data())
def test_arbitrary_csv_and_mappings(store: EmbeddedStore, workdir: Path,
                                    file: tuple[bytes, list[str]], fmt: str,
                                    data: st.DataObject) -> None:
    content, header = file
    try:
        mapping = data.draw(mappings(header or None))
    except InputError as err:  # the CLI's check of the pairs themselves
        assert str(err).strip()
        return
    outcome(content, "file.csv", workdir, store, fmt, mapping)


@FUZZ
@given(records=RECORDS, wrapper=st.sampled_from(["list", "requests", "service_requests",
                                                 "rows", "data", "other", "scalar"]),
       fmt=st.sampled_from(["auto", "phila", "open311", "geojson"]), data=st.data())
def test_arbitrary_json_and_mappings(store: EmbeddedStore, workdir: Path,
                                     records: list[dict[str, object]], wrapper: str,
                                     fmt: str, data: st.DataObject) -> None:
    doc: object = records if wrapper == "list" else (
        data.draw(JSON_VALUES) if wrapper == "scalar" else {wrapper: records})
    columns = sorted({k for r in records for k in r})
    try:
        mapping = data.draw(mappings(columns or None))
    except InputError as err:
        assert str(err).strip()
        return
    outcome(json.dumps(doc).encode(), "file.json", workdir, store, fmt, mapping)


GEOMETRIES = st.one_of(
    st.builds(lambda lon, lat: {"type": "Point", "coordinates": [lon, lat]},
              st.floats(-75.29, -74.96), st.floats(39.86, 40.14)),
    st.none(),
    st.builds(lambda c: {"type": "Point", "coordinates": c},
              st.one_of(st.lists(st.one_of(st.floats(), st.integers(), st.text(max_size=4),
                                           st.none()), max_size=4),
                        JSON_SCALARS,
                        st.sampled_from([[-75.16, 39.95], [39.95, -75.16], [0, 0],
                                         [-76.61, 39.29]]))),
    st.builds(lambda t, c: {"type": t, "coordinates": c},
              st.sampled_from(["LineString", "Polygon", "MultiPoint", "Nope", ""]),
              JSON_VALUES),
    JSON_VALUES,
)
FEATURES = st.lists(st.one_of(
    st.builds(lambda g, p: {"type": "Feature", "geometry": g, "properties": p},
              GEOMETRIES, st.one_of(RECORDS.map(lambda r: r[0] if r else {}), st.none(),
                                    st.dictionaries(NAMES, JSON_VALUES, max_size=6),
                                    JSON_VALUES)),
    JSON_VALUES,
), max_size=6)


@FUZZ
@given(features=FEATURES, container=st.sampled_from(["collection", "odd", "no-type"]),
       fmt=st.sampled_from(["auto", "geojson", "phila"]), data=st.data())
def test_arbitrary_geojson_and_mappings(store: EmbeddedStore, workdir: Path,
                                        features: list[object], container: str, fmt: str,
                                        data: st.DataObject) -> None:
    if container == "collection":
        doc: object = {"type": "FeatureCollection", "features": features}
    elif container == "odd":
        doc = {"type": "FeatureCollection", "features": data.draw(JSON_VALUES)}
    else:
        doc = {"features": features}
    try:
        mapping = data.draw(mappings(["service_request_id", "requested_datetime", "x"]))
    except InputError as err:
        assert str(err).strip()
        return
    outcome(json.dumps(doc).encode(), "file.geojson", workdir, store, fmt, mapping)


#: Inputs the fuzzing found crashing ingest (each once raised something else than an
#: InputError or left rows unaccounted for), kept as plain regression cases.
FOUND = [
    ("records.json", "auto", ColumnMapping(),
     json.dumps([{"service_request_id": "1", "_source_row": "-75.16"}]).encode()),
    ("records.json", "auto", ColumnMapping(constants={"service_request_id": "2024"}),
     json.dumps([{"service_request_id": None, "lon": "", "start_time": "", "LAT": None}])
     .encode()),
    ("spaces.csv", "csv", ColumnMapping(columns={"service_request_id": "id",
                                                 "requested_datetime": "t"}),
     b"id,t,lat,lat ,address\n1,2024-05-01T10:00:00,39.95,39.9,x\n"),
    ("lines.json", "auto", ColumnMapping(),
     json.dumps([{"service_request_id": "1", "requested_datetime": "2024-05-01",
                  "lat": 1, "lon": 2, "note": "a\u2028b\x85c\u2029d"}]).encode()),
    ("epoch.csv", "auto", ColumnMapping(),
     b"service_request_id,requested_datetime,lat,lon\n3,17145576000000,39.95,-75.16\n"
     b"4,9223372037,39.95,-75.16\n5,9999-12-31T00:00:00Z,39.95,-75.16\n"
     b"6,1/1/9999 10:00,39.95,-75.16\n"),
    ("points.geojson", "auto", ColumnMapping(),
     json.dumps({"type": "FeatureCollection", "features": [
         {"type": "Feature", "geometry": {"type": "Point", "coordinates": 5},
          "properties": {"service_request_id": "1", "requested_datetime": "2024-05-01"}},
         {"type": "Feature", "geometry": {"type": "Point", "coordinates": {"a": 1}},
          "properties": ["not", "an", "object"]},
         "not a feature"]}).encode()),
    ("odd.geojson", "geojson", ColumnMapping(),
     json.dumps({"type": "FeatureCollection", "features": "abc"}).encode()),
    ("reserved.geojson", "geojson", ColumnMapping(),
     json.dumps({"type": "FeatureCollection", "features": [
         {"type": "Feature", "geometry": None,
          "properties": {"_geometry_error": "x", "service_request_id": "1"}}]}).encode()),
]


@pytest.mark.parametrize(("name", "fmt", "mapping", "data"), FOUND,
                         ids=[f"{i}-{case[0]}" for i, case in enumerate(FOUND)])
def test_found_by_fuzzing(store: EmbeddedStore, workdir: Path, name: str, fmt: str,
                          mapping: ColumnMapping, data: bytes) -> None:
    outcome(data, name, workdir, store, fmt, mapping)
