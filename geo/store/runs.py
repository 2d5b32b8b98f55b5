"""Stored hotspot runs: the store-independent record of one run.

A run is kept with its parameters (``HotspotQuery.params()``), the data snapshot it saw
(request counts and newest ``updated_datetime``), its hotspots (hull in the city CRS and
every summary column) and their member ids, and the time it was stored. Both stores keep
the same record: :func:`pack_run` turns a result into it, :func:`unpack_hotspots` and
:func:`runs_frame` turn stored rows back into frames, so a run round-trips identically
through the embedded and the PostGIS store.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely


class RunParameters(Protocol):
    """What a store needs of a run's query: its parameters as a JSON-ready dict."""

    def params(self) -> dict[str, Any]:
        """The parameters (``HotspotQuery.params()``)."""
        ...


class RunResult(Protocol):
    """What a store needs of a hotspot run.

    :class:`clustering.run.HotspotResult` has this shape; the stores depend on the shape
    only, so they never import :mod:`clustering` (which imports them).
    """

    @property
    def query(self) -> RunParameters:
        """The run's parameters."""
        ...

    @property
    def hotspots(self) -> gpd.GeoDataFrame:
        """Ranked hotspots with ``hotspot_id``, ``count``, ``member_ids`` and the hull."""
        ...

    @property
    def selected(self) -> int:
        """Number of requests the run looked at."""
        ...

    @property
    def window_end(self) -> datetime | None:
        """End of the time window used."""
        ...

    @property
    def snapshot(self) -> dict[str, object]:
        """The data the run saw (counts and newest times)."""
        ...

#: Hotspot columns holding times (ISO text in the stored attributes).
TIME_COLUMNS: Final = ("oldest_open_requested", "first_requested", "last_requested")

#: Columns of :meth:`geo.store.base.Store.runs`.
RUNS_COLUMNS: Final = (
    "run_id",
    "created_at",
    "services",
    "days",
    "end",
    "status",
    "eps_m",
    "min_samples",
    "method",
    "n_requests",
    "n_selected",
    "max_updated",
    "window_end",
    "n_hotspots",
    "params_key",
)

#: Columns of the members frame of a stored run.
MEMBER_COLUMNS: Final = ("hotspot_id", "service_request_id")


@dataclass(frozen=True)
class PackedRun:
    """A run ready for a store.

    Attributes
    ----------
    params
        ``HotspotQuery.params()``.
    snapshot
        ``n_requests``, ``n_selected``, ``max_updated``, ``max_requested``,
        ``window_end`` (ISO text or None) and ``columns`` (hotspot column order).
    hotspots
        One dict per hotspot: ``hotspot_id``, ``position`` (1-based, rank order),
        ``count``, ``attrs`` (JSON-ready summary columns) and ``wkb`` (city CRS hull).
    members
        ``hotspot_id`` and ``service_request_id`` of every member.
    """

    params: dict[str, Any]
    snapshot: dict[str, Any]
    hotspots: list[dict[str, Any]]
    members: pd.DataFrame


def _plain(value: Any) -> Any:
    """A JSON-ready copy of one cell."""
    if value is None:
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return None if pd.isna(value) else pd.Timestamp(value).isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    return value


def params_key(params: dict[str, Any]) -> str:
    """Canonical JSON of run parameters: runs with equal keys used the same parameters."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def pack_run(result: RunResult) -> PackedRun:
    """The store record of a hotspot run.

    Parameters
    ----------
    result
        From :func:`clustering.run.run_hotspots`.

    Returns
    -------
    PackedRun
        Parameters, snapshot, hotspots and members, JSON-ready.
    """
    hot = result.hotspots
    columns = [c for c in hot.columns if c not in ("geometry", "member_ids")]
    snapshot = {k: _plain(v) for k, v in result.snapshot.items()}
    snapshot.setdefault("n_selected", int(result.selected))
    snapshot["window_end"] = _plain(result.window_end)
    snapshot["columns"] = [str(c) for c in hot.columns]
    rows = []
    members: list[tuple[str, str]] = []
    for position, (_, row) in enumerate(hot.iterrows(), start=1):
        hid = str(row["hotspot_id"])
        rows.append(
            {
                "hotspot_id": hid,
                "position": position,
                "count": int(row["count"]),
                "attrs": {c: _plain(row[c]) for c in columns},
                "wkb": shapely.to_wkb(row.geometry),
            }
        )
        members.extend((hid, str(m)) for m in row["member_ids"])
    member_frame = pd.DataFrame(members, columns=list(MEMBER_COLUMNS), dtype=object)
    return PackedRun(dict(result.query.params()), snapshot, rows, member_frame)


def unpack_hotspots(
    rows: list[dict[str, Any]], members: pd.DataFrame, *, columns: list[str], crs: object
) -> gpd.GeoDataFrame:
    """Stored hotspot rows back into the ranked hotspots frame.

    Parameters
    ----------
    rows
        Dicts with ``attrs`` (dict) and ``wkb`` (bytes), in position order.
    members
        ``hotspot_id``, ``service_request_id`` of the run.
    columns
        Column order recorded at save time.
    crs
        The city CRS.

    Returns
    -------
    geopandas.GeoDataFrame
        The saved columns, ``member_ids`` (sorted ids) and the hull geometry.
    """
    by_id = members.groupby("hotspot_id")["service_request_id"].agg(lambda s: sorted(s))
    plain = [c for c in columns if c not in ("member_ids", "geometry")]
    frame = pd.DataFrame([r["attrs"] for r in rows], columns=plain)
    for c in TIME_COLUMNS:
        if c in frame:
            frame[c] = pd.to_datetime(frame[c], utc=True, format="ISO8601")
    frame["member_ids"] = [list(by_id.get(h, [])) for h in frame["hotspot_id"]]
    geoms = shapely.from_wkb([bytes(r["wkb"]) for r in rows]) if rows else np.empty(0, object)
    out = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=crs), crs=crs)
    order = [c for c in columns if c in out.columns]
    return out[order + [c for c in out.columns if c not in order]]


def runs_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """The run list from stored run records.

    Parameters
    ----------
    records
        Dicts with ``run_id``, ``created_at``, ``params``, ``snapshot``, ``n_hotspots``.

    Returns
    -------
    pandas.DataFrame
        :data:`RUNS_COLUMNS`, one row per run, oldest first.
    """
    out = []
    for r in records:
        p, s = r["params"], r["snapshot"]
        out.append(
            {
                "run_id": int(r["run_id"]),
                "created_at": pd.Timestamp(r["created_at"]).tz_convert("UTC"),
                "services": ", ".join(p.get("services", [])) or "(all)",
                "days": p.get("days"),
                "end": p.get("end"),
                "status": p.get("status"),
                "eps_m": p.get("eps_m"),
                "min_samples": p.get("min_samples"),
                "method": p.get("method", "dbscan"),
                "n_requests": s.get("n_requests"),
                "n_selected": s.get("n_selected"),
                "max_updated": s.get("max_updated"),
                "window_end": s.get("window_end"),
                "n_hotspots": int(r["n_hotspots"]),
                "params_key": params_key(p),
            }
        )
    frame = pd.DataFrame(out, columns=list(RUNS_COLUMNS))
    if out:
        frame = frame.sort_values(["created_at", "run_id"]).reset_index(drop=True)
    return frame
