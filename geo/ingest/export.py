"""Exporting requests to CSV, GeoJSON or GeoParquet."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd

from geo.ingest.cells import to_csv
from geo.ingest.times import ISO_UTC, times_as_text
from hotspot311.errors import InputError

FORMATS = ("csv", "geojson", "parquet")


def export_requests(requests: gpd.GeoDataFrame, path: Path, *, fmt: str) -> int:
    """Write requests with every canonical column and one column per layer.

    Parameters
    ----------
    requests
        From :meth:`geo.store.base.Store.requests`.
    path
        Output file.
    fmt
        ``csv`` (times in ISO 8601 UTC, no geometry column: ``lat``/``lon`` carry it;
        text that a spreadsheet would run as a formula is neutralized, see
        :mod:`geo.ingest.cells`),
        ``geojson`` (WGS84 points) or ``parquet`` (GeoParquet).

    Returns
    -------
    int
        Rows written.

    Raises
    ------
    InputError
        When ``fmt`` is not one of :data:`FORMATS`.
    """
    if fmt not in FORMATS:
        raise InputError(f"format: got {fmt!r}; allowed: {', '.join(FORMATS)}")
    frame = requests.drop(columns=["row_hash"], errors="ignore")
    if fmt == "csv":
        to_csv(frame.drop(columns="geometry"), path, date_format=ISO_UTC)
    elif fmt == "geojson":
        times_as_text(frame).to_file(path, driver="GeoJSON")
    else:
        frame.to_parquet(path, index=False)
    return len(frame)
