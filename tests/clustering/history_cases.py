"""Hand-built request frames for stored runs, history and significance tests.

Coordinates are in EPSG:2272 (US feet, the Testville CRS); a cluster is ``n`` requests
on a small ring around its centre (radius 30 ft), far inside the 100 m search distance.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from clustering.priority import PRESETS
from clustering.run import HotspotResult, run_hotspots
from clustering.selection import HotspotQuery
from tests.geo.store.stores import TESTVILLE

NOW = datetime(2025, 6, 30, 12, tzinfo=UTC)
ORIGIN = (2_690_000.0, 240_000.0)  # inside Philadelphia's EPSG:2272 extent


def cluster(prefix: str, cx: float, cy: float, n: int, *, days_ago: float = 1.0,
            radius: float = 30.0, first: int = 0) -> list[dict[str, object]]:
    """``n`` requests with ids ``<prefix><first>…`` around (cx, cy) feet from ORIGIN."""
    rows = []
    for k in range(first, first + n):
        angle = 2 * np.pi * k / max(n, 7)
        requested = pd.Timestamp(NOW - timedelta(days=days_ago, minutes=k))
        rows.append({
            "service_request_id": f"{prefix}{k:03d}",
            "service_name": "Pothole",
            "status": "open",
            "requested_datetime": requested,
            "updated_datetime": requested,
            "expected_datetime": requested + pd.Timedelta(days=5),
            "address": f"{k} {prefix} ST",
            "x": ORIGIN[0] + cx + radius * np.cos(angle) * (1 + k % 3) / 3,
            "y": ORIGIN[1] + cy + radius * np.sin(angle) * (1 + k % 3) / 3,
            "lat": 40.0,
            "lon": -75.1,
        })
    return rows


def frame(*clusters: list[dict[str, object]]) -> pd.DataFrame:
    """Requests of several clusters as one frame."""
    return pd.DataFrame([r for c in clusters for r in c])


QUERY = HotspotQuery(days=30, eps_m=30.0, min_samples=4)


def run(requests: pd.DataFrame, query: HotspotQuery = QUERY) -> HotspotResult:
    """Hotspots of ``requests`` with fixed weights and time."""
    return run_hotspots(requests, query, profile=TESTVILLE, weights=PRESETS["balanced"], now=NOW)
