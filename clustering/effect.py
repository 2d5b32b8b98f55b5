"""Did it work? New problems inside a stored run's hotspots before and after the crews.

Method
------
For each hotspot of a stored run:

1. *When the work was done*: ``done`` is the latest ``closed_datetime`` of the
   hotspot's member requests (the last ticket the crew closed). A hotspot with a member
   still open has no ``done`` (status ``not_closed``).
2. *Before and after*: new problems (problems, not tickets: a problem is counted at its
   first request, :mod:`clustering.problems`) of the run's service types whose first
   request lies inside the hull, in the ``weeks`` before ``done`` and in the ``weeks``
   after it. When the data do not reach ``done + weeks`` yet the status is
   ``window_open`` and the figures are provisional.
3. *Comparison set*: square cells of the hull's area laid over the city; cells that
   touch any hotspot hull of the run are left out. Of the others, the
   ``n_comparison`` cells whose before count is closest to the hotspot's (ties by cell
   position) are the comparison set, counted over the same two windows. They share the
   season, the calendar and any city-wide change with the hotspot, and they had as many
   problems before, so their change is what the hotspot's would have been without the
   work, as far as those explain it.
4. *Effect*: ``change`` = after - before in the hotspot; ``expected_change`` = the
   comparison cells' mean (after - before); ``effect`` = ``change - expected_change``
   (a difference in differences; negative: fewer new problems than the comparison);
   ``ratio`` = (after / before) / (comparison after / comparison before) when both
   before counts are above 0.

Limits
------
- Counts are small: a hotspot with 6 problems before and 3 after is within chance.
  No p-value is given; read ``effect`` beside the counts.
- Regression to the mean: hotspots are chosen for being high, so they tend to fall
  anyway. Matching comparison cells on the before count (not on having been chosen)
  removes part of it, not all.
- Displacement: dumping moved round the corner shows as an effect; cells next to the
  hull are not examined.
- Reporting changes: fewer calls after a visible clean-up may mean fewer problems or
  fewer residents calling; problems (not tickets) blunt repeat callers only.
- A square cell is not the hull's shape; the comparison is about counts per area.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from clustering.problem_hotspots import problem_ids_of
from hotspot311.errors import InputError, describe

EFFECT_COLUMNS: Final = (
    "rank", "hotspot_id", "status", "done", "before", "after", "change",
    "comparison_cells", "comparison_before", "comparison_after", "expected_change",
    "effect", "ratio",
)


def hotspot_effect(requests: pd.DataFrame, hotspots: gpd.GeoDataFrame, members: pd.DataFrame,
                   *, services: Sequence[str] = (), weeks: int = 4,
                   n_comparison: int = 20) -> pd.DataFrame:
    """New problems inside each hotspot before and after its work was done.

    Parameters
    ----------
    requests
        Stored requests (``service_request_id``, ``service_name``, ``x``/``y`` in the
        city CRS, ``requested_datetime``, ``closed_datetime``, ``problem_id``).
    hotspots
        A stored run's hotspots (hull in the city CRS, ``hotspot_id``, ``rank``).
    members
        ``hotspot_id``, ``service_request_id`` of the run.
    services
        The run's service types (empty: every type).
    weeks
        Length of each window.
    n_comparison
        Comparison cells per hotspot.

    Returns
    -------
    pandas.DataFrame
        :data:`EFFECT_COLUMNS`, one row per hotspot in rank order (see the module
        docstring).

    Raises
    ------
    InputError
        For ``weeks`` or ``n_comparison`` below 1.
    """
    problems = []
    if not isinstance(weeks, int) or weeks < 1:
        problems.append(f"weeks: got {describe(weeks)}; allowed: a whole number >= 1")
    if not isinstance(n_comparison, int) or n_comparison < 1:
        problems.append(f"n_comparison: got {describe(n_comparison)}; "
                        "allowed: a whole number >= 1")
    if problems:
        raise InputError(problems)
    span = pd.Timedelta(weeks=weeks)
    firsts = _first_requests(requests, services)
    data_end = requests["requested_datetime"].max()
    closed = requests.set_index(requests["service_request_id"].astype(str))["closed_datetime"]
    hulls = hotspots.geometry.to_numpy()
    rows = []
    for _, spot in hotspots.iterrows():
        ids = members.loc[members["hotspot_id"] == spot["hotspot_id"],
                          "service_request_id"].astype(str)
        times = closed.reindex(ids)
        row: dict[str, object] = {"rank": spot.get("rank"), "hotspot_id": spot["hotspot_id"]}
        if len(times) == 0 or times.isna().any():
            rows.append({**row, "status": "not_closed"})
            continue
        done = times.max()
        inside = shapely.contains_xy(spot.geometry, firsts["x"].to_numpy(),
                                     firsts["y"].to_numpy())
        t = firsts["requested_datetime"]
        before_mask = (t >= done - span) & (t < done)
        after_mask = (t > done) & (t <= done + span)
        before = int((inside & before_mask).sum())
        after = int((inside & after_mask).sum())
        cmp_before, cmp_after = _comparison(firsts, before_mask.to_numpy(),
                                            after_mask.to_numpy(), spot.geometry, hulls,
                                            before, n_comparison)
        expected = float(np.mean(cmp_after - cmp_before)) if len(cmp_before) else np.nan
        ratio = ((after / before) / (cmp_after.sum() / cmp_before.sum())
                 if before > 0 and cmp_before.sum() > 0 and cmp_after.sum() > 0 else np.nan)
        rows.append({
            **row, "status": "ok" if done + span <= data_end else "window_open",
            "done": done, "before": before, "after": after, "change": after - before,
            "comparison_cells": len(cmp_before),
            "comparison_before": int(cmp_before.sum()), "comparison_after": int(cmp_after.sum()),
            "expected_change": round(expected, 2),
            "effect": round((after - before) - expected, 2), "ratio": ratio,
        })
    out = pd.DataFrame(rows, columns=list(EFFECT_COLUMNS))
    return out.sort_values("rank", kind="stable").reset_index(drop=True)


def _first_requests(requests: pd.DataFrame, services: Sequence[str]) -> pd.DataFrame:
    """The first request of each problem of ``services`` with a position."""
    frame = requests[requests["x"].notna() & requests["y"].notna()]
    if services:
        frame = frame[frame["service_name"].isin(services)]
    first = frame[problem_ids_of(frame).to_numpy() == frame["service_request_id"].astype(str)
                  .to_numpy()]
    return first[["x", "y", "requested_datetime"]].reset_index(drop=True)


def _comparison(firsts: pd.DataFrame, before: np.ndarray, after: np.ndarray,
                hull: shapely.Geometry, hulls: np.ndarray, target: int,
                n: int) -> tuple[np.ndarray, np.ndarray]:
    """Before and after counts of the ``n`` cells most like the hotspot before."""
    side = float(np.sqrt(max(shapely.area(hull), 1.0)))
    x, y = firsts["x"].to_numpy(), firsts["y"].to_numpy()
    if len(x) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    cx, cy = np.floor(x / side).astype(np.int64), np.floor(y / side).astype(np.int64)
    cells = pd.DataFrame({"cx": cx, "cy": cy, "b": before.astype(np.int64),
                          "a": after.astype(np.int64)})
    counts = cells.groupby(["cx", "cy"], sort=True)[["b", "a"]].sum().reset_index()
    boxes = shapely.box(counts["cx"] * side, counts["cy"] * side, (counts["cx"] + 1) * side,
                        (counts["cy"] + 1) * side)
    touching = shapely.STRtree(hulls).query(boxes, predicate="intersects")
    keep = np.ones(len(counts), dtype=bool)
    keep[np.unique(touching[0])] = False
    counts = counts[keep].assign(dist=lambda f: (f["b"] - target).abs())
    chosen = counts.sort_values(["dist", "cx", "cy"], kind="stable").head(n)
    return chosen["b"].to_numpy(), chosen["a"].to_numpy()


def effect_summary(effect: pd.DataFrame) -> dict[str, object]:
    """Totals over the hotspots whose windows are over (``status == "ok"``)."""
    done = effect[effect["status"] == "ok"]
    return {"hotspots": len(effect), "measured": len(done),
            "before": int(done["before"].sum()), "after": int(done["after"].sum()),
            "expected_change": float(done["expected_change"].sum()),
            "effect": float(done["effect"].sum())}

