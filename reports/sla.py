"""Due times and SLA states of requests.

Rules
-----
Due time (``due_datetime``, UTC):

1. The source's ``expected_datetime`` when it gives one (``due_source = "source"``).
2. Else requested time + the service type's ``sla_days`` from the city's service
   catalogue (``due_source = "sla_table"``), counted in the city's time zone and keeping
   the local time of day:

   - calendar days: the same wall-clock time ``sla_days`` days later (so across a
     daylight-saving change the due time is 23 or 25 hours per day away, not 24);
   - working days (``working_days = true``): the same wall-clock time on the
     ``sla_days``-th working day *after* the local request date, skipping weekends and
     the holidays of :mod:`reports.calendar`. A request made on a weekend or holiday
     is counted from that day too: 1 working day from Saturday is Monday. A fractional
     part (``2.5``) is added as calendar time after the whole working days.

   A wall-clock due time that does not exist (spring forward) moves forward to the first
   valid instant; an ambiguous one (fall back) is read as the first (daylight) occurrence,
   as :mod:`geo.ingest.times` reads source times.
3. Else none: the type is not in the catalogue or has no ``sla_days``
   (``due_source = None``).

SLA state (``sla_state``), with ``now`` the reference time:

========================  ===========================================================
``no_sla``                no due time (open or closed)
``on_time``               closed at or before the due time (exactly at it is on time)
``closed_late``           closed after the due time
``closed_unknown``        closed, but the source gives no close time to judge by
``open_overdue``          open and ``now`` is after the due time
``open_due_soon``         open, not overdue, due within ``due_soon_hours`` of ``now``
``open_on_track``         open and due later than that
========================  ===========================================================

``days_to_close`` is ``closed_datetime - requested_datetime`` in days (``NaN`` when open
or the close time is unknown), whatever the SLA.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Final
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from hotspot311.errors import InputError, describe

if TYPE_CHECKING:  # annotations only: the page imports SLA_STATES without the calendar
    from layers.services import ServiceType
    from reports.calendar import CalendarConfig

#: Every SLA state, in reporting order.
SLA_STATES: Final = ("on_time", "closed_late", "closed_unknown", "open_overdue",
                     "open_due_soon", "open_on_track", "no_sla")

#: Default horizon of ``open_due_soon``, in hours.
DUE_SOON_HOURS: Final = 48.0

_NEEDED: Final = ("service_name", "status", "requested_datetime", "expected_datetime",
                  "closed_datetime")


def add_due_and_state(
    requests: pd.DataFrame,
    *,
    services: Sequence[ServiceType],
    calendar: CalendarConfig,
    now: datetime,
    due_soon_hours: float = DUE_SOON_HOURS,
) -> pd.DataFrame:
    """Add ``due_datetime``, ``due_source``, ``sla_state`` and ``days_to_close``.

    Parameters
    ----------
    requests
        Canonical requests (see :mod:`geo.ingest.model`); left untouched.
    services
        The city's service catalogue (name, ``sla_days``, ``working_days``); names
        match case-insensitively.
    calendar
        Time zone and non-working days.
    now
        Reference time for open requests (timezone-aware).
    due_soon_hours
        Horizon of ``open_due_soon``.

    Returns
    -------
    pandas.DataFrame
        A copy with the four columns added (see the module docstring for the rules).

    Raises
    ------
    InputError
        When a needed column is missing, ``now`` is naive or ``due_soon_hours`` is
        negative.
    """
    _check(requests, now, due_soon_hours)
    out = requests.copy()
    computed = sla_due_times(out, services=services, calendar=calendar)
    source = pd.to_datetime(out["expected_datetime"], utc=True)
    out["due_datetime"] = source.where(source.notna(), computed)
    labels = np.array([None] * len(out), dtype=object)
    labels[computed.notna().to_numpy()] = "sla_table"
    labels[source.notna().to_numpy()] = "source"
    out["due_source"] = pd.Series(labels, index=out.index, dtype=object)
    out["sla_state"] = sla_states(out, now=now, due_soon_hours=due_soon_hours)
    closed = pd.to_datetime(out["closed_datetime"], utc=True)
    requested = pd.to_datetime(out["requested_datetime"], utc=True)
    days = (closed - requested) / pd.Timedelta(days=1)
    out["days_to_close"] = days.where(_is_closed(out["status"]))
    return out


def sla_due_times(
    requests: pd.DataFrame, *, services: Sequence[ServiceType], calendar: CalendarConfig
) -> pd.Series:
    """Due times from the service catalogue alone (ignoring ``expected_datetime``).

    Parameters
    ----------
    requests
        Needs ``service_name`` and ``requested_datetime``.
    services
        The service catalogue.
    calendar
        Time zone and non-working days.

    Returns
    -------
    pandas.Series
        ``datetime64[ns, UTC]``; ``NaT`` where the type has no SLA.
    """
    by_name = {s.name.casefold(): s for s in services}
    # look the catalogue up once per distinct name, not once per request
    codes, uniques = pd.factorize(requests["service_name"], use_na_sentinel=True)
    found = [by_name.get(str(name).casefold()) for name in uniques]
    days_of = np.array([np.nan if s is None or s.sla_days is None else float(s.sla_days)
                        for s in found] + [np.nan], dtype="float64")
    working_of = np.array([s is not None and bool(s.working_days) for s in found] + [False])
    sla = pd.Series(days_of[codes], index=requests.index)  # code -1 (no name): the NaN
    is_working = working_of[codes]
    requested = pd.to_datetime(requests["requested_datetime"], utc=True)
    wall = requested.dt.tz_convert(calendar.timezone).dt.tz_localize(None)
    out = pd.Series(pd.NaT, index=requests.index, dtype="datetime64[ns, UTC]")
    has = sla.notna().to_numpy() & wall.notna().to_numpy()
    if not has.any():
        return out
    days = sla.to_numpy()
    due_wall = pd.Series(pd.NaT, index=requests.index, dtype="datetime64[ns]")
    cal_rows = has & ~is_working
    due_wall[cal_rows] = wall[cal_rows] + pd.to_timedelta(days[cal_rows], unit="D")
    work_rows = has & is_working
    if work_rows.any():
        due_wall[work_rows] = _add_working_days(wall[work_rows], days[work_rows], calendar)
    local = due_wall[has].dt.tz_localize(calendar.timezone, ambiguous=np.ones(int(has.sum()), bool),
                                         nonexistent="shift_forward")
    out[has] = local.dt.tz_convert("UTC")
    return out


def sla_due_time(service_name: object, requested: datetime | None, *,
                 services: Sequence[ServiceType], calendar: CalendarConfig) -> datetime | None:
    """One request's due time from the catalogue: :func:`sla_due_times` for one row,
    without building a frame (a one-request read spends microseconds, not milliseconds).

    Parameters
    ----------
    service_name
        The request's service name (matched case-insensitively).
    requested
        Its requested time (timezone-aware).
    services
        The service catalogue.
    calendar
        Time zone and non-working days.

    Returns
    -------
    datetime.datetime or None
        The due time in UTC; ``None`` where the type has no SLA, as :func:`sla_due_times`
        gives ``NaT``. A due time in a spring-forward gap is computed by
        :func:`sla_due_times` itself, so the two always agree.

    Examples
    --------
    >>> from layers.services import ServiceType
    >>> from reports.calendar import CalendarConfig
    >>> lights = ServiceType("Street Light Outage", "Streets", 5, True)
    >>> sla_due_time("street light outage", datetime(2026, 7, 2, 14, tzinfo=UTC),
    ...              services=[lights], calendar=CalendarConfig("America/New_York"))
    datetime.datetime(2026, 7, 9, 14, 0, tzinfo=datetime.timezone.utc)
    """
    if service_name is None or requested is None:
        return None
    folded = str(service_name).casefold()
    found = next((s for s in services if s.name.casefold() == folded), None)
    if found is None or found.sla_days is None:
        return None
    days = float(found.sla_days)
    zone = _zone(calendar.timezone)
    wall = requested.astimezone(zone).replace(tzinfo=None)
    if found.working_days:
        whole = math.floor(days)
        start = wall.date()
        due_day = start
        if whole:
            hol = calendar.holidays(start.year, start.year + 1 + whole // 200)
            due_day = date.fromisoformat(str(np.busday_offset(
                np.datetime64(start, "D"), whole, roll="backward",
                weekmask=calendar.weekmask, holidays=hol)))
        due_wall = datetime.combine(due_day, wall.time()) + timedelta(days=days - whole)
    else:
        due_wall = wall + timedelta(days=days)
    local = due_wall.replace(tzinfo=zone)  # fold 0: the first of an ambiguous hour
    if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != due_wall:
        # a wall time the clocks skip: the frame path shifts it forward
        frame = pd.DataFrame({"service_name": [service_name],
                              "requested_datetime": pd.to_datetime([requested], utc=True)})
        due = sla_due_times(frame, services=services, calendar=calendar).iloc[0]
        return None if pd.isna(due) else pd.Timestamp(due).to_pydatetime()
    return local.astimezone(UTC)


@lru_cache(maxsize=16)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def sla_states(frame: pd.DataFrame, *, now: datetime, due_soon_hours: float = DUE_SOON_HOURS
               ) -> pd.Series:
    """The SLA state of each request (see the module docstring).

    Parameters
    ----------
    frame
        Needs ``status``, ``due_datetime`` and ``closed_datetime``.
    now
        Reference time (timezone-aware).
    due_soon_hours
        Horizon of ``open_due_soon``.

    Returns
    -------
    pandas.Series
        One of :data:`SLA_STATES` per row.
    """
    due = pd.to_datetime(frame["due_datetime"], utc=True)
    closed_at = pd.to_datetime(frame["closed_datetime"], utc=True)
    closed = _is_closed(frame["status"])
    now_ts = pd.Timestamp(now).tz_convert("UTC")
    soon = now_ts + pd.Timedelta(hours=due_soon_hours)
    has_due = due.notna()
    conditions = [
        ~has_due,
        closed & closed_at.isna(),
        closed & (closed_at <= due),
        closed,
        due < now_ts,
        due <= soon,
    ]
    choices = ["no_sla", "closed_unknown", "on_time", "closed_late", "open_overdue",
               "open_due_soon"]
    state = np.select([c.to_numpy(dtype=bool) for c in conditions], choices,
                      default="open_on_track")
    return pd.Series(state.astype(object), index=frame.index, name="sla_state")


def _is_closed(status: pd.Series) -> pd.Series:
    return status.astype("string").str.lower().eq("closed").fillna(False).astype(bool)


def _add_working_days(wall: pd.Series, days: np.ndarray, calendar: CalendarConfig) -> pd.Series:
    """Wall-clock times ``days`` working days after each local date, same time of day."""
    whole = np.floor(days).astype("int64")
    fraction = days - whole
    start = wall.dt.normalize()
    time_of_day = wall - start
    start_d = start.to_numpy().astype("datetime64[D]")
    first = int(start.dt.year.min())
    last = int(start.dt.year.max()) + 1 + int(whole.max()) // 200
    hol = calendar.holidays(first, last)
    # roll "backward" then step: the n-th working day strictly after the start date, also
    # when the start date itself is not a working day (Saturday + 1 → Monday).
    due_d = np.busday_offset(start_d, whole, roll="backward", weekmask=calendar.weekmask,
                             holidays=hol)
    due_d = np.where(whole == 0, start_d, due_d)
    due = pd.Series(due_d.astype("datetime64[ns]"), index=wall.index)
    return due + time_of_day + pd.to_timedelta(fraction, unit="D")


def _check(requests: pd.DataFrame, now: datetime, due_soon_hours: float) -> None:
    problems = []
    missing = [c for c in _NEEDED if c not in requests.columns]
    if missing:
        problems.append(f"requests: missing columns {missing}; needed: {list(_NEEDED)}")
    if not isinstance(now, datetime) or now.tzinfo is None:
        problems.append(f"now: got {describe(now)}; allowed: a timezone-aware datetime")
    if not isinstance(due_soon_hours, int | float) or not due_soon_hours >= 0:
        problems.append(f"due_soon_hours: got {describe(due_soon_hours)}; allowed: a number >= 0")
    if problems:
        raise InputError(problems)
