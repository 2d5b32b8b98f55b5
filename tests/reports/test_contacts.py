"""The contact reports on hand-made logs whose answers are worked out by hand."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from hotspot311.errors import InputError
from reports.calendar import CalendarConfig
from reports.contacts import (
    call_volumes,
    calls_by_department,
    calls_per_request,
    fiscal_year,
    fiscal_year_to_date,
    inquiries_summary,
)

TZ = "America/New_York"
PA = CalendarConfig(timezone=TZ, country="US", subdiv="PA")


def _log(rows: list[tuple[str, str, str, object]], **more: list[object]) -> pd.DataFrame:
    """``(local time, channel, outcome, answered)`` rows as a stored contact frame."""
    times = pd.to_datetime([r[0] for r in rows]).tz_localize(TZ).tz_convert("UTC")
    frame = pd.DataFrame({
        "contact_id": [f"K{i:04d}" for i in range(len(rows))],
        "received_datetime": times,
        "channel": [r[1] for r in rows],
        "outcome": [r[2] for r in rows],
        "answered": pd.array([r[3] for r in rows], dtype="boolean"),
        "department": more.get("department", [None] * len(rows)),
        "service_request_id": more.get("service_request_id", [None] * len(rows)),
    })
    return frame


def test_resolution_summary_reproduces_the_published_shares() -> None:
    # 71 % information, 14 % referral, 12 % service requests, 2 % 911, 1 % other
    mix = [("information", 71), ("referral", 14), ("service_request", 12),
           ("transfer_911", 2), ("other", 1)]
    rows = [(f"2024-03-{1 + i % 28:02d} 10:00", "phone", o, True)
            for o, k in mix for i in range(k)]
    rows += [("2024-04-02 10:00", "phone", "information", True)]  # outside the period
    rows += [("2024-03-05 10:00", "phone", "other", False)]  # abandoned: not resolved
    table = inquiries_summary(_log(rows), timezone=TZ, start=date(2024, 3, 1),
                              end=date(2024, 3, 31))
    assert table["outcome"].tolist() == ["information", "referral", "service_request",
                                         "transfer_911", "other", "(all)"]
    assert table["contacts"].tolist() == [71, 14, 12, 2, 1, 100]
    assert_allclose(table["share"], [0.71, 0.14, 0.12, 0.02, 0.01, 1.0])
    assert table.attrs["period"] == (date(2024, 3, 1), date(2024, 3, 31))
    web = inquiries_summary(_log(rows), timezone=TZ, channels=("web",))
    assert web["contacts"].sum() == 0 and web["share"].isna().all()


def test_fiscal_years_are_named_for_the_year_they_end_in() -> None:
    assert fiscal_year(date(2024, 7, 1), (7, 1)) == (2025, date(2024, 7, 1))
    assert fiscal_year(date(2024, 6, 30), (7, 1)) == (2024, date(2023, 7, 1))


def _around_july() -> pd.DataFrame:
    """Calls from Thu 27 June to Tue 9 July 2024; 4 July (Thu) is a holiday.

    Per day: 10 calls on working days, 3 on weekends, 6 on 4 July; of each day's calls
    the first is abandoned and the last transferred to 911; one email every day.
    """
    rows: list[tuple[str, str, str, object]] = []
    for day in pd.date_range("2024-06-27", "2024-07-09"):
        if day.date() == date(2024, 7, 4):
            n = 6
        elif day.weekday() >= 5:
            n = 3
        else:
            n = 10
        for i in range(n):
            outcome = "transfer_911" if i == n - 1 else "information"
            rows.append((f"{day:%Y-%m-%d} {8 + i}:00", "phone", outcome, i != 0))
        rows.append((f"{day:%Y-%m-%d} 23:30", "email", "information", None))
    return _log(rows)


def test_call_volumes_by_week_across_the_july_boundary() -> None:
    log = _around_july()
    table = call_volumes(log, timezone=TZ, calendar=PA, fiscal_year_start=(7, 1), freq="week")
    assert table["period"].tolist() == [date(2024, 6, 27), date(2024, 7, 1), date(2024, 7, 8)]
    assert table["period_end"].tolist() == [date(2024, 6, 30), date(2024, 7, 7),
                                            date(2024, 7, 9)]
    # Thu-Fri 2 x 10 + Sat-Sun 2 x 3; then 4 x 10 + 6 (4 July) + 2 x 3; then 2 x 10
    assert table["calls"].tolist() == [26, 52, 20]
    assert table["working_days"].tolist() == [2, 4, 2]
    assert table["weekday_calls"].tolist() == [20, 40, 20]
    assert_allclose(table["weekday_average"], [10.0, 10.0, 10.0])  # 4 July left out
    assert table["answered"].tolist() == [22, 45, 18]  # one abandoned call per day
    assert table["abandoned"].tolist() == [4, 7, 2]
    assert_allclose(table["answered_share"], [22 / 26, 45 / 52, 18 / 20])
    assert table["transfer_911"].tolist() == [4, 7, 2]
    assert table["fiscal_year"].tolist() == ["FY2024", "FY2025", "FY2025"]
    # fiscal year to date restarts on 1 July: the June calls are FY2024
    assert table["fytd_calls"].tolist() == [26, 52, 72]


def test_call_volumes_by_month_and_fiscal_year_to_date() -> None:
    log = _around_july()
    months = call_volumes(log, timezone=TZ, calendar=PA, fiscal_year_start=(7, 1),
                          freq="month")
    assert months["period"].tolist() == [date(2024, 6, 27), date(2024, 7, 1)]
    assert months["calls"].tolist() == [26, 72]
    assert months["working_days"].tolist() == [2, 6]
    assert_allclose(months["weekday_average"], [10.0, 10.0])
    fytd = fiscal_year_to_date(log, timezone=TZ, calendar=PA, fiscal_year_start=(7, 1),
                               through=date(2024, 7, 9))
    first = fytd.iloc[0]
    assert (first["fiscal_year"], first["period"], first["calls"]) == ("FY2025",
                                                                       date(2024, 7, 1), 72)
    assert first["working_days"] == 6 and first["weekday_average"] == 10.0
    assert first["transfer_911"] == 9
    previous = fytd.iloc[1]
    assert (previous["fiscal_year"], previous["period_end"], previous["calls"]) == (
        "FY2024", date(2023, 7, 9), 0)
    # the log starts on 27 June 2024: no working day of FY2024 up to 9 July 2023 counts
    assert previous["working_days"] == 0 and np.isnan(previous["weekday_average"])
    assert first["log_starts"] == date(2024, 6, 27)
    june = fiscal_year_to_date(log, timezone=TZ, calendar=PA, fiscal_year_start=(7, 1),
                               through=date(2024, 6, 30))
    assert (june.iloc[0]["fiscal_year"], june.iloc[0]["calls"]) == ("FY2024", 26)
    assert june.iloc[0]["working_days"] == 2  # from the log's first day, not 1 July 2023
    calendar_year = fiscal_year_to_date(log, timezone=TZ, calendar=PA,
                                        through=date(2024, 7, 9))
    assert (calendar_year.iloc[0]["fiscal_year"], calendar_year.iloc[0]["calls"]) == (
        "FY2024", 98)
    with pytest.raises(InputError, match=r"freq: got 'day'; allowed: week, month"):
        call_volumes(log, timezone=TZ, calendar=PA, freq="day")  # type: ignore[arg-type]


def test_calls_by_department_and_calls_per_request() -> None:
    rows = [("2024-05-06 09:00", "phone", "service_request", True),
            ("2024-05-06 10:00", "phone", "information", True),
            ("2024-05-07 10:00", "phone", "information", False),
            ("2024-05-07 11:00", "phone", "referral", True),
            ("2024-05-07 12:00", "email", "service_request", None),
            ("2024-05-08 12:00", "phone", "information", True)]
    log = _log(rows, department=["Streets", "Streets", "Streets", "Water", "Streets", None],
               service_request_id=["R1", "R1", "R1", None, "R2", None])
    table = calls_by_department(log, timezone=TZ)
    assert table["department"].tolist() == ["Streets", "(unspecified)", "Water"]
    assert table["calls"].tolist() == [3, 1, 1]
    assert_allclose(table["share"], [0.6, 0.2, 0.2])
    assert_allclose(table["answered_share"], [2 / 3, 1.0, 1.0])
    assert table["service_requests"].tolist() == [1, 0, 0]
    assert table["requests_linked"].tolist() == [1, 0, 0]
    assert table["calls_per_request"].iloc[0] == 3.0 and np.isnan(table["calls_per_request"][1])
    assert calls_by_department(log, timezone=TZ, n=1)["rank"].tolist() == [1]
    requests = pd.DataFrame({"service_request_id": ["R1"], "service_name": ["Pothole"],
                             "agency_responsible": ["Streets"], "status": ["open"]})
    drawn = calls_per_request(log, requests, timezone=TZ)
    assert drawn["service_request_id"].tolist() == ["R1", "R2"]
    assert drawn["contacts"].tolist() == [3, 1] and drawn["calls"].tolist() == [3, 0]
    assert drawn["in_store"].tolist() == [True, False]
    assert drawn["service_name"].iloc[0] == "Pothole"
    with pytest.raises(InputError, match=r"n: got 0; allowed: a whole number >= 1"):
        calls_by_department(log, timezone=TZ, n=0)
