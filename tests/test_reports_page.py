"""The reports page through Streamlit's AppTest, on generated requests and a synthetic
contact log, with a second (test) council map in force from 2026-03-01 whose districts 1
and 2 trade codes, so that "as drawn" today and on the request date differ."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from geo.ingest.pipeline import ingest, ingest_contacts
from geo.store.base import open_store
from hotspot311.cli.demo import generate
from hotspot311.cli.demo_contacts import generate_contacts
from hotspot311.web.reportpage import request_report
from layers.profile import load_profile
from reports.calendar import load_calendar
from tests.geo.store.stores import store_location
from tests.test_app import run_app

END = datetime(2026, 6, 30, 12, tzinfo=UTC)


def table(at: AppTest, column: str) -> pd.DataFrame:
    """The one table on the page with ``column`` (AppTest finds tables by position)."""
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert len(found) == 1, [list(d.value.columns) for d in at.dataframe]
    return found[0]


@pytest.fixture(scope="module", params=["embedded", pytest.param("postgis",
                                                                 marks=pytest.mark.postgis)])
def store_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The page's store, each store in turn (a directory or a ``postgresql://`` URL)."""
    root = tmp_path_factory.mktemp("reports_page")
    profile = load_profile("philadelphia")
    location = store_location(request.param, root, request, "reports")
    store = open_store(location, profile)
    requests = generate(1500, seed=3, end=END)
    requests.to_csv(root / "requests.csv", index=False)
    ingest(root / "requests.csv", store, now=END)
    generate_contacts(requests, calendar=load_calendar(profile), end=END, weeks=1,
                      seed=3).to_csv(root / "contacts.csv", index=False)
    ingest_contacts(root / "contacts.csv", store, now=END)
    council = next(s for s in profile.layers if s.key == "council_district")
    areas = store.areas("council_district").copy()
    areas["code"] = areas["code"].replace({"1": "2", "2": "1"})  # a test map, not a real one
    store.add_generation(replace(council, valid_from=date(2026, 3, 1)), areas)
    store.close()
    return location


def test_request_reports_with_the_as_drawn_choice(monkeypatch: pytest.MonkeyPatch,
                                                  store_dir: str) -> None:
    at = run_app(monkeypatch, store_dir, "pages/2_Reports.py")
    at.selectbox(key="request_report").set_value("sla").run()
    at.selectbox(key="by").set_value("council_district").run()
    today = table(at, "council_district")
    assert any("areas as drawn today" in c.value for c in at.caption)
    at.radio(key="as_drawn").set_value("request-date").run()
    assert not at.exception
    drawn = table(at, "council_district")
    assert any("areas as drawn on each request's date" in c.value for c in at.caption)
    store = open_store(store_dir, load_profile("philadelphia"))
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    expected, _ = request_report(store, "sla", now=now, by="council_district",
                                 as_drawn="request-date")
    counts = dict(zip(drawn["council_district"], drawn["requests"], strict=True))
    assert counts == dict(zip(expected["council_district"], expected["requests"], strict=True))
    before = dict(zip(today["council_district"], today["requests"], strict=True))
    assert counts["1"] != before["1"] and counts["3"] == before["3"]
    assert sum(counts.values()) == sum(before.values())


def test_contact_reports(monkeypatch: pytest.MonkeyPatch, store_dir: str) -> None:
    at = run_app(monkeypatch, store_dir, "pages/2_Reports.py")
    assert any("synthetic" in w.value for w in at.warning)
    inquiries = table(at, "outcome")
    assert inquiries["outcome"].tolist()[-1] == "(all)"
    stored = open_store(store_dir, load_profile("philadelphia")).contacts()
    answered_or_not_call = int((stored["answered"] != False).sum())  # noqa: E712
    assert inquiries["contacts"].iloc[-1] == answered_or_not_call
    weekly = table(at, "fytd_calls")
    assert int(weekly["calls"].sum()) == int((stored["channel"] == "phone").sum())
    at.radio(key="freq").set_value("fytd").run()
    fytd = table(at, "log_starts")
    assert fytd["fiscal_year"].tolist() == ["FY2026", "FY2025"]
    departments = table(at, "department")
    assert len(departments) == 10 and departments["rank"].tolist() == list(range(1, 11))


def test_empty_period_error(monkeypatch: pytest.MonkeyPatch, store_dir: str) -> None:
    at = run_app(monkeypatch, store_dir, "pages/2_Reports.py")
    at.date_input(key="start").set_value(date(2026, 6, 1)).run()
    at.date_input(key="end").set_value(date(2026, 5, 1)).run()
    assert any("is after To" in e.value for e in at.error)


def test_map_choropleth_as_drawn_on_the_request_date(monkeypatch: pytest.MonkeyPatch,
                                                     store_dir: str) -> None:
    from hotspot311.web import appdata
    from hotspot311.web.filters import Filters

    at = run_app(monkeypatch, store_dir)
    at.selectbox(key="layer").set_value("council_district").run()
    at.radio(key="as_drawn").set_value("request-date").run()
    assert not at.exception
    store = open_store(store_dir, load_profile("philadelphia"))
    version = appdata.data_version(store)
    now = appdata.now_hour()
    shaded = {}
    for mode in ("today", "request-date"):
        areas = appdata.area_layer(str(store_dir), "philadelphia", version, Filters(),
                                   "council_district", now, mode)
        shaded[mode] = dict(zip(areas["code"], areas["requests"], strict=True))
    expected, _ = request_report(store, "sla", now=now, by="council_district",
                                 as_drawn="request-date")
    drawn = dict(zip(expected["council_district"], expected["requests"], strict=True))
    assert {c: n for c, n in shaded["request-date"].items() if n} == {
        c: n for c, n in drawn.items() if c not in ("(outside)", "(all)")}
    assert shaded["request-date"]["1"] != shaded["today"]["1"]


def test_the_meeting_workbook_download(monkeypatch: pytest.MonkeyPatch, store_dir: str) -> None:
    import io

    import openpyxl

    from hotspot311.web.reportpage import meeting_workbook

    at = run_app(monkeypatch, store_dir, "pages/2_Reports.py")
    buttons = [b for b in at.get("download_button") if "Meeting workbook" in str(b.proto)]
    assert len(buttons) == 1  # the local demo's user is an admin: may export
    store = open_store(store_dir, load_profile("philadelphia"))
    try:
        data, rows = meeting_workbook(store, now=END)
        book = openpyxl.load_workbook(io.BytesIO(data))
        assert len(book.worksheets) >= 5  # one sheet per standard report, then contacts
        assert rows == len(pd.DataFrame(store.requests()))
    finally:
        store.close()
