"""Choosing the requests a hotspot run looks at: service types, time window, status.

Distances are given in metres and converted to the city CRS's unit (US feet for
Philadelphia) by the profile; degrees are never used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from hotspot311.errors import InputError, describe

STATUS_FILTERS = ("open", "all")
METHODS = ("dbscan", "hdbscan")
#: What a run counts: ``problems`` (repeat calls about one problem count once; the
#: front doors' default) or ``tickets`` (every request, as before problems existed).
COUNTS = ("problems", "tickets")


@dataclass(frozen=True)
class HotspotQuery:
    """The parameters of one hotspot run.

    Attributes
    ----------
    services
        Service names to include (empty: every type).
    days
        Window length in days, ending at ``end`` (``None``: no start limit).
    end
        End of the window (UTC); the latest request time in the data when ``None``.
    status
        ``open`` (open requests only) or ``all``.
    eps_m
        DBSCAN search distance in metres.
    min_samples
        Requests within ``eps_m`` (the request itself included) that make a core point.
    areas
        Layer key → area codes to keep (e.g. one neighborhood).
    method
        ``dbscan`` (default) or ``hdbscan`` (see :mod:`clustering.hdbscan_method`).
    min_cluster_size
        Smallest HDBSCAN cluster (``hdbscan`` only; ``min_samples`` when omitted).
    count
        ``tickets`` (every request is a point, the default of the library) or
        ``problems`` (one point per problem, see :mod:`clustering.problem_hotspots`).
    problem_distance_m, problem_gap_days
        Replace the catalogue's problem rule for this run (``problems`` only): problems
        are then recomputed on the requests given instead of read from ``problem_id``.
    """

    services: tuple[str, ...] = ()
    days: int | None = 30
    end: datetime | None = None
    status: str = "all"
    eps_m: float = 100.0
    min_samples: int = 5
    areas: dict[str, tuple[str, ...]] = field(default_factory=dict)
    method: str = "dbscan"
    min_cluster_size: int | None = None
    count: str = "tickets"
    problem_distance_m: float | None = None
    problem_gap_days: float | None = None

    def validate(self) -> HotspotQuery:
        """Check every parameter, listing all problems at once.

        Raises
        ------
        InputError
            Naming each bad parameter, its value and what is allowed.
        """
        problems = []
        if self.days is not None and (not isinstance(self.days, int) or self.days < 1):
            problems.append(f"days: got {describe(self.days)}; allowed: a whole number >= 1")
        if self.status not in STATUS_FILTERS:
            problems.append(
                f"status: got {describe(self.status)}; allowed: {', '.join(STATUS_FILTERS)}"
            )
        if not (isinstance(self.eps_m, int | float) and 0 < self.eps_m < 100_000):
            problems.append(
                f"eps: got {describe(self.eps_m)} m; allowed: more than 0 and under 100 km"
            )
        if not isinstance(self.min_samples, int) or self.min_samples < 1:
            problems.append(
                f"min_samples: got {describe(self.min_samples)}; allowed: a whole number >= 1"
            )
        if self.method not in METHODS:
            problems.append(f"method: got {describe(self.method)}; allowed: {', '.join(METHODS)}")
        if self.min_cluster_size is not None and (
            not isinstance(self.min_cluster_size, int) or self.min_cluster_size < 2
        ):
            problems.append(
                f"min_cluster_size: got {describe(self.min_cluster_size)}; "
                "allowed: a whole number >= 2"
            )
        if self.count not in COUNTS:
            problems.append(f"count: got {describe(self.count)}; allowed: {', '.join(COUNTS)}")
        for name, value in (("problem_distance_m", self.problem_distance_m),
                            ("problem_gap_days", self.problem_gap_days)):
            if value is not None and not (isinstance(value, int | float) and value > 0):
                problems.append(f"{name}: got {describe(value)}; allowed: a number > 0")
        if self.end is not None and self.end.tzinfo is None:
            problems.append("end: must be timezone-aware")
        if problems:
            raise InputError(problems)
        return self

    def params(self) -> dict[str, object]:
        """JSON-ready parameters, for stored runs and exports.

        ``count`` and the problem rule overrides appear only when they differ from the
        ticket count, so a ticket run has the parameters runs had before problems.
        """
        out: dict[str, object] = {
            "services": list(self.services),
            "days": self.days,
            "end": self.end.isoformat() if self.end else None,
            "status": self.status,
            "eps_m": self.eps_m,
            "min_samples": self.min_samples,
            "areas": {k: list(v) for k, v in self.areas.items()},
            "method": self.method,
            "min_cluster_size": self.min_cluster_size,
        }
        if self.count != "tickets":
            out["count"] = self.count
        if self.problem_distance_m is not None:
            out["problem_distance_m"] = self.problem_distance_m
        if self.problem_gap_days is not None:
            out["problem_gap_days"] = self.problem_gap_days
        return out

    @classmethod
    def from_params(cls, params: dict[str, object]) -> HotspotQuery:
        """The query whose :meth:`params` gave ``params`` (a stored run's parameters).

        Raises
        ------
        InputError
            When a parameter is unknown or invalid.
        """
        unknown = sorted(set(params) - set(cls.__dataclass_fields__))
        if unknown:
            raise InputError(f"params: unknown parameters {unknown}")
        raw: dict[str, Any] = dict(params)
        end = raw.get("end")
        return cls(
            services=tuple(raw.get("services") or ()),
            days=raw.get("days"),
            end=datetime.fromisoformat(end) if isinstance(end, str) else None,
            status=raw.get("status", "all"),
            eps_m=raw.get("eps_m", 100.0),
            min_samples=raw.get("min_samples", 5),
            areas={k: tuple(v) for k, v in (raw.get("areas") or {}).items()},
            method=raw.get("method", "dbscan"),
            min_cluster_size=raw.get("min_cluster_size"),
            count=raw.get("count", "tickets"),
            problem_distance_m=raw.get("problem_distance_m"),
            problem_gap_days=raw.get("problem_gap_days"),
        ).validate()


def resolve_services(
    names: Sequence[str], groups: dict[str, tuple[str, ...]], known: Sequence[str]
) -> tuple[str, ...]:
    """Expand group names and check service names against those in the data.

    Parameters
    ----------
    names
        Service names and group names (``streets``), as the user gave them.
    groups
        Group name → service names.
    known
        Service names present in the store.

    Returns
    -------
    tuple of str
        Service names, in the order given, without repeats.

    Raises
    ------
    InputError
        For a name that is neither a group nor a service in the data, listing the choices.
    """
    out: dict[str, None] = {}
    lower = {k.lower(): k for k in known}
    for name in names:
        if name.lower() in groups:
            out.update(dict.fromkeys(groups[name.lower()]))
        elif name in known or name.lower() in lower:
            out[lower.get(name.lower(), name)] = None
        else:
            choices = ", ".join(sorted(known)[:40])
            raise InputError(
                f"service: {name!r} is neither a service type in the store nor a group "
                f"({', '.join(sorted(groups))}); service types: {choices}"
            )
    return tuple(out)


def select_requests(requests: pd.DataFrame, query: HotspotQuery) -> pd.DataFrame:
    """The requests a run looks at.

    Parameters
    ----------
    requests
        Stored requests (need ``service_name``, ``requested_datetime``, ``status``, x/y).
    query
        The run's parameters.

    Returns
    -------
    pandas.DataFrame
        A filtered copy, rows with usable city-CRS coordinates only; when every row is
        kept (a store read already made with the run's filters), a shallow copy that
        shares the columns (callers add columns, never change them in place).
    """
    query.validate()
    keep = requests["x"].notna() & requests["y"].notna()
    if query.services:
        keep &= requests["service_name"].isin(query.services)
    end = window_end(requests, query)
    if query.days is not None and end is not None:
        start = end - timedelta(days=query.days)
        keep &= (requests["requested_datetime"] > pd.Timestamp(start)) & (
            requests["requested_datetime"] <= pd.Timestamp(end)
        )
    if query.status == "open":
        keep &= requests["status"] == "open"
    for key, codes in query.areas.items():
        if key not in requests.columns:
            raise InputError(f"area: layer {key!r} is not in the store")
        keep &= requests[key].isin(codes)
    if keep.all():  # a store read with the run's own filters: no second copy of it all
        return requests.copy(deep=False)
    return requests[keep].copy()


def window_end(requests: pd.DataFrame, query: HotspotQuery) -> datetime | None:
    """The end of the time window: ``query.end``, else the newest request time."""
    if query.end is not None:
        return query.end
    if requests.empty:
        return None
    latest = requests["requested_datetime"].max()
    return None if pd.isna(latest) else latest.to_pydatetime()
