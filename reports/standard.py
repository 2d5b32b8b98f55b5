"""The standard 311 reports, each a function returning a DataFrame.

Every report takes the requests (with the columns of :func:`reports.sla.add_due_and_state`
for the reports that need SLA states), one :class:`~reports.filters.ReportFilter`, the
city's time zone and an optional ``by``: a layer key (``zip``, ``council_district``, …)
to break the report down by; requests outside every area of that layer are counted
under ``"(outside)"``.

Reports
-------
- :func:`top_requests`: the top service types with their share and the change against
  the previous period of equal length.
- :func:`status_of_top`: open, closed, overdue and due-soon counts of the top types.
- :func:`sla_compliance`: share closed within SLA and days to close (median, 90th
  percentile) per service type, department or area.
- :func:`volumes`: requests per day, week (Monday first) or month, beside the same
  period a year earlier (364 days earlier for days and weeks, so weekdays line up;
  12 months earlier for months).
- :func:`top_departments`: requests by the top departments.

:func:`year_earlier` gives the period :func:`volumes` compares with.

Problems beside requests: where the requests carry ``problem_id``
(:mod:`clustering.problems`; a request without one is a problem of its own),
:func:`top_requests` adds ``problems`` (distinct problems among the period's requests),
:func:`volumes` adds ``new_problems`` (problems whose first request falls in the
period) and :func:`sla_compliance` adds the SLA by problem: a problem is judged by its
first request, on time when that request was closed within its SLA
(``problems_judged``, ``problems_on_time``, ``problem_compliance``).

Each result carries ``attrs["period"]`` (the resolved date range) for headers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal

import numpy as np
import pandas as pd

from hotspot311.errors import InputError, describe
from reports.filters import ReportFilter, extra_columns, local_times

OUTSIDE: Final = "(outside)"
UNSPECIFIED: Final = "(unspecified)"
ALL: Final = "(all)"
FREQS: Final = ("day", "week", "month")
Freq = Literal["day", "week", "month"]
_PER: Final = {"service": "service_name", "department": "agency_responsible"}


def top_requests(requests: pd.DataFrame, filt: ReportFilter | None = None, *,
                 timezone: str, n: int = 10, by: str | None = None) -> pd.DataFrame:
    """The ``n`` most requested service types.

    Parameters
    ----------
    requests
        Canonical requests with layer columns.
    filt
        Dates (missing ends default to the data's), departments, services, areas.
    timezone
        City time zone.
    n
        Number of service types (per ``by`` area).
    by
        Layer key to break down by.

    Returns
    -------
    pandas.DataFrame
        ``[by,] rank, service_name, count, share`` (of all requests in the period and
        area), ``previous_count`` (previous period of equal length), ``change`` and
        ``change_pct`` (``NaN`` when the previous count is 0).

    Raises
    ------
    InputError
        For a bad filter, ``n`` or ``by``.
    """
    _check_common(requests, n, by)
    filt = (filt or ReportFilter()).resolved(requests, timezone=timezone)
    keys = _keys(by)
    current = _prepare(filt.apply(requests, timezone=timezone), by)
    previous = _prepare(filt.previous().apply(requests, timezone=timezone), by)
    counts = _counts(current, [*keys, "service_name"], "count")
    counts["share"] = counts["count"] / counts.groupby(keys)["count"].transform("sum") \
        if keys else counts["count"] / max(1, int(counts["count"].sum()))
    counts = _top(counts, keys, n)
    before = _counts(previous, [*keys, "service_name"], "previous_count")
    out = counts.merge(before, on=[*keys, "service_name"], how="left")
    out["previous_count"] = out["previous_count"].fillna(0).astype("int64")
    out["change"] = out["count"] - out["previous_count"]
    out["change_pct"] = out["change"] / out["previous_count"].where(out["previous_count"] > 0)
    cols = [*keys, "rank", "service_name", "count", "share", "previous_count", "change",
            "change_pct"]
    if "problem_id" in requests.columns:
        distinct = (current.assign(_p=_problem_ids(current))
                    .groupby([*keys, "service_name"])["_p"].nunique().rename("problems"))
        out = out.merge(distinct.reset_index(), on=[*keys, "service_name"], how="left")
        out["problems"] = out["problems"].fillna(0).astype("int64")
        cols.insert(cols.index("share"), "problems")
    return _with_period(out[cols].reset_index(drop=True), filt, previous=filt.previous())


def status_of_top(requests: pd.DataFrame, filt: ReportFilter | None = None, *,
                  timezone: str, n: int = 10, by: str | None = None) -> pd.DataFrame:
    """Current status of the requests of the ``n`` most requested service types.

    Parameters
    ----------
    requests
        Requests with ``sla_state`` (see :func:`reports.sla.add_due_and_state`).
    filt, timezone, n, by
        As for :func:`top_requests`.

    Returns
    -------
    pandas.DataFrame
        ``[by,] rank, service_name, count, open, closed, overdue, due_soon,
        overdue_share`` (overdue as a share of open; ``NaN`` with none open).
    """
    _check_common(requests, n, by, sla=True)
    filt = (filt or ReportFilter()).resolved(requests, timezone=timezone)
    keys = _keys(by)
    current = _prepare(filt.apply(requests, timezone=timezone), by)
    current["open"] = _is_open(current)
    current["closed"] = ~current["open"]
    current["overdue"] = current["sla_state"].eq("open_overdue")
    current["due_soon"] = current["sla_state"].eq("open_due_soon")
    grouped = current.groupby([*keys, "service_name"], dropna=False)
    out = grouped.agg(count=("service_request_id", "size"), open=("open", "sum"),
                      closed=("closed", "sum"), overdue=("overdue", "sum"),
                      due_soon=("due_soon", "sum")).reset_index()
    out = _top(out, keys, n)
    out["overdue_share"] = out["overdue"] / out["open"].where(out["open"] > 0)
    cols = [*keys, "rank", "service_name", "count", "open", "closed", "overdue", "due_soon",
            "overdue_share"]
    return _with_period(out[cols].reset_index(drop=True), filt)


def sla_compliance(requests: pd.DataFrame, filt: ReportFilter | None = None, *,
                   timezone: str, per: str = "service", by: str | None = None,
                   total: bool = True) -> pd.DataFrame:
    """Share of requests closed within their SLA, and days to close.

    Parameters
    ----------
    requests
        Requests with ``sla_state`` and ``days_to_close``.
    filt, timezone, by
        As for :func:`top_requests`.
    per
        ``service``, ``department`` or a layer key: one row per value.
    total
        Add a last row ``(all)`` over every request kept (only without ``by``).

    Returns
    -------
    pandas.DataFrame
        ``[by,] <per column>, requests, closed, judged`` (closed with a due time and a
        close time), ``on_time, closed_late, compliance`` (``on_time / judged``),
        ``open_overdue, no_sla, median_days_to_close, p90_days_to_close`` (over every
        closed request with a close time, SLA or not), sorted by requests; with
        ``problem_id``: ``problems, problems_judged, problems_on_time,
        problem_compliance`` (each problem judged by its first request).
    """
    _check_common(requests, 1, by, sla=True)
    column = _PER.get(per, per)
    if column not in requests.columns:
        raise InputError(f"per: got {describe(per)}; allowed: service, department or a layer "
                         f"({', '.join(extra_columns(requests))})")
    filt = (filt or ReportFilter()).resolved(requests, timezone=timezone)
    keys = _keys(by)
    current = _prepare(filt.apply(requests, timezone=timezone), by)
    current[column] = _label(current[column], OUTSIDE if column not in _PER.values()
                             else UNSPECIFIED)
    by_problem = "problem_id" in requests.columns
    out = _compliance(current, [*keys, column], by_problem=by_problem)
    out = out.sort_values([*keys, "requests", column], ascending=[*[True] * len(keys), False,
                                                                  True])
    if total and not keys and len(current):
        whole = _compliance(current.assign(**{column: ALL}), [column], by_problem=by_problem)
        out = pd.concat([out, whole], ignore_index=True)
    return _with_period(out.reset_index(drop=True), filt)


def volumes(requests: pd.DataFrame, filt: ReportFilter | None = None, *, timezone: str,
            freq: Freq = "week", by: str | None = None) -> pd.DataFrame:
    """Requests per day, week or month, beside the same period a year earlier.

    Parameters
    ----------
    requests
        Canonical requests.
    filt, timezone, by
        As for :func:`top_requests`; the year-earlier counts use the same filter with
        its dates moved back.
    freq
        ``day``, ``week`` (Monday to Sunday) or ``month``.

    Returns
    -------
    pandas.DataFrame
        ``[by,] period`` (first day, a date), ``count, year_earlier, change_pct``; every
        period of the range is listed, with 0 where nothing was requested. The first and
        last periods count only the days inside the date range, and so do their
        year-earlier counterparts. With ``problem_id``: ``new_problems``, the problems
        whose first request is in the period.
    """
    _check_common(requests, 1, by)
    if freq not in FREQS:
        raise InputError(f"freq: got {describe(freq)}; allowed: {', '.join(FREQS)}")
    filt = (filt or ReportFilter()).resolved(requests, timezone=timezone)
    keys = _keys(by)
    current = _prepare(filt.apply(requests, timezone=timezone), by)
    periods = _period_range(filt, freq)
    earlier = _prepare(year_earlier(filt, freq).apply(requests, timezone=timezone), by)
    now_counts = _bucket(current, timezone, freq, keys).rename("count")
    old = _bucket(earlier, timezone, freq, keys)
    old = _shift_index(old, freq, keys).rename("year_earlier")
    groups = sorted(set(current[by]) | set(earlier[by])) if by else [None]
    index: pd.Index = (pd.MultiIndex.from_product([groups, periods], names=[by, "period"])
                       if by else pd.Index(periods, name="period"))
    out = pd.DataFrame({"count": now_counts.reindex(index, fill_value=0),
                        "year_earlier": old.reindex(index, fill_value=0)}).reset_index()
    out["count"] = out["count"].astype("int64")
    out["year_earlier"] = out["year_earlier"].astype("int64")
    out["change_pct"] = (out["count"] - out["year_earlier"]) / out["year_earlier"].where(
        out["year_earlier"] > 0)
    if "problem_id" in requests.columns:
        firsts = current[_problem_ids(current).eq(current["service_request_id"].astype(str))]
        out["new_problems"] = _bucket(firsts, timezone, freq, keys).reindex(
            index, fill_value=0).astype("int64").to_numpy()
    out["period"] = pd.to_datetime(out["period"]).dt.date
    return _with_period(out, filt)


def top_departments(requests: pd.DataFrame, filt: ReportFilter | None = None, *,
                    timezone: str, n: int = 10, by: str | None = None) -> pd.DataFrame:
    """Requests by the ``n`` departments with the most requests.

    Parameters
    ----------
    requests
        Requests with ``sla_state`` and ``days_to_close``.
    filt, timezone, n, by
        As for :func:`top_requests`.

    Returns
    -------
    pandas.DataFrame
        ``[by,] rank, agency_responsible, count, share, service_types, open,
        open_overdue, compliance, median_days_to_close``.
    """
    _check_common(requests, n, by, sla=True)
    filt = (filt or ReportFilter()).resolved(requests, timezone=timezone)
    keys = _keys(by)
    current = _prepare(filt.apply(requests, timezone=timezone), by)
    current["agency_responsible"] = _label(current["agency_responsible"], UNSPECIFIED)
    stats = _compliance(current, [*keys, "agency_responsible"])
    types = current.groupby([*keys, "agency_responsible"])["service_name"].nunique()
    stats = stats.merge(types.rename("service_types").reset_index(),
                        on=[*keys, "agency_responsible"])
    stats["open"] = current.assign(o=_is_open(current)).groupby(
        [*keys, "agency_responsible"])["o"].sum().reindex(
        pd.MultiIndex.from_frame(stats[[*keys, "agency_responsible"]])).to_numpy()
    stats = stats.rename(columns={"requests": "count"})
    stats["share"] = stats["count"] / (stats.groupby(keys)["count"].transform("sum") if keys
                                       else max(1, int(stats["count"].sum())))
    stats = _top(stats, keys, n)
    cols = [*keys, "rank", "agency_responsible", "count", "share", "service_types", "open",
            "open_overdue", "compliance", "median_days_to_close"]
    return _with_period(stats[cols].reset_index(drop=True), filt)


def year_earlier(filt: ReportFilter, freq: str = "week") -> ReportFilter:
    """The period :func:`volumes` compares ``filt``'s with: 364 days earlier for days and
    weeks (so weekdays line up), 12 months earlier for months.

    Parameters
    ----------
    filt
        A filter with both dates (see :meth:`ReportFilter.resolved`).
    freq
        ``day``, ``week`` or ``month``.

    Returns
    -------
    ReportFilter
        The same filter with its dates moved back.

    Raises
    ------
    InputError
        When ``filt`` lacks a date.

    Examples
    --------
    >>> from datetime import date
    >>> f = ReportFilter(start=date(2026, 3, 1), end=date(2026, 3, 31))
    >>> year_earlier(f).start, year_earlier(f, "month").end
    (datetime.date(2025, 3, 2), datetime.date(2025, 3, 31))
    """
    offset = pd.DateOffset(years=1) if freq == "month" else pd.Timedelta(days=364)
    first, last = _dates(filt)
    return ReportFilter((first - offset).date(), (last - offset).date(), filt.departments,
                        filt.services, filt.areas)


# --- helpers --------------------------------------------------------------------------

def _check_common(requests: pd.DataFrame, n: int, by: str | None, *, sla: bool = False) -> None:
    problems = []
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        problems.append(f"n: got {describe(n)}; allowed: a whole number >= 1")
    if by is not None and by not in requests.columns:
        problems.append(f"by: got {describe(by)}; allowed: a layer of the data "
                        f"({', '.join(extra_columns(requests)) or 'none loaded'})")
    needed = ("sla_state", "days_to_close") if sla else ()
    missing = [c for c in needed if c not in requests.columns]
    if missing:
        problems.append(f"requests: missing {missing}; add them with "
                        "reports.sla.add_due_and_state first")
    if problems:
        raise InputError(problems)


def _keys(by: str | None) -> list[str]:
    return [by] if by else []


def _label(values: pd.Series, missing: str) -> pd.Series:
    text = values.astype(object)
    return text.where(text.notna() & (text.astype(str) != ""), missing).astype(str)


def _prepare(frame: pd.DataFrame, by: str | None) -> pd.DataFrame:
    out = frame.copy()
    out["service_name"] = _label(out["service_name"], UNSPECIFIED)
    if by:
        out[by] = _label(out[by], OUTSIDE)
    return out


def _is_open(frame: pd.DataFrame) -> pd.Series:
    return ~frame["status"].astype("string").str.lower().eq("closed").fillna(False).astype(bool)


def _counts(frame: pd.DataFrame, keys: Sequence[str], name: str) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame({**{k: pd.Series([], dtype=object) for k in keys},
                             name: pd.Series([], dtype="int64")})
    return frame.groupby(list(keys)).size().rename(name).reset_index()


def _top(frame: pd.DataFrame, keys: list[str], n: int) -> pd.DataFrame:
    """The ``n`` largest ``count`` rows per ``keys`` group, ranked 1…n (ties by name)."""
    name_col = next(c for c in frame.columns if c in ("service_name", "agency_responsible"))
    count_col = "count"
    ordered = frame.sort_values([*keys, count_col, name_col],
                                ascending=[*[True] * len(keys), False, True])
    if keys:
        ordered["rank"] = ordered.groupby(keys).cumcount() + 1
    else:
        ordered["rank"] = np.arange(1, len(ordered) + 1)
    return ordered[ordered["rank"] <= n]


def _problem_ids(frame: pd.DataFrame) -> pd.Series:
    """Each request's ``problem_id``, its own id where it has none."""
    own = frame["service_request_id"].astype(str)
    if "problem_id" not in frame.columns:
        return own
    pid = frame["problem_id"].astype(object)
    return pid.where(pid.notna(), own).astype(str)


def _compliance(frame: pd.DataFrame, keys: list[str], *,
                by_problem: bool = False) -> pd.DataFrame:
    """Counts per SLA state and days to close, per ``keys`` group (and per problem)."""
    out = _request_compliance(frame, keys)
    if not by_problem:
        return out
    pid = _problem_ids(frame)
    first = frame[pid.eq(frame["service_request_id"].astype(str))]
    per = pd.DataFrame({**{k: first[k] for k in keys},
                        "on_time": first["sla_state"].eq("on_time"),
                        "late": first["sla_state"].eq("closed_late")})
    problems = frame.assign(_p=pid).groupby(keys)["_p"].nunique() if len(frame) else None
    if per.empty or problems is None:
        for c in ("problems", "problems_judged", "problems_on_time"):
            out[c] = pd.Series(0, index=out.index, dtype="int64")
        out["problem_compliance"] = np.nan
        return out
    grouped = per.groupby(keys)[["on_time", "late"]].sum()
    index = pd.MultiIndex.from_frame(out[keys]) if len(keys) > 1 else pd.Index(out[keys[0]])
    on_time = grouped["on_time"].reindex(index, fill_value=0).to_numpy().astype("int64")
    late = grouped["late"].reindex(index, fill_value=0).to_numpy().astype("int64")
    out["problems"] = problems.reindex(index, fill_value=0).to_numpy().astype("int64")
    out["problems_judged"] = on_time + late
    out["problems_on_time"] = on_time
    out["problem_compliance"] = out["problems_on_time"] / out["problems_judged"].where(
        out["problems_judged"] > 0)
    return out


def _request_compliance(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Counts per SLA state and days to close, per ``keys`` group."""
    state = frame["sla_state"]
    work = pd.DataFrame({
        **{k: frame[k] for k in keys},
        "requests": 1,
        "closed": ~_is_open(frame),
        "on_time": state.eq("on_time"),
        "closed_late": state.eq("closed_late"),
        "open_overdue": state.eq("open_overdue"),
        "no_sla": state.eq("no_sla"),
        "days": pd.to_numeric(frame["days_to_close"], errors="coerce"),
    })
    if work.empty:
        cols = [*keys, "requests", "closed", "judged", "on_time", "closed_late", "compliance",
                "open_overdue", "no_sla", "median_days_to_close", "p90_days_to_close"]
        return pd.DataFrame({c: pd.Series([], dtype=object if c in keys else "float64")
                             for c in cols})
    grouped = work.groupby(keys)
    out = grouped[["requests", "closed", "on_time", "closed_late", "open_overdue",
                   "no_sla"]].sum()
    out["median_days_to_close"] = grouped["days"].median()
    out["p90_days_to_close"] = grouped["days"].quantile(0.9)
    out = out.reset_index()
    for col in ("requests", "closed", "on_time", "closed_late", "open_overdue", "no_sla"):
        out[col] = out[col].astype("int64")
    out.insert(list(out.columns).index("on_time"), "judged", out["on_time"] + out["closed_late"])
    out.insert(list(out.columns).index("open_overdue"), "compliance",
               out["on_time"] / out["judged"].where(out["judged"] > 0))
    return out


def _bucket(frame: pd.DataFrame, timezone: str, freq: str, keys: list[str]) -> pd.Series:
    """Counts per ``keys`` and period start (a Timestamp at local midnight)."""
    if frame.empty:
        names = [*keys, "period"]
        if keys:
            empty_index = pd.MultiIndex.from_arrays([[]] * len(names), names=names)
            return pd.Series([], index=empty_index, dtype="int64")
        return pd.Series([], index=pd.DatetimeIndex([], name="period"), dtype="int64")
    day = local_times(frame, timezone).dt.normalize()
    if freq == "week":
        start = day - pd.to_timedelta(day.dt.day_of_week, unit="D")
    elif freq == "month":
        start = day - pd.to_timedelta(day.dt.day - 1, unit="D")
    else:
        start = day
    data = pd.DataFrame({**{k: frame[k].to_numpy() for k in keys}, "period": start.to_numpy()})
    return data.groupby([*keys, "period"]).size()


def _shift_index(counts: pd.Series, freq: str, keys: list[str]) -> pd.Series:
    """Move year-earlier period labels forward onto the periods they compare with."""
    if counts.empty:
        return counts
    frame = counts.rename("n").reset_index()
    period = pd.DatetimeIndex(frame["period"])
    if freq == "month":
        frame["period"] = (period.to_period("M") + 12).to_timestamp()
    else:
        frame["period"] = period + pd.Timedelta(days=364)
    return frame.groupby([*keys, "period"])["n"].sum()


def _dates(filt: ReportFilter) -> tuple[pd.Timestamp, pd.Timestamp]:
    if filt.start is None or filt.end is None:
        raise InputError("period: both start and end dates are needed; call resolved() first")
    return pd.Timestamp(filt.start), pd.Timestamp(filt.end)


def _period_range(filt: ReportFilter, freq: str) -> pd.DatetimeIndex:
    start, end = _dates(filt)
    if freq == "week":
        start -= pd.Timedelta(days=start.weekday())
        return pd.date_range(start, end, freq="7D", name="period")
    if freq == "month":
        return pd.date_range(start.replace(day=1), end, freq="MS", name="period")
    return pd.date_range(start, end, freq="D", name="period")


def _with_period(frame: pd.DataFrame, filt: ReportFilter,
                 previous: ReportFilter | None = None) -> pd.DataFrame:
    frame.attrs["period"] = (filt.start, filt.end)
    if previous is not None:
        frame.attrs["previous_period"] = (previous.start, previous.end)
    return frame
