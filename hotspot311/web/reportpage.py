"""The reports page's logic without Streamlit: request reports and contact reports.

:func:`request_report` runs one of the standard request reports (:mod:`reports.meeting`)
with areas as drawn today or on the request date, reading only the rows and columns it
needs (:mod:`reports.reads`); :func:`contact_report` runs one of the contact reports
(:mod:`reports.contact_sheets`). ``pages/2_Reports.py`` calls them through the cached
reads of :mod:`hotspot311.web.appdata`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Final

import pandas as pd

from geo.store.base import Store
from geo.store.reads import RequestFilter
from reports.calendar import load_calendar
from reports.contact_sheets import CONTACT_REPORTS, run_contact_report
from reports.filters import ReportFilter
from reports.meeting import REPORTS, run_report
from reports.reads import report_requests

#: Request reports offered on the page (name → title).
REQUEST_REPORTS: Final = {name: spec.title for name, spec in REPORTS.items()}
#: Contact reports offered on the page (name → title).
CONTACT_REPORT_TITLES: Final = dict(CONTACT_REPORTS)


def request_report(store: Store, name: str, *, now: datetime, start: date | None = None,
                   end: date | None = None, by: str | None = None,
                   as_drawn: str = "today") -> tuple[pd.DataFrame, str]:
    """One standard request report.

    Parameters
    ----------
    store
        The store.
    name
        A key of :data:`REQUEST_REPORTS`.
    now
        Reference time for SLA states.
    start, end
        Local request dates (default: the data's).
    by
        Layer to break the report down by (``sla``: one row per area of it).
    as_drawn
        ``today`` or ``request-date`` (see :mod:`reports.asdrawn`).

    Returns
    -------
    tuple
        The table (without ``attrs``; empty when the store holds no requests), and the
        line saying which maps the areas are from.

    Raises
    ------
    InputError
        For an unknown report, ``by`` or ``as_drawn``, or ``start`` after ``end``.

    Notes
    -----
    Reads only the rows of the report's dates and the columns it needs
    (:func:`reports.reads.report_requests`), never the whole table; the table is the
    one the report gives on every stored request.
    """
    filt = ReportFilter(start=start, end=end)
    requests, period = report_requests(store, name, filt, now=now, by=by, as_drawn=as_drawn)
    note = str(requests.attrs.get("as_drawn", ""))
    if requests.empty and store.latest_request(RequestFilter()) is None:
        return pd.DataFrame(), note
    options: dict[str, object] = {"by": by}
    if name == "sla" and by:
        options = {"per": by}
    table = run_report(name, requests, period, timezone=store.profile.timezone, **options)
    return _plain(table), note


def contact_report(store: Store, contacts: pd.DataFrame, name: str, *,
                   start: date | None = None, end: date | None = None,
                   freq: str = "week") -> pd.DataFrame:
    """One contact report of ``contacts`` (the store's contact log).

    Parameters
    ----------
    store
        The store (its profile: time zone, calendar, fiscal year start).
    contacts
        The store's contacts.
    name
        A key of :data:`CONTACT_REPORT_TITLES`.
    start, end
        Local dates (default: the data's).
    freq
        ``calls`` only: ``week``, ``month`` or ``fytd``.

    Returns
    -------
    pandas.DataFrame
        The report.
    """
    profile = store.profile
    return _plain(run_contact_report(name, contacts, timezone=profile.timezone,
                                     calendar=load_calendar(profile),
                                     fiscal_year_start=profile.fiscal_year_start, start=start,
                                     end=end, freq=freq))


def _plain(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` without ``attrs`` (the page shows the period itself; Arrow, which
    Streamlit sends tables with, cannot hold dates in ``attrs``)."""
    out = table.copy()
    out.attrs = {}
    return out


def meeting_workbook(store: Store, *, now: datetime, start: date | None = None,
                     end: date | None = None) -> tuple[bytes, int]:
    """The performance-meeting workbook (as ``hotspot311 report meeting`` writes it).

    An explicit export: it reads the stored requests (and the contact log) whole.

    Returns
    -------
    tuple
        The ``.xlsx`` file's bytes and the number of request rows it summarizes.
    """
    import tempfile
    from pathlib import Path

    from reports.calendar import load_calendar
    from reports.export import write_workbook
    from reports.meeting import meeting_sheets, prepared_requests

    requests = prepared_requests(store, now=now, as_drawn="today")
    filt = ReportFilter(start=start, end=end).validate()
    profile = store.profile
    sheets = meeting_sheets(requests, filt, timezone=profile.timezone, now=now,
                            contacts=store.contacts(), calendar=load_calendar(profile),
                            fiscal_year_start=profile.fiscal_year_start)
    with tempfile.TemporaryDirectory(prefix="hotspot311-meeting-") as tmp:
        path = write_workbook(sheets, Path(tmp) / "meeting.xlsx")
        return path.read_bytes(), len(requests)
