"""The quarantine regression corpus: input files, and what validating them exports.

The inputs are the real request files of ``data/philadelphia/requests/`` and the files
under ``tests/geo/ingest/corpus/`` (the bad-input cases, the fuzzing's finds, every time
form, coordinate oddity, ZIP, status word, encoding and reader; made once by
:func:`write_inputs` and committed, so they never change). Each is read, mapped and
validated with a fixed ``now`` and batch id; the quarantine is written as the
``hotspot311 quarantine --output`` command writes it (:func:`geo.ingest.cells.to_csv`) and
the usable requests as ``hotspot311 export requests --format csv`` writes them. The
expected files under ``corpus/expected/`` were made by the code before issue 19 changed
the readers and validation (``python -m tests.geo.ingest.quarantine_corpus``);
``test_quarantine_corpus.py`` compares byte for byte.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from geo.ingest.cells import to_csv
from geo.ingest.export import export_requests
from geo.ingest.mapping import ColumnMapping, apply_mapping
from geo.ingest.readers import read_requests
from geo.ingest.validate import validate
from layers.profile import CityProfile, load_profile

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
INPUTS = CORPUS / "inputs"
EXPECTED = CORPUS / "expected"
REAL = HERE.parents[2] / "data" / "philadelphia" / "requests"
NOW = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
BATCH = "corpus-batch"


@dataclass(frozen=True)
class Entry:
    """One corpus file and how it is read."""

    path: Path
    fmt: str = "auto"
    mapping: ColumnMapping = field(default_factory=ColumnMapping)

    @property
    def name(self) -> str:
        return self.path.name


PLAIN = ColumnMapping(columns={"service_request_id": "CaseNo", "requested_datetime": "Opened",
                               "lat": "Y", "lon": "X", "address": "Where",
                               "updated_datetime": "Changed"},
                      constants={"service_name": "Plain Service"})


#: The real points file (X, Y, T: no id, T a fraction of the year) read as a plain CSV.
POINTS = ColumnMapping(columns={"service_request_id": "T", "requested_datetime": "T",
                                "lat": "Y", "lon": "X"})


def entries() -> list[Entry]:
    """Every corpus file, real ones first."""
    out = [Entry(p, "csv", POINTS) if p.name.endswith("-points.csv") else Entry(p)
           for p in sorted(REAL.iterdir()) if p.is_file()]
    for p in sorted(INPUTS.iterdir()):
        if p.name.startswith("plain"):
            out.append(Entry(p, "csv", PLAIN))
        else:
            out.append(Entry(p))
    return out


def exported(entry: Entry, profile: CityProfile) -> tuple[bytes, bytes]:
    """The quarantine and the requests of one file, as the CLI exports them (CSV bytes)."""
    raw = read_requests(entry.path, fmt=entry.fmt)
    mapped = apply_mapping(raw.frame, entry.mapping, fmt=raw.format)
    batch = validate(mapped, profile=profile, batch_id=BATCH, source_file=entry.name, now=NOW)
    q = to_csv(batch.quarantine).encode("utf-8", "surrogatepass")
    tmp = EXPECTED / f".tmp-{entry.name}.csv"
    try:
        export_requests(batch.requests, tmp, fmt="csv")
        r = tmp.read_bytes()
    finally:
        tmp.unlink(missing_ok=True)
    return q, r


def expected_quarantine(entry: Entry) -> Path:
    """Where the expected quarantine export of ``entry`` is."""
    return EXPECTED / f"{entry.name}.quarantine.csv"


#: SHA-256 of each file's expected request export (the exports are large; the
#: quarantine exports are kept whole).
REQUEST_DIGESTS = EXPECTED / "requests.sha256.json"


def digest(data: bytes) -> str:
    """SHA-256 hex digest."""
    return hashlib.sha256(data).hexdigest()


# --- making the inputs (once) ---------------------------------------------------------------

TIMES = ["2024-05-01 10:00", "2024-05-01T10:00:00", "2024-05-01T10:00:00Z",
         "2024-05-01T10:00:00-04:00", "2024-05-01T10:00:00+0530", "5/1/2024 10:00",
         "05/01/2024 10:00:59", "5/1/2024 10:00:00 PM", "5/1/2024 1:05 AM", "5/1/2024",
         "2024/05/01 10:00", "2024/05/01 10:00:30", "2024/05/01", "1714557600000",
         "1714557600", "1714557600.5", "17145576000000", "-1", "0", "2024-11-03 01:30",
         "2024-03-10 02:30", "11/3/2024 1:30", "2099-01-01 10:00", "2026-07-01 11:00",
         "2026-07-01T13:00:00Z", "yesterday", "13/45/2024 10:00", "", " ", "nan", "NULL",
         "None", "NaT", "2024-02-30", "2024-05-01T10:00:00.123456Z", "1/1/9999 10:00",
         "9999-12-31T00:00:00Z", "1e12", "  2024-05-01 10:00  ", "2024-05-01 10:00:00.5"]
COORDS = [("39.9526", "-75.1652"), ("-75.1652", "39.9526"), ("0", "0"), ("0.0", "0.0"),
          ("", ""), ("NaN", "-75.1652"), ("inf", "-inf"), ("40.7128", "-74.0060"),
          ("39.95", ""), ("abc", "-75.16"), ("39.9526 ", " -75.1652"), ("1e1", "2"),
          ("39.98", "-75.12"), ("40.05", "-75.05"), ("39.90", "-75.25"), ("90", "180"),
          ("39.9526000001", "-75.1652"), ("-0", "0")]
ADDRESSES = ["", "1400 JFK BLVD", "1 PENN SQ", "=HYPERLINK(\"x\")", "  ", "Caf\u00e9 St",
             "4th and mkt", "<b>x</b>"]
STATUS = ["open", "Closed", "CLOSED", "In Progress", "completed", "cancelled", "new", "",
          "weird", "Resolved ", "reopened", "done", "Pending"]
ZIPS = ["19122", "19122.0", "19122-1234", "1914", "", "abcde", "19122.00", " 19104 ",
        "191220", "19104-22"]


def _messy(n: int, seed: int) -> pd.DataFrame:
    """``n`` rows mixing every form above, with duplicate ids and unknown columns."""
    rng = np.random.default_rng(seed)
    ids = [f"M{int(i)}" for i in rng.integers(0, n * 3 // 4, n)]
    ids = [i if rng.random() > 0.03 else "" for i in ids]
    ids = [f"{i[1:]}.0" if rng.random() < 0.05 and i else i for i in ids]
    coords = [COORDS[int(k)] for k in rng.integers(0, len(COORDS), n)]
    frame = pd.DataFrame({
        "service_request_id": ids,
        "requested_datetime": [TIMES[int(k)] for k in rng.integers(0, len(TIMES), n)],
        "updated_datetime": [TIMES[int(k)] if rng.random() < 0.7 else ""
                             for k in rng.integers(0, len(TIMES), n)],
        "closed_datetime": [TIMES[int(k)] if rng.random() < 0.4 else ""
                            for k in rng.integers(0, len(TIMES), n)],
        "expected_datetime": [TIMES[int(k)] if rng.random() < 0.2 else ""
                              for k in rng.integers(0, len(TIMES), n)],
        "status": [STATUS[int(k)] for k in rng.integers(0, len(STATUS), n)],
        "service_name": [["Graffiti Removal", "Street Light Outage", "", "Illegal Dumping"][
            int(k)] for k in rng.integers(0, 4, n)],
        "agency_responsible": [["Streets", "", "L&I"][int(k)] for k in rng.integers(0, 3, n)],
        "description": [["", "pothole", "line1\nline2", "comma, quote \"x\"", "-5", "\u2028x"][
            int(k)] for k in rng.integers(0, 6, n)],
        "address": [ADDRESSES[int(k)] for k in rng.integers(0, len(ADDRESSES), n)],
        "zipcode": [ZIPS[int(k)] for k in rng.integers(0, len(ZIPS), n)],
        "lat": [c[0] for c in coords],
        "lon": [c[1] for c in coords],
        "media_url": ["" if rng.random() < 0.8 else "http://x/y.jpg" for _ in range(n)],
        "source": [["Web", "Phone", ""][int(k)] for k in rng.integers(0, 3, n)],
        "ward": [str(int(k)) if k else "" for k in rng.integers(0, 66, n)],
        "Notes ": [["", "a", "=1+1", "\u00e9"][int(k)] for k in rng.integers(0, 4, n)],
        "synthetic": [["", "true", "false", "1"][int(k)] for k in rng.integers(0, 4, n)],
    })
    return frame


def write_inputs() -> None:
    """Write the corpus inputs (run once; they are committed)."""
    INPUTS.mkdir(parents=True, exist_ok=True)
    header = ("service_request_id,requested_datetime,updated_datetime,status,address,lat,lon,"
              "description\n")

    def row(sid: str = "1", req: str = "2024-05-01 10:00", upd: str = "", address: str = "",
            lat: object = 39.9526, lon: object = -75.1652, desc: str = "") -> str:
        return f"{sid},{req},{upd},open,{address},{lat},{lon},{desc}\n"

    bad = [row("f", req="2099-01-01 10:00"), row("ok"), row("s", lat=-75.1652, lon=39.9526),
           row("n1", lat="NaN"), row("n2", lat="inf", lon="-inf"),
           row("n3", lat="nan", address="1400 JFK BLVD"), row("n4", lat="", lon="",
                                                               address="1 PENN SQ"),
           row("n5", lat="", lon=""), row("z", lat=0, lon=0),
           row("za", lat="0.0", lon="0.0", address="1 PENN SQ"),
           row("nyc", lat=40.7128, lon=-74.0060),
           row("nyca", lat=40.7128, lon=-74.0060, address="1 WALL ST"), row(""), row("  "),
           row("u", req="yesterday"), row("u2", req="13/45/2024 10:00"), row("m", req=""),
           row("d", upd="2024-05-02 10:00", desc="old"),
           row("d", upd="2024-05-03 10:00", desc="newest"),
           row("d", upd="2024-05-01 10:00", desc="older"),
           row("t", upd="2024-05-02 10:00", desc="first"),
           row("t", upd="2024-05-02 10:00", desc="second"),
           row("dn", desc="no upd 1"), row("dn", desc="no upd 2"),
           row("dm", upd="2024-05-02 10:00", desc="a"), row("dm", desc="b")]
    (INPUTS / "bad-input.csv").write_text(header + "".join(bad), encoding="utf-8")

    messy = _messy(3000, seed=19)
    messy.to_csv(INPUTS / "messy.csv", index=False)
    messy.iloc[:800].to_csv(INPUTS / "messy-crlf-cp1252.csv", index=False,
                            lineterminator="\r\n", encoding="cp1252", errors="replace")
    (INPUTS / "messy-bom.csv").write_bytes(
        b"\xef\xbb\xbf" + messy.iloc[800:1200].to_csv(index=False).encode("utf-8"))
    latin = messy.iloc[1200:1500].copy()
    latin["description"] = "\u00fe\u00e9\u00ff \x81"  # not cp1252 (0x81): read as latin-1
    (INPUTS / "messy-latin1.csv").write_bytes(latin.to_csv(index=False).encode("latin-1"))
    records = messy.iloc[1500:2100].replace({"": None}).to_dict("records")
    for i, r in enumerate(records):
        if i % 7 == 0:
            r["nested"] = {"k": [1, 2, {"z": None}], "s": "t"}
        if i % 5 == 0 and r.get("lat") not in (None, ""):
            with contextlib.suppress(ValueError):
                r["lat"] = float(r["lat"])
        if i % 11 == 0:
            r["service_request_id"] = 1000 + i
        if i % 13 == 0:
            r["requested_datetime"] = 1714557600000 + i
    (INPUTS / "messy-phila.json").write_text(json.dumps(records, ensure_ascii=False))
    open311 = [{("long" if k == "lon" else k): v for k, v in r.items()} for r in records[:300]]
    (INPUTS / "messy-open311.json").write_text(json.dumps({"service_requests": open311}))
    features = []
    for i, r in enumerate(records):
        props = {k: v for k, v in r.items() if k not in ("lat", "lon")}
        geom: object
        if i % 9 == 0:
            geom = {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}
        elif i % 17 == 0:
            geom = None
        elif i % 19 == 0:
            geom = {"type": "Point", "coordinates": [1]}
        else:
            try:
                geom = {"type": "Point", "coordinates": [float(r["lon"]), float(r["lat"])]}
            except (TypeError, ValueError):
                geom = {"type": "Point", "coordinates": []}
        features.append({"type": "Feature", "geometry": geom, "properties": props})
    (INPUTS / "messy.geojson").write_text(json.dumps(
        {"type": "FeatureCollection", "features": features}, allow_nan=True))
    plain = messy.iloc[2100:3000].rename(columns={
        "service_request_id": "CaseNo", "requested_datetime": "Opened", "lat": "Y",
        "lon": "X", "address": "Where", "updated_datetime": "Changed"})
    plain.to_csv(INPUTS / "plain-mapped.csv", index=False)
    (INPUTS / "found-epoch.csv").write_bytes(
        b"service_request_id,requested_datetime,lat,lon\n3,17145576000000,39.95,-75.16\n"
        b"4,9223372037,39.95,-75.16\n5,9999-12-31T00:00:00Z,39.95,-75.16\n"
        b"6,1/1/9999 10:00,39.95,-75.16\n")
    (INPUTS / "found-lines.json").write_text(json.dumps(
        [{"service_request_id": "1", "requested_datetime": "2024-05-01", "lat": 1, "lon": 2,
          "note": "a\u2028b\x85c\u2029d"}]))
    (INPUTS / "valid-mixed.csv").write_bytes(
        b"service_request_id,requested_datetime,lat,lon,address,note\n"
        b"1,2024-05-01T10:00:00,39.95,-75.16,1001 LONEY ST,a\n"
        b"2,5/1/2024 10:00,-75.16,39.95,,\"b,\n c\"\n"
        b'3,1714557600000,0,0,,"x"\n')
    (INPUTS / "header-only.csv").write_text("service_request_id,requested_datetime,lat,lon\n")
    (INPUTS / "renamed-phila.csv").write_text(
        "request_id,start_time,close_time,type,department,lat,lon\n"
        "r1,2024-05-01 10:00,2024-05-02 10:00,Graffiti Removal,Streets,39.95,-75.16\n"
        "r2,2024-05-01 10:00,,Graffiti Removal,Streets,39.95,-75.16\n"
        "r1,2024-05-01 10:00,2024-05-03 10:00,Graffiti Removal,Streets,39.95,-75.16\n")


def main() -> None:
    """``write_inputs`` when asked (``--inputs``), then write the expected exports."""
    if "--inputs" in sys.argv:
        write_inputs()
    EXPECTED.mkdir(parents=True, exist_ok=True)
    profile = load_profile("philadelphia")
    digests = {}
    for entry in entries():
        q, r = exported(entry, profile)
        expected_quarantine(entry).write_bytes(q)
        digests[entry.name] = digest(r)
        lines = q.count(b"\r\n") - 1
        print(f"{entry.name}: {lines} quarantine lines, {len(r)} request bytes")
    REQUEST_DIGESTS.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
