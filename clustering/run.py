"""One hotspot run: select, cluster, summarize, rank.

``run_hotspots`` is what the CLI and the app call; it is a function of one frame of
requests (one partition), so batch runs can be split by service type, window or tile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import geopandas as gpd
import pandas as pd

from clustering.hdbscan_method import hdbscan_labels
from clustering.hotspots import label_requests, summarize
from clustering.partitioned import Watch
from clustering.priority import PriorityWeights, rank_hotspots
from clustering.problem_hotspots import collapse, problem_ids_of, sorted_lists
from clustering.problems import ProblemRules, assign_problems
from clustering.selection import HotspotQuery, select_requests, window_end
from layers.profile import CityProfile

if TYPE_CHECKING:
    from distributed import Client


@dataclass
class HotspotResult:
    """The outcome of a run.

    Attributes
    ----------
    query
        The parameters.
    hotspots
        Ranked hotspots (hull geometry in the city CRS), see
        :func:`clustering.priority.rank_hotspots`.
    members
        The selected requests with ``hotspot_id`` (``None`` for noise) and ``rank``
        (and ``problem_id`` when the run counts problems); no rows when the run was told
        not to keep them (``keep_members=False``).
    selected
        Number of requests the run looked at.
    window_end
        End of the time window used.
    snapshot
        The data the run saw: ``n_requests`` (all requests given), ``n_selected``,
        ``max_updated`` and ``max_requested`` (newest times, ISO text or None).
    """

    query: HotspotQuery
    hotspots: gpd.GeoDataFrame
    members: pd.DataFrame
    selected: int
    window_end: datetime | None
    snapshot: dict[str, object] = field(default_factory=dict)


def run_hotspots(
    requests: pd.DataFrame,
    query: HotspotQuery,
    *,
    profile: CityProfile,
    weights: PriorityWeights,
    now: datetime | None = None,
    layer_keys: tuple[str, ...] = (),
    client: Client | None = None,
    spill_dir: str | Path | None = None,
    watch: Watch | None = None,
    keep_members: bool = True,
) -> HotspotResult:
    """Find and rank hotspots.

    Parameters
    ----------
    requests
        Stored requests (with ``x``/``y`` in the city CRS).
    query
        Service types, window, status, ``eps_m`` and ``min_samples``.
    profile
        The city (for the metres → CRS unit conversion).
    weights
        Priority weights.
    now
        Reference time for overdue and ages (UTC now when omitted).
    layer_keys
        Layers to report each hotspot's area in.
    client
        A ``distributed.Client``: run the DBSCAN by tiles on that Dask cluster (the same
        labels). HDBSCAN always runs here.
    spill_dir
        With ``client``: a directory every worker reads and writes at this path; the
        DBSCAN's blocks, tile pieces and tile states go there, so a worker's memory does
        not grow with the number of points (see
        :func:`~clustering.partitioned.dbscan_partitioned`). ``None``: in memory.
    watch
        With ``client``: called with each pass's futures (a progress bar).
    keep_members
        ``False``: the result's ``members`` has no rows and the hotspots no
        ``member_ids``, for a caller that shows the ranked hotspots only (the app's map and
        table), so that the run need not hold a member row per request; when it counts
        problems it also lets ``requests`` go once it has the problem rows. The hotspots
        are the same.

    Returns
    -------
    HotspotResult
        Ranked hotspots and their members.

    Notes
    -----
    With ``query.count == "problems"`` DBSCAN, summaries and priority work on one row
    per problem (:mod:`clustering.problem_hotspots`); hotspots gain ``problems`` (=
    ``count``), ``calls`` and the ``score_calls`` part, and ``member_ids`` lists every
    request (when members are kept). With ``query.problem_distance_m`` /
    ``problem_gap_days`` the problems are recomputed for this run on all requests of the
    selected services.
    """
    query.validate()
    now = now or datetime.now(UTC)
    chosen = select_requests(requests, query)
    end = window_end(requests, query)
    eps = profile.metres_to_crs(query.eps_m)
    problems = query.count == "problems"
    if problems and (query.problem_distance_m is not None
                     or query.problem_gap_days is not None):
        chosen = chosen.assign(problem_id=_run_problem_ids(requests, query, profile)
                               .reindex(chosen.index).to_numpy())
    points = collapse(chosen, ids="none") if problems else chosen
    selected = len(chosen)
    snapshot = data_snapshot(requests, n_selected=selected)
    if problems and not keep_members:
        # the problem rows are all the run needs now: let the requests go (when the
        # caller holds no other reference, the window's rows are freed before the hulls)
        members = _no_rows(chosen).assign(problem_id=pd.Series([], dtype="str"),
                                          hotspot_id=pd.Series([], dtype="str"))
        del chosen, requests
    if query.method == "hdbscan":
        labels = hdbscan_labels(points[["x", "y"]].to_numpy(dtype="float64"),
                                min_cluster_size=query.min_cluster_size or query.min_samples,
                                min_samples=query.min_samples)
    else:
        labels = label_requests(points, eps=eps, min_samples=query.min_samples, client=client,
                                spill_dir=spill_dir, watch=watch)
    hotspots = summarize(points, labels, eps=eps, now=now, layer_keys=layer_keys, crs=profile.crs)
    by_label = dict(zip(hotspots["label"], hotspots["hotspot_id"], strict=True))
    calls = None
    if problems:
        points = points.assign(hotspot_id=pd.Series(labels, index=points.index).map(by_label))
        # columns, not Python objects: this runs on every request of the window
        if keep_members:
            of_problem = pd.Series(points["hotspot_id"].array,
                                   index=pd.Index(points["problem_id"]))
            pid = problem_ids_of(chosen)
            members = chosen.assign(problem_id=pid.array,
                                    hotspot_id=of_problem.reindex(pid.array).array)
            del pid, of_problem  # (its index keeps a hash table of every problem id)
        clustered = points[points["hotspot_id"].notna()]
        calls = clustered.groupby("hotspot_id")["calls"].sum()
        hotspots["problems"] = hotspots["count"]
        hotspots["calls"] = hotspots["hotspot_id"].map(calls).astype(int)
        if keep_members:
            clustered_ids = members["hotspot_id"].notna()
            hotspots["member_ids"] = hotspots["hotspot_id"].map(
                sorted_lists(members["hotspot_id"][clustered_ids],
                             members["service_request_id"][clustered_ids]))
        else:  # (summarize's lists are of problems; the requests' are not made)
            hotspots = hotspots.drop(columns=["member_ids"])
        # recency counts a problem called about lately: its last call
        for_rank = clustered.assign(requested_datetime=clustered["last_requested"])
    else:
        members = chosen.assign(hotspot_id=pd.Series(labels, index=chosen.index).map(by_label))
        for_rank = members[members["hotspot_id"].notna()]
        if not keep_members:
            members = _no_rows(members)
            hotspots = hotspots.drop(columns=["member_ids"])
    ranked = rank_hotspots(hotspots, for_rank, weights=weights, window_end=end or now,
                           calls=calls)
    rank_of = pd.Series(ranked["rank"].to_numpy(), index=pd.Index(ranked["hotspot_id"]))
    members["rank"] = rank_of.reindex(members["hotspot_id"].array).to_numpy(dtype=float)
    ranked = gpd.GeoDataFrame(ranked, geometry="geometry", crs=profile.crs)
    return HotspotResult(
        query=query, hotspots=ranked, members=members, selected=selected, window_end=end,
        snapshot=snapshot,
    )


def _no_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame with ``frame``'s columns and dtypes and no rows, made anew: an empty slice
    (``frame.iloc[:0]``) of an Arrow column would keep the whole column's buffers."""
    return pd.DataFrame({c: pd.Series([], dtype=frame[c].dtype) for c in frame.columns})


def _run_problem_ids(requests: pd.DataFrame, query: HotspotQuery,
                     profile: CityProfile) -> pd.Series:
    """Problem ids under the run's own rule, over every request of its services."""
    rules = ProblemRules.for_city(profile, distance_m=query.problem_distance_m,
                                  gap_days=query.problem_gap_days)
    pool = requests[requests["service_name"].isin(query.services)] if query.services \
        else requests
    if "closed_datetime" not in pool.columns:
        pool = pool.assign(closed_datetime=pd.Series(pd.NaT, index=pool.index,
                                                     dtype="datetime64[ns, UTC]"))
    return assign_problems(pool, rules)


def data_snapshot(requests: pd.DataFrame, *, n_selected: int) -> dict[str, object]:
    """What a run saw: request count, selected count and the newest times in the data.

    Parameters
    ----------
    requests
        The requests given to the run.
    n_selected
        How many the run selected.

    Returns
    -------
    dict
        ``n_requests``, ``n_selected``, ``max_updated``, ``max_requested`` (ISO or None).
    """

    def newest(column: str) -> str | None:
        if column not in requests or requests.empty:
            return None
        value = requests[column].max()
        return None if pd.isna(value) else pd.Timestamp(value).isoformat()

    return {
        "n_requests": len(requests),
        "n_selected": n_selected,
        "max_updated": newest("updated_datetime"),
        "max_requested": newest("requested_datetime"),
    }
