"""The canonical request model, named after Open311 GeoReport v2.

Every reader maps its source onto these columns; every store keeps them; every later
step (joins, hotspots, reports, the app) reads them.
"""

from __future__ import annotations

from typing import Final

import geopandas as gpd
import numpy as np
import pandas as pd

#: Canonical time columns (timezone-aware, stored in UTC).
TIME_FIELDS: Final = (
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "closed_datetime",
)

#: Canonical coordinate columns (WGS84 degrees).
COORD_FIELDS: Final = ("lat", "lon")

#: Every canonical field, in display order.
CANONICAL_FIELDS: Final = (
    "service_request_id",
    "status",
    "status_notes",
    "service_code",
    "service_name",
    "agency_responsible",
    "description",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "closed_datetime",
    "address",
    "zipcode",
    "lat",
    "lon",
    "media_url",
    "source",
)

#: Columns derived by hotspot311 rather than read from the source.
DERIVED_FIELDS: Final = (
    "x",  # point in the city's projected CRS
    "y",
    "geocode_match_type",  # "source" when the coordinates came with the request
    "geocode_score",
    "quality_flags",  # ';'-separated repairs and doubts, e.g. "latlon_swapped"
    "synthetic",  # True for rows made by the demo generator
    "extra",  # unknown source columns, as a JSON object
    "batch_id",
    "row_hash",  # fingerprint of the canonical content, for idempotent upserts
)

#: Canonical text columns (every canonical field that is not a time or a coordinate).
TEXT_FIELDS: Final = tuple(
    f for f in CANONICAL_FIELDS if f not in TIME_FIELDS and f not in COORD_FIELDS
)

#: Fields a source must provide (coordinates or an address are checked per row).
REQUIRED_FIELDS: Final = ("service_request_id", "requested_datetime")

#: Request statuses.
STATUSES: Final = ("open", "closed")

#: Column names that a boundary layer key may not take.
RESERVED_NAMES: Final = frozenset(CANONICAL_FIELDS) | frozenset(DERIVED_FIELDS) | {"geometry"}

#: Placeholder service name when a source has none.
UNSPECIFIED_SERVICE: Final = "(unspecified)"


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
    for name in CANONICAL_FIELDS + DERIVED_FIELDS + layer_keys:
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
        One ``uint64`` per row; equal rows give equal hashes.
    """
    cols = [c for c in (*CANONICAL_FIELDS, "extra", "quality_flags") if c in frame.columns]
    return pd.util.hash_pandas_object(frame[cols], index=False).to_numpy()
