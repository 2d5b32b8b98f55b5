"""The names of the canonical request columns: the vocabulary every package shares.

Named after Open311 GeoReport v2 so that feeds map onto them directly. These are plain
names, part of the ground beside :mod:`hotspot311.errors` and :mod:`hotspot311.settings`,
so that :mod:`layers` can keep a layer key from taking a request column's name without
importing :mod:`geo`. The typed frame built from them, and the row fingerprint, are in
:mod:`geo.ingest.model`.
"""

from __future__ import annotations

from typing import Final

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

#: Columns a store keeps that no source gives: ``problem_id`` (the first request of the
#: problem a request belongs to; set by :mod:`clustering.problems` through the store).
STORE_FIELDS: Final = ("problem_id",)

#: Canonical text columns (every canonical field that is not a time or a coordinate).
TEXT_FIELDS: Final = tuple(
    f for f in CANONICAL_FIELDS if f not in TIME_FIELDS and f not in COORD_FIELDS
)

#: Fields a source must provide (coordinates or an address are checked per row).
REQUIRED_FIELDS: Final = ("service_request_id", "requested_datetime")

#: Request statuses.
STATUSES: Final = ("open", "closed")

#: Column names that a boundary layer key may not take.
RESERVED_NAMES: Final = (
    frozenset(CANONICAL_FIELDS) | frozenset(DERIVED_FIELDS) | frozenset(STORE_FIELDS)
    | {"geometry"}
)

#: Placeholder service name when a source has none.
UNSPECIFIED_SERVICE: Final = "(unspecified)"
