"""Benchmark: the app's first map on 1M stored requests against a naive folium map.

    python bench/app.py [--n 1000000] [--naive-n 100000] [--store DIR] [--repeat 5]
                        [--skip-hotspots]

The first map is timed as the app really does it: ``app.py`` itself, run by Streamlit's
``AppTest`` in a fresh Python process (``--repeat`` processes, one after another) that
has imported only Streamlit, as a just-started server has. The time is the page's
imports (its module-level imports, executed first and timed alone) plus its script from
its first Streamlit call to ``st_folium`` handing the map to the browser: opening the
store, reading the request columns, widgets, filters and headline numbers, building the
map and rendering it to the component's arguments. (AppTest's own start-up, registering
Streamlit's components, which a server does once when it starts, is not counted.) The
script is stopped there: the page then starts the hotspot run and reruns with it, timed
separately below (the app caches it per parameter set). The breakdown comes from timers
wrapped around the reads, the SLA states, ``page_map`` and ``st_folium`` in the same
runs; "rest" is the remainder of the script. The size is what the map sends: the
component's arguments as JSON plus the vendored Leaflet files it loads (not Streamlit's
own frontend, not map tiles).

Also printed: the size of the map with the hotspots and a boundary layer's choropleth
on it, the heaviest the page draws with every request aggregated.

The naive map has one marker with a popup per request, built and rendered at
``--naive-n`` requests and extrapolated linearly to ``--n``; the ratios compare it with
the first map (time: the whole first map, reading and imports included; size: what each
sends). Data: synthetic requests on real Philadelphia streets, ingested into an embedded
store (or an existing ``--store``, filled with ``--n`` requests when it holds none).
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: The boundary layer of the heaviest map measured (its choropleth).
LAYER = "council_district"

#: Parts of the first map timed inside the app run (label → what is wrapped).
PARTS = {
    "read": "reading the page columns (appdata.StoredRequests)",
    "details": "other columns: layer codes, ids, addresses... (read when first needed)",
    "sla": "SLA states (worked out when the SLA filter asks)",
    "build": "maps.page_map (heat grid, base map, layers)",
    "render": "st_folium (map to HTML/JS strings)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--naive-n", type=int, default=100_000)
    parser.add_argument("--store", help="an embedded store directory to use (filled with "
                        "--n requests first when it holds none); a temporary one by default")
    parser.add_argument("--repeat", type=int, default=5,
                        help="fresh processes timing the first map (default 5)")
    parser.add_argument("--skip-hotspots", action="store_true",
                        help="do not time the hotspot run")
    parser.add_argument("--first-map", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.first_map:
        print(json.dumps(first_map(Path(args.first_map))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        store_dir = Path(args.store) if args.store else Path(tmp) / "store"
        run(store_dir, args, Path(tmp))


def run(store_dir: Path, args: argparse.Namespace, tmp: Path) -> None:
    from streamlit.logger import set_log_level

    set_log_level("error")  # no "no runtime" notices from importing the page's modules
    from bench.common import city_requests, timer, write_csv
    from geo.ingest.pipeline import ingest
    from geo.store.embedded import EmbeddedStore
    from layers.profile import load_profile

    profile = load_profile("philadelphia")
    store = EmbeddedStore(store_dir, profile)
    t: dict[str, float] = {}
    if not len(store.batches()):
        print(f"generating and ingesting {args.n:,} synthetic requests…", flush=True)
        path = write_csv(city_requests(args.n), tmp / "requests.csv")
        with timer("ingest (setup, not part of the app)", t):
            ingest(path, store)
    n = store.count()
    print(f"{n:,} requests in the store")

    print(f"first map, app.py in {args.repeat} fresh processes:", flush=True)
    runs = []
    for i in range(args.repeat):
        out = subprocess.run([sys.executable, __file__, "--first-map", str(store_dir)],
                             capture_output=True, text=True, cwd=ROOT, check=False)
        if out.returncode != 0:
            raise SystemExit(f"the first-map process failed:\n{out.stderr[-3000:]}")
        one = json.loads(out.stdout.strip().splitlines()[-1])
        runs.append(one)
        print(f"  run {i + 1}: {one['total']:5.2f} s  (imports {one['imports']:.2f}, "
              + ", ".join(f"{k} {one[k]:.2f}" for k in PARTS)
              + f", rest of the page {one['rest']:.2f})  {one['mb']:.2f} MB", flush=True)
    first = {k: statistics.median(r[k] for r in runs) for k in runs[0]}

    spots = None if args.skip_hotspots else hotspot_run(store, t)
    heavy_mb = heaviest_map_mb(store, spots)
    naive_n = min(args.naive_n, n)
    frame = store.request_columns(["lat", "lon", "service_name"]).sample(naive_n,
                                                                          random_state=1)
    from hotspot311.web.maps import map_html, naive_map

    with timer(f"naive map at {naive_n:,}: build + render HTML", t):
        naive = map_html(naive_map(frame))
    scale = n / naive_n
    naive_time = t[f"naive map at {naive_n:,}: build + render HTML"] * scale
    naive_mb = len(naive.encode()) / 1e6 * scale
    ours, our_mb = first["total"], first["mb"]

    print()
    print(f"first map, {n:,} requests (median of {args.repeat}): {ours:6.2f} s  "
          f"{our_mb:7.2f} MB")
    print("  breakdown (medians): "
          + ", ".join(f"{k} {first[k]:.2f} s" for k in ("imports", *PARTS, "rest")))
    print("  " + "; ".join(f"{k}: {v}" for k, v in PARTS.items())
          + "; rest: widgets, filters, headline numbers, store open")
    print(f"  of which the map itself (build + render): {first['build'] + first['render']:.2f} s")
    print(f"map with the {LAYER} choropleth"
          + (f" and {len(spots):,} hotspots" if spots is not None else "")
          + f" (after the hotspot run): {heavy_mb:.2f} MB")
    print(f"naive map, {naive_n:,} requests: {naive_time / scale:6.2f} s  "
          f"{len(naive.encode()) / 1e6:7.2f} MB")
    print(f"naive map, {n:,} (x{scale:g}, linear): {naive_time:6.2f} s  {naive_mb:7.2f} MB")
    print(f"ratio naive/ours at {n:,}: time {naive_time / ours:,.0f}x (ours with reading and "
          f"imports), size {naive_mb / our_mb:,.0f}x")
    print(f"goals: first map < 3 s: {'met' if ours < 3 else 'NOT met'} ({ours:.2f} s, median; "
          f"slowest {max(r['total'] for r in runs):.2f} s); "
          f"map <= 3 MB: {'met' if our_mb <= 3 else 'NOT met'} ({our_mb:.2f} MB)")


def hotspot_run(store: Any, t: dict[str, float]) -> Any:
    """Time the hotspot run the page starts after its first map (cached per parameters);
    return the hotspots as the map shows them."""
    from bench.common import timer
    from clustering.priority import PRESETS
    from clustering.run import run_hotspots
    from clustering.selection import HotspotQuery
    from hotspot311.web.appdata import as_text
    from hotspot311.web.filters import COLUMNS, DETAILS, HOTSPOT_AREA_KEYS

    keys = tuple(k for k in HOTSPOT_AREA_KEYS if k in store.layer_keys())
    requests = as_text(store.request_columns([*COLUMNS, *DETAILS, *keys], categories=keys))
    with timer("hotspot run, 30-day window (after the first map, cached per parameters)", t):
        result = run_hotspots(requests, HotspotQuery(days=30, eps_m=100, min_samples=5),
                              profile=store.profile, weights=PRESETS["balanced"],
                              now=datetime.now(UTC), layer_keys=keys)
    print(f"  {len(result.hotspots):,} hotspots from {result.selected:,} requests")
    from hotspot311.web.mapdata import web_hotspots

    return web_hotspots(result.hotspots, layer_keys=keys)


def heaviest_map_mb(store: Any, spots: Any) -> float:
    """MB the page's map sends with a boundary layer and the hotspots on it (st_folium's
    arguments as JSON plus the vendored files), all requests aggregated."""
    import streamlit_folium

    from hotspot311.web.filters import COLUMNS
    from hotspot311.web.mapdata import area_stats, web_areas
    from hotspot311.web.maps import page_map

    sent: dict[str, Any] = {}

    def component(**kwargs: Any) -> None:
        sent.update({k: v for k, v in kwargs.items() if k != "on_change"})

    requests = store.request_columns([*COLUMNS, LAYER], categories=[LAYER])
    areas = web_areas(store.areas(LAYER), area_stats(requests, LAYER, now=datetime.now(UTC)),
                      simplify=store.profile.metres_to_crs(8.0))
    parts = page_map(requests, areas=areas, area_title=LAYER, hotspots=spots,
                     assets="/app/static/vendor")
    real, streamlit_folium._component_func = streamlit_folium._component_func, component
    try:
        streamlit_folium.st_folium(parts.base, key="map", returned_objects=["zoom"],
                                   feature_group_to_add=parts.requests,
                                   layer_control=parts.control)
    finally:
        streamlit_folium._component_func = real
    assets = sum(_asset_bytes(u) for u in [*sent["js_links"], *sent["css_links"]])
    return (len(json.dumps(sent).encode()) + assets) / 1e6


def first_map(store_dir: Path) -> dict[str, float]:
    """In a fresh process: run ``app.py`` up to ``st_folium`` and time it (seconds, MB)."""
    import os

    import streamlit  # noqa: F401 - a running server has imported Streamlit, nothing else

    os.environ["HOTSPOT311_STORE"] = str(store_dir)
    os.environ.setdefault("HOTSPOT311_TILES", "streets")
    script = ROOT / "app.py"
    start = time.perf_counter()
    _app_imports(script)
    imports = time.perf_counter() - start

    import streamlit as st
    import streamlit_folium
    from streamlit.testing.v1 import AppTest

    from hotspot311.web import appdata, maps

    spent = dict.fromkeys(PARTS, 0.0)
    sent: dict[str, Any] = {}

    def timed(part: str, func: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            begin = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                spent[part] += time.perf_counter() - begin
        return wrapper

    page_config = st.set_page_config

    def first_call(*args: Any, **kwargs: Any) -> Any:
        """The script's first Streamlit call, right after its (by now cached) imports."""
        sent.setdefault("start", time.perf_counter())
        return page_config(*args, **kwargs)

    def component(**kwargs: Any) -> None:
        """Stands in for the browser component: note what would be sent, end the run."""
        sent["at"] = time.perf_counter()
        sent["args"] = {k: v for k, v in kwargs.items() if k != "on_change"}
        st.stop()

    appdata.StoredRequests.__init__ = timed("read", appdata.StoredRequests.__init__)  # type: ignore[method-assign]
    appdata.StoredRequests.columns = timed("details", appdata.StoredRequests.columns)  # type: ignore[method-assign]
    appdata.sla_state = timed("sla", appdata.sla_state)  # type: ignore[assignment]
    maps.page_map = timed("build", maps.page_map)  # type: ignore[assignment]
    streamlit_folium.st_folium = timed("render", streamlit_folium.st_folium)
    streamlit_folium._component_func = component
    st.set_page_config = first_call  # type: ignore[assignment]
    st.config.set_option("server.enableStaticServing", True)  # as .streamlit/config.toml

    # AppTest registers Streamlit's components before the script runs (a server does that
    # at start-up): the script's time runs from its first Streamlit call
    at = AppTest.from_file(str(script), default_timeout=600)
    at.run()
    if at.exception:
        raise RuntimeError([e.message for e in at.exception])
    if "at" not in sent or "start" not in sent:
        raise RuntimeError("app.py did not reach st_folium")
    script_time = sent["at"] - sent["start"]
    payload = len(json.dumps(sent["args"]).encode())
    assets = sum(_asset_bytes(u) for u in [*sent["args"]["js_links"],
                                          *sent["args"]["css_links"]])
    out = {"imports": imports, **spent, "total": imports + script_time,
           "rest": script_time - sum(spent.values()), "mb": (payload + assets) / 1e6}
    return out


def _app_imports(script: Path) -> None:
    """Execute the module-level imports of ``script`` (what its first run imports)."""
    tree = ast.parse(script.read_text(encoding="utf-8"))
    nodes = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    exec(compile(ast.Module(body=nodes, type_ignores=[]), str(script), "exec"), {})


def _asset_bytes(url: str) -> int:
    """Size of a vendored asset the map loads (``/app/static/…``); 0 for others."""
    prefix = "/app/static/"
    return (ROOT / "static" / url[len(prefix):]).stat().st_size if url.startswith(prefix) else 0


if __name__ == "__main__":
    main()
