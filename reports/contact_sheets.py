"""The contact reports as named reports and workbook sheets (with charts).

:data:`CONTACT_REPORTS` maps the names the CLI takes (``inquiries``, ``calls``,
``call-departments``) to the functions of :mod:`reports.contacts`;
:func:`contact_sheets` builds the contact sheets of the meeting workbook.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final

import pandas as pd

from hotspot311.errors import InputError, describe
from reports import contacts as rc
from reports.calendar import CalendarConfig
from reports.export import ChartSpec, Sheet

#: Report name → title.
CONTACT_REPORTS: Final = {
    "inquiries": "Customer Inquiries Resolution Summary",
    "calls": "Call Volumes and Performance Levels",
    "call-departments": "Customer Calls Logged by the Top 10 Departments",
}
CALL_PERIODS: Final = ("week", "month", "fytd")


def run_contact_report(name: str, contacts: pd.DataFrame, *, timezone: str,
                       calendar: CalendarConfig, fiscal_year_start: tuple[int, int],
                       start: date | None = None, end: date | None = None,
                       freq: str = "week", n: int = 10) -> pd.DataFrame:
    """Run a named contact report.

    Parameters
    ----------
    name
        A key of :data:`CONTACT_REPORTS`.
    contacts
        Stored contacts.
    timezone, calendar, fiscal_year_start
        The city's time zone, working days and fiscal year start.
    start, end
        First and last local date (default: the data's).
    freq
        ``calls`` only: ``week``, ``month`` or ``fytd`` (fiscal year to date through
        ``end``, beside the year before).
    n
        ``call-departments`` only: number of departments.

    Returns
    -------
    pandas.DataFrame
        The report, with ``attrs["period"]``.

    Raises
    ------
    InputError
        For an unknown name or ``freq``.
    """
    if name not in CONTACT_REPORTS:
        raise InputError(f"report: got {describe(name)}; allowed: {', '.join(CONTACT_REPORTS)}")
    if name == "inquiries":
        return rc.inquiries_summary(contacts, timezone=timezone, start=start, end=end)
    if name == "call-departments":
        return rc.calls_by_department(contacts, timezone=timezone, start=start, end=end, n=n)
    if freq not in CALL_PERIODS:
        raise InputError(f"freq: got {describe(freq)}; allowed: {', '.join(CALL_PERIODS)}")
    if freq == "fytd":
        return rc.fiscal_year_to_date(contacts, timezone=timezone, calendar=calendar,
                                      fiscal_year_start=fiscal_year_start, through=end)
    return rc.call_volumes(contacts, timezone=timezone, calendar=calendar,
                           fiscal_year_start=fiscal_year_start, freq=freq,  # type: ignore[arg-type]
                           start=start, end=end)


def _chart(name: str, freq: str) -> ChartSpec | None:
    if name == "inquiries":
        return ChartSpec("bar", "label", ("contacts",), "Contacts by outcome")
    if name == "call-departments":
        return ChartSpec("bar", "department", ("calls",), "Calls by department")
    if freq in ("week", "month"):
        return ChartSpec("line", "period", ("calls", "answered"),
                         f"Incoming and answered calls per {freq}")
    return ChartSpec("bar", "fiscal_year", ("calls", "answered"),
                     "Fiscal year to date, and the year before")


def synthetic_note(contacts: pd.DataFrame) -> str:
    """``""``, or a warning naming the share of synthetic (demo) contacts."""
    if contacts.empty or not bool(contacts["synthetic"].any()):
        return ""
    return (f"; {float(contacts['synthetic'].mean()):.0%} of the contacts are SYNTHETIC "
            "(generated demo data, not real 311 contacts)")


def contact_sheet(name: str, table: pd.DataFrame, *, sheet_name: str, timezone: str,
                  fiscal_year_start: tuple[int, int], data_as_of: pd.Timestamp | None,
                  freq: str = "week", title: str | None = None, synthetic: str = "") -> Sheet:
    """A workbook sheet for a contact report: title, three header lines, table, chart.

    ``synthetic`` (from :func:`synthetic_note`) is added to the data line."""
    first, last = table.attrs.get("period", (None, None))
    when = (f"{data_as_of.tz_convert(timezone):%Y-%m-%d %H:%M %Z}" if data_as_of is not None
            else "no contacts")
    month, day = fiscal_year_start
    notes = {"inquiries": "every channel; share of all contacts received",
             "call-departments": "calls = phone contacts; share of all calls",
             "calls": "calls = phone contacts; weekday average = calls on working days / "
                      "working days (weekends and city holidays left out); answered share "
                      f"of calls whose outcome is known; fiscal year from {month:02d}-{day:02d}"}
    return Sheet(name=sheet_name, title=title or CONTACT_REPORTS[name], table=table,
                 lines=[f"Contacts received {first} … {last} (local dates)",
                        f"Data as of {when} (newest contact time){synthetic}", notes[name]],
                 chart=_chart(name, freq))


def contact_data_date(contacts: pd.DataFrame) -> pd.Timestamp | None:
    """The newest ``received_datetime`` (UTC), or ``None`` without contacts."""
    if contacts.empty:
        return None
    return pd.Timestamp(pd.to_datetime(contacts["received_datetime"], utc=True).max())


def contact_sheets(contacts: pd.DataFrame, requests: pd.DataFrame | None, *, timezone: str,
                   calendar: CalendarConfig, fiscal_year_start: tuple[int, int],
                   start: date, end: date) -> list[Sheet]:
    """The contact sheets of the meeting workbook.

    Parameters
    ----------
    contacts
        Stored contacts (none: no sheets).
    requests
        Stored requests, for the "Calls per request" sheet.
    timezone, calendar, fiscal_year_start
        The city's.
    start, end
        The meeting's period (local dates).

    Returns
    -------
    list of Sheet
        Inquiries, Calls by week, Calls by month, Calls FYTD, Call departments, Calls
        per request.
    """
    if contacts.empty:
        return []
    as_of = contact_data_date(contacts)
    common: dict[str, Any] = {"timezone": timezone, "calendar": calendar,
                              "fiscal_year_start": fiscal_year_start}
    sheets = []
    for name, sheet_name, freq, first in (
        ("inquiries", "Inquiries", "week", start),
        ("calls", "Calls by week", "week", start),
        ("calls", "Calls by month", "month", rc.fiscal_year(end, fiscal_year_start)[1]),
        ("calls", "Calls FYTD", "fytd", start),
        ("call-departments", "Call departments", "week", start),
    ):
        table = run_contact_report(name, contacts, start=first, end=end, freq=freq, **common)
        title = {"Calls by week": "Call Volumes and Performance Levels by week",
                 "Calls by month": "Call Volumes and Performance Levels by month (fiscal year)",
                 "Calls FYTD": "Call Volumes and Performance Levels, fiscal year to date"
                 }.get(sheet_name)
        sheets.append(contact_sheet(name, table, sheet_name=sheet_name, freq=freq, title=title,
                                    timezone=timezone, fiscal_year_start=fiscal_year_start,
                                    data_as_of=as_of, synthetic=synthetic_note(contacts)))
    drawn = rc.calls_per_request(contacts, requests, timezone=timezone, start=start, end=end,
                                 n=50)
    drawn = drawn.assign(first_contact=_local(drawn["first_contact"], timezone),
                         last_contact=_local(drawn["last_contact"], timezone))
    sheets.append(Sheet(name="Calls per request", title="Service requests that drew the most "
                        "contacts", table=drawn,
                        lines=[f"Contacts received {start} … {end} (local dates), naming a "
                               "service request", "times in local time"
                               + synthetic_note(contacts),
                               "contacts = every channel; calls = phone"]))
    return sheets


def _local(values: pd.Series, timezone: str) -> pd.Series:
    return pd.to_datetime(values, utc=True).dt.tz_convert(timezone).dt.tz_localize(None)
