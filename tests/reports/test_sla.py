"""Due times and SLA states, pinned on hand-built requests (America/New_York)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hotspot311.errors import InputError
from layers.profile import CityProfile
from layers.services import ServiceType
from reports.calendar import CalendarConfig, calendar_from_dict, is_working_day, load_calendar
from reports.sla import SLA_STATES, add_due_and_state, sla_due_time, sla_due_times

TZ = "America/New_York"
CAL = calendar_from_dict({"country": "US", "subdiv": "PA", "observances": ["Good Friday"]},
                         timezone=TZ)
SERVICES = (
    ServiceType("Working", "Streets", 1, True),
    ServiceType("Working3", "Streets", 3, True),
    ServiceType("Calendar", "Streets", 1, False),
    ServiceType("Half", "Streets", 1.5, True),
    ServiceType("NoSLA", "Police", None, False),
)
NOW = datetime(2024, 6, 3, 12, tzinfo=UTC)


def local(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=TZ).tz_convert("UTC")


def frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    out = pd.DataFrame(rows)
    for col in ("expected_datetime", "closed_datetime"):
        if col not in out:
            out[col] = pd.NaT
        out[col] = pd.to_datetime(out[col], utc=True)
    out["requested_datetime"] = pd.to_datetime(out["requested_datetime"], utc=True)
    return out


def req(service: str, when: str) -> dict[str, object]:
    """An open request of ``service`` made at local time ``when``."""
    return {"service_name": service, "status": "open", "requested_datetime": local(when)}


def due_local(rows: list[dict[str, object]]) -> list[str]:
    out = add_due_and_state(frame(rows), services=SERVICES, calendar=CAL, now=NOW)
    return [f"{t.tz_convert(TZ):%Y-%m-%d %H:%M %Z}" if not pd.isna(t) else "none"
            for t in out["due_datetime"]]


def test_working_days_skip_weekend_and_holidays() -> None:
    rows = [
        # Friday before Memorial Day (Mon 2024-05-27): 1 working day → Tuesday
        req("Working", "2024-05-24 10:00"),
        req("Working3", "2024-05-24 10:00"),
        # Thursday before Good Friday (a city observance) → Monday
        req("Working", "2024-03-28 09:15"),
        # Saturday and the holiday itself count from that day: next working day
        req("Working", "2024-05-25 08:00"),
        req("Working", "2024-05-27 08:00"),
        # July 4th 2026 is a Saturday: observed on Friday July 3rd
        req("Working", "2026-07-02 16:00"),
        # 1.5 working days: Friday 10:00 → Monday 10:00 + 12 h
        req("Half", "2024-05-17 10:00"),
    ]
    assert due_local(rows) == [
        "2024-05-28 10:00 EDT", "2024-05-30 10:00 EDT", "2024-04-01 09:15 EDT",
        "2024-05-28 08:00 EDT", "2024-05-28 08:00 EDT", "2026-07-06 16:00 EDT",
        "2024-05-20 22:00 EDT",
    ]


def test_midnight_on_daylight_saving_changes() -> None:
    rows = [
        req("Calendar", "2024-03-10 00:00"),
        req("Calendar", "2024-11-03 00:00"),
        req("Calendar", "2024-03-09 00:00"),
        req("Calendar", "2024-11-02 00:00"),
        # Friday midnight before spring forward: 1 working day → Monday midnight (EDT)
        req("Working", "2024-03-08 00:00"),
        # wall times that do not exist / exist twice on the change day
        req("Calendar", "2024-03-09 02:30"),
        req("Calendar", "2024-11-02 01:30"),
    ]
    out = add_due_and_state(frame(rows), services=SERVICES, calendar=CAL, now=NOW)
    hours = ((out["due_datetime"] - out["requested_datetime"]) / pd.Timedelta(hours=1)).tolist()
    assert hours[:4] == [23, 25, 24, 24]  # the change day itself is 23 or 25 h long
    assert out["due_datetime"].iloc[0] == pd.Timestamp("2024-03-11 04:00", tz="UTC")
    assert out["due_datetime"].iloc[1] == pd.Timestamp("2024-11-04 05:00", tz="UTC")
    assert out["due_datetime"].iloc[2] == pd.Timestamp("2024-03-10 05:00", tz="UTC")
    assert out["due_datetime"].iloc[3] == pd.Timestamp("2024-11-03 04:00", tz="UTC")
    assert out["due_datetime"].iloc[4] == pd.Timestamp("2024-03-11 04:00", tz="UTC")
    # 02:30 on 2024-03-10 does not exist: moved forward to 03:00 EDT
    assert out["due_datetime"].iloc[5] == pd.Timestamp("2024-03-10 07:00", tz="UTC")
    # 01:30 on 2024-11-03 exists twice: the first (EDT) occurrence
    assert out["due_datetime"].iloc[6] == pd.Timestamp("2024-11-03 05:30", tz="UTC")


def test_one_row_due_time_equals_the_frame_path() -> None:
    """``sla_due_time`` (what a one-request read uses) gives what ``sla_due_times`` gives
    for the same row: DST edges (the gap shifted forward, the doubled hour's first
    occurrence), weekends, holidays, fractions, zero days, unknown and missing names."""
    services = (*SERVICES, ServiceType("Zero", "Streets", 0, True),
                ServiceType("Frac", "Streets", 0.25, False),
                ServiceType("Long", "Streets", 400, True))
    rng = np.random.default_rng(7)
    # random instants over three years, plus every quarter hour round each DST change
    instants = list(pd.to_datetime(rng.integers(1_672_531_200, 1_767_225_600, 400),
                                   unit="s", utc=True))
    for day in ("2024-03-08", "2024-03-09", "2024-11-01", "2024-11-02", "2025-03-08",
                "2024-12-31", "2024-07-03"):
        start = pd.Timestamp(f"{day} 00:00", tz=TZ).tz_convert("UTC")
        instants += list(pd.date_range(start, periods=4 * 30, freq="15min"))
    names = [s.name for s in services] + ["working", "Not in the catalogue", None]
    rows = pd.DataFrame({"service_name": [names[i % len(names)] for i in range(len(instants))],
                         "requested_datetime": pd.DatetimeIndex(instants)})
    expected = sla_due_times(rows, services=services, calendar=CAL)
    got = [sla_due_time(n, t.to_pydatetime(), services=services, calendar=CAL)
           for n, t in zip(rows["service_name"], rows["requested_datetime"], strict=True)]
    def same(want: object, have: datetime | None) -> bool:
        if pd.isna(want) or have is None:
            return bool(pd.isna(want)) and have is None
        return pd.Timestamp(have) == want

    mismatched = [(rows["service_name"][i], rows["requested_datetime"][i], expected[i], got[i])
                  for i in range(len(rows)) if not same(expected[i], got[i])]
    assert not mismatched, mismatched[:5]
    assert sum(g is None for g in got) >= len(rows) // len(names)  # unknown: no SLA
    # a gap instant really is among the cases (02:30 on 2024-03-10 exists nowhere)
    gap = sla_due_time("Calendar", datetime(2024, 3, 9, 7, 30, tzinfo=UTC),
                       services=services, calendar=CAL)
    assert gap == datetime(2024, 3, 10, 7, 0, tzinfo=UTC)


def test_states_pinned() -> None:
    req = local("2024-05-28 10:00")  # Tuesday; Calendar SLA due 2024-05-29 10:00 EDT
    due = req + pd.Timedelta(days=1)
    now = due - pd.Timedelta(hours=1)
    rows = [
        {"service_name": "Calendar", "status": "closed", "requested_datetime": req,
         "closed_datetime": due},  # exactly at the due time: on time
        {"service_name": "Calendar", "status": "closed", "requested_datetime": req,
         "closed_datetime": due + pd.Timedelta(seconds=1)},
        {"service_name": "Calendar", "status": "closed", "requested_datetime": req},
        {"service_name": "Calendar", "status": "open",
         "requested_datetime": req - pd.Timedelta(days=2)},
        {"service_name": "Calendar", "status": "open", "requested_datetime": req},  # due in 1 h
        {"service_name": "Calendar", "status": "open",  # due in exactly 48 h: due soon
         "requested_datetime": req + pd.Timedelta(hours=47)},
        {"service_name": "Calendar", "status": "open",
         "requested_datetime": req + pd.Timedelta(hours=47, seconds=1)},
        {"service_name": "NoSLA", "status": "open", "requested_datetime": req},
        {"service_name": "Unknown type", "status": "closed", "requested_datetime": req,
         "closed_datetime": due},
        # the source's due time wins over the table
        {"service_name": "NoSLA", "status": "open", "requested_datetime": req,
         "expected_datetime": req + pd.Timedelta(minutes=30)},
    ]
    out = add_due_and_state(frame(rows), services=SERVICES, calendar=CAL, now=now.to_pydatetime())
    assert out["sla_state"].tolist() == [
        "on_time", "closed_late", "closed_unknown", "open_overdue", "open_due_soon",
        "open_due_soon", "open_on_track", "no_sla", "no_sla", "open_overdue",
    ]
    assert out["due_source"].tolist()[-3:] == [None, None, "source"]
    assert out["due_source"].iloc[0] == "sla_table"
    np.testing.assert_allclose(out["days_to_close"].iloc[:3], [1.0, 1 + 1 / 86400, np.nan])
    assert out["days_to_close"].iloc[3:8].isna().all()
    assert set(out["sla_state"]) <= set(SLA_STATES)


def test_horizon_is_configurable_and_input_untouched() -> None:
    req = local("2024-05-28 10:00")
    rows = frame([{"service_name": "Calendar", "status": "open", "requested_datetime": req}])
    before = rows.copy()
    now = (req - pd.Timedelta(hours=1)).to_pydatetime()  # due in 25 h
    states = [add_due_and_state(rows, services=SERVICES, calendar=CAL, now=now,
                                due_soon_hours=h)["sla_state"].iloc[0] for h in (24, 25, 0)]
    assert states == ["open_on_track", "open_due_soon", "open_on_track"]
    pd.testing.assert_frame_equal(rows, before)


def test_bad_arguments() -> None:
    rows = frame([{"service_name": "Calendar", "status": "open",
                   "requested_datetime": local("2024-05-28 10:00")}])
    with pytest.raises(InputError, match=r"now: got .*timezone-aware"):
        add_due_and_state(rows, services=SERVICES, calendar=CAL, now=datetime(2024, 1, 1))
    with pytest.raises(InputError, match="due_soon_hours: got -1"):
        add_due_and_state(rows, services=SERVICES, calendar=CAL, now=NOW, due_soon_hours=-1)
    with pytest.raises(InputError, match=r"missing columns \['closed_datetime'\]"):
        add_due_and_state(rows.drop(columns="closed_datetime"), services=SERVICES,
                          calendar=CAL, now=NOW)


def test_calendar_config() -> None:
    cal = calendar_from_dict({"country": "US", "subdiv": "PA", "observances": ["Good Friday"],
                              "dates": ["2024-12-24"]}, timezone=TZ)
    days = [date(2024, 3, 29), date(2024, 12, 24), date(2024, 11, 29), date(2024, 12, 23)]
    assert is_working_day(cal, days) == [False, False, False, True]
    plain = CalendarConfig(timezone=TZ)
    assert is_working_day(plain, [date(2024, 12, 25), date(2024, 12, 28)]) == [True, False]
    with pytest.raises(InputError) as err:
        calendar_from_dict({"country": "XX", "observances": ["Festivus"],
                            "dates": ["24/12/2024"], "weekend": ["Sunday"]}, timezone=TZ)
    text = str(err.value)
    assert "4 problems" in text
    assert "'XX' is not known" in text and "'Festivus' is not known; allowed: Good Friday" in text
    assert "'24/12/2024' is not a date" in text and "'Sunday' is not one of Mon" in text


def test_philadelphia_calendar(phila: CityProfile) -> None:
    cal = load_calendar(phila)
    assert (cal.country, cal.subdiv, cal.observances, cal.timezone) == (
        "US", "PA", ("Good Friday",), TZ)
    assert np.datetime64("2025-04-18") in cal.holidays(2025, 2025)  # Good Friday 2025


def test_profile_without_catalogue(squares_profile: CityProfile, tmp_path: Path) -> None:
    cal = load_calendar(squares_profile)
    assert cal.country is None and cal.weekend == (5, 6)
