"""Benchmark: CSV → embedded store, and the join to every layer, against the standard tools.

    python bench/ingest_join.py [--n 1000000]

Prints, in one run: ingest rows/s (read, validate, upsert, join, write), and the join of
n points to all of Philadelphia's layers with hotspot311's index, with
``geopandas.sjoin(predicate="covered_by")`` per layer, and with a plain shapely STRtree
query per layer, as ratios. The data are synthetic requests at real intersections.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import geopandas as gpd
import numpy as np
import shapely

from bench.common import city_requests, timer, write_csv
from geo.ingest.pipeline import ingest
from geo.joins import build_index, locate
from geo.store.embedded import EmbeddedStore
from layers.profile import load_profile
from layers.registry import load_layer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000)
    args = parser.parse_args()
    profile = load_profile("philadelphia")
    t: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        print(f"generating {args.n:,} synthetic requests on real streets…", flush=True)
        path = write_csv(city_requests(args.n), Path(tmp) / "requests.csv")
        store = EmbeddedStore(Path(tmp) / "store", profile)
        store.ensure_profile_layers()
        print("ingest (CSV → embedded store, joined to 7 layers):")
        with timer("ingest, first time", t):
            report = ingest(path, store)
        with timer("ingest again (all unchanged)", t):
            again = ingest(path, store)
        assert again.result.unchanged == report.rows_read - sum(report.result.quarantined.values())
        print(
            f"  rows/s first ingest: {report.rows_read / t['ingest, first time']:,.0f}"
            f"   re-ingest: {report.rows_read / t['ingest again (all unchanged)']:,.0f}"
        )

        frame = store.requests()
        x, y = frame["x"].to_numpy(), frame["y"].to_numpy()
        layers = {s.key: load_layer(s, crs=profile.crs) for s in profile.layers}
        print(f"join of {len(frame):,} points to {len(layers)} layers:")
        with timer("hotspot311: build indexes", t):
            indexes = {k: build_index(a) for k, a in layers.items()}
        with timer("hotspot311: locate", t):
            ours = {k: locate(x, y, idx) for k, idx in indexes.items()}
        pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y), crs=profile.crs)
        with timer("geopandas.sjoin per layer", t):
            sj = {
                k: gpd.sjoin(pts, a, predicate="covered_by", how="left") for k, a in layers.items()
            }
        with timer("shapely STRtree query per layer", t):
            for a in layers.values():
                tree = shapely.STRtree(a.geometry.to_numpy())
                tree.query(pts.geometry.to_numpy(), predicate="covered_by")
        for k in layers:
            expected = sj[k].sort_values("code").groupby(level=0)["code"].first()
            same = np.asarray(ours[k], dtype=object)[expected.index] == expected.to_numpy()
            same |= expected.isna().to_numpy() & np.array(
                [v is None for v in ours[k][expected.index]]
            )
            assert same.all(), f"join differs from geopandas on layer {k}"
        ours_total = t["hotspot311: build indexes"] + t["hotspot311: locate"]
        print("ratios (higher = hotspot311 faster):")
        print(
            f"  vs geopandas.sjoin     {t['geopandas.sjoin per layer'] / ours_total:6.1f}x"
            f"  (locate only {t['geopandas.sjoin per layer'] / t['hotspot311: locate']:.1f}x)"
        )
        print(
            f"  vs shapely STRtree     {t['shapely STRtree query per layer'] / ours_total:6.1f}x"
            f"  (locate only {t['shapely STRtree query per layer'] / t['hotspot311: locate']:.1f}x)"
        )
        print("  answers identical to geopandas.sjoin on every layer")


if __name__ == "__main__":
    main()
