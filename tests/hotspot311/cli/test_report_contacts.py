"""The contact reports through the CLI: CSV, xlsx with charts, and the meeting workbook."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from hotspot311.cli.main import cli
from tests.conftest import REQUESTS

#: Two days around Philadelphia's fiscal year change: Fri 28 June and Mon 1 July 2024.
LOG = """CallID,Start,Disp,Dept,SR,Ans
1,2024-06-28 09:00,INFO,Streets,,Y
2,2024-06-28 09:30,INFO,Streets,,N
3,2024-06-28 10:00,911,Police,,Y
4,2024-07-01 09:00,SR,Streets,13854433,Y
5,2024-07-01 09:10,INFO,Streets,13854433,Y
6,2024-07-01 09:20,XFER,Water,,Y
7,2024-07-01 09:30,OTH,Water,,Y
"""
MAP = ["--map", "contact_id=CallID", "--map", "received_datetime=Start", "--map",
       "outcome=Disp", "--map", "department=Dept", "--map", "service_request_id=SR",
       "--map", "answered=Ans", "--set", "channel=phone", "--value-map",
       "outcome=INFO:information,XFER:referral,SR:service_request,911:transfer_911,OTH:other"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Real parks requests plus a hand-made contact log, ingested by the CLI."""
    root = tmp_path_factory.mktemp("contacts")
    path = str(root / "store")
    log = root / "log.csv"
    log.write_text(LOG, encoding="utf-8")
    runner = CliRunner()
    res = runner.invoke(cli, ["--store", path, "ingest", str(REQUESTS / "parks-maintenance.csv")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["--store", path, "ingest", "--kind", "contacts", str(log), *MAP])
    assert res.exit_code == 0, res.output
    return path


def test_inquiries_and_calls_as_csv(store: str, tmp_path: Path) -> None:
    out = tmp_path / "inq.csv"
    res = CliRunner().invoke(cli, ["--store", store, "report", "inquiries", "--output", str(out)])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out)
    assert table["contacts"].tolist() == [2, 1, 1, 1, 1, 6]  # the abandoned call left out
    out = tmp_path / "calls.csv"
    res = CliRunner().invoke(cli, ["--store", store, "report", "calls", "--freq", "month",
                                   "--output", str(out)])
    assert res.exit_code == 0, res.output
    calls = pd.read_csv(out)
    assert calls["fiscal_year"].tolist() == ["FY2024", "FY2025"]
    assert calls["calls"].tolist() == [3, 4] and calls["fytd_calls"].tolist() == [3, 4]
    assert calls["answered"].tolist() == [2, 4]
    res = CliRunner().invoke(cli, ["--store", store, "report", "calls", "--freq", "fytd",
                                   "--to", "2024-07-01"])
    assert res.exit_code == 0, res.output
    assert "FY2025" in res.output and "FY2024" in res.output


def test_call_departments_xlsx_has_a_chart(store: str, tmp_path: Path) -> None:
    out = tmp_path / "cd.xlsx"
    res = CliRunner().invoke(cli, ["--store", store, "report", "call-departments", "--output",
                                   str(out)])
    assert res.exit_code == 0, res.output
    ws = load_workbook(out)["call-departments"]
    assert ws["A1"].value == "Customer Calls Logged by the Top 10 Departments"
    assert [ws.cell(row=7, column=c).value for c in (2, 3)] == ["Streets", 4]
    assert len(ws._charts) == 1


def test_meeting_workbook_has_the_contact_sheets(store: str, tmp_path: Path) -> None:
    out = tmp_path / "meeting.xlsx"
    res = CliRunner().invoke(cli, ["--store", store, "report", "meeting", "--now", "2025-06-01",
                                   "--from", "2024-06-01", "--to", "2024-07-31",
                                   "--output", str(out)])
    assert res.exit_code == 0, res.output
    book = load_workbook(out)
    assert book.sheetnames[7:] == ["Inquiries", "Calls by week", "Calls by month", "Calls FYTD",
                                   "Call departments", "Calls per request"]
    for name in book.sheetnames[7:12]:
        assert len(book[name]._charts) == 1, name
    assert "areas as drawn today" in book["Top 10"]["A2"].value
    per_request = book["Calls per request"]
    assert [per_request.cell(row=7, column=c).value for c in (1, 2)] == ["13854433", 2]


def test_no_contacts_is_a_clear_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["--store", str(tmp_path / "empty"), "report", "inquiries"])
    assert res.exit_code == 2
    assert "holds no contacts" in res.output and "--kind contacts" in res.output


def test_request_record_counts_its_contacts(store: str) -> None:
    res = CliRunner().invoke(cli, ["--store", store, "request", "13854433", "--now",
                                   "2025-06-01"])
    assert res.exit_code == 0, res.output
    assert "2 (2 calls) made or asked about it" in res.output
    res = CliRunner().invoke(cli, ["--store", store, "status"])
    assert "contacts             7" in res.output
