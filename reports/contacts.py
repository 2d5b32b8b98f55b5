"""The contact reports of a 311 center: what people asked, how many called, who they called.

Three of the standard reports a 311 center brings to its performance meetings (Philadelphia's
PhillyStat) are about contacts, not service requests (:mod:`geo.ingest.contacts`):

- :func:`inquiries_summary`, the *Customer Inquiries Resolution Summary*: contacts by
  outcome (general information, agency transfer or referral, service request, transfer to
  911, other) and their shares.
- :func:`call_volumes` and :func:`fiscal_year_to_date`, *Call Volumes and Performance
  Levels*: incoming calls (``channel == "phone"``), average weekday volume, share answered
  and 911 transfers, by week (Monday first), by month and fiscal year to date.
- :func:`calls_by_department`, *Customer Calls Logged by the Top 10 Departments*.

:func:`calls_per_request` links contacts to the service requests they made or asked about,
so a report can say how many calls one request drew.

Dates are local dates of ``received_datetime`` in the city's time zone, both ends
inclusive; missing ends default to the data's first and last dates. The **average weekday
volume** is the calls received on working days divided by the number of working days in
the period, weekends and the city's holidays (:mod:`reports.calendar`) left out of both.
The **share answered** is answered calls over calls whose ``answered`` is known (abandoned
calls are ``answered = false``). A fiscal year starts on the profile's
``fiscal_year_start`` and is named for the calendar year it ends in (Philadelphia's FY2025
runs 1 July 2024 – 30 June 2025).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Final, Literal

import numpy as np
import pandas as pd

from hotspot311.errors import InputError, describe
from reports.calendar import CalendarConfig

#: Outcome → the label used in the published summary.
OUTCOME_LABELS: Final = {
    "information": "General information",
    "referral": "Agency transfer or referral",
    "service_request": "Service request",
    "transfer_911": "Transfer to 911",
    "other": "Other",
}
UNSPECIFIED: Final = "(unspecified)"
CALL_FREQS: Final = ("week", "month")
_CALL: Final = "phone"


def local_dates(contacts: pd.DataFrame, timezone: str) -> pd.Series:
    """Local dates (midnight timestamps, naive) of ``received_datetime`` in ``timezone``."""
    times = pd.to_datetime(contacts["received_datetime"], utc=True)
    return times.dt.tz_convert(timezone).dt.tz_localize(None).dt.normalize()


def period_of(contacts: pd.DataFrame, *, timezone: str, start: date | None = None,
              end: date | None = None) -> tuple[date, date]:
    """``(start, end)`` with missing ends set from the data (today when there is none).

    Raises
    ------
    InputError
        When ``start`` is after ``end``.
    """
    if start is not None and end is not None and start > end:
        raise InputError(f"start: {start} is after end {end}; allowed: start <= end")
    days = local_dates(contacts, timezone)
    first = days.min().date() if len(days) else None
    last = days.max().date() if len(days) else None
    begin = start or first or end or pd.Timestamp.now(tz=timezone).date()
    finish = end or last or begin
    return begin, max(begin, finish)


def select(contacts: pd.DataFrame, *, timezone: str, start: date, end: date,
           channels: tuple[str, ...] = ()) -> pd.DataFrame:
    """The contacts received from ``start`` to ``end`` (local dates), of ``channels``."""
    day = local_dates(contacts, timezone)
    keep = (day >= pd.Timestamp(start)) & (day <= pd.Timestamp(end))
    if channels:
        keep &= contacts["channel"].isin(channels)
    return contacts[keep.to_numpy(dtype=bool)].copy()


def inquiries_summary(contacts: pd.DataFrame, *, timezone: str, start: date | None = None,
                      end: date | None = None, channels: tuple[str, ...] = ()
                      ) -> pd.DataFrame:
    """The Customer Inquiries Resolution Summary: contacts by outcome.

    Parameters
    ----------
    contacts
        Stored contacts.
    timezone
        City time zone.
    start, end
        First and last local date (default: the data's).
    channels
        Only these channels (default: every channel).

    Returns
    -------
    pandas.DataFrame
        ``outcome, label, contacts, share`` for every outcome (0 where none), then a last
        row ``(all)``; ``attrs["period"]``. Abandoned calls (``answered`` false) are left
        out: nobody resolved them.

    Examples
    --------
    >>> log = pd.DataFrame({"received_datetime": pd.to_datetime(["2024-07-01T14:00Z"] * 4),
    ...                     "channel": "phone",
    ...                     "outcome": ["information"] * 3 + ["transfer_911"]})
    >>> inquiries_summary(log, timezone="America/New_York")["share"].tolist()
    [0.75, 0.0, 0.0, 0.25, 0.0, 1.0]
    """
    first, last = period_of(contacts, timezone=timezone, start=start, end=end)
    kept = select(contacts, timezone=timezone, start=first, end=last, channels=channels)
    if "answered" in kept.columns:
        abandoned = kept["answered"].astype("boolean").eq(False).fillna(False).astype(bool)
        kept = kept[~abandoned.to_numpy()]
    counts = kept["outcome"].value_counts().reindex(list(OUTCOME_LABELS), fill_value=0)
    total = int(counts.sum())
    out = pd.DataFrame({"outcome": list(OUTCOME_LABELS), "label": list(OUTCOME_LABELS.values()),
                        "contacts": counts.to_numpy(dtype="int64")})
    out = pd.concat([out, pd.DataFrame({"outcome": ["(all)"], "label": ["All contacts"],
                                        "contacts": [total]})], ignore_index=True)
    out["contacts"] = out["contacts"].astype("int64")
    out["share"] = out["contacts"] / total if total else np.nan
    out.attrs["period"] = (first, last)
    return out


def fiscal_year(day: date, start: tuple[int, int]) -> tuple[int, date]:
    """The fiscal year holding ``day``: its name (the year it ends in) and first day.

    Examples
    --------
    >>> fiscal_year(date(2024, 7, 1), (7, 1)), fiscal_year(date(2024, 6, 30), (7, 1))
    ((2025, datetime.date(2024, 7, 1)), (2024, datetime.date(2023, 7, 1)))
    >>> fiscal_year(date(2024, 3, 5), (1, 1))
    (2024, datetime.date(2024, 1, 1))
    """
    first = date(day.year, *start)
    if day < first:
        first = date(day.year - 1, *start)
    name = first.year if start == (1, 1) else first.year + 1
    return name, first


def working_days(first: date, last: date, calendar: CalendarConfig) -> int:
    """Working days from ``first`` to ``last`` inclusive (weekends and holidays left out)."""
    if last < first:
        return 0
    hol = calendar.holidays(first.year, last.year)
    return int(np.busday_count(np.datetime64(first, "D"), np.datetime64(last + timedelta(1), "D"),
                               weekmask=calendar.weekmask, holidays=hol))


def _working(days: pd.Series, calendar: CalendarConfig) -> np.ndarray:
    if days.empty:
        return np.zeros(0, dtype=bool)
    arr = days.to_numpy(dtype="datetime64[D]")
    years = arr.astype("datetime64[Y]").astype(int) + 1970
    hol = calendar.holidays(int(years.min()), int(years.max()))
    return np.is_busday(arr, weekmask=calendar.weekmask, holidays=hol)


def _call_figures(calls: pd.DataFrame, working: np.ndarray) -> dict[str, float | int]:
    answered = calls["answered"].astype("boolean")
    known = int(answered.notna().sum())
    n_answered = int(answered.fillna(False).astype(bool).sum())
    return {
        "calls": len(calls),
        "weekday_calls": int(working.sum()),
        "answered": n_answered,
        "abandoned": known - n_answered,
        "answered_share": n_answered / known if known else np.nan,
        "transfer_911": int(calls["outcome"].eq("transfer_911").sum()),
    }


def call_volumes(contacts: pd.DataFrame, *, timezone: str, calendar: CalendarConfig,
                 fiscal_year_start: tuple[int, int] = (1, 1),
                 freq: Literal["week", "month"] = "week", start: date | None = None,
                 end: date | None = None) -> pd.DataFrame:
    """Call Volumes and Performance Levels, by week or by month.

    Parameters
    ----------
    contacts
        Stored contacts; calls are those with ``channel == "phone"``.
    timezone
        City time zone.
    calendar
        The city's working days (weekday averages leave out weekends and holidays).
    fiscal_year_start
        ``(month, day)`` of the fiscal year's first day.
    freq
        ``week`` (Monday to Sunday) or ``month``.
    start, end
        First and last local date (default: the data's). The first and last periods
        count only the days inside the range.

    Returns
    -------
    pandas.DataFrame
        ``period`` (first day counted), ``period_end``, ``fiscal_year``, ``calls``,
        ``working_days``, ``weekday_calls``, ``weekday_average``, ``answered``,
        ``abandoned``, ``answered_share``, ``transfer_911`` and ``fytd_calls`` (calls from
        the start of the period's fiscal year to ``period_end``, whatever ``start`` is);
        every period listed, 0 where there were no calls.

    Raises
    ------
    InputError
        For an unknown ``freq``.
    """
    if freq not in CALL_FREQS:
        raise InputError(f"freq: got {describe(freq)}; allowed: {', '.join(CALL_FREQS)}")
    first, last = period_of(contacts, timezone=timezone, start=start, end=end)
    calls = contacts[contacts["channel"].eq(_CALL).to_numpy(dtype=bool)]
    days = local_dates(calls, timezone)
    rows = []
    for p_start, p_end in _periods(first, last, freq):
        in_p = ((days >= pd.Timestamp(p_start)) & (days <= pd.Timestamp(p_end))).to_numpy()
        chosen = calls[in_p]
        figures = _call_figures(chosen, _working(days[in_p], calendar))
        n_work = working_days(p_start, p_end, calendar)
        fy_name, fy_first = fiscal_year(p_end, fiscal_year_start)
        fytd = int(((days >= pd.Timestamp(fy_first)) & (days <= pd.Timestamp(p_end))).sum())
        rows.append({"period": p_start, "period_end": p_end, "fiscal_year": f"FY{fy_name}",
                     "calls": figures["calls"], "working_days": n_work,
                     "weekday_calls": figures["weekday_calls"],
                     "weekday_average": figures["weekday_calls"] / n_work if n_work else np.nan,
                     "answered": figures["answered"], "abandoned": figures["abandoned"],
                     "answered_share": figures["answered_share"],
                     "transfer_911": figures["transfer_911"], "fytd_calls": fytd})
    out = pd.DataFrame(rows, columns=["period", "period_end", "fiscal_year", "calls",
                                      "working_days", "weekday_calls", "weekday_average",
                                      "answered", "abandoned", "answered_share",
                                      "transfer_911", "fytd_calls"])
    for col in ("calls", "working_days", "weekday_calls", "answered", "abandoned",
                "transfer_911", "fytd_calls"):
        out[col] = out[col].astype("int64")
    out["weekday_average"] = out["weekday_average"].astype("float64")
    out["answered_share"] = out["answered_share"].astype("float64")
    out.attrs["period"] = (first, last)
    return out


def fiscal_year_to_date(contacts: pd.DataFrame, *, timezone: str, calendar: CalendarConfig,
                        fiscal_year_start: tuple[int, int] = (1, 1),
                        through: date | None = None) -> pd.DataFrame:
    """Call figures of the fiscal year up to ``through``, beside the year before.

    Parameters
    ----------
    contacts, timezone, calendar, fiscal_year_start
        As for :func:`call_volumes`.
    through
        Last local date counted (default: the data's last date).

    Returns
    -------
    pandas.DataFrame
        Two rows, this fiscal year to date and the previous one to the same date a year
        earlier: ``fiscal_year, period, period_end``, ``log_starts`` (the first day of
        the contact log) and the figures of :func:`call_volumes` (``calls``,
        ``working_days``, ``weekday_calls``, ``weekday_average``, ``answered``,
        ``abandoned``, ``answered_share``, ``transfer_911``). Working days are counted
        from the later of the fiscal year's first day and ``log_starts``, so a log that
        begins mid-year does not dilute the weekday average.
    """
    _, last = period_of(contacts, timezone=timezone, end=through)
    calls = contacts[contacts["channel"].eq(_CALL).to_numpy(dtype=bool)]
    days = local_dates(calls, timezone)
    rows = []
    log_start = local_dates(contacts, timezone).min()
    log_start = log_start.date() if len(contacts) else last
    for to in (last, _year_before(last)):
        name, fy_first = fiscal_year(to, fiscal_year_start)
        in_p = ((days >= pd.Timestamp(fy_first)) & (days <= pd.Timestamp(to))).to_numpy()
        figures = _call_figures(calls[in_p], _working(days[in_p], calendar))
        n_work = working_days(max(fy_first, log_start), to, calendar)
        rows.append({"fiscal_year": f"FY{name}", "period": fy_first, "period_end": to,
                     "log_starts": log_start, **figures, "working_days": n_work,
                     "weekday_average": figures["weekday_calls"] / n_work if n_work else np.nan})
    out = pd.DataFrame(rows)[["fiscal_year", "period", "period_end", "log_starts", "calls",
                              "working_days",
                              "weekday_calls", "weekday_average", "answered", "abandoned",
                              "answered_share", "transfer_911"]]
    out.attrs["period"] = (rows[0]["period"], last)
    return out


def calls_by_department(contacts: pd.DataFrame, *, timezone: str, start: date | None = None,
                        end: date | None = None, n: int = 10,
                        channels: tuple[str, ...] = (_CALL,)) -> pd.DataFrame:
    """Customer Calls Logged by the Top 10 Departments.

    Parameters
    ----------
    contacts
        Stored contacts.
    timezone
        City time zone.
    start, end
        First and last local date (default: the data's).
    n
        Number of departments.
    channels
        Contacts counted (default: calls only).

    Returns
    -------
    pandas.DataFrame
        ``rank, department, calls, share`` (of all calls in the period), ``answered_share``,
        ``service_requests`` (calls that made a request), ``requests_linked`` (distinct
        requests the calls name) and ``calls_per_request`` (calls naming a request over
        ``requests_linked``); ties ranked by name.

    Raises
    ------
    InputError
        When ``n`` is not a whole number >= 1.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise InputError(f"n: got {describe(n)}; allowed: a whole number >= 1")
    first, last = period_of(contacts, timezone=timezone, start=start, end=end)
    kept = select(contacts, timezone=timezone, start=first, end=last, channels=channels)
    dept = kept["department"].astype(object)
    kept["department"] = dept.where(dept.notna() & (dept.astype(str) != ""), UNSPECIFIED)
    kept["answered_known"] = kept["answered"].astype("boolean").notna()
    kept["answered_true"] = kept["answered"].astype("boolean").fillna(False).astype(bool)
    kept["sr"] = kept["outcome"].eq("service_request")
    kept["linked"] = kept["service_request_id"].notna()
    grouped = kept.groupby("department")
    out = grouped.agg(calls=("contact_id", "size"), known=("answered_known", "sum"),
                      answered=("answered_true", "sum"), service_requests=("sr", "sum"),
                      linked_calls=("linked", "sum"),
                      requests_linked=("service_request_id", "nunique")).reset_index()
    total = int(out["calls"].sum())
    out["share"] = out["calls"] / max(1, total)
    out["answered_share"] = out["answered"] / out["known"].where(out["known"] > 0)
    out["calls_per_request"] = out["linked_calls"] / out["requests_linked"].where(
        out["requests_linked"] > 0)
    out = out.sort_values(["calls", "department"], ascending=[False, True]).head(n)
    out["rank"] = np.arange(1, len(out) + 1)
    for col in ("calls", "service_requests", "requests_linked"):
        out[col] = out[col].astype("int64")
    out = out[["rank", "department", "calls", "share", "answered_share", "service_requests",
               "requests_linked", "calls_per_request"]].reset_index(drop=True)
    out.attrs["period"] = (first, last)
    return out


def calls_per_request(contacts: pd.DataFrame, requests: pd.DataFrame | None = None, *,
                      timezone: str, start: date | None = None, end: date | None = None,
                      n: int | None = None) -> pd.DataFrame:
    """How many contacts each service request drew.

    Parameters
    ----------
    contacts
        Stored contacts; those naming a ``service_request_id`` count.
    requests
        Stored requests, for the service type, department and status (optional).
    timezone, start, end
        As for :func:`inquiries_summary` (dates of the contacts).
    n
        Keep the ``n`` requests with the most contacts (all when ``None``).

    Returns
    -------
    pandas.DataFrame
        ``service_request_id, contacts, calls, first_contact, last_contact`` and, with
        ``requests``, ``service_name, agency_responsible, status, in_store`` (whether the
        request is in the store); most contacts first, then by id.
    """
    first, last = period_of(contacts, timezone=timezone, start=start, end=end)
    kept = select(contacts, timezone=timezone, start=first, end=last)
    kept = kept[kept["service_request_id"].notna().to_numpy(dtype=bool)]
    kept["call"] = kept["channel"].eq(_CALL)
    out = kept.groupby("service_request_id").agg(
        contacts=("contact_id", "size"), calls=("call", "sum"),
        first_contact=("received_datetime", "min"),
        last_contact=("received_datetime", "max")).reset_index()
    out["calls"] = out["calls"].astype("int64")
    out["contacts"] = out["contacts"].astype("int64")
    if requests is not None:
        cols = ["service_request_id", "service_name", "agency_responsible", "status"]
        info = pd.DataFrame(requests[cols]).drop_duplicates("service_request_id")
        out = out.merge(info, on="service_request_id", how="left", indicator=True)
        out["in_store"] = out.pop("_merge").eq("both")
    out = out.sort_values(["contacts", "service_request_id"], ascending=[False, True])
    if n is not None:
        out = out.head(n)
    out = out.reset_index(drop=True)
    out.attrs["period"] = (first, last)
    return out


def _periods(first: date, last: date, freq: str) -> list[tuple[date, date]]:
    """Weeks (Monday first) or months overlapping ``first``…``last``, cut to the range."""
    out = []
    if freq == "week":
        cursor = first - timedelta(days=first.weekday())
        step = 7
    else:
        cursor = first.replace(day=1)
        step = 0
    while cursor <= last:
        if step:
            nxt = cursor + timedelta(days=step)
        else:
            nxt = date(cursor.year + cursor.month // 12, cursor.month % 12 + 1, 1)
        out.append((max(cursor, first), min(nxt - timedelta(days=1), last)))
        cursor = nxt
    return out


def _year_before(day: date) -> date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)
