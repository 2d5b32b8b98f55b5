"""What a hotspot or significance command reads: the rows of its window, not the table.

``hotspots`` and ``significance`` used to read every stored request and filter in
pandas. They now ask the store (:meth:`geo.store.base.Store.select_requests`) for the
requests a run looks at (its services, time window, status and areas, located ones
only), and the service names and newest request time from the store's counts. The
window's end is made explicit (``--end``, else the newest stored request, as
:func:`clustering.selection.window_end` takes it from the whole table), so the run on
those rows selects exactly what it selected on the whole table.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from clustering.selection import HotspotQuery
from geo.store.base import Store
from geo.store.reads import RequestFilter


def stored_services(store: Store) -> list[str]:
    """The service names of the stored requests, sorted (from the store's counts).

    Parameters
    ----------
    store
        Either store.

    Returns
    -------
    list of str
        Each name once; requests without a name are left out.
    """
    names = store.facet_counts()["service_name"]
    return sorted({str(n) for n in names if n is not None and not pd.isna(n)})


def newest_request(store: Store) -> datetime | None:
    """The newest stored ``requested_datetime`` (``None`` for an empty store)."""
    last = store.latest_request(RequestFilter())
    return None if last is None or pd.isna(last) else pd.Timestamp(last).to_pydatetime()


def window_filter(query: HotspotQuery) -> RequestFilter:
    """The store filter of the requests ``query`` selects.

    Parameters
    ----------
    query
        A run's parameters, with ``end`` set (see :func:`with_end`).

    Returns
    -------
    geo.store.reads.RequestFilter
        Its services, ``(end - days, end]``, status and areas, located requests only: the
        rows :func:`clustering.selection.select_requests` keeps.
    """
    until = query.end
    after = until - timedelta(days=query.days) if until is not None and query.days is not None \
        else None
    return RequestFilter(services=tuple(query.services), status=query.status,
                         areas=tuple((k, tuple(v)) for k, v in query.areas.items()),
                         located=True, after=after, until=until)


def with_end(store: Store, query: HotspotQuery) -> HotspotQuery:
    """``query`` with its window end explicit: as given, else the newest stored request."""
    if query.end is not None:
        return query
    return HotspotQuery(**{**query.__dict__, "end": newest_request(store)})


def window_rows(store: Store, query: HotspotQuery) -> pd.DataFrame:
    """Every stored column of the requests ``query`` selects (no geometry).

    Parameters
    ----------
    store
        Either store.
    query
        A run's parameters, with ``end`` set (see :func:`with_end`).

    Returns
    -------
    pandas.DataFrame
        The rows (none from an empty store, whose window has no end).
    """
    return store.select_requests(window_filter(query), None)


def service_rows(store: Store, query: HotspotQuery) -> pd.DataFrame:
    """Every request of the query's services, all times (a run that recomputes problems
    under its own rule needs them: :func:`clustering.run.run_hotspots`); every request
    when no service is named."""
    if not query.services:
        return store.select_requests(RequestFilter(), None)
    return store.select_requests(RequestFilter(services=tuple(query.services)), None)


__all__ = ["newest_request", "service_rows", "stored_services", "window_filter",
           "window_rows", "with_end"]
