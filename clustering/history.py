"""Hotspots over time: compare two runs, and class locations over a weekly series.

Comparing two runs
------------------
An earlier hotspot *e* and a later hotspot *l* are **linked** when their member ids
overlap with Jaccard index ``|e ∩ l| / |e ∪ l| >= MIN_JACCARD`` (0.1), or when their
hulls overlap by at least ``HULL_OVERLAP`` (25 %) of the smaller hull's area (the hull
rule links runs whose windows share no request, e.g. week after week). Then, for each
later hotspot, in this order:

- **new**: linked to no earlier hotspot;
- **merged**: linked to two or more earlier hotspots;
- **split**: linked to one earlier hotspot that is linked to two or more later ones;
- **growing**: linked one-to-one and ``count`` up by at least ``CHANGE`` (20 %);
- **shrinking**: linked one-to-one and ``count`` down by at least 20 %;
- **persistent**: linked one-to-one, count within ±20 %.

Each earlier hotspot linked to no later one is listed as **gone**.

Emerging hot spots (weekly series)
----------------------------------
After ArcGIS Pro's Emerging Hot Spot Analysis, with "statistically significant hot
spot in a time step" replaced by "the cell meets a DBSCAN hotspot hull in that week's
run" (a hexagon grid, see :func:`clustering.significance.hex_grid`), and the trend of
clustering intensity measured by a Mann–Kendall test (two-sided, p < ``TREND_P``) on
the number of hotspot member requests in the cell per step. With *n* steps, *k* of them
hot, the last step being the most recent:

- **new**: hot in the last step only (k = 1);
- **intensifying**: hot in the last step and in at least 90 % of steps, intensity
  increasing (trend z > 0, p < 0.05);
- **diminishing**: as intensifying, intensity decreasing;
- **persistent**: hot in the last step and in at least 90 % of steps, no trend;
- **consecutive**: one uninterrupted run of at least two hot steps ending at the last
  step, never hot before it, in under 90 % of steps;
- **sporadic**: hot in the last step, on and off before, in under 90 % of steps;
- **historical**: not hot in the last step, hot in at least 90 % of steps;
- **no pattern**: hot at some step but none of the above (e.g. hot for a few weeks
  that are over). Cells never hot are not listed.

ArcGIS's oscillating classes need cold spots, which DBSCAN presence does not have.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import stats

from clustering.priority import PriorityWeights
from clustering.run import run_hotspots
from clustering.selection import HotspotQuery, window_end
from hotspot311.errors import InputError
from layers.profile import CityProfile

MIN_JACCARD: Final = 0.1
HULL_OVERLAP: Final = 0.25
CHANGE: Final = 0.2
PERSISTENT_SHARE: Final = 0.9
TREND_P: Final = 0.05

CLASSES: Final = ("new", "merged", "split", "growing", "shrinking", "persistent", "gone")
PATTERNS: Final = ("new", "consecutive", "intensifying", "persistent", "diminishing",
                   "sporadic", "historical", "no pattern")

COMPARE_COLUMNS: Final = ("hotspot_id", "class", "earlier_ids", "count", "earlier_count",
                          "change", "jaccard", "hull_overlap")


def links(earlier: gpd.GeoDataFrame, later: gpd.GeoDataFrame) -> pd.DataFrame:
    """Every linked pair of an earlier and a later hotspot (see the module docstring).

    Parameters
    ----------
    earlier, later
        Hotspot frames with ``hotspot_id``, ``member_ids``, ``count`` and hull geometry.

    Returns
    -------
    pandas.DataFrame
        ``e`` and ``l`` (row positions), ``shared``, ``jaccard``, ``hull_overlap``.
    """
    cols = ["e", "l", "shared", "jaccard", "hull_overlap"]
    if earlier.empty or later.empty:
        return pd.DataFrame({c: pd.Series([], dtype="float64") for c in cols}).astype(
            {"e": "int64", "l": "int64", "shared": "int64"}
        )
    e_sets = [set(m) for m in earlier["member_ids"]]
    l_sets = [set(m) for m in later["member_ids"]]
    e_geo, l_geo = earlier.geometry.to_numpy(), later.geometry.to_numpy()
    tree = shapely.STRtree(e_geo)
    li, ei = tree.query(l_geo, predicate="intersects")
    candidates = set(zip(ei.tolist(), li.tolist(), strict=True))
    owner = {m: i for i, s in enumerate(e_sets) for m in s}
    for j, s in enumerate(l_sets):
        candidates.update((owner[m], j) for m in s if m in owner)
    rows = []
    for i, j in sorted(candidates):
        shared = len(e_sets[i] & l_sets[j])
        union = len(e_sets[i] | l_sets[j])
        jac = shared / union if union else 0.0
        smaller = min(e_geo[i].area, l_geo[j].area)
        inter = shapely.intersection(e_geo[i], l_geo[j]).area
        overlap = inter / smaller if smaller > 0 else 0.0
        if jac >= MIN_JACCARD or overlap >= HULL_OVERLAP:
            rows.append((i, j, shared, jac, overlap))
    return pd.DataFrame(rows, columns=cols).astype({"e": "int64", "l": "int64", "shared": "int64"})


def compare_hotspots(earlier: gpd.GeoDataFrame, later: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Class each later hotspot against the earlier run; list the earlier ones gone.

    Parameters
    ----------
    earlier, later
        Hotspots of two runs (``hotspot_id``, ``member_ids``, ``count``, hull), same CRS.

    Returns
    -------
    geopandas.GeoDataFrame
        :data:`COMPARE_COLUMNS` and the hull (the earlier hull for ``gone``): one row
        per later hotspot in its order, then one per gone earlier hotspot.

    Raises
    ------
    InputError
        When the two runs' CRS differ.

    Examples
    --------
    See ``tests/clustering/test_history.py`` for a cluster that appears, grows, splits
    and disappears.
    """
    if earlier.crs != later.crs and not (earlier.empty or later.empty):
        raise InputError(f"compare: CRS differ: earlier {earlier.crs}, later {later.crs}")
    pairs = links(earlier, later)
    preds = pairs.groupby("l")["e"].apply(list).to_dict()
    succs = pairs.groupby("e")["l"].apply(list).to_dict()
    best = pairs.groupby("l")[["jaccard", "hull_overlap"]].max()
    e_ids, e_counts = earlier["hotspot_id"].tolist(), earlier["count"].tolist()
    rows, geoms = [], []
    for j, (hid, count, geom) in enumerate(
        zip(later["hotspot_id"], later["count"], later.geometry, strict=True)
    ):
        p = preds.get(j, [])
        before = float(sum(e_counts[i] for i in p)) if p else np.nan
        change = count / before - 1 if p else np.nan
        if not p:
            cls = "new"
        elif len(p) > 1:
            cls = "merged"
        elif len(succs[p[0]]) > 1:
            cls = "split"
        elif change >= CHANGE:
            cls = "growing"
        elif change <= -CHANGE:
            cls = "shrinking"
        else:
            cls = "persistent"
        rows.append({
            "hotspot_id": hid, "class": cls, "earlier_ids": [e_ids[i] for i in p],
            "count": int(count), "earlier_count": before, "change": change,
            "jaccard": best["jaccard"].get(j, 0.0),
            "hull_overlap": best["hull_overlap"].get(j, 0.0),
        })
        geoms.append(geom)
    for i, (hid, count, geom) in enumerate(
        zip(earlier["hotspot_id"], earlier["count"], earlier.geometry, strict=True)
    ):
        if i not in succs:
            rows.append({"hotspot_id": hid, "class": "gone", "earlier_ids": [hid], "count": 0,
                         "earlier_count": float(count), "change": -1.0, "jaccard": 0.0,
                         "hull_overlap": 0.0})
            geoms.append(geom)
    frame = pd.DataFrame(rows, columns=list(COMPARE_COLUMNS))
    crs = later.crs if later.crs is not None else earlier.crs
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=crs), crs=crs)


def previous_run(runs: pd.DataFrame, run_id: int) -> int | None:
    """The latest run stored before ``run_id`` with the same parameters (None if none).

    Parameters
    ----------
    runs
        :meth:`geo.store.base.Store.runs`.
    run_id
        The later run.

    Raises
    ------
    InputError
        When ``run_id`` is not stored.
    """
    row = runs[runs["run_id"] == run_id]
    if row.empty:
        raise InputError(f"run: got {run_id!r}; stored runs: {runs['run_id'].tolist()}")
    key, created = row["params_key"].iloc[0], row["created_at"].iloc[0]
    same = runs[(runs["params_key"] == key) & (runs["run_id"] != run_id)]
    earlier = same[(same["created_at"] < created)
                   | ((same["created_at"] == created) & (same["run_id"] < run_id))]
    return None if earlier.empty else int(earlier["run_id"].iloc[-1])


# --- emerging hot spots ---------------------------------------------------------------
def mann_kendall(series: np.ndarray) -> tuple[float, float]:
    """Mann–Kendall trend test (normal approximation with tie correction).

    Parameters
    ----------
    series
        Values in time order.

    Returns
    -------
    tuple of float
        ``z`` (positive: increasing) and the two-sided p-value; ``(0, 1)`` when there are
        fewer than three values or no variance.

    Examples
    --------
    >>> z, p = mann_kendall(np.arange(10.0))
    >>> round(z, 3), p < 0.001
    (3.935, True)
    """
    x = np.asarray(series, dtype="float64")
    n = len(x)
    if n < 3:
        return 0.0, 1.0
    s = float(np.sum(np.sign(x[None, :] - x[:, None])[np.triu_indices(n, 1)]))
    _, ties = np.unique(x, return_counts=True)
    var = (n * (n - 1) * (2 * n + 5) - np.sum(ties * (ties - 1) * (2 * ties + 5))) / 18.0
    if var <= 0:
        return 0.0, 1.0
    z = (s - np.sign(s)) / np.sqrt(var)
    return float(z), float(2 * stats.norm.sf(abs(z)))


def classify_presence(hot: np.ndarray, intensity: np.ndarray | None = None) -> list[str]:
    """Emerging-hot-spot pattern of each location (rules in the module docstring).

    Parameters
    ----------
    hot
        Boolean array (locations × steps, oldest first): hot at that step.
    intensity
        Same shape: clustering intensity for the trend test (``hot`` as 0/1 when
        omitted).

    Returns
    -------
    list of str
        One of :data:`PATTERNS` per location, or ``""`` for a location never hot.

    Examples
    --------
    >>> classify_presence(np.array([[0, 0, 0, 1], [0, 0, 1, 1], [1, 0, 1, 1], [1, 1, 1, 0]],
    ...                            dtype=bool))
    ['new', 'consecutive', 'sporadic', 'no pattern']
    """
    hot = np.asarray(hot, dtype=bool)
    values = hot.astype("float64") if intensity is None else np.asarray(intensity, "float64")
    if hot.ndim != 2 or values.shape != hot.shape:
        raise InputError(f"hot: expected a 2-d array (locations × steps); got shape {hot.shape}")
    n = hot.shape[1]
    out = []
    for row, series in zip(hot, values, strict=True):
        k = int(row.sum())
        share = k / n if n else 0.0
        if k == 0:
            out.append("")
        elif row[-1] and k == 1:
            out.append("new")
        elif row[-1] and share >= PERSISTENT_SHARE:
            z, p = mann_kendall(series)
            out.append("persistent" if p >= TREND_P else
                       "intensifying" if z > 0 else "diminishing")
        elif row[-1]:
            first_of_last_run = n - int(np.argmin(row[::-1])) if not row.all() else 0
            out.append("consecutive" if not row[:first_of_last_run].any() else "sporadic")
        elif share >= PERSISTENT_SHARE:
            out.append("historical")
        else:
            out.append("no pattern")
    return out


def weekly_series(
    requests: pd.DataFrame,
    query: HotspotQuery,
    *,
    weeks: int,
    profile: CityProfile,
    weights: PriorityWeights,
    grid_m: float = 250.0,
    now: datetime | None = None,
) -> gpd.GeoDataFrame:
    """Run ``query`` for ``weeks`` windows a week apart and class every grid cell.

    Step *k* (0 = oldest) uses the query's window ending ``weeks - 1 - k`` weeks before
    the query's end (the newest request when not set). A hexagon cell is hot at a step
    when it meets a hotspot hull of that step's run; its intensity is the number of that
    run's hotspot members inside it.

    Parameters
    ----------
    requests
        Stored requests.
    query
        The run's parameters (``days`` is each window's length).
    weeks
        Number of steps (at least 2).
    profile
        The city.
    weights
        Priority weights (they do not change the hotspots).
    grid_m
        Hexagon size in metres (see :func:`clustering.significance.hex_grid`).
    now
        Reference time for the runs.

    Returns
    -------
    geopandas.GeoDataFrame
        Cells hot at least once: ``cell_id``, ``pattern``, ``n_hot``, ``series`` (``#``
        hot, ``.`` not, oldest first), ``intensity`` (list), ``trend_z``, ``trend_p``, hex
        geometry in the city CRS.
    """
    from clustering.significance import hex_grid

    if not isinstance(weeks, int) or weeks < 2:
        raise InputError(f"weeks: got {weeks!r}; allowed: a whole number >= 2")
    end = window_end(requests, query)
    if end is None:
        raise InputError("weekly: no requests to run on")
    steps = [end - timedelta(weeks=weeks - 1 - k) for k in range(weeks)]
    results = [
        run_hotspots(requests, replace(query, end=step), profile=profile, weights=weights,
                     now=now or step)
        for step in steps
    ]
    pts = requests[["x", "y"]].dropna().to_numpy(dtype="float64")
    if len(pts) == 0:
        raise InputError("weekly: no requests with coordinates")
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    grid = hex_grid((float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])),
                    size=profile.metres_to_crs(grid_m), crs=profile.crs)
    cells = grid.geometry.to_numpy()
    tree = shapely.STRtree(cells)
    hot = np.zeros((len(cells), weeks), dtype=bool)
    intensity = np.zeros((len(cells), weeks))
    for k, res in enumerate(results):
        if len(res.hotspots):
            _, idx = tree.query(res.hotspots.geometry.to_numpy(), predicate="intersects")
            hot[np.unique(idx), k] = True
        mem = res.members[res.members["hotspot_id"].notna()]
        if len(mem):
            pidx, cidx = tree.query(shapely.points(mem["x"].to_numpy(), mem["y"].to_numpy()),
                                    predicate="within")
            first = pd.Series(cidx).groupby(pidx).first()  # a point on a shared edge: once
            np.add.at(intensity[:, k], first.to_numpy(), 1)
    patterns = classify_presence(hot, intensity)
    keep = hot.any(axis=1)
    trend = [mann_kendall(s) for s in intensity[keep]]
    out = gpd.GeoDataFrame({
        "cell_id": grid["cell_id"].to_numpy()[keep],
        "pattern": np.asarray(patterns, dtype=object)[keep],
        "n_hot": hot[keep].sum(axis=1),
        "series": ["".join("#" if h else "." for h in row) for row in hot[keep]],
        "intensity": [row.astype(int).tolist() for row in intensity[keep]],
        "trend_z": [t[0] for t in trend],
        "trend_p": [t[1] for t in trend],
    }, geometry=gpd.GeoSeries(cells[keep], crs=profile.crs), crs=profile.crs)
    return out.reset_index(drop=True)
