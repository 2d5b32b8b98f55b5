"""What one standard request report reads from a store: its columns, and the rows of the
request dates it counts.

A report counts requests by local request date (:class:`~reports.filters.ReportFilter`):
those of its period (the filter's dates; a missing date is the data's first or last), and
for two reports those of a second period: ``top10`` compares with the period of equal
length just before (:meth:`~reports.filters.ReportFilter.previous`), ``volumes`` with a
year earlier (:func:`reports.standard.year_earlier`). :func:`report_requests` asks the
store (:meth:`~geo.store.base.Store.select_requests`) for the rows of those date ranges,
each a day wider at both ends (a local date and the UTC times it spans differ by less
than a day), ranges that overlap or touch read as one. When a date is missing it reads
first every row on that side of the other date (or every row), resolves the missing
date from these rows exactly as the report does on the whole table (every row the
filter keeps is among them), then the rows of the second period it has not read yet.

Each part is prepared as :func:`reports.meeting.prepared_requests` prepares the whole
table (areas as drawn, due times, SLA states: each row's result depends on that row
alone), and the report's own date filter keeps exactly the rows it kept from the whole
table, so the tables are the same (tested on both stores). Only the columns the reports
and the SLA step need are read (:func:`report_columns`), never the geometry; the city
``x``/``y`` only to redraw a layer on the request date. Each read is a statement (or a
snapshot) of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Final

import pandas as pd

from geo.store.base import Store
from geo.store.reads import RequestFilter
from hotspot311.errors import InputError, describe
from reports.asdrawn import REQUEST_DATE, TODAY, check_as_drawn, redrawn_layers
from reports.filters import ReportFilter
from reports.meeting import check_report, prepare_requests
from reports.sla import DUE_SOON_HOURS
from reports.standard import year_earlier

#: Columns every request report and :func:`reports.sla.add_due_and_state` read.
REPORT_COLUMNS: Final = ("service_request_id", "service_name", "agency_responsible",
                         "status", "requested_datetime", "expected_datetime",
                         "closed_datetime", "problem_id")

#: ``[start, end)`` in UTC; ``None``: unbounded on that side.
Span = tuple[datetime | None, datetime | None]
#: ``[start, end)`` in UTC, bounded.
Bounded = tuple[datetime, datetime]


def report_columns(store: Store, layers: Sequence[str] = (), *, as_drawn: str = TODAY
                   ) -> list[str]:
    """The request columns a report over ``layers`` (its break-down, its area filter)
    reads.

    Parameters
    ----------
    store
        The store (its layers and generations).
    layers
        Layer keys of the store.
    as_drawn
        ``today`` or ``request-date``: then ``x`` and ``y`` too when one of ``layers``
        has more than one generation (:func:`reports.asdrawn.redrawn_layers`).

    Returns
    -------
    list of str
        :data:`REPORT_COLUMNS`, then ``layers``, then ``x``, ``y`` when needed.

    Raises
    ------
    InputError
        When a layer is not in the store, or ``as_drawn`` is unknown.
    """
    check_as_drawn(as_drawn)
    keys = store.layer_keys()
    unknown = [k for k in layers if k not in keys]
    if unknown:
        raise InputError(f"layers: got {describe(unknown)}; allowed: {_choices(keys)}")
    redrawn = as_drawn == REQUEST_DATE and bool(layers) and redrawn_layers(store, layers)
    return [*REPORT_COLUMNS, *layers, *(["x", "y"] if redrawn else [])]


def report_periods(name: str, period: ReportFilter, *, freq: str = "week"
                   ) -> list[tuple[date, date]]:
    """The local request-date ranges report ``name`` counts for a resolved ``period``.

    Parameters
    ----------
    name
        A key of :data:`reports.meeting.REPORTS`.
    period
        The report's filter with both dates.
    freq
        ``volumes`` only: its ``freq`` (the year earlier is 364 days or 12 months back).

    Returns
    -------
    list of (date, date)
        First and last date of each range, both inclusive.

    Raises
    ------
    InputError
        For an unknown report or a period without both dates.

    Examples
    --------
    >>> p = ReportFilter(start=date(2026, 3, 1), end=date(2026, 3, 31))
    >>> report_periods("top10", p)
    [(datetime.date(2026, 1, 29), datetime.date(2026, 3, 31))]
    >>> report_periods("volumes", p)[1]
    (datetime.date(2025, 3, 2), datetime.date(2025, 4, 1))
    """
    check_report(name)
    if period.start is None or period.end is None:
        raise InputError(f"period: got {period.start} … {period.end}; both dates are "
                         "needed (ReportFilter.resolved)")
    if name == "top10":
        return [(period.previous().start or period.start, period.end)]
    if name == "volumes":
        earlier = year_earlier(period, freq)
        return [(period.start, period.end),
                (earlier.start or period.start, earlier.end or period.end)]
    return [(period.start, period.end)]


def report_requests(store: Store, name: str, filt: ReportFilter, *, now: datetime,
                    by: str | None = None, as_drawn: str = TODAY, freq: str = "week",
                    due_soon_hours: float = DUE_SOON_HOURS
                    ) -> tuple[pd.DataFrame, ReportFilter]:
    """The prepared requests report ``name`` counts: only its rows and columns.

    Parameters
    ----------
    store
        The store.
    name
        A key of :data:`reports.meeting.REPORTS`.
    filt
        The report's filter; its dates are pushed down to the store, its departments,
        services and areas are applied by the report.
    now, due_soon_hours, as_drawn
        As for :func:`reports.meeting.prepare_requests`.
    by
        The layer the report is broken down by (or ``per`` of ``sla``), or ``None``.
    freq
        As for :func:`report_periods`.

    Returns
    -------
    tuple
        The prepared requests (as :func:`reports.meeting.prepared_requests` gives them,
        fewer rows and columns; ``attrs["as_drawn"]`` set) and ``filt`` with missing
        dates resolved, as the report resolves them on the whole table.

    Raises
    ------
    InputError
        For an unknown report, a bad filter, ``by`` or ``as_drawn``.
    """
    check_report(name)
    keys = store.layer_keys()
    if by is not None and by not in keys:
        raise InputError(f"by: got {describe(by)}; allowed: {_choices(keys)}")
    # an area filter's unknown layer is the report's error to name (ReportFilter.apply)
    areas = [k for k in filt.areas if k in keys]
    layers = list(dict.fromkeys([*([by] if by else []), *areas]))
    columns = report_columns(store, layers, as_drawn=as_drawn)

    def read(spans: Sequence[Span]) -> pd.DataFrame:
        rows = _joined([store.select_requests(RequestFilter(start=lo, end=hi), columns)
                        for lo, hi in spans])
        return prepare_requests(rows, store, now=now, due_soon_hours=due_soon_hours,
                                as_drawn=as_drawn, keys=layers)

    if filt.validate().start is not None and filt.end is not None:  # one read, one prepare
        return read(_merged(_wanted(name, filt, freq))), filt
    base = _span(filt.start, filt.end)
    first = read([base])
    period = filt.resolved(first, timezone=store.profile.timezone)
    extra = _merged([part for span in _wanted(name, period, freq)
                     for part in _beyond(span, base)])
    return (_joined([first, read(extra)]) if extra else first), period


def _choices(keys: Sequence[str]) -> str:
    return f"a layer of the store ({', '.join(keys) or 'none loaded'})"


def _wanted(name: str, period: ReportFilter, freq: str) -> list[Bounded]:
    """:func:`report_periods` as UTC spans (see :func:`_span`)."""
    return [(_before(a), _after(b)) for a, b in report_periods(name, period, freq=freq)]


def _joined(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The non-empty ``frames`` one after another (the first when all are empty), with
    the first one's ``attrs``."""
    full = [f for f in frames if len(f)]
    if len(full) <= 1:
        return full[0] if full else frames[0]
    out = pd.concat(full, ignore_index=True)
    out.attrs = dict(frames[0].attrs)
    return out


def _span(first: date | None, last: date | None) -> Span:
    """UTC times covering local dates ``first`` … ``last`` in any time zone (UTC offsets
    lie within a day): from midnight UTC the day before ``first`` to midnight UTC two
    days after ``last``; ``None`` (unbounded) for a missing date."""
    return (None if first is None else _before(first)), (None if last is None else _after(last))


def _before(first: date) -> datetime:
    return datetime.combine(first - timedelta(days=1), time(), UTC)


def _after(last: date) -> datetime:
    return datetime.combine(last + timedelta(days=2), time(), UTC)


def _beyond(span: Bounded, base: Span) -> list[Bounded]:
    """The parts of ``span`` outside ``base`` (before it, after it)."""
    lo, hi = span
    start, end = base
    parts = []
    if start is not None and lo < start:
        parts.append((lo, min(hi, start)))
    if end is not None and hi > end:
        parts.append((max(lo, end), hi))
    return parts


def _merged(spans: list[Bounded]) -> list[Bounded]:
    """``spans`` with overlapping or touching ones joined, in order (no row read twice)."""
    out: list[Bounded] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out
