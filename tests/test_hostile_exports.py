"""Formula injection (issue 20, part 2): every CSV and Excel writer neutralizes cells.

A store whose text fields hold spreadsheet formulas is exported through every writer the
tool has (CLI and app downloads); each file is read back with pandas and openpyxl. No text
cell may begin with ``=``, ``+``, ``-``, ``@``, tab or CR (the hostile ones come back with
an apostrophe in front), no workbook cell is a formula, and numeric columns are unchanged.
"""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner

from clustering.export import hotspot_table, work_list, write_hotspots, write_work_list
from clustering.priority import PRESETS
from clustering.run import run_hotspots
from clustering.selection import HotspotQuery
from geo.ingest.cells import FORMULA_STARTS, neutralize, neutralize_frame, to_csv
from geo.ingest.export import export_requests
from geo.ingest.pipeline import ingest
from hotspot311.cli.main import cli
from hotspot311.web.worklist import work_list_csv
from reports.export import Sheet, write_table, write_workbook
from tests.hostile import END, FORMULAS, build_hostile_store


def hostile_cells(values: list[object]) -> list[str]:
    """Text cells that a spreadsheet would run as a formula."""
    return [v for v in values if isinstance(v, str) and v.startswith(FORMULA_STARTS)]


def text_cells(typed: pd.DataFrame) -> list[object]:
    """The header and every cell of the non-numeric columns of a CSV read by pandas."""
    cells: list[object] = list(typed.columns)
    for name in typed.columns:
        if not pd.api.types.is_numeric_dtype(typed[name]):
            cells += typed[name].tolist()
    return cells


def check_csv(path: Path, *, numeric: dict[str, pd.Series] | None = None,
              corpus: bool = True) -> pd.DataFrame:
    """No formula text cell; neutralized ones when the ``corpus`` went through; numbers
    unchanged."""
    data = path.read_bytes()
    typed = pd.read_csv(io.BytesIO(data))
    cells = text_cells(typed)
    assert len(typed) > 0
    assert hostile_cells(cells) == [], hostile_cells(cells)[:5]
    if corpus:
        assert any(isinstance(c, str) and c.startswith("'") and c[1:2] in "=+-@"
                   for c in cells)
    for name, expected in (numeric or {}).items():
        assert pd.api.types.is_numeric_dtype(typed[name]), name
        np.testing.assert_allclose(typed[name].to_numpy(dtype=float),
                                   expected.to_numpy(dtype=float), rtol=1e-9)
    return typed


def check_xlsx(path: Path) -> list[object]:
    """No formula cell, no text cell that starts like one; every cell's value returned."""
    book = openpyxl.load_workbook(path)
    values: list[object] = []
    for ws in book.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (ws.title, cell.coordinate, cell.value)
                values.append(cell.value)
    assert hostile_cells(values) == [], hostile_cells(values)[:5]
    return values


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(store directory, profile file, a work directory) with hostile requests and
    hostile quarantine rows (no coordinates, a formula address: ``needs_geocoding``)."""
    directory = tmp_path_factory.mktemp("hostile-exports")
    store, _ = build_hostile_store(directory)
    rows = pd.DataFrame({
        "service_request_id": [f"{f}-q" for f in FORMULAS],
        "requested_datetime": [(END - timedelta(days=1)).isoformat()] * len(FORMULAS),
        "address": list(FORMULAS),
        "description": list(FORMULAS),
    })
    bad = directory / "no-coordinates.csv"
    rows.to_csv(bad, index=False, lineterminator="\r\n")
    report = ingest(bad, store, now=END)
    assert sum(report.result.quarantined.values()) == len(FORMULAS)
    out = directory / "out"
    out.mkdir()
    return directory / "store", directory / "squares.toml", out


def run(hostile: tuple[Path, Path, Path], *args: str) -> None:
    store, profile, _ = hostile
    result = CliRunner().invoke(cli, ["--store", str(store), "--city", str(profile), *args],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_requests_export_csv(hostile: tuple[Path, Path, Path]) -> None:
    out = hostile[2] / "requests.csv"
    run(hostile, "export", "requests", "--format", "csv", "--output", str(out))
    typed = check_csv(out)
    assert len(typed) == 40
    assert pd.api.types.is_float_dtype(typed["lat"]) and (typed["lon"] < 0).all()
    assert pd.api.types.is_float_dtype(typed["geocode_score"])
    ids = set(typed["service_request_id"])
    assert "'-5#10" in ids and "'=1+1#8" in ids  # "\t=1+1" was stripped by ingest, then kept
    assert any(c.startswith("'") for c in typed.columns) is False  # canonical header


def test_quarantine_export_csv(hostile: tuple[Path, Path, Path]) -> None:
    out = hostile[2] / "quarantine.csv"
    run(hostile, "quarantine", "--output", str(out))
    typed = check_csv(out)
    assert {"'" + f for f in FORMULAS} <= set(typed["address"])
    assert pd.api.types.is_integer_dtype(typed["source_row"])


def test_hotspot_and_work_list_csv(hostile: tuple[Path, Path, Path]) -> None:
    spots, work = hostile[2] / "hotspots.csv", hostile[2] / "work.csv"
    run(hostile, "hotspots", "--days", "30", "--eps", "60", "--min-samples", "5",
        "--output", str(spots), "--work-list", str(work))
    table = check_csv(spots, corpus=False)  # the top address is the HTML payload here
    assert pd.api.types.is_integer_dtype(table["count"]) and table["count"].sum() > 0
    assert pd.api.types.is_float_dtype(table["score"])
    work_list_file = check_csv(work)
    assert pd.api.types.is_float_dtype(work_list_file["lat"])


def test_report_csv_xlsx_and_meeting_workbook(hostile: tuple[Path, Path, Path]) -> None:
    out = hostile[2]
    for name in ("top10", "status", "departments"):
        run(hostile, "report", name, "--output", str(out / f"{name}.csv"),
            "--now", "2026-06-30")
        check_csv(out / f"{name}.csv")
        run(hostile, "report", name, "--output", str(out / f"{name}.xlsx"),
            "--now", "2026-06-30")
        values = check_xlsx(out / f"{name}.xlsx")
        assert any(isinstance(v, str) and v.startswith("'=") for v in values)
        assert any(isinstance(v, int) and not isinstance(v, bool) for v in values)
    run(hostile, "report", "meeting", "--output", str(out / "meeting.xlsx"),
        "--to", "2026-06-30", "--now", "2026-06-30")
    values = check_xlsx(out / "meeting.xlsx")
    assert any(isinstance(v, str) and v.startswith("'") for v in values)


def test_run_csv(hostile: tuple[Path, Path, Path]) -> None:
    out = hostile[2]
    run(hostile, "hotspots", "--days", "30", "--eps", "60", "--min-samples", "5", "--save")
    run(hostile, "runs", "show", "1", "--output", str(out / "run.csv"))
    check_csv(out / "run.csv", corpus=False)


def test_every_writer_function_neutralizes(tmp_path: Path,
                                           hostile: tuple[Path, Path, Path]) -> None:
    """The writer functions behind the CLI and the app downloads, on one hostile table."""
    from geo.store.base import open_store
    from layers.profile import load_profile

    store_dir, profile_file, _ = hostile
    profile = load_profile(profile_file)
    store = open_store(store_dir, profile)
    requests = store.requests()
    export_requests(requests, tmp_path / "r.csv", fmt="csv")
    check_csv(tmp_path / "r.csv", numeric={"lat": requests["lat"], "lon": requests["lon"]})

    result = run_hotspots(pd.DataFrame(requests.drop(columns="geometry")),
                          HotspotQuery(days=30, end=END, eps_m=60, min_samples=5),
                          profile=profile, weights=PRESETS["streets"], now=END,
                          layer_keys=("square",))
    result.hotspots["top_address"] = FORMULAS[0]
    write_hotspots(result.hotspots, tmp_path / "h.csv", layer_keys=("square",))
    check_csv(tmp_path / "h.csv", numeric={"score": result.hotspots["score"]})
    work = work_list(result.members, now=END)
    write_work_list(work, tmp_path / "w.csv")
    check_csv(tmp_path / "w.csv", numeric={"lat": work["lat"], "age_days": work["age_days"]})
    (tmp_path / "app-w.csv").write_bytes(work_list_csv(work))  # the app's download
    check_csv(tmp_path / "app-w.csv", numeric={"lat": work["lat"]})

    table = hotspot_table(result.hotspots, ("square",))
    write_table(table, tmp_path / "t.csv", fmt="csv")
    check_csv(tmp_path / "t.csv", numeric={"count": table["count"]})
    sheet = Sheet(name="=cmd", title=FORMULAS[0], table=table, lines=(FORMULAS[3],))
    write_table(table, tmp_path / "t.xlsx", fmt="xlsx", sheet=sheet)
    values = check_xlsx(tmp_path / "t.xlsx")
    assert "'" + FORMULAS[0] in values and "'" + FORMULAS[3] in values
    write_workbook([sheet], tmp_path / "book.xlsx")
    check_xlsx(tmp_path / "book.xlsx")


def test_neutralize_rule() -> None:
    for value in FORMULAS:
        assert neutralize(value) == "'" + value
    for value in ("12 Main St", "", "'already", " =1", "a=b", "O'Hara"):
        assert neutralize(value) == value
    for value in (-5, -5.0, 3, None, np.nan, True):
        assert neutralize(value) is value
    frame = pd.DataFrame({
        "text": ["-5", "=1", "ok"],
        "number": [-5.0, 1.5, -0.25],
        "integer": pd.array([-1, 2, None], dtype="Int64"),
        "mixed": [-5.0, "-5", None],
        "category": pd.Categorical(["@a", "b", "@a"]),
        "-minus header": [1, 2, 3],
    })
    out = neutralize_frame(frame)
    assert out["text"].tolist() == ["'-5", "'=1", "ok"]
    assert out["number"].tolist() == [-5.0, 1.5, -0.25] and out["number"].dtype == float
    assert out["integer"].dtype == "Int64"
    assert out["mixed"].tolist() == [-5.0, "'-5", None]
    assert out["category"].tolist() == ["'@a", "b", "'@a"]
    assert list(out.columns)[-1] == "'-minus header"
    assert frame["text"].tolist() == ["-5", "=1", "ok"]  # the input is not changed
    text = to_csv(pd.DataFrame({"a": ["x\ry", "\r=1"], "n": [-1, -2.5]}))
    assert text is not None
    back = pd.read_csv(io.StringIO(text))
    assert back["a"].tolist() == ["x\ry", "'\r=1"] and back["n"].tolist() == [-1.0, -2.5]


def test_geocode_review_and_standalone_file(tmp_path: Path) -> None:
    """The geocoder's two CSV writers (Philadelphia's street data): the review list of a
    store's quarantine and a geocoded standalone file."""
    src = tmp_path / "in.csv"
    pd.DataFrame({"id": list(range(len(FORMULAS) + 1)),
                  "where": [*FORMULAS, "1001 Loney St"],
                  "x": [-75.1 - i / 100 for i in range(len(FORMULAS) + 1)]}
                 ).to_csv(src, index=False, lineterminator="\r\n")
    out = tmp_path / "out.csv"
    store = str(tmp_path / "s")
    runner = CliRunner()
    res = runner.invoke(cli, ["--store", store, "geocode", "--input", str(src),
                              "--address-column", "where", "--output", str(out)],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    typed = check_csv(out, numeric={"id": pd.Series(range(len(FORMULAS) + 1))})
    assert typed["where"].tolist()[:len(FORMULAS)] == ["'" + f for f in FORMULAS]
    assert pd.api.types.is_float_dtype(typed["lat"]) and typed["lat"].notna().iloc[-1]
    # the input was read as text: its negative numbers are text now, and get the apostrophe
    assert typed["x"].iloc[0] == "'-75.1"

    rows = pd.DataFrame({"service_request_id": [f"q{i}" for i in range(len(FORMULAS))],
                         "requested_datetime": ["2024-05-01T10:00:00"] * len(FORMULAS),
                         "address": [f"{f} ZZQXV ST" for f in FORMULAS]})
    (tmp_path / "q.csv").write_text(rows.to_csv(index=False, lineterminator="\r\n"))
    res = runner.invoke(cli, ["--store", store, "ingest", str(tmp_path / "q.csv")],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    review = tmp_path / "review.csv"
    res = runner.invoke(cli, ["--store", store, "geocode", "--review", "--output", str(review)],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    listed = check_csv(review)
    assert len(listed) == len(FORMULAS)
