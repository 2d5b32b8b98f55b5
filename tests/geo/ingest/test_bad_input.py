"""The bad-input corpus: every file gives a clear error or a quarantine, and no row is lost.

Each case goes through :func:`geo.ingest.pipeline.ingest` into an embedded store and through the
``hotspot311 ingest`` command (exit 2 for input errors, 0 otherwise); rows read always
equal rows stored + rows quarantined.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from geo.ingest.pipeline import ingest
from geo.ingest.validate import parse_extra
from geo.store.embedded import EmbeddedStore
from hotspot311.cli.main import cli
from hotspot311.errors import InputError, MappingError
from layers.profile import CityProfile

LAT, LON = 39.9526, -75.1652  # City Hall
HEADER = ("service_request_id,requested_datetime,updated_datetime,status,address,lat,lon,"
          "description\n")


def row(sid: str = "1", req: str = "2024-05-01 10:00", upd: str = "", address: str = "",
        lat: object = LAT, lon: object = LON, desc: str = "") -> str:
    return f"{sid},{req},{upd},open,{address},{lat},{lon},{desc}\n"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, phila: CityProfile) -> EmbeddedStore:
    """An embedded store with the Philadelphia layers loaded once, copied per test."""
    store = EmbeddedStore(tmp_path_factory.mktemp("template") / "store", phila)
    store.ensure_profile_layers()
    for gen in store.active().values():  # build the join indexes once
        store._index(gen)
    return store


@pytest.fixture
def store_dir(tmp_path: Path, template: EmbeddedStore) -> Path:
    target = tmp_path / "store"
    shutil.copytree(template.root, target)
    return target


@pytest.fixture
def store(store_dir: Path, phila: CityProfile, template: EmbeddedStore) -> EmbeddedStore:
    store = EmbeddedStore(store_dir, phila)
    # the copied layer generations are identical: reuse their join indexes (speed only)
    store._index_cache = template._index_cache
    return store


def run_cli(store_dir: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        cli, ["--store", str(store_dir), "--city", "philadelphia", "ingest", *args]
    )
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def balanced(store: EmbeddedStore, rows_read: int) -> None:
    """Every row read is stored or quarantined (each exactly once)."""
    q = store.quarantine()
    assert len(store.requests()) + len(q) == rows_read
    assert q["quarantine_id"].is_unique


# --- input errors ------------------------------------------------------------------------


@dataclass
class Broken:
    name: str
    data: bytes
    error: type[InputError]
    message: str  # regex; the file name is checked separately where the message has it
    names_file: bool = True


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(range(256))
BROKEN = [
    Broken("empty.csv", b"", InputError, r"the file is empty; expected CSV with a header row"),
    Broken("blank.csv", b"  \r\n\n\t\n", InputError, r"the file is empty"),
    Broken("image.csv", PNG, InputError,
           r"binary file \(it holds NUL bytes\); expected CSV, JSON or GeoJSON"),
    Broken("nul.json", b'[{"service_request_id": "1\x00"}]', InputError, r"binary file"),
    Broken("truncated.json", b'[{"service_request_id": "1", ', InputError,
           r"not valid JSON \(.* at line 1\)"),
    Broken("scalars.json", b"[1, 2, 3]", InputError,
           r"every record must be a JSON object; records \[1, 2, 3\] are not"),
    Broken("columns.csv", b"Foo,Bar\n1,2\n", MappingError,
           r"required fields not mapped: service_request_id, requested_datetime, lat and lon, "
           r"or address\. The file's columns are: 'Foo', 'Bar'", names_file=False),
    Broken("no-time.csv", f"service_request_id,lat,lon\n1,{LAT},{LON}\n".encode(),
           MappingError, r"not mapped: requested_datetime\. The file's columns are: "
           r"'service_request_id', 'lat', 'lon'", names_file=False),
]


@pytest.mark.parametrize("case", BROKEN, ids=lambda c: c.name)
def test_input_errors(case: Broken, tmp_path: Path, store_dir: Path, phila: CityProfile) -> None:
    f = tmp_path / case.name
    f.write_bytes(case.data)
    store = EmbeddedStore(store_dir, phila)
    before = store.batches()
    with pytest.raises(case.error, match=case.message) as info:
        ingest(f, store)
    if case.names_file:
        assert str(f) in str(info.value)
    # nothing written
    assert len(store.requests()) == 0 and len(store.quarantine()) == 0
    assert len(store.batches()) == len(before)
    code, out, err = run_cli(store_dir, str(f))
    assert code == 2
    assert err.startswith("error: ")
    assert pd.Series([err]).str.contains(case.message, regex=True).all()
    assert "Traceback" not in err + out


def test_missing_file_is_input_error(tmp_path: Path, store_dir: Path) -> None:
    code, _, err = run_cli(store_dir, str(tmp_path / "nope.csv"))
    assert code == 2
    assert "nope.csv does not exist" in err


# --- rows that are quarantined or repaired -----------------------------------------------


@dataclass
class Case:
    name: str
    rows: list[str]
    stored: set[str]
    quarantined: dict[str, str] = field(default_factory=dict)  # id (or row) -> reason
    check: Callable[[EmbeddedStore], None] | None = None


def _swapped(store: EmbeddedStore) -> None:
    r = store.requests().set_index("service_request_id").loc["s"]
    assert r["lat"] == pytest.approx(LAT) and r["lon"] == pytest.approx(LON)
    assert r["geometry"].y == pytest.approx(LAT) and r["geometry"].x == pytest.approx(LON)
    assert r["quality_flags"] == "latlon_swapped"
    # joined at City Hall's place, like the unswapped row
    ok = store.requests().set_index("service_request_id").loc["ok"]
    assert r["x"] == pytest.approx(ok["x"]) and r["y"] == pytest.approx(ok["y"])
    for key in store.layer_keys():
        assert r[key] == ok[key]


def _duplicate(store: EmbeddedStore) -> None:
    r = store.requests().set_index("service_request_id").loc["d"]
    assert r["description"] == "newest"
    assert r["updated_datetime"] == pd.Timestamp("2024-05-03 14:00", tz="UTC")
    q = store.quarantine()
    dup = q[q["reason"] == "duplicate_id"].sort_values("source_row")
    assert dup["source_row"].tolist() == [1, 3]
    assert dup["service_request_id"].tolist() == ["d", "d"]
    # row 2 of the file holds the newest updated_datetime and is the one kept
    assert dup["detail"].str.contains("row 2 of this file").all()
    assert json.loads(dup["raw"].iloc[0])["description"] == "old"


def _tie(store: EmbeddedStore) -> None:
    r = store.requests().set_index("service_request_id").loc["t"]
    assert r["description"] == "second"  # same updated time: the later row wins


def _future(store: EmbeddedStore) -> None:
    q = store.quarantine().set_index("service_request_id")
    assert "2099-01-01" in q.loc["f", "detail"]
    assert "in the future" in q.loc["f", "detail"]


def _nan(store: EmbeddedStore) -> None:
    q = store.quarantine().set_index("service_request_id")
    assert "'NaN'" in q.loc["n1", "detail"] and "not finite" in q.loc["n1", "detail"]
    assert "1400 JFK BLVD" in q.loc["n3", "detail"]
    assert q.loc["n3", "address"] == "1400 JFK BLVD"


def _unparseable(store: EmbeddedStore) -> None:
    q = store.quarantine().set_index("service_request_id")
    assert "'yesterday'" in q.loc["u", "detail"]
    assert "epoch ms, ISO 8601" in q.loc["u", "detail"]


CASES = [
    Case("future.csv", [row("f", req="2099-01-01 10:00"), row("ok")], {"ok"},
         {"f": "time_in_future"}, _future),
    Case("swapped.csv", [row("s", lat=LON, lon=LAT), row("ok")], {"s", "ok"}, check=_swapped),
    Case("nan.csv", [row("n1", lat="NaN", lon=LON), row("n2", lat="inf", lon="-inf"),
                     row("n3", lat="nan", lon=LON, address="1400 JFK BLVD"),
                     row("n4", lat="", lon="", address="1 PENN SQ"),
                     row("n5", lat="", lon="")],
         set(), {"n1": "invalid_coordinates", "n2": "invalid_coordinates",
                 "n3": "needs_geocoding", "n4": "needs_geocoding", "n5": "missing_coordinates"},
         _nan),
    Case("zero.csv", [row("z", lat=0, lon=0), row("za", lat="0.0", lon="0.0", address="1 PENN SQ")],
         set(), {"z": "placeholder_coordinates", "za": "needs_geocoding"}),
    Case("outside.csv", [row("nyc", lat=40.7128, lon=-74.0060),
                         row("nyca", lat=40.7128, lon=-74.0060, address="1 WALL ST")],
         set(), {"nyc": "outside_city", "nyca": "needs_geocoding"}),
    Case("no-id.csv", [row(""), row("  "), row("ok")], {"ok"},
         {"row1": "missing_id", "row2": "missing_id"}),
    Case("bad-time.csv", [row("u", req="yesterday"), row("u2", req="13/45/2024 10:00"),
                          row("m", req="")], set(),
         {"u": "unparseable_time", "u2": "unparseable_time", "m": "missing_time"}, _unparseable),
    Case("duplicate.csv", [row("d", upd="2024-05-02 10:00", desc="old"),
                           row("d", upd="2024-05-03 10:00", desc="newest"),
                           row("d", upd="2024-05-01 10:00", desc="older")],
         {"d"}, {"row1": "duplicate_id", "row3": "duplicate_id"}, _duplicate),
    Case("tie.csv", [row("t", upd="2024-05-02 10:00", desc="first"),
                     row("t", upd="2024-05-02 10:00", desc="second")],
         {"t"}, {"row1": "duplicate_id"}, _tie),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_quarantine_corpus(case: Case, tmp_path: Path, store: EmbeddedStore) -> None:
    f = tmp_path / case.name
    f.write_text(HEADER + "".join(case.rows), encoding="utf-8")
    report = ingest(f, store)
    n = len(case.rows)
    assert report.rows_read == n
    assert report.balanced
    assert report.result.inserted == len(case.stored)
    want: dict[str, int] = {}
    for reason in case.quarantined.values():
        want[reason] = want.get(reason, 0) + 1
    assert report.result.quarantined == want
    assert set(store.requests()["service_request_id"]) == case.stored
    q = store.quarantine()
    got = {}
    for _, r in q.iterrows():
        key = r["service_request_id"] or f"row{r['source_row']}"
        if key in got or key in case.stored:
            key = f"row{r['source_row']}"
        got[key] = r["reason"]
    assert got == case.quarantined
    assert (q["source_file"] == case.name).all()
    assert q["detail"].notna().all() and (q["detail"].str.len() > 10).all()
    balanced(store, n)
    if case.check is not None:
        case.check(store)


def test_quarantine_corpus_cli(tmp_path: Path, store_dir: Path, phila: CityProfile) -> None:
    """The whole corpus in one file through ``hotspot311 ingest``."""
    lines: list[str] = []
    want: dict[str, int] = {}
    stored = 0
    for i, case in enumerate(CASES):
        lines += [r if r.startswith((",", " ")) else f"c{i}-{r}" for r in case.rows]
        stored += len(case.stored)
        for reason in case.quarantined.values():
            want[reason] = want.get(reason, 0) + 1
    f = tmp_path / "corpus.csv"
    f.write_text(HEADER + "".join(lines), encoding="utf-8")
    code, out, err = run_cli(store_dir, str(f))
    assert code == 0, err
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].replace(",", "").isdigit():
            counts[parts[0]] = int(parts[1].replace(",", ""))
    assert counts["read"] == len(lines)
    assert counts["inserted"] == stored
    assert counts["quarantined"] == sum(want.values())
    assert {k: v for k, v in counts.items() if k in want} == want
    assert counts["inserted"] + counts["quarantined"] == counts["read"]
    assert "flagged latlon_swapped" in out
    written = EmbeddedStore(store_dir, phila)
    assert len(written.requests()) == stored
    balanced(written, len(lines))
    code, out, _ = run_cli(store_dir, "--strict", str(f))
    assert code == 4
    assert "unchanged" in out
    assert len(EmbeddedStore(store_dir, phila).quarantine()) == sum(want.values())


def test_header_only_is_zero_rows(tmp_path: Path, store: EmbeddedStore, store_dir: Path) -> None:
    f = tmp_path / "header.csv"
    f.write_text(HEADER, encoding="utf-8")
    report = ingest(f, store)
    assert report.rows_read == 0 and report.balanced
    assert report.result.inserted == 0 and report.result.quarantined == {}
    assert len(store.batches()) == 1
    code, out, _ = run_cli(store_dir, str(f))
    assert code == 0
    assert "read" in out


def test_latin1_text_survives(tmp_path: Path, store: EmbeddedStore) -> None:
    f = tmp_path / "latin1.csv"
    f.write_bytes((HEADER + row("e", address="123 CAF\u00c9 ST", desc="d\u00e9j\u00e0 vu")
                   ).encode("latin-1"))
    report = ingest(f, store)
    assert report.encoding == "cp1252"
    r = store.requests().set_index("service_request_id").loc["e"]
    assert r["address"] == "123 CAF\u00c9 ST"
    assert r["description"] == "d\u00e9j\u00e0 vu"
    # a byte cp1252 leaves undefined (0x81) still decodes, as Latin-1, with nothing lost
    g = tmp_path / "latin1-raw.csv"
    g.write_bytes(HEADER.encode() + b"x,2024-05-01 10:00,,open,A\x81B ST,39.9526,-75.1652,\n")
    report = ingest(g, store)
    assert report.encoding == "latin-1"
    assert store.requests().set_index("service_request_id").loc["x", "address"] == "A\x81B ST"


def test_unknown_columns_survive_the_store(tmp_path: Path, store: EmbeddedStore) -> None:
    f = tmp_path / "extra.csv"
    f.write_text(HEADER.rstrip("\n") + ",Ward,Crew Note\n"
                 + row("x").rstrip("\n") + ',5,"needs ladder, 2 people"\n', encoding="utf-8")
    ingest(f, store)
    extra = parse_extra(store.requests().loc[0, "extra"])
    assert extra == {"Ward": "5", "Crew Note": "needs ladder, 2 people"}


def test_reingest_is_idempotent(tmp_path: Path, store: EmbeddedStore, store_dir: Path,
                                phila: CityProfile) -> None:
    rows = [row("a"), row("b", lat=LON, lon=LAT), row(""), row("c", lat=0, lon=0),
            row("d", upd="2024-05-02 10:00"), row("d", upd="2024-05-01 10:00"),
            row("e", req="never")]
    f = tmp_path / "mixed.csv"
    f.write_text(HEADER + "".join(rows), encoding="utf-8")
    first = ingest(f, store)
    assert first.result.inserted == 3 and first.balanced
    q1 = store.quarantine()
    assert len(q1) == 4
    second = ingest(f, store)
    assert second.balanced
    assert second.result.inserted == 0 and second.result.updated == 0
    assert second.result.unchanged == 3
    assert second.result.quarantined == first.result.quarantined
    q2 = store.quarantine()
    assert len(q2) == 4
    assert sorted(q2["quarantine_id"]) == sorted(q1["quarantine_id"])
    assert len(store.requests()) == 3
    code, out, _ = run_cli(store_dir, str(f))
    assert code == 0
    assert len(EmbeddedStore(store_dir, phila).quarantine()) == 4
    assert len(EmbeddedStore(store_dir, phila).requests()) == 3
    assert [line.split() for line in out.splitlines()][1:5] == [
        ["read", "7"], ["inserted", "0"], ["updated", "0"], ["unchanged", "3"]]
    assert len(EmbeddedStore(store_dir, phila).batches()) == 3


def test_times_in_future_checked_against_now(tmp_path: Path, store: EmbeddedStore) -> None:
    f = tmp_path / "soon.csv"
    f.write_text(HEADER + row("s", req="2024-05-03 10:00"), encoding="utf-8")
    report = ingest(f, store, now=datetime(2024, 5, 1, tzinfo=UTC))
    assert report.result.quarantined == {"time_in_future": 1}
    report = ingest(f, store, now=datetime(2024, 5, 3, tzinfo=UTC))
    assert report.result.quarantined == {} and report.result.inserted == 1


# --- very long lines ---------------------------------------------------------------------

FIFTY_MB = 50 * 1024 * 1024


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_fifty_megabyte_field(tmp_path: Path, store: EmbeddedStore) -> None:
    f = tmp_path / "long.csv"
    with f.open("wb") as out:
        out.write(HEADER.encode())
        out.write(f"big,2024-05-01 10:00,,open,,{LAT},{LON},".encode())
        out.write(b"a" * FIFTY_MB)
        out.write(b"\n")
        out.write(row("small").encode())
    report = ingest(f, store)
    assert report.rows_read == 2 and report.balanced
    req = store.requests().set_index("service_request_id")
    assert len(req.loc["big", "description"]) == FIFTY_MB
    assert pd.isna(req.loc["small", "description"])


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_fifty_megabytes_without_newline(tmp_path: Path, store: EmbeddedStore,
                                         store_dir: Path) -> None:
    f = tmp_path / "oneline.csv"
    f.write_bytes(b"x" * FIFTY_MB)
    with pytest.raises(MappingError, match=r"required fields not mapped") as info:
        ingest(f, store)
    assert len(str(info.value)) < 1000  # the 50 MB "column name" is cut short
    code, _, err = run_cli(store_dir, str(f))
    assert code == 2
    assert len(err) < 1000
