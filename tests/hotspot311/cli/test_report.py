"""The report and request commands, on the real bundled data through the CLI."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from hotspot311.cli.main import cli
from tests.conftest import REQUESTS

NOW = ["--now", "2025-06-01"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store directory with the real parks and graffiti requests, ingested by the CLI."""
    path = str(tmp_path_factory.mktemp("cli") / "store")
    runner = CliRunner()
    res = runner.invoke(cli, ["--store", path, "ingest", str(REQUESTS / "parks-maintenance.csv")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["--store", path, "ingest", str(REQUESTS / "graffiti-sample.json"),
                              "--set", "service_name=Graffiti Removal"])
    assert res.exit_code == 0, res.output
    return path


def test_meeting_workbook(store: str, tmp_path: Path) -> None:
    out = tmp_path / "meeting.xlsx"
    res = CliRunner().invoke(cli, ["--store", store, "report", "meeting", *NOW,
                                   "--output", str(out)])
    assert res.exit_code == 0, res.output
    assert "wrote 7 sheets" in res.output
    book = load_workbook(out)
    assert book.sheetnames[:2] == ["Top 10", "Status of top 10"] and len(book.sheetnames) == 7
    assert book["Top 10"]["A1"].value == "Top 10 service requests"


def test_report_csv_with_filters(store: str, tmp_path: Path) -> None:
    out = tmp_path / "sla.csv"
    res = CliRunner().invoke(cli, [
        "--store", store, "report", "sla", *NOW, "--from", "2021-01-01", "--to", "2025-12-31",
        "--department", "Parks & Recreation", "--per", "council_district",
        "--format", "csv", "--output", str(out)])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out)
    assert table["council_district"].iloc[-1] == "(all)"
    assert table["requests"].iloc[-1] == 284  # every parks request
    res = CliRunner().invoke(cli, ["--store", store, "report", "top10", *NOW, "--by", "zip",
                                   "--top", "1", "--output", str(tmp_path / "t.xlsx")])
    assert res.exit_code == 0, res.output
    assert load_workbook(tmp_path / "t.xlsx").sheetnames == ["top10"]


def test_report_prints_and_volumes(store: str) -> None:
    res = CliRunner().invoke(cli, ["--store", store, "report", "volumes", *NOW, "--freq",
                                   "month", "--service", "graffiti removal"])
    assert res.exit_code == 0, res.output
    assert "year_earlier" in res.output.splitlines()[0]


@pytest.mark.parametrize(("args", "message"), [
    (["report", "top10", "--from", "2024-13-01"], "--from: got '2024-13-01'"),
    (["report", "top10", "--area", "zip"], "--area: got 'zip'; expected LAYER=CODE"),
    (["report", "sla", "--per", "ward"], "per: got 'ward'"),
    (["report", "top10", "--service", "Potholes"], "'Potholes' is neither a service type"),
    (["report", "top10", "--format", "xlsx"], "--format xlsx: needs --output"),
    (["request", "NO-SUCH-ID"], "request: id 'NO-SUCH-ID' is not in the store"),
])
def test_bad_input_exits_2(store: str, args: list[str], message: str) -> None:
    res = CliRunner().invoke(cli, ["--store", store, *args])
    assert res.exit_code == 2, res.output
    assert message in res.output


def test_request_record(store: str) -> None:
    res = CliRunner().invoke(cli, ["--store", store, "request", "13854433", *NOW])
    assert res.exit_code == 0, res.output
    text = res.output
    assert "request 13854433 — Janitorial Maintenance" in text
    assert "due             2021-01-21 12:22 EST" in text  # 10 working days, MLK day skipped
    assert "SLA state       closed_late" in text
    assert "geocode match   source" in text
    assert "police_district     35  N. Broad St. & Champlost St." in text
    assert "neighborhood        Olney" in text
    assert "hotspot\n  none: outside the 30-day window" in text
