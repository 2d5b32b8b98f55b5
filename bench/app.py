"""Benchmark: the app's first map on 1M stored requests against a naive folium map.

    python bench/app.py [--n 1000000] [--naive-n 100000] [--store DIR]

Prints, in one run: the time to read the store (once per process; the app caches it),
the time to build and render our map (filters, grid-count heat map, choropleth of
council districts, hotspot polygons) and its HTML size, and the same for a naive map
with one marker and popup per request at ``--naive-n`` requests, extrapolated linearly
to ``--n``; then the ratios. The hotspot run (DBSCAN on the default 30-day window) is
timed separately: the app caches it per parameter set. Data: synthetic requests on real
Philadelphia streets, ingested into an embedded store (or an existing ``--store``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd

from bench.common import city_requests, timer, write_csv
from clustering.priority import PRESETS
from clustering.run import run_hotspots
from clustering.selection import HotspotQuery
from geo.embedded import EmbeddedStore
from geo.ingest import ingest
from hotspot311.filters import COLUMNS, HOTSPOT_AREA_KEYS, Filters, apply_filters
from hotspot311.mapdata import area_stats, web_areas, web_hotspots
from hotspot311.maps import city_map, map_html, naive_map
from layers.profile import load_profile

LAYER = "council_district"


def our_map(requests: pd.DataFrame, store: EmbeddedStore, hotspots: object, now: datetime) -> str:
    """What the page does for its first map once the frame is in memory."""
    view = apply_filters(requests, Filters(), timezone=store.profile.timezone)
    areas = web_areas(store.areas(LAYER), area_stats(view, LAYER, now=now),
                      simplify=store.profile.metres_to_crs(8.0))
    fmap = city_map(view, areas=areas, area_title=LAYER, hotspots=hotspots, tiles="streets",
                    assets="/app/static/vendor")
    return map_html(fmap)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--naive-n", type=int, default=100_000)
    parser.add_argument("--store", help="an embedded store directory to use (filled with "
                        "--n requests first when it holds none); a temporary one by default")
    args = parser.parse_args()
    profile = load_profile("philadelphia")
    t: dict[str, float] = {}
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        store = EmbeddedStore(Path(args.store) if args.store else Path(tmp) / "store", profile)
        if not len(store.batches()):
            print(f"generating and ingesting {args.n:,} synthetic requests…", flush=True)
            path = write_csv(city_requests(args.n), Path(tmp) / "requests.csv")
            with timer("ingest (setup, not part of the app)", t):
                ingest(path, store)
        with timer("read the store (once per process, cached)", t):
            frame = store.requests()
            requests = pd.DataFrame(frame[[c for c in (*COLUMNS, *store.layer_keys())
                                           if c in frame.columns]])
            del frame
        n = len(requests)
        print(f"{n:,} requests in the store")
        keys = tuple(k for k in HOTSPOT_AREA_KEYS if k in requests.columns)
        with timer("hotspot run, 30-day window (cached per parameters)", t):
            result = run_hotspots(requests, HotspotQuery(days=30, eps_m=100, min_samples=5),
                                  profile=profile, weights=PRESETS["balanced"], now=now,
                                  layer_keys=keys)
            spots = web_hotspots(result.hotspots, layer_keys=keys)
        print(f"  {len(result.hotspots):,} hotspots from {result.selected:,} requests")
        our_map(requests.head(5000), store, spots, now)  # warm imports and the layer read
        with timer(f"our map at {n:,}: build + render HTML", t):
            ours = our_map(requests, store, spots, now)
        sample = requests.sample(min(args.naive_n, n), random_state=1)
        with timer(f"naive map at {len(sample):,}: build + render HTML", t):
            naive = map_html(naive_map(sample))
    scale = n / len(sample)
    naive_time = t[f"naive map at {len(sample):,}: build + render HTML"] * scale
    naive_mb = len(naive.encode()) / 1e6 * scale
    our_time = t[f"our map at {n:,}: build + render HTML"]
    our_mb = len(ours.encode()) / 1e6
    print()
    print(f"our map, {n:,} requests:      {our_time:6.2f} s  {our_mb:7.2f} MB")
    print(f"naive map, {len(sample):,} requests: "
          f"{naive_time / scale:6.2f} s  {len(naive.encode()) / 1e6:7.2f} MB")
    print(f"naive map, {n:,} (x{scale:g}, linear): {naive_time:6.2f} s  {naive_mb:7.2f} MB")
    print(f"ratio naive/ours at {n:,}: time {naive_time / our_time:,.0f}x, "
          f"size {naive_mb / our_mb:,.0f}x")
    print(f"goals: first map < 3 s: {'met' if our_time < 3 else 'NOT met'} ({our_time:.2f} s); "
          f"page <= 3 MB: {'met' if our_mb <= 3 else 'NOT met'} ({our_mb:.2f} MB)")
    print(f"cold start (store read + map, hotspots cached): "
          f"{t['read the store (once per process, cached)'] + our_time:.2f} s")


if __name__ == "__main__":
    main()
