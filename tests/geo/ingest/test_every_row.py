"""Every row is accounted for, whatever the shape of the file (issue 20, part 3).

The shapes that broke ingest or could: every row quarantined (another city's file, so no
row is kept), only a header (no row at all), every row a duplicate of one id, every row
without extra columns, a re-ingest where every row is unchanged. Each in every reader
(Philadelphia CSV and JSON, Open311 JSON, GeoJSON, plain CSV with a mapping) and in both
stores; and the Baltimore-shaped case on a real file of the shared data, read under a
profile whose city lies elsewhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from geo.ingest.mapping import ColumnMapping
from geo.ingest.pipeline import IngestReport, ingest
from geo.store.base import Store
from hotspot311.cli.main import cli
from tests.conftest import SHARED, write_squares
from tests.geo.store.stores import NOW

#: Inside Testville (the store fixture's city) and inside Baltimore.
INSIDE = (39.95, -75.16)
BALTIMORE = (39.2904, -76.6122)
READERS = ("phila-csv", "phila-json", "open311", "geojson", "csv")
#: The plain CSV reader's column names, mapped with --map.
PLAIN = {"service_request_id": "CaseNo", "requested_datetime": "Opened", "lat": "Y",
         "lon": "X", "address": "Where"}


def write(reader: str, rows: list[dict[str, object]], path: Path) -> tuple[Path, ColumnMapping]:
    """``rows`` (canonical names; ``lat``/``lon`` may be missing) in one reader's format."""
    mapping = ColumnMapping()
    if reader in ("phila-csv", "csv"):
        frame = pd.DataFrame(rows, columns=list(dict.fromkeys(
            k for r in rows for k in r)) or ["service_request_id", "requested_datetime",
                                              "lat", "lon"])
        if reader == "csv":
            frame = frame.rename(columns=PLAIN)
            mapping = ColumnMapping(columns={k: v for k, v in PLAIN.items()
                                             if v in frame.columns})
        path = path.with_suffix(".csv")
        frame.to_csv(path, index=False)
    elif reader == "phila-json":
        path = path.with_suffix(".json")
        path.write_text(json.dumps(rows))
    elif reader == "open311":
        path = path.with_suffix(".json")
        out = [{("long" if k == "lon" else k): v for k, v in r.items()} for r in rows]
        path.write_text(json.dumps({"service_requests": out}))
    else:
        path = path.with_suffix(".geojson")
        features = [{"type": "Feature",
                     "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]}
                     if "lat" in r else None,
                     "properties": {k: v for k, v in r.items() if k not in ("lat", "lon")}}
                    for r in rows]
        path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path, mapping


def rows_at(point: tuple[float, float], n: int, *, extra: bool = True,
            same_id: bool = False) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for i in range(n):
        row: dict[str, object] = {
            "service_request_id": "DUP" if same_id else f"R{i}",
            "requested_datetime": f"2024-05-0{1 + i % 9}T10:00:00",
            "lat": point[0], "lon": point[1]}
        if extra:
            row["ward_note"] = f"note {i}"
        out.append(row)
    return out


def run(path: Path, store: Store, mapping: ColumnMapping, reader: str) -> IngestReport:
    fmt = {"phila-csv": "phila", "phila-json": "phila", "open311": "open311",
           "geojson": "geojson", "csv": "csv"}[reader]
    report = ingest(path, store, fmt=fmt, mapping=mapping, now=NOW)
    assert report.balanced, report
    r = report.result
    assert r.inserted + r.updated + r.unchanged + sum(r.quarantined.values()) == report.rows_read
    store.requests()  # the store stays readable
    store.quarantine()
    return report


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("extra", [True, False], ids=["extras", "no-extras"])
def test_every_row_outside_the_city(store: Store, tmp_path: Path, reader: str,
                                    extra: bool) -> None:
    path, mapping = write(reader, rows_at(BALTIMORE, 5, extra=extra), tmp_path / "far")
    report = run(path, store, mapping, reader)
    assert report.rows_read == 5 and report.result.quarantined == {"outside_city": 5}
    assert report.hint is not None and "--city" in report.hint
    assert len(store.quarantine()) == 5 and len(store.requests()) == 0


@pytest.mark.parametrize("reader", READERS)
def test_only_a_header_or_no_records(store: Store, tmp_path: Path, reader: str) -> None:
    path, mapping = write(reader, [], tmp_path / "empty")
    report = run(path, store, mapping, reader)
    assert report.rows_read == 0 and report.result.total == 0 and report.hint is None


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("extra", [True, False], ids=["extras", "no-extras"])
def test_every_row_a_duplicate_then_every_row_unchanged(store: Store, tmp_path: Path,
                                                        reader: str, extra: bool) -> None:
    path, mapping = write(reader, rows_at(INSIDE, 4, extra=extra, same_id=True),
                          tmp_path / "dups")
    report = run(path, store, mapping, reader)
    assert report.result.inserted == 1 and report.result.quarantined == {"duplicate_id": 3}
    again = run(path, store, mapping, reader)
    assert again.result.unchanged == 1 and again.result.inserted == 0
    stored = store.requests()
    assert len(stored) == 1
    assert (stored["extra"].notna().all() if extra else stored["extra"].isna().all())


@pytest.mark.parametrize("reader", READERS)
def test_every_row_quarantined_for_mixed_reasons(store: Store, tmp_path: Path,
                                                 reader: str) -> None:
    rows = [
        {"service_request_id": "A", "requested_datetime": "not a time", "lat": INSIDE[0],
         "lon": INSIDE[1]},
        {"service_request_id": "B", "requested_datetime": "2024-05-01T10:00:00",
         "lat": 0, "lon": 0},
        {"service_request_id": "C", "requested_datetime": "2024-05-01T10:00:00",
         "lat": BALTIMORE[0], "lon": BALTIMORE[1]},
        {"service_request_id": "", "requested_datetime": "2024-05-01T10:00:00",
         "lat": INSIDE[0], "lon": INSIDE[1]},
    ]
    path, mapping = write(reader, rows, tmp_path / "bad")
    report = run(path, store, mapping, reader)
    assert report.rows_read == 4 and sum(report.result.quarantined.values()) == 4
    assert report.result.inserted == 0


def test_baltimore_shaped_real_file(tmp_path: Path) -> None:
    """A real city file read under a profile whose city lies elsewhere: every real row is
    outside the city; each is quarantined with its reason, and the report says --city."""
    real = SHARED / "requests" / "parks-maintenance.csv"
    if not real.exists():
        pytest.skip(f"{real} (the shared data) is not here")
    profile = write_squares(tmp_path)
    n = len(pd.read_csv(real))
    args = ["--store", str(tmp_path / "store"), "--city", str(profile), "ingest"]
    mapped = ["--format", "csv", "--map", "service_request_id=request_id",
              "--map", "requested_datetime=start_time", "--map", "lat=lat", "--map", "lon=lon"]
    # as the issue ran it: a plain CSV with a --map mapping (the addresses come along)
    res = CliRunner().invoke(cli, [*args, str(real), *mapped], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert f"read         {n:>9,}" in res.output
    assert f"needs_geocoding           {n:>9,}" in res.output  # outside, but an address
    assert f"{n:,} of the {n:,} rows with coordinates lie outside Squareville" in res.output
    assert "--city" in res.output
    # the same real rows without their address column: outside_city
    bare = tmp_path / "parks-no-address.csv"
    pd.read_csv(real, dtype=str).drop(columns=["address"]).to_csv(bare, index=False)
    res = CliRunner().invoke(cli, [*args, str(bare), *mapped], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert f"outside_city              {n:>9,}" in res.output
    assert "--city" in res.output
    status = CliRunner().invoke(cli, [*args[:4], "status"], catch_exceptions=False)
    assert status.exit_code == 0 and f"quarantine   {2 * n:>9,}" in status.output
