"""Priority of hotspots for crews: a score whose parts are visible and configurable.

Each part is a weight times a value scaled to 0–1 over the hotspots of the run:

=============  ==========================================================
part           value (before the weight)
=============  ==========================================================
``size``       log(1 + count) / log(1 + largest count)
``open``       open requests / count
``overdue``    overdue requests / largest overdue count (0 when none is)
``age``        days since the oldest open request / the largest such age
``recency``    share of requests in the last 7 days of the window
``service``    mean service-type weight of the members (1 when not given)
``calls``      problem counts only: repeat calls (calls - problems), as
               log(1 + repeats) / log(1 + largest repeats); 0 when none
=============  ==========================================================

When a run counts problems (:mod:`clustering.problem_hotspots`), ``count``, ``open``,
``overdue``, ``age``, ``recency`` and ``service`` are over problems (a problem is open
while one of its requests is, overdue when an open one is, as old as its first request,
recent when called about in the last 7 days), and ``calls`` is a part of its own, so
twelve calls about one broken light weigh as one problem plus a calls part.

The score is the sum of the parts, scaled so that the weights' total is 100. Ties are
broken by overdue count, then count, then the hotspot id, so the order is deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final

import numpy as np
import pandas as pd

from hotspot311.errors import InputError, describe

PARTS: Final = ("size", "open", "overdue", "age", "recency", "service")
#: The parts of a run that counts problems.
PROBLEM_PARTS: Final = (*PARTS, "calls")


@dataclass(frozen=True)
class PriorityWeights:
    """Weights of the score's parts, and per-service weights.

    Attributes
    ----------
    size, open, overdue, age, recency, service, calls
        Weight of each part (>= 0; at least one > 0); ``calls`` counts only when the
        run counts problems.
    service_weights
        Service name → weight (default 1) for the ``service`` part.
    """

    size: float = 1.0
    open: float = 1.0
    overdue: float = 1.0
    age: float = 1.0
    recency: float = 1.0
    service: float = 0.0
    calls: float = 1.0
    service_weights: Mapping[str, float] = field(default_factory=dict)

    def validate(self) -> PriorityWeights:
        """Check the weights, listing every problem."""
        problems = [
            f"weight {p}: got {describe(getattr(self, p))}; allowed: a number >= 0"
            for p in PROBLEM_PARTS
            if not (isinstance(getattr(self, p), int | float) and getattr(self, p) >= 0)
        ]
        if not problems and sum(getattr(self, p) for p in PARTS) <= 0:
            problems.append("weights: all are 0; at least one must be above 0")
        if problems:
            raise InputError(problems)
        return self


#: Department presets.
PRESETS: Final[dict[str, PriorityWeights]] = {
    "streets": PriorityWeights(
        size=1.0,
        open=1.5,
        overdue=2.0,
        age=1.0,
        recency=0.5,
        service=1.0,
        service_weights={
            "Traffic Signal Emergency": 3.0,
            "Street Defect": 1.5,
            "Street Light Outage": 1.2,
        },
    ),
    "police": PriorityWeights(
        size=1.5,
        open=1.0,
        overdue=1.0,
        age=1.5,
        recency=0.5,
        service=1.0,
        service_weights={
            "Dangerous Building Complaint": 2.0,
            "Abandoned Vehicle": 1.0,
            "Vacant House or Commercial": 1.2,
        },
    ),
    "neighborhood": PriorityWeights(size=2.0, open=1.0, overdue=0.5, age=0.5, recency=1.5),
    "balanced": PriorityWeights(),
}


def preset(name: str) -> PriorityWeights:
    """A named preset (``streets``, ``police``, ``neighborhood``, ``balanced``)."""
    try:
        return PRESETS[name]
    except KeyError as err:
        raise InputError(f"preset: got {name!r}; allowed: {', '.join(PRESETS)}") from err


def with_weights(base: PriorityWeights, **weights: float) -> PriorityWeights:
    """A copy of ``base`` with some part weights replaced."""
    unknown = sorted(set(weights) - set(PROBLEM_PARTS))
    if unknown:
        raise InputError(
            f"weights: unknown parts {unknown}; allowed: {', '.join(PROBLEM_PARTS)}")
    return replace(base, **weights).validate()  # type: ignore[arg-type]


def rank_hotspots(
    hotspots: pd.DataFrame,
    members: pd.DataFrame,
    *,
    weights: PriorityWeights,
    window_end: datetime,
    calls: pd.Series | None = None,
) -> pd.DataFrame:
    """Score and rank hotspots.

    Parameters
    ----------
    hotspots
        From :func:`clustering.hotspots.summarize`.
    members
        The clustered requests with a ``hotspot_id`` column.
    weights
        Part weights.
    window_end
        End of the run's window (for the recency part).
    calls
        Hotspot id → calls, when the run counts problems (``count`` is then the number
        of problems): adds the ``calls`` part.

    Returns
    -------
    pandas.DataFrame
        ``hotspots`` with ``score_<part>`` columns, ``score`` and ``rank`` (1 = first),
        sorted by rank.
    """
    weights.validate()
    parts = PARTS if calls is None else PROBLEM_PARTS
    out = hotspots.copy()
    if out.empty:
        for p in parts:
            out[f"score_{p}"] = []
        out["score"] = []
        out["rank"] = []
        return out
    count = out["count"].astype(float)
    values = {
        "size": np.log1p(count) / np.log1p(count.max()),
        "open": out["open"] / count,
        "overdue": out["overdue"] / out["overdue"].max() if out["overdue"].max() > 0 else 0 * count,
        "age": (
            out["oldest_open_days"].fillna(0) / out["oldest_open_days"].max()
            if out["oldest_open_days"].fillna(0).max() > 0
            else 0 * count
        ),
    }
    recent_from = pd.Timestamp(window_end - timedelta(days=7))
    # share of each hotspot's requests made in its last week (one groupby, no call per
    # hotspot)
    recent = (members["requested_datetime"] > recent_from).astype(float).groupby(
        members["hotspot_id"]).mean()
    values["recency"] = out["hotspot_id"].map(recent).fillna(0.0)
    # (weights looked up per service type, not per request: a window has many requests)
    codes, services = pd.factorize(members["service_name"])
    of_service = dict(weights.service_weights)
    # the last weight, 1, is a missing name's (factorize's code -1)
    per_service = np.array([*(of_service.get(s, 1.0) for s in services), 1.0], dtype=float)
    sw = pd.Series(per_service[codes], index=members.index)
    svc = sw.groupby(members["hotspot_id"]).mean()
    values["service"] = out["hotspot_id"].map(svc).fillna(1.0) / max(svc.max(), 1.0)
    if calls is not None:
        repeats = (out["hotspot_id"].map(calls).astype(float) - count).clip(lower=0)
        values["calls"] = (np.log1p(repeats) / np.log1p(repeats.max())
                           if repeats.max() > 0 else 0 * count)
    total = sum(getattr(weights, p) for p in parts)
    if total <= 0:
        raise InputError("weights: all parts of this run are 0; at least one must be above 0")
    for p in parts:
        out[f"score_{p}"] = (100.0 * getattr(weights, p) / total * values[p]).round(2)
    out["score"] = out[[f"score_{p}" for p in parts]].sum(axis=1).round(2)
    out = out.sort_values(
        ["score", "overdue", "count", "hotspot_id"],
        ascending=[False, False, False, True],
        kind="stable",
    )
    out["rank"] = np.arange(1, len(out) + 1)
    return out.reset_index(drop=True)
