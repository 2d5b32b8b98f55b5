"""The standard reports pinned on a small hand-built set, and run on the bundled real data."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geo.ingest.mapping import ColumnMapping
from geo.ingest.pipeline import ingest
from geo.store.base import Store
from geo.store.embedded import EmbeddedStore
from hotspot311.errors import InputError
from layers.profile import CityProfile
from layers.services import ServiceType
from reports import standard as S
from reports.calendar import CalendarConfig
from reports.export import write_workbook
from reports.filters import ReportFilter
from reports.meeting import REPORTS, meeting_sheets, prepared_requests, run_report
from reports.sla import add_due_and_state
from tests.conftest import REQUESTS

TZ = "America/New_York"
NOW = datetime(2024, 3, 20, 12, tzinfo=UTC)  # 08:00 EDT
MARCH = ReportFilter(start=date(2024, 3, 1), end=date(2024, 3, 31))
SERVICES = (ServiceType("Pothole", "Streets", 2, False),
            ServiceType("Graffiti", "CLIP", 1, True),
            ServiceType("Noise", "Police", None, False))
AGENCY = {"Pothole": "Streets", "Graffiti": "CLIP", "Noise": "Police"}


def _row(rid: str, service: str, requested: str, closed: str | None = None,
         district: str | None = "A") -> dict[str, object]:
    def t(s: str | None) -> pd.Timestamp:
        return pd.Timestamp(s, tz=TZ).tz_convert("UTC") if s else pd.NaT
    return {"service_request_id": rid, "service_name": service,
            "agency_responsible": AGENCY[service], "status": "closed" if closed else "open",
            "requested_datetime": t(requested), "expected_datetime": pd.NaT,
            "closed_datetime": t(closed), "district": district}


def case() -> pd.DataFrame:
    rows = [
        _row("P1", "Pothole", "2024-03-04 10:00", "2024-03-06 10:00"),  # closed exactly at due
        _row("P2", "Pothole", "2024-03-05 10:00", "2024-03-08 10:00"),  # a day late
        _row("P3", "Pothole", "2024-03-10 00:00", district="B"),  # midnight, DST day; overdue
        _row("G1", "Graffiti", "2024-03-08 09:00", "2024-03-11 09:00", "B"),  # Fri → Mon, on time
        _row("G2", "Graffiti", "2024-03-19 12:00"),  # due 2024-03-20 12:00 EDT: due soon
        _row("N1", "Noise", "2024-03-15 09:00", district=None),  # open, no SLA, outside
        _row("N2", "Noise", "2024-03-16 09:00", "2024-03-17 09:00", "B"),  # closed, no SLA
        _row("P0", "Pothole", "2024-02-20 10:00", "2024-02-21 10:00"),  # previous period
        _row("G0", "Graffiti", "2024-02-10 10:00", "2024-02-12 10:00", "B"),
        _row("PY", "Pothole", "2023-03-15 10:00", "2023-03-16 10:00"),  # a year earlier
        _row("P9", "Pothole", "2024-04-01 00:00", "2024-04-02 00:00"),  # after March
    ]
    frame = pd.DataFrame(rows)
    for col in ("requested_datetime", "expected_datetime", "closed_datetime"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return add_due_and_state(frame, services=SERVICES, calendar=CalendarConfig(TZ, "US"),
                             now=NOW)


def test_states_of_the_case() -> None:
    states = dict(zip(case()["service_request_id"], case()["sla_state"], strict=True))
    assert [states[k] for k in ("P1", "P2", "P3", "G1", "G2", "N1", "N2")] == [
        "on_time", "closed_late", "open_overdue", "on_time", "open_due_soon", "no_sla", "no_sla"]


def test_top_requests_pinned() -> None:
    out = S.top_requests(case(), MARCH, timezone=TZ)
    assert out["service_name"].tolist() == ["Pothole", "Graffiti", "Noise"]
    assert out["rank"].tolist() == [1, 2, 3]
    assert out["count"].tolist() == [3, 2, 2]
    np.testing.assert_allclose(out["share"], [3 / 7, 2 / 7, 2 / 7])
    assert out["previous_count"].tolist() == [1, 1, 0]
    assert out["change"].tolist() == [2, 1, 2]
    np.testing.assert_allclose(out["change_pct"], [2.0, 1.0, np.nan])
    assert out.attrs["previous_period"] == (date(2024, 1, 30), date(2024, 2, 29))
    assert S.top_requests(case(), MARCH, timezone=TZ, n=1)["service_name"].tolist() == ["Pothole"]


def test_top_requests_by_layer_and_filters() -> None:
    out = S.top_requests(case(), MARCH, timezone=TZ, by="district")
    got = {(r.district, r.service_name): (r.rank, r.count) for r in out.itertuples()}
    assert got == {("A", "Pothole"): (1, 2), ("A", "Graffiti"): (2, 1),
                   ("B", "Graffiti"): (1, 1), ("B", "Noise"): (2, 1), ("B", "Pothole"): (3, 1),
                   ("(outside)", "Noise"): (1, 1)}
    only = ReportFilter(start=MARCH.start, end=MARCH.end, departments=("streets",),
                        areas={"district": ("B",)})
    assert S.top_requests(case(), only, timezone=TZ)["count"].tolist() == [1]


def test_status_of_top_pinned() -> None:
    out = S.status_of_top(case(), MARCH, timezone=TZ).set_index("service_name")
    assert out.loc["Pothole", ["count", "open", "closed", "overdue", "due_soon"]].tolist() == [
        3, 1, 2, 1, 0]
    assert out.loc["Graffiti", ["count", "open", "closed", "overdue", "due_soon"]].tolist() == [
        2, 1, 1, 0, 1]
    assert out.loc["Pothole", "overdue_share"] == 1.0


def test_sla_compliance_pinned() -> None:
    out = S.sla_compliance(case(), MARCH, timezone=TZ).set_index("service_name")
    assert out.index.tolist() == ["Pothole", "Graffiti", "Noise", "(all)"]
    assert out.loc["Pothole", ["requests", "closed", "judged", "on_time", "closed_late",
                               "open_overdue", "no_sla"]].tolist() == [3, 2, 2, 1, 1, 1, 0]
    np.testing.assert_allclose(out["compliance"], [0.5, 1.0, np.nan, 2 / 3])
    np.testing.assert_allclose(out.loc["Pothole", ["median_days_to_close", "p90_days_to_close"]]
                               .astype(float), [2.5, 2.9])
    # G1: Friday 09:00 EST to Monday 09:00 EDT is 3 days less an hour
    assert out.loc["Graffiti", "median_days_to_close"] == pytest.approx(3 - 1 / 24)
    assert out.loc["Noise", "no_sla"] == 2 and out.loc["(all)", "requests"] == 7
    by_dept = S.sla_compliance(case(), MARCH, timezone=TZ, per="department", total=False)
    assert by_dept["agency_responsible"].tolist() == ["Streets", "CLIP", "Police"]
    by_area = S.sla_compliance(case(), MARCH, timezone=TZ, per="district").set_index("district")
    assert by_area["requests"].to_dict() == {"A": 3, "B": 3, "(outside)": 1, "(all)": 7}
    assert by_area.loc["B", "compliance"] == 1.0  # G1 on time; P3 open; N2 no SLA


def test_volumes_pinned() -> None:
    month = S.volumes(case(), MARCH, timezone=TZ, freq="month")
    assert month[["count", "year_earlier"]].values.tolist() == [[7, 1]]
    assert month["change_pct"].tolist() == [6.0]
    week = S.volumes(case(), MARCH, timezone=TZ, freq="week")
    assert [str(d) for d in week["period"]] == [
        "2024-02-26", "2024-03-04", "2024-03-11", "2024-03-18", "2024-03-25"]
    # P3 at local midnight on Sunday 2024-03-10 belongs to the week of 2024-03-04
    assert week["count"].tolist() == [0, 4, 2, 1, 0]
    assert week["year_earlier"].tolist() == [0, 0, 1, 0, 0]  # 2023-03-15 + 364 days
    day = S.volumes(case(), ReportFilter(start=date(2024, 3, 9), end=date(2024, 3, 11)),
                    timezone=TZ, freq="day")
    assert day["count"].tolist() == [0, 1, 0]
    by = S.volumes(case(), MARCH, timezone=TZ, freq="month", by="district")
    assert dict(zip(by["district"], by["count"], strict=True)) == {"(outside)": 1, "A": 3, "B": 3}


def test_top_departments_pinned() -> None:
    out = S.top_departments(case(), MARCH, timezone=TZ)
    assert out["agency_responsible"].tolist() == ["Streets", "CLIP", "Police"]
    assert out["count"].tolist() == [3, 2, 2]
    assert out["open_overdue"].tolist() == [1, 0, 0]
    np.testing.assert_allclose(out["compliance"], [0.5, 1.0, np.nan])


def test_errors_name_the_field() -> None:
    frame = case()
    with pytest.raises(InputError, match=r"service: \['Pot'\] not in the data; allowed: "):
        S.top_requests(frame, ReportFilter(services=("Pot",)), timezone=TZ)
    with pytest.raises(InputError, match="start: 2024-03-31 is after end 2024-03-01"):
        S.top_requests(frame, ReportFilter(start=date(2024, 3, 31), end=date(2024, 3, 1)),
                       timezone=TZ)
    with pytest.raises(InputError, match="by: got 'ward'; allowed: a layer of the data"):
        S.volumes(frame, MARCH, timezone=TZ, by="ward")
    with pytest.raises(InputError, match="freq: got 'year'"):
        S.volumes(frame, MARCH, timezone=TZ, freq="year")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"add them with reports\.sla\.add_due_and_state"):
        S.sla_compliance(frame.drop(columns="sla_state"), MARCH, timezone=TZ)
    with pytest.raises(InputError, match="area: layer 'ward' is not in the data"):
        S.top_requests(frame, ReportFilter(areas={"ward": ("1",)}), timezone=TZ)


# --- the real bundled data, through a store ------------------------------------------------

@pytest.fixture(
    scope="module", params=["embedded", pytest.param("postgis", marks=pytest.mark.postgis)]
)
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, phila: CityProfile
) -> Iterator[Store]:
    """Each store in turn, with the real parks and graffiti requests."""
    url = None
    if request.param == "embedded":
        s: Store = EmbeddedStore(tmp_path_factory.mktemp("reports") / "store", phila)
    else:
        from geo.store.postgis import PostGISStore

        server = request.getfixturevalue("postgis_server")
        url = server.clone("reports")
        s = PostGISStore.open(url, phila)
    ingest(REQUESTS / "parks-maintenance.csv", s)
    ingest(REQUESTS / "graffiti-sample.json", s,
           mapping=ColumnMapping(constants={"service_name": "Graffiti Removal"}))
    yield s
    s.close()
    if url is not None:
        server.drop(url)


REAL_NOW = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize("name", list(REPORTS))
@pytest.mark.parametrize("by", [None, "council_district"])
def test_every_report_runs_on_real_data(store: Store, name: str, by: str | None) -> None:
    requests = prepared_requests(store, now=REAL_NOW)
    out = run_report(name, requests, ReportFilter(), timezone=store.profile.timezone, by=by)
    assert len(out) > 0
    if by:
        assert by in out.columns
    if "count" in out.columns and name != "volumes":
        assert out["count"].sum() <= len(requests)


def test_real_data_numbers(store: Store) -> None:
    requests = prepared_requests(store, now=REAL_NOW)
    assert len(requests) == 284 + 528
    top = S.top_requests(requests, timezone=store.profile.timezone)
    assert top["count"].sum() == len(requests)
    assert set(top["service_name"]) == {"Graffiti Removal", "Janitorial Maintenance",
                                        "Mechanical Maintenance"}
    sla = S.sla_compliance(requests, timezone=store.profile.timezone).set_index("service_name")
    assert sla.loc["(all)", "requests"] == len(requests)
    assert 0 < sla.loc["(all)", "compliance"] < 1


def test_meeting_workbook_on_real_data(store: Store, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    requests = prepared_requests(store, now=REAL_NOW)
    sheets = meeting_sheets(requests, ReportFilter(), timezone=store.profile.timezone,
                            now=REAL_NOW)
    path = write_workbook(sheets, tmp_path / "meeting.xlsx")
    book = load_workbook(path)
    assert book.sheetnames == ["Top 10", "Status of top 10", "SLA by service",
                               "SLA by department", "SLA by council_district",
                               "Volumes by week", "Departments"]
    ws = book["SLA by service"]
    assert ws["A2"].value.startswith("Filters: requested ")
    assert ws["A3"].value.startswith("Data as of ")
    header = [c.value for c in ws[6]]
    assert ws.cell(row=7, column=header.index("compliance") + 1).number_format == "0.0%"
    assert ws.cell(row=7, column=header.index("median_days_to_close") + 1).number_format == "0.0"
    assert len(book["Volumes by week"]._charts) == 1 and len(book["Top 10"]._charts) == 1
