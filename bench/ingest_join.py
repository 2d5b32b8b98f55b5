"""Benchmark: CSV → embedded store, and the join to every layer, against the standard tools.

    python bench/ingest_join.py [--n 1000000]

Prints, in one run: each ingest step beside its floor — pyarrow ``read_csv`` of the file,
the requests written as one Parquet file by pyarrow, hotspot311's locate alone (indexes
built) — then the ingest (CSV → joined embedded store, in a new process's state: the
store's kept join indexes are loaded, not built) and the same file again (all
unchanged), with the peak memory of the process; then the join of n points to all of
Philadelphia's layers with hotspot311's index, with ``geopandas.sjoin(predicate=
"covered_by")`` per layer, and with a plain shapely STRtree query per layer, as ratios.
The data are synthetic requests at real intersections. ``--skip-join-comparison`` stops
after the ingest figures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import geopandas as gpd
import numpy as np
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import shapely

from bench.common import city_requests, peak_rss_gib, timer, write_csv
from geo.ingest.pipeline import ingest
from geo.joins import build_index, locate
from geo.store.embedded import EmbeddedStore, _index_by_digest
from layers.profile import load_profile
from layers.registry import load_layer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--skip-join-comparison", action="store_true")
    args = parser.parse_args()
    profile = load_profile("philadelphia")
    t: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        print(f"generating {args.n:,} synthetic requests on real streets…", flush=True)
        path = write_csv(city_requests(args.n), Path(tmp) / "requests.csv")
        store = EmbeddedStore(Path(tmp) / "store", profile)
        store.ensure_profile_layers()
        print("floors (same machine, same run):")
        with timer("floor: pyarrow read_csv", t):
            table = pa_csv.read_csv(path)
        with timer("floor: pyarrow Parquet write of it", t):
            pq.write_table(table, Path(tmp) / "floor.parquet")
        del table
        # a new process's state: the kept indexes are loaded, not built (built once here)
        for gen in store.active().values():
            store._index(gen)
        _index_by_digest.cache_clear()
        store = EmbeddedStore(Path(tmp) / "store", profile)
        print("ingest (CSV → embedded store, joined to 7 layers):")
        with timer("ingest, first time", t):
            report = ingest(path, store)
        with timer("ingest again (all unchanged)", t):
            again = ingest(path, store)
        assert again.result.unchanged == report.rows_read - sum(report.result.quarantined.values())
        stored = store.requests()
        x0, y0 = stored["x"].to_numpy(), stored["y"].to_numpy()
        kept = {g.key: store._index(g) for g in store.active().values()}
        with timer("floor: locate only, 7 layers (indexes built)", t):
            for index in kept.values():
                locate(x0, y0, index)
        del stored
        floor = (t["floor: pyarrow read_csv"] + t["floor: pyarrow Parquet write of it"]
                 + t["floor: locate only, 7 layers (indexes built)"])
        print(
            f"  rows/s first ingest: {report.rows_read / t['ingest, first time']:,.0f}"
            f"   re-ingest: {report.rows_read / t['ingest again (all unchanged)']:,.0f}"
        )
        print(f"  first ingest / floor (read + locate + Parquet write = {floor:.2f} s):"
              f" {t['ingest, first time'] / floor:.2f}x")
        print(f"  re-ingest / floor (read_csv {t['floor: pyarrow read_csv']:.2f} s):"
              f" {t['ingest again (all unchanged)'] / t['floor: pyarrow read_csv']:.2f}x")
        print(f"  peak memory of this process so far: {peak_rss_gib():.2f} GiB")
        if args.skip_join_comparison:
            return

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
