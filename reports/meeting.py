"""The named reports, their sheets, and the performance-meeting workbook.

:data:`REPORTS` maps the names the CLI takes (``top10``, ``status``, ``sla``,
``volumes``, ``departments``) to their functions. :func:`meeting_sheets` builds the
sheets of the meeting workbook. Without dates the meeting covers the last
:data:`MEETING_DAYS` days up to the data date (the newest local request date); its
volumes sheet covers the 52 weeks up to the end date, beside the year before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final

import pandas as pd

from geo.store.base import Store
from hotspot311.errors import InputError, describe
from layers.services import load_services
from reports import standard
from reports.asdrawn import TODAY
from reports.asdrawn import as_drawn as as_drawn_frame
from reports.calendar import CalendarConfig, load_calendar
from reports.contact_sheets import contact_sheets
from reports.export import ChartSpec, Sheet
from reports.filters import ReportFilter, local_times
from reports.sla import DUE_SOON_HOURS, add_due_and_state

#: Days a meeting covers when no dates are given.
MEETING_DAYS: Final = 28
#: Layers tried, in order, for the meeting's "SLA by area" sheet.
MEETING_LAYERS: Final = ("council_district", "police_district", "zip")


@dataclass(frozen=True)
class ReportSpec:
    """A named report: title, function and the chart that suits it."""

    title: str
    function: Callable[..., pd.DataFrame]
    chart: Callable[[pd.DataFrame, str | None], ChartSpec | None]


def _top_chart(table: pd.DataFrame, by: str | None) -> ChartSpec | None:
    if by:
        return None
    return ChartSpec("bar", "service_name", ("count", "previous_count"),
                     "Requests by service type (this and the previous period)")


def _status_chart(table: pd.DataFrame, by: str | None) -> ChartSpec | None:
    if by:
        return None
    return ChartSpec("bar", "service_name", ("open", "overdue"), "Open and overdue requests")


def _volume_chart(table: pd.DataFrame, by: str | None) -> ChartSpec | None:
    if by:
        return None
    return ChartSpec("line", "period", ("count", "year_earlier"),
                     "Requests per period, and a year earlier")


def _department_chart(table: pd.DataFrame, by: str | None) -> ChartSpec | None:
    if by:
        return None
    return ChartSpec("bar", "agency_responsible", ("count",), "Requests by department")


def _no_chart(table: pd.DataFrame, by: str | None) -> ChartSpec | None:
    return None


#: Report name → spec.
REPORTS: Final[dict[str, ReportSpec]] = {
    "top10": ReportSpec("Top 10 service requests", standard.top_requests, _top_chart),
    "status": ReportSpec("Current status of the top service requests", standard.status_of_top,
                         _status_chart),
    "sla": ReportSpec("SLA compliance", standard.sla_compliance, _no_chart),
    "volumes": ReportSpec("Request volumes over time", standard.volumes, _volume_chart),
    "departments": ReportSpec("Requests by the top 10 departments", standard.top_departments,
                              _department_chart),
}


def prepared_requests(store: Store, *, now: datetime,
                      due_soon_hours: float = DUE_SOON_HOURS,
                      as_drawn: str = TODAY) -> pd.DataFrame:
    """The store's requests with due times and SLA states (city catalogue and calendar).

    Parameters
    ----------
    store
        Any store.
    now
        Reference time for open requests.
    due_soon_hours
        Horizon of ``open_due_soon``.
    as_drawn
        ``today`` (the stored joins) or ``request-date``: each request's areas from
        the layer generation in force on its request date (:mod:`reports.asdrawn`).

    Returns
    -------
    pandas.DataFrame
        Requests plus ``due_datetime``, ``due_source``, ``sla_state``, ``days_to_close``;
        ``attrs["as_drawn"]`` says which maps the layer columns come from.
    """
    return prepare_requests(pd.DataFrame(store.requests()), store, now=now,
                            due_soon_hours=due_soon_hours, as_drawn=as_drawn)


def prepare_requests(requests: pd.DataFrame, store: Store, *, now: datetime,
                     due_soon_hours: float = DUE_SOON_HOURS, as_drawn: str = TODAY,
                     keys: Sequence[str] | None = None) -> pd.DataFrame:
    """Some of the store's requests with due times and SLA states, areas as drawn.

    What :func:`prepared_requests` does to every stored request, done to the rows and
    columns a report read (:func:`reports.reads.report_requests`); each row's result
    depends on that row alone.

    Parameters
    ----------
    requests
        Stored requests: at least the columns :func:`reports.sla.add_due_and_state`
        needs, and ``x``/``y`` for layers redrawn on the request date.
    store
        The store they came from (profile, generations, areas).
    now, due_soon_hours, as_drawn
        As for :func:`prepared_requests`.
    keys
        Layers to redraw with ``request-date`` (default: every layer with more than one
        generation; see :func:`reports.asdrawn.as_drawn`).

    Returns
    -------
    pandas.DataFrame
        ``requests`` plus ``due_datetime``, ``due_source``, ``sla_state``,
        ``days_to_close``; ``attrs["as_drawn"]`` says which maps the layer columns
        come from.
    """
    profile = store.profile
    drawn = as_drawn_frame(requests, store, mode=as_drawn, timezone=profile.timezone,
                           keys=keys)
    note = drawn.attrs.get("as_drawn", "")
    out = add_due_and_state(drawn, services=load_services(profile),
                            calendar=load_calendar(profile), now=now,
                            due_soon_hours=due_soon_hours)
    out.attrs["as_drawn"] = note
    return out


def data_date(requests: pd.DataFrame) -> pd.Timestamp | None:
    """The newest time in the data (requested, updated or closed), UTC."""
    times = [pd.to_datetime(requests[c], utc=True).max()
             for c in ("requested_datetime", "updated_datetime", "closed_datetime")
             if c in requests.columns]
    times = [t for t in times if not pd.isna(t)]
    return max(times) if times else None


def run_report(name: str, requests: pd.DataFrame, filt: ReportFilter, *, timezone: str,
               **options: Any) -> pd.DataFrame:
    """Run a named report.

    Parameters
    ----------
    name
        A key of :data:`REPORTS`.
    requests
        Prepared requests (see :func:`prepared_requests`).
    filt
        The filter.
    timezone
        City time zone.
    **options
        Passed on (``by``, ``n``, ``per``, ``freq``); ``None`` values are dropped.

    Returns
    -------
    pandas.DataFrame
        The report.

    Raises
    ------
    InputError
        For an unknown name or a bad option.
    """
    check_report(name)
    given = {k: v for k, v in options.items() if v is not None}
    return REPORTS[name].function(requests, filt, timezone=timezone, **given)


def check_report(name: str) -> str:
    """Return ``name`` if it is a key of :data:`REPORTS`.

    Raises
    ------
    InputError
        Naming the value and the reports there are.
    """
    if name not in REPORTS:
        raise InputError(f"report: got {describe(name)}; allowed: {', '.join(REPORTS)}")
    return name


def header_lines(table: pd.DataFrame, filt: ReportFilter, *, data_as_of: pd.Timestamp | None,
                 now: datetime, timezone: str, note: str = "", areas: str = "") -> list[str]:
    """The three lines under a sheet's title: filters (and which maps the areas are
    from), data date, period."""
    period = table.attrs.get("period", (filt.start, filt.end))
    prev = table.attrs.get("previous_period")
    shown = replace(filt, start=period[0], end=period[1])
    when = (f"{data_as_of.tz_convert(timezone):%Y-%m-%d %H:%M %Z}" if data_as_of is not None
            else "no data")
    third = f"Period {period[0]} … {period[1]}"
    if prev:
        third += f" (compared with {prev[0]} … {prev[1]})"
    if note:
        third += f"; {note}"
    return [f"Filters: {shown.describe()}" + (f"; {areas}" if areas else ""),
            f"Data as of {when} (newest request time); SLA states as of "
            f"{pd.Timestamp(now).tz_convert(timezone):%Y-%m-%d %H:%M %Z}",
            third]


def report_sheet(name: str, table: pd.DataFrame, filt: ReportFilter, *, sheet_name: str,
                 by: str | None, data_as_of: pd.Timestamp | None, now: datetime,
                 timezone: str, title: str | None = None, note: str = "",
                 areas: str = "") -> Sheet:
    """A workbook sheet for a report table (``areas``: which maps, see
    :func:`reports.asdrawn.describe_as_drawn`)."""
    spec = REPORTS[name]
    return Sheet(name=sheet_name, title=title or spec.title, table=table,
                 lines=header_lines(table, filt, data_as_of=data_as_of, now=now,
                                    timezone=timezone, note=note, areas=areas),
                 chart=spec.chart(table, by))


def meeting_filter(requests: pd.DataFrame, filt: ReportFilter, *, timezone: str
                   ) -> ReportFilter:
    """The meeting's period: the filter's dates, else the last 28 days of data."""
    if filt.start is not None and filt.end is not None:
        return filt
    kept = filt.apply(requests, timezone=timezone)
    if kept.empty:
        return filt.resolved(requests, timezone=timezone)
    last = local_times(kept, timezone).max().date()
    end = filt.end or last
    start = filt.start or end - timedelta(days=MEETING_DAYS - 1)
    return replace(filt, start=start, end=end)


def meeting_sheets(requests: pd.DataFrame, filt: ReportFilter, *, timezone: str,
                   now: datetime, layer: str | None = None,
                   contacts: pd.DataFrame | None = None,
                   calendar: CalendarConfig | None = None,
                   fiscal_year_start: tuple[int, int] = (1, 1)) -> list[Sheet]:
    """Every sheet of the performance-meeting workbook.

    Parameters
    ----------
    requests
        Prepared requests (see :func:`prepared_requests`).
    filt
        The filter; missing dates give the last 28 days of data.
    timezone
        City time zone.
    now
        The time SLA states were computed at (stated on each sheet).
    layer
        Layer for the "SLA by area" sheet (default: the first of
        :data:`MEETING_LAYERS` present).
    contacts
        The contact log; when it holds contacts, the contact sheets follow
        (:func:`reports.contact_sheets.contact_sheets`).
    calendar
        The city's working days, for the weekday call average (weekends only when
        omitted).
    fiscal_year_start
        ``(month, day)`` of the city's fiscal year.

    Returns
    -------
    list of Sheet
        Top 10, Status, SLA by service, SLA by department, SLA by area, Volumes
        (weekly, 52 weeks), Departments; then the contact sheets. Every request sheet
        says which maps its areas are from (``requests.attrs["as_drawn"]``).
    """
    period = meeting_filter(requests, filt, timezone=timezone)
    if layer is None:
        layer = next((k for k in MEETING_LAYERS if k in requests.columns), None)
    as_of = data_date(requests)
    areas = str(requests.attrs.get("as_drawn", ""))
    sheets = []

    def add(name: str, sheet_name: str, f: ReportFilter, title: str | None = None,
            note: str = "", **options: Any) -> None:
        table = run_report(name, requests, f, timezone=timezone, **options)
        sheets.append(report_sheet(name, table, f, sheet_name=sheet_name, by=None, title=title,
                                   note=note, data_as_of=as_of, now=now, timezone=timezone,
                                   areas=areas))

    add("top10", "Top 10", period)
    add("status", "Status of top 10", period)
    add("sla", "SLA by service", period, title="SLA compliance by service type", per="service")
    add("sla", "SLA by department", period, title="SLA compliance by department",
        per="department")
    if layer is not None:
        add("sla", f"SLA by {layer}"[:31], period, title=f"SLA compliance by {layer}",
            per=layer)
    end = period.end or now.date()  # meeting_filter always sets it
    weeks = replace(period, start=end - timedelta(days=52 * 7 - 1), end=end)
    add("volumes", "Volumes by week", weeks, title="Requests per week, and a year earlier",
        note="weeks start on Monday; a year earlier = 52 weeks earlier", freq="week")
    add("departments", "Departments", period)
    if contacts is not None and period.start is not None:
        sheets += contact_sheets(contacts, requests, timezone=timezone,
                                 calendar=calendar or CalendarConfig(timezone=timezone),
                                 fiscal_year_start=fiscal_year_start, start=period.start,
                                 end=end)
    return sheets
