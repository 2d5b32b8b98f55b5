"""Hotspots: DBSCAN on the selected requests, summarized for crews.

Per hotspot: member request ids, a hull polygon, centroid, count, open and overdue
counts, the oldest open request, time span, the area code in every layer (the code
most members share), the top addresses, and a colour distinct from its neighbours'.

Hull: the concave hull of the members (``shapely.concave_hull`` with ratio
:data:`CONCAVE_RATIO`; 0 is the tightest, 1 the convex hull), buffered by a quarter of
``eps`` so that a hotspot on one street reads as a shape and not a line. Overdue: an
open request whose due time (``expected_datetime``) has passed at ``now``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from clustering.dbscan import dbscan

CONCAVE_RATIO: Final = 0.5
TOP_ADDRESSES: Final = 3

#: Colours for hotspots on a map; neighbours never share one (greedy graph colouring).
PALETTE: Final = ("#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#a65628",
                  "#f781bf", "#999999", "#66c2a5", "#e6ab02")


def label_requests(requests: pd.DataFrame, *, eps: float, min_samples: int) -> np.ndarray:
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

    Returns
    -------
    numpy.ndarray
        One label per request, -1 for noise.
    """
    if requests.empty:
        return np.empty(0, dtype=np.int64)
    xy = requests[["x", "y"]].to_numpy(dtype="float64")
    unique, inverse, counts = np.unique(xy, axis=0, return_inverse=True, return_counts=True)
    labels = dbscan(unique, eps=eps, min_samples=min_samples, sample_weight=counts)
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
    columns = ["hotspot_id", "label", "count", "open", "overdue", "oldest_open_id",
               "oldest_open_requested", "oldest_open_days", "first_requested",
               "last_requested", "span_days", "centroid_x", "centroid_y", "services",
               "top_addresses", "top_address", "member_ids", *layer_keys, "color"]
    clustered = requests.assign(_label=labels)[labels >= 0]
    if clustered.empty:
        return gpd.GeoDataFrame({c: [] for c in columns}, geometry=[], crs=crs)
    now_ts = pd.Timestamp(now)
    rows = []
    hulls = []
    for label, group in clustered.groupby("_label", sort=True):
        is_open = group["status"].eq("open")
        due = group["expected_datetime"] if "expected_datetime" in group else None
        overdue = is_open & (due < now_ts) if due is not None else is_open & False
        opened = group[is_open].sort_values(["requested_datetime", "service_request_id"])
        ids = sorted(group["service_request_id"].astype(str))
        addresses = group["address"].dropna().value_counts()
        addresses = addresses.sort_index().sort_values(ascending=False, kind="stable")
        top = [f"{a} ({n})" for a, n in addresses.head(TOP_ADDRESSES).items()]
        first, last = group["requested_datetime"].min(), group["requested_datetime"].max()
        row = {
            "hotspot_id": "H" + hashlib.sha1("\n".join(ids).encode()).hexdigest()[:10],
            "label": int(label),  # type: ignore[call-overload]
            "count": len(group),
            "open": int(is_open.sum()),
            "overdue": int(overdue.sum()),
            "oldest_open_id": opened["service_request_id"].iloc[0] if len(opened) else None,
            "oldest_open_requested": opened["requested_datetime"].iloc[0] if len(opened) else pd.NaT,
            "oldest_open_days": (
                (now_ts - opened["requested_datetime"].iloc[0]).total_seconds() / 86400
                if len(opened) else np.nan
            ),
            "first_requested": first,
            "last_requested": last,
            "span_days": (last - first).total_seconds() / 86400,
            "centroid_x": float(group["x"].mean()),
            "centroid_y": float(group["y"].mean()),
            "services": "; ".join(f"{s} ({n})" for s, n in
                                  group["service_name"].value_counts().head(5).items()),
            "top_addresses": "; ".join(top),
            "top_address": addresses.index[0] if len(addresses) else None,
            "member_ids": ids,
        }
        for key in layer_keys:
            codes = group[key].dropna() if key in group else pd.Series([], dtype=object)
            row[key] = codes.value_counts().sort_index().idxmax() if len(codes) else None
        rows.append(row)
        hulls.append(_hull(group["x"].to_numpy(), group["y"].to_numpy(), eps))
    out = gpd.GeoDataFrame(rows, geometry=hulls, crs=crs)
    out["color"] = colour_neighbours(out.geometry.to_numpy(), gap=eps)
    return out


def _hull(x: np.ndarray, y: np.ndarray, eps: float) -> shapely.Geometry:
    points = shapely.multipoints(np.column_stack([x, y]))
    hull = shapely.concave_hull(points, ratio=CONCAVE_RATIO)
    return hull.buffer(eps / 4, quad_segs=4)


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
