"""The crew work list as downloads: CSV, GeoJSON (request points) and a printable HTML page.

Built in memory for ``st.download_button``; :func:`clustering.export.write_work_list`
writes the same CSV/GeoJSON to files for the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

import geopandas as gpd
import pandas as pd

from geo.ingest.cells import to_csv
from hotspot311.web.escaping import escape_html

_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"
#: Hotspot table columns on the printed page.
PRINT_COLUMNS: Final = ("rank", "place", "score", "count", "calls", "open", "overdue",
                        "top_address")


def _texts(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.DatetimeTZDtype) or str(out[col].dtype).startswith(
                "datetime64"):
            out[col] = out[col].dt.strftime(_TIME_FORMAT)
    return out


def work_list_csv(work: pd.DataFrame) -> bytes:
    """The work list as UTF-8 CSV (times as ISO UTC, formula-like text neutralized)."""
    return to_csv(work, date_format=_TIME_FORMAT).encode("utf-8")


def work_list_geojson(work: pd.DataFrame) -> bytes:
    """The work list as a GeoJSON FeatureCollection of request points (WGS84)."""
    frame = gpd.GeoDataFrame(_texts(work).drop(columns=["lat", "lon"]),
                             geometry=gpd.points_from_xy(work["lon"], work["lat"]),
                             crs="EPSG:4326")
    return frame.to_json(drop_id=True).encode("utf-8")


def work_list_html(table: pd.DataFrame, work: pd.DataFrame, *, title: str,
                   params: Mapping[str, object], generated: datetime) -> str:
    """A print-friendly page: the hotspots in rank order, each with its open requests (or
    open problems, each with all its request ids, for a work list by problem).

    Parameters
    ----------
    table
        Ranked hotspots (:func:`clustering.export.hotspot_table`).
    work
        The work list (:func:`clustering.export.work_list`).
    title
        Page heading.
    params
        Run parameters printed under the heading.
    generated
        When the list was made.

    Returns
    -------
    str
        A standalone HTML document (no scripts, no external resources).
    """
    esc = escape_html
    head = ", ".join(f"{esc(str(k))} {esc(str(v))}" for k, v in params.items())
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title><style>",
        "body{font:11pt sans-serif;margin:1.5cm}h1{font-size:16pt}h2{font-size:12pt;"
        "margin-top:1.2em;page-break-after:avoid}table{border-collapse:collapse;width:100%}"
        "td,th{border:1px solid #999;padding:2px 4px;text-align:left;font-size:9.5pt}"
        "section{page-break-inside:avoid}.meta{color:#444}",
        "</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<p class='meta'>Generated {generated:%Y-%m-%d %H:%M} UTC · {head}</p>",
    ]
    cols = [c for c in PRINT_COLUMNS if c in table.columns]
    parts.append(table[cols].to_html(index=False, escape=True, border=0))
    by_problem = "problem_id" in work.columns
    shown = (["problem_id", "calls", "request_ids", "service_name", "address", "status",
              "first_requested", "age_days", "overdue"] if by_problem else
             ["service_request_id", "service_name", "address", "status", "requested_datetime",
              "age_days", "overdue"])
    unit = "problems" if by_problem else "requests"
    for rank, rows in work.groupby("rank", sort=True):
        todo = rows[rows["status"] == "open"]
        named = table.loc[table["rank"] == rank]
        where = ""
        for col in ("place", "top_address"):  # the place's name, else its top address
            if col in named.columns and len(named) and str(named[col].iloc[0] or ""):
                where = esc(str(named[col].iloc[0]))
                break
        parts.append(f"<section><h2>#{rank} — {where} ({len(rows)} {unit}, "
                     f"{len(todo)} open)</h2>")
        if len(todo):
            parts.append(_texts(todo[[c for c in shown if c in todo.columns]])
                         .to_html(index=False, escape=True, border=0))
        else:
            parts.append("<p>No open requests.</p>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
