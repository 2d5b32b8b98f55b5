"""Writing hotspot runs: the ranked list and the crew work list, as CSV or GeoJSON."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import geopandas as gpd
import pandas as pd

from clustering.priority import PARTS
from clustering.problem_hotspots import work_list_by_problem
from geo.ingest.cells import to_csv
from geo.ingest.times import ISO_UTC, times_as_text
from hotspot311.errors import InputError

LIST_COLUMNS = [
    "rank",
    "score",
    *[f"score_{p}" for p in PARTS],
    "score_calls",
    "hotspot_id",
    "count",
    "problems",
    "calls",
    "open",
    "overdue",
    "oldest_open_id",
    "oldest_open_days",
    "first_requested",
    "last_requested",
    "place",
    "top_address",
    "top_addresses",
    "services",
]


def hotspot_table(hotspots: gpd.GeoDataFrame, layer_keys: tuple[str, ...] = ()) -> pd.DataFrame:
    """The ranked list as a plain table (no geometry, no member lists).

    A run that counts problems adds ``score_calls``, ``problems`` (= ``count``) and
    ``calls``; a ticket run's table is as it always was.
    """
    cols = [c for c in LIST_COLUMNS if c in hotspots.columns]
    cols += [k for k in layer_keys if k in hotspots.columns]
    return pd.DataFrame(hotspots[cols])


def work_list(members: pd.DataFrame, *, now: datetime, count: str = "tickets") -> pd.DataFrame:
    """Crew work list in rank order, oldest first.

    Parameters
    ----------
    members
        ``HotspotResult.members`` (requests with ``hotspot_id`` and ``rank``).
    now
        Reference time for ages and overdue.
    count
        ``tickets``: one line per request; ``problems``: one line per problem with all
        its request ids (:func:`clustering.problem_hotspots.work_list_by_problem`).

    Returns
    -------
    pandas.DataFrame
        Per request: ``rank``, ``hotspot_id``, ``service_request_id``, ``service_name``,
        ``address``, ``status``, ``requested_datetime``, ``age_days``, ``due_datetime``,
        ``overdue``, ``lat``, ``lon``.
    """
    if count == "problems":
        return work_list_by_problem(members, now=pd.Timestamp(now))
    rows = members[members["hotspot_id"].notna()].copy()
    now_ts = pd.Timestamp(now)
    due = (
        rows["expected_datetime"]
        if "expected_datetime" in rows
        else pd.Series(pd.NaT, index=rows.index)
    )
    out = pd.DataFrame(
        {
            "rank": rows["rank"].astype(int),
            "hotspot_id": rows["hotspot_id"],
            "service_request_id": rows["service_request_id"],
            "service_name": rows["service_name"],
            "address": rows["address"],
            "status": rows["status"],
            "requested_datetime": rows["requested_datetime"],
            "age_days": ((now_ts - rows["requested_datetime"]).dt.total_seconds() / 86400).round(1),
            "due_datetime": due,
            "overdue": rows["status"].eq("open") & (due < now_ts),
            "lat": rows["lat"],
            "lon": rows["lon"],
        }
    )
    if "sla_state" in rows:
        out.insert(9, "sla_state", rows["sla_state"])
    return out.sort_values(["rank", "requested_datetime", "service_request_id"]).reset_index(
        drop=True
    )


def write_hotspots(
    hotspots: gpd.GeoDataFrame, path: Path, *, layer_keys: tuple[str, ...] = ()
) -> None:
    """Write the ranked hotspots: ``.geojson`` (hull polygons, WGS84) or ``.csv``.

    Raises
    ------
    InputError
        For another file extension.
    """
    suffix = path.suffix.lower()
    table = hotspot_table(hotspots, layer_keys)
    if suffix == ".csv":
        to_csv(table, path, date_format=ISO_UTC)
    elif suffix in (".geojson", ".json"):
        frame = gpd.GeoDataFrame(
            times_as_text(table), geometry=hotspots.geometry.to_numpy(), crs=hotspots.crs
        ).to_crs("EPSG:4326")
        frame.to_file(path, driver="GeoJSON")
    else:
        raise InputError(f"--output: got {path.name!r}; allowed extensions: .geojson, .csv")


def write_work_list(work: pd.DataFrame, path: Path) -> None:
    """Write a work list as ``.csv`` or ``.geojson`` (request points)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        to_csv(work, path, date_format=ISO_UTC)
    elif suffix in (".geojson", ".json"):
        frame = gpd.GeoDataFrame(
            times_as_text(work),
            geometry=gpd.points_from_xy(work["lon"], work["lat"]),
            crs="EPSG:4326",
        )
        frame.to_file(path, driver="GeoJSON")
    else:
        raise InputError(f"work list: got {path.name!r}; allowed extensions: .geojson, .csv")
