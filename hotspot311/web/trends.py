"""Requests over time, for the trend chart (pure pandas)."""

from __future__ import annotations

import pandas as pd


def weekly_counts(requests: pd.DataFrame, *, top: int = 6, timezone: str = "UTC") -> pd.DataFrame:
    """Requests per week for the ``top`` service types (the rest as ``Other``).

    Parameters
    ----------
    requests
        Requests with ``requested_datetime`` (UTC) and ``service_name``.
    top
        Service types shown by name.
    timezone
        Weeks start on Monday in this time zone.

    Returns
    -------
    pandas.DataFrame
        Index: week start (naive local date); one column per type; zero-filled.

    Examples
    --------
    >>> frame = pd.DataFrame({"service_name": ["a", "a", "b"],
    ...     "requested_datetime": pd.to_datetime(["2024-01-01", "2024-01-09", "2024-01-02"],
    ...                                          utc=True)})
    >>> weekly_counts(frame).to_dict("list")
    {'a': [1, 1], 'b': [1, 0]}
    """
    if requests.empty:
        return pd.DataFrame()
    names = requests["service_name"].astype(object)
    keep = names.value_counts().head(top).index
    label = names.where(names.isin(keep), "Other")
    local = requests["requested_datetime"].dt.tz_convert(timezone).dt.tz_localize(None)
    week = local.dt.to_period("W-SUN").dt.start_time
    out = pd.crosstab(week, label)
    out.index.name = "week"
    out.columns.name = None
    return out
