"""Sidebar filters as a small hashable value, and the one function that applies them.

The page builds a :class:`Filters` from its widgets; everything downstream (cached
reads, map layers, hotspot runs) is keyed on it, so equal filters hit the same cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from geo.store.reads import RequestFilter

STATUSES: Final = ("all", "open", "closed")
#: Request columns the pages read first: what the sidebar, the headline numbers and an
#: aggregated map use. The rest of the stored row stays in the store until needed.
COLUMNS: Final = ("service_name", "agency_responsible", "status", "requested_datetime",
                  "expected_datetime", "lat", "lon")
#: Request columns the pages read when first needed, besides the layer codes (area
#: filters, choropleths, hotspots): popups of requests drawn one by one and the hotspot
#: run (ids, addresses, projected x/y), SLA states (close time), the data quality page
#: (geocode match type).
DETAILS: Final = ("service_request_id", "address", "closed_datetime", "x", "y",
                  "geocode_match_type")
#: Columns with few distinct values, read as categoricals (and so is every layer key).
CATEGORIES: Final = ("service_name", "agency_responsible", "status", "geocode_match_type")
#: Layers whose area each hotspot reports (when the store has them).
HOTSPOT_AREA_KEYS: Final = ("council_district", "police_district", "neighborhood")


@dataclass(frozen=True)
class Filters:
    """What the sidebar selects.

    Attributes
    ----------
    services
        Service names to keep (empty: all).
    agencies
        Departments (``agency_responsible``) to keep (empty: all).
    start, end
        First and last day (inclusive, in the city's time zone); ``None``: open-ended.
    status
        ``all``, ``open`` or ``closed``.
    areas
        ``(layer key, area codes)`` pairs; a request must be in one of the codes of
        every listed layer.
    """

    services: tuple[str, ...] = ()
    agencies: tuple[str, ...] = ()
    start: date | None = None
    end: date | None = None
    status: str = "all"
    areas: tuple[tuple[str, tuple[str, ...]], ...] = field(default_factory=tuple)
    sla_states: tuple[str, ...] = ()

    def area_map(self) -> dict[str, tuple[str, ...]]:
        """The area filter as a dict (layer key → codes), empty code lists dropped."""
        return {key: codes for key, codes in self.areas if codes}

    def start_utc(self, timezone: str) -> datetime | None:
        """The start of the ``start`` day in UTC (``None`` when open-ended)."""
        if self.start is None:
            return None
        return datetime.combine(self.start, time(0), ZoneInfo(timezone)).astimezone(UTC)

    def request_filter(self, timezone: str) -> RequestFilter:
        """The store filter for these filters (the SLA states aside: the page works them
        out; see :func:`hotspot311.web.appdata.sla_view`).

        Examples
        --------
        >>> Filters(status="open", start=date(2024, 1, 1)).request_filter("UTC").start
        datetime.datetime(2024, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
        """
        return RequestFilter(services=self.services, agencies=self.agencies,
                             start=self.start_utc(timezone), end=self.end_utc(timezone),
                             status=self.status, areas=tuple(
                                 (k, tuple(v)) for k, v in self.area_map().items()))

    def end_utc(self, timezone: str) -> datetime | None:
        """The end of the ``end`` day in UTC (``None`` when open-ended)."""
        if self.end is None:
            return None
        local = datetime.combine(self.end + timedelta(days=1), time(0), ZoneInfo(timezone))
        return local.astimezone(UTC)


def apply_filters(requests: pd.DataFrame, filters: Filters, *,
                  timezone: str = "UTC") -> pd.DataFrame:
    """The requests that pass ``filters``.

    Parameters
    ----------
    requests
        Stored requests (``service_name``, ``agency_responsible``, ``status``,
        ``requested_datetime`` in UTC, one column per layer key).
    filters
        The selection.
    timezone
        The city's time zone, in which ``start``/``end`` days are read.

    Returns
    -------
    pandas.DataFrame
        The matching rows (a view when nothing is filtered).

    Examples
    --------
    >>> frame = pd.DataFrame({"service_name": ["a", "b"], "agency_responsible": ["x", "y"],
    ...                       "status": ["open", "closed"],
    ...                       "requested_datetime": pd.to_datetime(["2024-01-01", "2024-02-01"],
    ...                                                            utc=True)})
    >>> len(apply_filters(frame, Filters(status="open")))
    1
    """
    if filters.status not in STATUSES:
        raise ValueError(f"status: got {filters.status!r}; allowed: {', '.join(STATUSES)}")
    keep = np.ones(len(requests), dtype=bool)
    if filters.services:
        keep &= requests["service_name"].isin(filters.services).to_numpy(dtype=bool)
    if filters.agencies:
        keep &= requests["agency_responsible"].isin(filters.agencies).to_numpy(dtype=bool)
    if filters.status != "all":
        keep &= (requests["status"] == filters.status).to_numpy(dtype=bool)
    zone = ZoneInfo(timezone)
    when = requests["requested_datetime"]
    if filters.start is not None:
        start = datetime.combine(filters.start, time(0), zone)
        keep &= (when >= pd.Timestamp(start)).to_numpy(dtype=bool)
    end = filters.end_utc(timezone)
    if end is not None:
        keep &= (when < pd.Timestamp(end)).to_numpy(dtype=bool)
    if filters.sla_states:
        if "sla_state" not in requests.columns:
            raise KeyError("sla_state: the requests carry no SLA state")
        keep &= requests["sla_state"].isin(filters.sla_states).to_numpy(dtype=bool)
    for key, codes in filters.area_map().items():
        if key not in requests.columns:
            raise KeyError(f"area: layer {key!r} is not in the store")
        keep &= requests[key].isin(codes).to_numpy(dtype=bool)
    return requests if keep.all() else requests[keep]


def date_span(requests: pd.DataFrame, *, timezone: str = "UTC") -> tuple[date, date]:
    """First and last request day in the city's time zone (today twice when empty)."""
    when = requests["requested_datetime"].dropna()
    if when.empty:
        today = datetime.now(UTC).astimezone(ZoneInfo(timezone)).date()
        return today, today
    local = when.dt.tz_convert(timezone)
    return local.min().date(), local.max().date()


def choices(requests: pd.DataFrame, column: str) -> list[str]:
    """Sorted distinct non-empty values of a column, for a multiselect."""
    if column not in requests.columns:
        return []
    return sorted(str(v) for v in requests[column].dropna().unique() if str(v))
