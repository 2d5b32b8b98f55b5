"""Cross-check: PostGIS ``ST_ClusterDBSCAN`` and our DBSCAN give the same core clusters.

``ST_ClusterDBSCAN`` returns a cluster for core and border points (a border point may go
to any adjacent cluster) and NULL for noise. Both define the neighbourhood as distance
<= eps including the point itself, so noise and the partition of our core points must
agree exactly. The input size is bounded (:data:`MAX_POINTS`) before the call: the
function ignores ``statement_timeout``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import psycopg
import pyproj
import pytest

from clustering.dbscan import dbscan_core
from tests.conftest import REQUESTS

MAX_POINTS = 25_000


def _real_points() -> np.ndarray:
    raw = pd.read_csv(REQUESTS / "illegal-dumping-2024-points.csv")
    to_ft = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:2272", always_xy=True)
    x, y = to_ft.transform(raw["X"].to_numpy(), raw["Y"].to_numpy())
    xy = np.column_stack([x, y]).round(2)  # what a numeric(.., 2) column would hold
    return xy[:MAX_POINTS]


@pytest.mark.postgis
@pytest.mark.parametrize(("eps_m", "min_samples"), [(50, 5), (100, 10)])
def test_st_clusterdbscan_same_core_clusters(
    postgis_url: str, eps_m: float, min_samples: int
) -> None:
    xy = _real_points()
    assert len(xy) <= MAX_POINTS
    eps = eps_m / 0.3048006096
    labels, core = dbscan_core(xy, eps=eps, min_samples=min_samples)
    with psycopg.connect(postgis_url) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        conn.execute("CREATE TEMP TABLE pts (id int PRIMARY KEY, x float8, y float8)")
        with conn.cursor().copy("COPY pts (id, x, y) FROM STDIN") as copy:
            for i, (x, y) in enumerate(xy.tolist()):
                copy.write_row((i, x, y))
        rows = conn.execute(
            "SELECT id, ST_ClusterDBSCAN(ST_MakePoint(x, y), eps => %s, minpoints => %s) "
            "OVER () FROM pts ORDER BY id",
            (eps, min_samples),
        ).fetchall()
    pg = np.array([-1 if c is None else c for _, c in rows])
    assert ((pg == -1) == (labels == -1)).all(), "noise differs"
    ours_core, pg_core = labels[core], pg[core]
    pairs = set(zip(ours_core.tolist(), pg_core.tolist(), strict=True))
    assert len(pairs) == len(set(ours_core.tolist())) == len(set(pg_core.tolist()))
    assert len(set(ours_core.tolist())) > 20
