"""The one filter every standard report takes: dates, departments, services, areas.

Dates are local request dates in the city's time zone, both ends inclusive. Department
and service names match case-insensitively; a name that is not in the data is an error
that lists the names that are. Areas are ``layer key → area codes``; a request must lie
in one of the codes of every layer given.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

import pandas as pd

from hotspot311.errors import InputError, describe

_CHOICES_SHOWN = 40


@dataclass(frozen=True)
class ReportFilter:
    """Which requests a report counts.

    Attributes
    ----------
    start, end
        First and last local request date, inclusive (``None``: no limit).
    departments
        ``agency_responsible`` values to keep (empty: all).
    services
        ``service_name`` values to keep (empty: all).
    areas
        Layer key → area codes to keep.
    """

    start: date | None = None
    end: date | None = None
    departments: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    areas: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def validate(self) -> ReportFilter:
        """Check the filter on its own (not against data), listing every problem.

        Raises
        ------
        InputError
            When ``start`` is after ``end`` or an area entry is malformed.
        """
        problems = []
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, date):
                problems.append(f"{name}: got {describe(value)}; allowed: a date")
        if isinstance(self.start, date) and isinstance(self.end, date) and self.start > self.end:
            problems.append(f"start: {self.start} is after end {self.end}; allowed: start <= end")
        for key, codes in self.areas.items():
            if not codes:
                problems.append(f"areas: layer {key!r} has no codes; allowed: one or more codes")
        if problems:
            raise InputError(problems)
        return self

    def describe(self) -> str:
        """One line for report headers, e.g. ``2024-01-01 … 2024-01-31; service: X``."""
        parts = [f"requested {self.start or 'any time'} … {self.end or 'any time'}"]
        if self.departments:
            parts.append("department: " + ", ".join(self.departments))
        if self.services:
            parts.append("service: " + ", ".join(self.services))
        for key, codes in self.areas.items():
            parts.append(f"{key}: " + ", ".join(codes))
        return "; ".join(parts)

    def without_dates(self) -> ReportFilter:
        """The same filter with no date limits."""
        return replace(self, start=None, end=None)

    def apply(self, requests: pd.DataFrame, *, timezone: str) -> pd.DataFrame:
        """The requests the filter keeps.

        Parameters
        ----------
        requests
            Canonical requests with their layer columns.
        timezone
            City time zone, for local request dates.

        Returns
        -------
        pandas.DataFrame
            A filtered copy.

        Raises
        ------
        InputError
            For a department, service or area layer that is not in the data, listing
            every problem and the allowed values.
        """
        self.validate()
        keep = pd.Series(True, index=requests.index)
        problems: list[str] = []
        for column, wanted, label in (("agency_responsible", self.departments, "department"),
                                      ("service_name", self.services, "service")):
            if wanted:
                mask, bad = _match(requests[column], wanted)
                keep &= mask
                if bad:
                    known = sorted(requests[column].dropna().astype(str).unique())
                    problems.append(f"{label}: {bad} not in the data; allowed: "
                                    f"{', '.join(known[:_CHOICES_SHOWN])}")
        for key, codes in self.areas.items():
            if key not in requests.columns:
                problems.append(f"area: layer {key!r} is not in the data; layers: "
                                f"{', '.join(extra_columns(requests))}")
                continue
            keep &= requests[key].astype("string").isin([str(c) for c in codes]).fillna(False)
        if problems:
            raise InputError(problems)
        if self.start is not None or self.end is not None:
            day = local_times(requests, timezone).dt.normalize()
            if self.start is not None:
                keep &= day >= pd.Timestamp(self.start)
            if self.end is not None:
                keep &= day <= pd.Timestamp(self.end)
        return requests[keep.to_numpy(dtype=bool)].copy()

    def resolved(self, requests: pd.DataFrame, *, timezone: str) -> ReportFilter:
        """This filter with missing dates set from the data it keeps.

        Returns
        -------
        ReportFilter
            ``start``/``end`` default to the first/last local request date of the
            requests kept by the other criteria (today's date when none are kept).
        """
        if self.start is not None and self.end is not None:
            return self
        kept = self.apply(requests, timezone=timezone)
        days = local_times(kept, timezone).dt.normalize()
        first = days.min().date() if len(days) else None
        last = days.max().date() if len(days) else None
        start = self.start or first or self.end or datetime.now(UTC).date()
        end = self.end or last or start
        return replace(self, start=start, end=max(start, end))

    def previous(self) -> ReportFilter:
        """The period of equal length just before this one (needs both dates).

        Examples
        --------
        >>> ReportFilter(start=date(2024, 3, 1), end=date(2024, 3, 31)).previous().start
        datetime.date(2024, 1, 30)
        """
        if self.start is None or self.end is None:
            raise InputError("previous period: needs both start and end dates; "
                             "call resolved() first")
        length = (self.end - self.start).days + 1
        return replace(self, start=self.start - timedelta(days=length),
                       end=self.start - timedelta(days=1))


def local_times(requests: pd.DataFrame, timezone: str) -> pd.Series:
    """Request times as naive wall-clock times in ``timezone``."""
    times = pd.to_datetime(requests["requested_datetime"], utc=True)
    return times.dt.tz_convert(timezone).dt.tz_localize(None)


def extra_columns(requests: pd.DataFrame) -> list[str]:
    """Columns that are neither canonical, derived nor added by the SLA step: the layers."""
    from hotspot311.schema import RESERVED_NAMES

    added = {"due_datetime", "due_source", "sla_state", "days_to_close"}
    return [c for c in requests.columns if c not in RESERVED_NAMES and c not in added]


def _match(values: pd.Series, wanted: tuple[str, ...]) -> tuple[pd.Series, list[str]]:
    folded = values.astype("string").str.casefold()
    present = set(folded.dropna().unique())
    want = {w.casefold() for w in wanted}
    bad = [w for w in wanted if w.casefold() not in present]
    return folded.isin(want).fillna(False).astype(bool), bad
