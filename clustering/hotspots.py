"""Hotspots: DBSCAN on the selected requests, summarized for crews.

Per hotspot: member request ids, a hull polygon, centroid, count, open and overdue
counts, the oldest open request, time span, the area code in every layer (the code
most members share), the top addresses, and a colour distinct from its neighbours'.

Hull: the concave hull of the members (``shapely.concave_hull`` with ratio
:data:`CONCAVE_RATIO`; 0 is the tightest, 1 the convex hull), buffered by a quarter of
``eps`` so that a hotspot on one street reads as a shape and not a line. A hotspot of
more than :data:`HULL_EXACT_MAX` members is outlined from its members snapped to a grid
of ``eps / 4`` (one point per occupied cell): every member is within ``eps / 4 / √2`` of
a snapped point, so the buffered hull still holds every member, and the hull of a
67,000-member hotspot is worked out from a few thousand points instead of triangulating
all of them (70 MB and most of a run's time). Overdue: an open request whose due time
(``expected_datetime``) has passed at ``now``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final, cast

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from clustering.dbscan import dbscan
from clustering.partitioned import Watch, dbscan_partitioned

if TYPE_CHECKING:
    from distributed import Client

CONCAVE_RATIO: Final = 0.5
#: Largest hotspot whose hull is worked out from every member (see the module docstring).
HULL_EXACT_MAX: Final = 2000
TOP_ADDRESSES: Final = 3

#: Colours for hotspots on a map; neighbours never share one (greedy graph colouring).
PALETTE: Final = (
    "#e41a1c",
    "#377eb8",
    "#4daf4a",
    "#984ea3",
    "#ff7f00",
    "#a65628",
    "#f781bf",
    "#999999",
    "#66c2a5",
    "#e6ab02",
)


def label_requests(
    requests: pd.DataFrame,
    *,
    eps: float,
    min_samples: int,
    client: Client | None = None,
    spill_dir: str | Path | None = None,
    watch: Watch | None = None,
) -> np.ndarray:
    """DBSCAN labels for requests, using their city-CRS ``x``/``y``.

    Requests at the same point are clustered once with a weight (many requests at one
    address cost one point).

    Parameters
    ----------
    requests
        Selected requests with ``x`` and ``y``.
    eps
        Search distance in CRS units.
    min_samples
        Requests within ``eps`` that make a core point.
    client
        A ``distributed.Client``: cluster by tiles on that Dask cluster
        (:func:`clustering.partitioned.dbscan_partitioned`, the same labels).
    spill_dir, watch
        With ``client``: passed to :func:`~clustering.partitioned.dbscan_partitioned`
        (a directory the workers spill to; a progress watcher).

    Returns
    -------
    numpy.ndarray
        One label per request, -1 for noise.
    """
    if requests.empty:
        return np.empty(0, dtype=np.int64)
    xy = requests[["x", "y"]].to_numpy(dtype="float64")
    unique, inverse, counts = np.unique(xy, axis=0, return_inverse=True, return_counts=True)
    if client is None:
        labels = dbscan(unique, eps=eps, min_samples=min_samples, sample_weight=counts)
    else:
        labels = dbscan_partitioned(unique, eps=eps, min_samples=min_samples, client=client,
                                    sample_weight=counts, spill_dir=spill_dir, watch=watch)
    return np.asarray(labels[inverse.ravel()], dtype=np.int64)


def summarize(
    requests: pd.DataFrame,
    labels: np.ndarray,
    *,
    eps: float,
    now: datetime,
    layer_keys: Sequence[str] = (),
    crs: object = None,
) -> gpd.GeoDataFrame:
    """One row per hotspot, geometry the hull in the city CRS.

    Parameters
    ----------
    requests
        The clustered requests.
    labels
        From :func:`label_requests`.
    eps
        Search distance in CRS units (for the hull buffer).
    now
        Reference time for overdue and ages.
    layer_keys
        Layers to report the area of.
    crs
        The city CRS.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``hotspot_id``, ``label``, ``count``, ``open``, ``overdue``,
        ``oldest_open_id``, ``oldest_open_requested``, ``oldest_open_days``,
        ``first_requested``, ``last_requested``, ``span_days``, ``centroid_x``,
        ``centroid_y``, ``services``, ``top_addresses``, ``top_address``,
        ``member_ids``, one column per layer key, ``color``, and the hull geometry.
    """
    columns = [
        "hotspot_id",
        "label",
        "count",
        "open",
        "overdue",
        "oldest_open_id",
        "oldest_open_requested",
        "oldest_open_days",
        "first_requested",
        "last_requested",
        "span_days",
        "centroid_x",
        "centroid_y",
        "services",
        "top_addresses",
        "top_address",
        "member_ids",
        *layer_keys,
        "color",
    ]
    needed = [
        "service_request_id",
        "status",
        "expected_datetime",
        "requested_datetime",
        "address",
        "service_name",
        "x",
        "y",
        *layer_keys,
    ]
    plain = pd.DataFrame(requests[[c for c in needed if c in requests.columns]]).reset_index(
        drop=True
    )
    clustered = plain.assign(_label=labels)[labels >= 0]
    if clustered.empty:
        return gpd.GeoDataFrame({c: [] for c in columns}, geometry=[], crs=crs)
    now_ts = pd.Timestamp(now)
    lab = clustered["_label"]
    by = clustered.groupby("_label", sort=True)
    out = pd.DataFrame({"label": by.size().index.astype(int), "count": by.size().to_numpy()})
    out.index = by.size().index
    is_open = clustered["status"].eq("open")
    due = clustered.get("expected_datetime")
    overdue = is_open & (due < now_ts) if due is not None else is_open & False
    out["open"] = is_open.groupby(lab).sum().astype(int)
    out["overdue"] = overdue.fillna(False).groupby(lab).sum().astype(int)

    opened = clustered.loc[is_open, ["_label", "requested_datetime", "service_request_id"]]
    oldest = opened.sort_values(["_label", "requested_datetime", "service_request_id"]
                                ).drop_duplicates("_label").set_index("_label")
    out["oldest_open_id"] = oldest["service_request_id"].reindex(out.index)
    out["oldest_open_requested"] = oldest["requested_datetime"].reindex(out.index)
    out["oldest_open_days"] = (now_ts - out["oldest_open_requested"]).dt.total_seconds() / 86400
    out["first_requested"] = by["requested_datetime"].min()
    out["last_requested"] = by["requested_datetime"].max()
    out["span_days"] = (out["last_requested"] - out["first_requested"]).dt.total_seconds() / 86400
    out["centroid_x"] = by["x"].mean()
    out["centroid_y"] = by["y"].mean()
    out["services"] = _top_counts(clustered, "service_name", 5)
    out["top_addresses"] = _top_counts(clustered, "address", TOP_ADDRESSES).reindex(out.index)
    out["top_addresses"] = out["top_addresses"].fillna("")
    out["top_address"] = _top_values(clustered, "address")
    ids = pd.DataFrame({"_label": lab.to_numpy(),
                        "_id": clustered["service_request_id"].astype(str).to_numpy()}
                       ).sort_values(["_label", "_id"])
    out["member_ids"] = ids.groupby("_label")["_id"].agg(list)
    del ids
    out.insert(0, "hotspot_id", [hotspot_key(m) for m in out["member_ids"]])
    for key in layer_keys:
        out[key] = _top_values(clustered, key) if key in clustered else None

    order = np.argsort(lab.to_numpy(), kind="stable")
    xs, ys = clustered["x"].to_numpy()[order], clustered["y"].to_numpy()[order]
    cuts = np.cumsum(out["count"].to_numpy())[:-1]
    hulls = [_hull(x, y, eps) for x, y in zip(np.split(xs, cuts), np.split(ys, cuts), strict=True)]
    result = gpd.GeoDataFrame(out[columns[:-1]].reset_index(drop=True), geometry=hulls, crs=crs)
    result["color"] = colour_neighbours(result.geometry.to_numpy(), gap=eps)
    return result


def hotspot_key(member_ids: Sequence[str]) -> str:
    """A hotspot's id: ``H`` and 10 hex digits of the SHA-1 of its sorted member ids (the
    same members, the same id, in any run).

    Examples
    --------
    >>> hotspot_key(["b", "a"]) == hotspot_key(["a", "b"])
    True
    """
    return "H" + hashlib.sha1("\n".join(sorted(member_ids)).encode()).hexdigest()[:10]


def _ranked_counts(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per label, the values of ``column`` with their counts, most frequent first, then
    by value (so ties are deterministic)."""
    sizes = frame[["_label", column]].dropna(subset=[column]).groupby(["_label", column]).size()
    counts: pd.DataFrame = sizes.reset_index(name="n")
    return counts.sort_values(["_label", "n", column], ascending=[True, False, True])


def _top_counts(frame: pd.DataFrame, column: str, k: int) -> pd.Series:
    """``"value (n); …"`` of the ``k`` most frequent values per label."""
    ranked = _ranked_counts(frame, column).groupby("_label").head(k)
    text = ranked[column].astype(str) + " (" + ranked["n"].astype(str) + ")"
    return text.groupby(ranked["_label"]).agg("; ".join)


def _top_values(frame: pd.DataFrame, column: str) -> pd.Series:
    """The most frequent value per label (ties: the smallest)."""
    ranked = _ranked_counts(frame, column).drop_duplicates("_label")
    return ranked.set_index("_label")[column]


def _hull(x: np.ndarray, y: np.ndarray, eps: float) -> shapely.Geometry:
    xy = np.column_stack([x, y])
    if len(xy) > HULL_EXACT_MAX:  # one point per occupied eps/4 cell, at its centre
        size = eps / 4
        xy = (np.unique(np.floor(xy / size), axis=0) + 0.5) * size
    points = shapely.multipoints(xy)
    hull = shapely.concave_hull(points, ratio=CONCAVE_RATIO)
    return cast(shapely.Geometry, shapely.buffer(hull, eps / 4, quad_segs=4))


def colour_neighbours(hulls: np.ndarray, *, gap: float) -> list[str]:
    """Greedy colouring: hotspots within ``gap`` of each other get different colours.

    Parameters
    ----------
    hulls
        Hotspot polygons, in rank or label order (the order decides the colours).
    gap
        Distance under which two hotspots count as neighbours.

    Returns
    -------
    list of str
        One colour of :data:`PALETTE` per hotspot.
    """
    if len(hulls) == 0:
        return []
    tree = shapely.STRtree(hulls)
    left, right = tree.query(hulls, predicate="dwithin", distance=gap)
    neighbours: dict[int, set[int]] = {}
    for a, b in zip(left.tolist(), right.tolist(), strict=True):
        if a != b:
            neighbours.setdefault(a, set()).add(b)
    colours: list[int] = []
    for i in range(len(hulls)):
        taken = {colours[j] for j in neighbours.get(i, ()) if j < i}
        colours.append(next(c for c in range(len(PALETTE) + len(taken) + 1) if c not in taken))
    return [PALETTE[c % len(PALETTE)] for c in colours]
