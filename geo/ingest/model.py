"""The canonical request frame: its column types and the row fingerprint.

The column names (Open311 GeoReport v2) are in :mod:`hotspot311.schema`. Every reader maps
its source onto them; every store keeps them; every later step (joins, hotspots, reports,
the app) reads them.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from geo.ingest.hashing import hash_columns
from hotspot311.schema import CANONICAL_FIELDS, DERIVED_FIELDS, STORE_FIELDS, TIME_FIELDS


def empty_requests(layer_keys: tuple[str, ...] = (), crs: str = "EPSG:4326") -> gpd.GeoDataFrame:
    """Return an empty request frame with every canonical and derived column.

    Parameters
    ----------
    layer_keys
        Boundary layer keys; one text column each.
    crs
        CRS of the point geometry.

    Returns
    -------
    geopandas.GeoDataFrame
        No rows, typed columns.
    """
    data: dict[str, pd.Series] = {}
    for name in CANONICAL_FIELDS + DERIVED_FIELDS + STORE_FIELDS + layer_keys:
        if name in TIME_FIELDS:
            data[name] = pd.Series([], dtype="datetime64[ns, UTC]")
        elif name in {"lat", "lon", "x", "y", "geocode_score"}:
            data[name] = pd.Series([], dtype="float64")
        elif name == "synthetic":
            data[name] = pd.Series([], dtype="bool")
        elif name == "row_hash":
            data[name] = pd.Series([], dtype="uint64")
        else:
            data[name] = pd.Series([], dtype="object")
    frame = pd.DataFrame(data)
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries([], crs=crs), crs=crs)


def row_hash(frame: pd.DataFrame) -> np.ndarray:
    """Fingerprint the canonical content of each row.

    Parameters
    ----------
    frame
        Requests with the canonical fields and ``extra``.

    Returns
    -------
    numpy.ndarray
        One ``uint64`` per row; equal rows give equal hashes, in every process
        (:func:`geo.ingest.hashing.hash_columns`: whole columns, no Python per row).
    """
    cols = [c for c in (*CANONICAL_FIELDS, "extra", "quality_flags") if c in frame.columns]
    return hash_columns(frame, cols)
