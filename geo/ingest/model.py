"""The canonical request frame: its column types and the row fingerprint.

The column names (Open311 GeoReport v2) are in :mod:`hotspot311.schema`. Every reader maps
its source onto them; every store keeps them; every later step (joins, hotspots, reports,
the app) reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa

from geo.ingest.hashing import hash_columns
from hotspot311.schema import CANONICAL_FIELDS, DERIVED_FIELDS, STORE_FIELDS, TIME_FIELDS
from layers import geometry

#: Text as the readers give it and the request frame keeps it: Arrow-backed, missing as
#: NaN.
TEXT: Final = pd.StringDtype(storage="pyarrow", na_value=np.nan)


def text_frame(table: pa.Table, names: Sequence[str] | None = None) -> pd.DataFrame:
    """An Arrow table as a pandas frame whose string columns are :data:`TEXT`.

    Parameters
    ----------
    table
        The table (its column names may repeat: they are not used as keys).
    names
        The frame's column names; the table's own when ``None``.

    Returns
    -------
    pandas.DataFrame
        One column per table column, in order.

    Examples
    --------
    >>> text_frame(pa.table({"a": ["x", None]})).dtypes.iloc[0] == TEXT
    True
    """
    frame = table.rename_columns([str(i) for i in range(table.num_columns)]).to_pandas(
        types_mapper={pa.string(): TEXT}.get)
    frame.columns = pd.Index(list(table.column_names if names is None else names),
                             dtype=object)
    return frame


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


def with_points(rows: pd.DataFrame, points: np.ndarray | None = None) -> gpd.GeoDataFrame:
    """Requests with their point geometry.

    Parameters
    ----------
    rows
        Requests with finite ``lon`` and ``lat`` (a validated batch's rows, or rows read
        back from a store).
    points
        Those points made already (:func:`layers.geometry.points` of ``lon``, ``lat``),
        else made here.

    Returns
    -------
    geopandas.GeoDataFrame
        The same rows and index, columns shared rather than copied, with WGS84 points
        made from ``lon`` and ``lat``.
    """
    if points is None:
        points = geometry.points(rows["lon"].to_numpy(dtype="float64"),
                                 rows["lat"].to_numpy(dtype="float64"))
    return gpd.GeoDataFrame(
        rows, geometry=gpd.GeoSeries(points, index=rows.index,
                                     crs="EPSG:4326"),
        crs="EPSG:4326", copy=False)
