"""Chronic locations: spots where problems of one type keep coming back.

The repeat / near-repeat idea of crime analysis (ArcGIS Pro's *Repeat and Near Repeat*
classification is the reference), on problems rather than tickets, so that one resident
calling every day does not make a spot chronic.

Rule: per service type, take one point per problem (its first request in the window,
:func:`clustering.problem_hotspots.collapse`) among the problems first called about in
the ``months`` before ``end``. A problem is a *core* of a chronic location when at least
``min_problems`` problems (itself included) lie within ``radius_m`` of it; chronic
locations are the exact DBSCAN clusters (``eps = radius_m``, ``min_samples =
min_problems``) of these points, so every core problem and the problems within
``radius_m`` of a core belong to one. Each location is classed:

- ``repeat``: every problem at the same point (the same address coordinates);
- ``near_repeat``: the problems at several points within the radius.

Limits: problems are counted once, wherever their later calls were; a location on a type
with few problems over a long window may still be chance (no significance test here;
see :mod:`clustering.significance`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from clustering.dbscan import dbscan
from clustering.problem_hotspots import collapse
from hotspot311.errors import InputError, describe
from layers.profile import CityProfile

CHRONIC_COLUMNS = (
    "location_id", "service_name", "kind", "problems", "calls", "open_problems",
    "first_requested", "last_requested", "problems_per_month", "top_address",
    "problem_ids",
)


@dataclass(frozen=True)
class ChronicQuery:
    """Parameters of a chronic-location search.

    Attributes
    ----------
    services
        Service names (empty: every type), each searched on its own.
    radius_m
        Distance within which problems count as one spot, metres.
    months
        Window length in months (30.44 days each), ending at ``end``.
    min_problems
        Problems within ``radius_m`` that make a spot chronic.
    end
        End of the window (UTC); the newest request when ``None``.
    """

    services: tuple[str, ...] = ()
    radius_m: float = 25.0
    months: int = 12
    min_problems: int = 3
    end: datetime | None = None

    def validate(self) -> ChronicQuery:
        """Check every parameter, listing all problems.

        Raises
        ------
        InputError
            Naming each bad value and what is allowed.
        """
        problems = []
        if not (isinstance(self.radius_m, int | float) and 0 < self.radius_m <= 1000):
            problems.append(f"radius: got {describe(self.radius_m)} m; allowed: more than 0 "
                            "and at most 1,000")
        if not isinstance(self.months, int) or not 1 <= self.months <= 120:
            problems.append(f"months: got {describe(self.months)}; allowed: 1 to 120")
        if not isinstance(self.min_problems, int) or self.min_problems < 2:
            problems.append(f"min_problems: got {describe(self.min_problems)}; "
                            "allowed: a whole number >= 2")
        if problems:
            raise InputError(problems)
        return self


def chronic_locations(requests: pd.DataFrame, query: ChronicQuery, *,
                      profile: CityProfile) -> gpd.GeoDataFrame:
    """Find chronic locations (see the module docstring for the rule).

    Parameters
    ----------
    requests
        Stored requests with ``problem_id`` (``x``/``y`` in the city CRS).
    query
        Services, radius, window and threshold.
    profile
        The city (metres → CRS units, the CRS of the result).

    Returns
    -------
    geopandas.GeoDataFrame
        :data:`CHRONIC_COLUMNS`, geometry the hull of the problems' points buffered by
        half the radius, sorted by problems (most first), then service and top address.
    """
    query.validate()
    frame = requests[requests["x"].notna() & requests["y"].notna()]
    if query.services:
        frame = frame[frame["service_name"].isin(query.services)]
    end = pd.Timestamp(query.end) if query.end is not None else frame["requested_datetime"].max()
    empty = gpd.GeoDataFrame({c: [] for c in CHRONIC_COLUMNS}, geometry=[], crs=profile.crs)
    if frame.empty or pd.isna(end):
        return empty
    start = end - pd.Timedelta(days=30.44 * query.months)
    problems = collapse(frame)
    problems = problems[(problems["requested_datetime"] > start)
                        & (problems["requested_datetime"] <= end)]
    radius = profile.metres_to_crs(query.radius_m)
    rows = []
    for service, group in problems.groupby(problems["service_name"].astype(str), sort=True):
        xy = group[["x", "y"]].to_numpy(dtype="float64")
        if len(xy) < query.min_problems:
            continue
        labels = np.asarray(dbscan(xy, eps=radius, min_samples=query.min_problems))
        for label in np.unique(labels[labels >= 0]):
            members = group[labels == label]
            rows.append(_describe(service, members, radius, months=query.months))
    if not rows:
        return empty
    out = gpd.GeoDataFrame(pd.DataFrame([r[0] for r in rows]),
                           geometry=[r[1] for r in rows], crs=profile.crs)
    out = out.sort_values(["problems", "service_name", "top_address"],
                          ascending=[False, True, True], kind="stable").reset_index(drop=True)
    return out


def _describe(service: str, members: pd.DataFrame, radius: float, *,
              months: int) -> tuple[dict[str, object], shapely.Geometry]:
    ids = sorted(members["problem_id"].astype(str))
    points = members[["x", "y"]].to_numpy(dtype="float64")
    kind = "repeat" if len(np.unique(points, axis=0)) == 1 else "near_repeat"
    addresses: pd.Series = (members["address"].dropna().astype(str) if "address" in members
                            else pd.Series([], dtype=object))
    top = (addresses.value_counts().sort_index().sort_values(
        ascending=False, kind="stable").index[0] if len(addresses) else None)
    hull = cast(shapely.Geometry, shapely.buffer(
        shapely.convex_hull(shapely.multipoints(points)), radius / 2))
    record = {
        "location_id": "C" + ids[0],
        "service_name": service,
        "kind": kind,
        "problems": len(members),
        "calls": int(members["calls"].sum()),
        "open_problems": int(members["status"].eq("open").sum()),
        "first_requested": members["requested_datetime"].min(),
        "last_requested": members["last_requested"].max(),
        "problems_per_month": round(len(members) / months, 2),
        "top_address": top,
        "problem_ids": ids,
    }
    return record, hull
