"""Benchmark: the app on both stores — first map, a filter change, memory, many sessions.

    python bench/app.py [--n 1000000] [--store DIR] [--postgis URL|auto] [--repeat 3]
                        [--sessions 20] [--skip-embedded]

The same synthetic requests (``bench/common.py``: real Philadelphia streets) are put in an
embedded store (``--store``, or a temporary directory) and in a PostGIS database
(``--postgis URL``; ``auto`` starts a throwaway server as the tests do), each filled with
``--n`` requests when it holds none. Then, per store, in the same run:

- **first map**: ``app.py`` run by Streamlit's ``AppTest`` in a fresh Python process
  (``--repeat`` processes): seconds from the script's start to ``st_folium`` handing the
  map to the browser (store opened, sidebar choices, headline numbers, heat-map grid,
  map built), imports excluded and printed apart;
- **filter change**: in the same process, the status filter set to ``open``: seconds to
  the new map, and to the end of the rerun (the new hotspot run included);
- **peak memory** of that process (``ru_maxrss``), the store's data included;
- **sessions**: ``--sessions`` AppTest sessions in one process, each opened, then all
  changing a filter at once (each its own service type): the 95th percentile of their
  times to the new map, and the process's peak memory;
- **request ID**: ``reports.tracking.request_record`` on an open store (median of 5 ids
  spread over the store, and of 5 of the last 20 days, whose hotspot is looked up), and
  the ``hotspot311 request ID`` command's wall time (interpreter start included).

The machine may be shared: compare the stores within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ENV = {"HOTSPOT311_TILES": "plain", "HOTSPOT311_ALLOW_WRITE_ROLE": "1",
       "HOTSPOT311_AUTH": "off", "PYTHONPATH": str(ROOT)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--store", help="embedded store directory (filled when empty)")
    parser.add_argument("--postgis", default="auto",
                        help="postgresql:// URL (filled when empty), or auto")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--skip-embedded", action="store_true")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return
    with tempfile.TemporaryDirectory(prefix="bench-app-") as tmp:
        _run(args, Path(tmp))


def _run(args: argparse.Namespace, tmp: Path) -> None:
    from bench.common import city_requests, timer, write_csv

    server = None
    locations: dict[str, str] = {}
    if not args.skip_embedded:
        locations["embedded"] = args.store or str(tmp / "store")
    if args.postgis == "auto":
        from tests.postgis_server import start_server

        server = start_server()
        locations["postgis"] = server.clone("bench")
    elif args.postgis:
        locations["postgis"] = args.postgis
    try:
        csv: Path | None = None
        t: dict[str, float] = {}
        for kind, location in locations.items():
            if _count(location) == 0:
                if csv is None:
                    print(f"generating {args.n:,} synthetic requests…", flush=True)
                    csv = write_csv(city_requests(args.n), tmp / "requests.csv")
                with timer(f"ingest into {kind} (setup, not timed for the app)", t):
                    _fill(location, csv)
            print(f"{kind}: {_count(location):,} requests", flush=True)
        results: dict[str, dict[str, Any]] = {}
        for kind, location in locations.items():
            print(f"\n{kind}: first map and a filter change, {args.repeat} fresh processes",
                  flush=True)
            runs = [_spawn("page", location) for _ in range(args.repeat)]
            for i, one in enumerate(runs):
                print(f"  run {i + 1}: imports {one['imports']:.2f} s, first map "
                      f"{one['first_map']:.2f} s, filter change: map {one['rerun_map']:.2f} s, "
                      f"whole rerun {one['rerun_total']:.2f} s; peak {one['peak_mb']:.0f} MB "
                      f"(imports alone {one['floor_mb']:.0f} MB)",
                      flush=True)
            sessions = _spawn("sessions", location, str(args.sessions))
            print(f"  {args.sessions} sessions, filter change at once: p95 "
                  f"{sessions['p95']:.2f} s (median {sessions['median']:.2f}, max "
                  f"{sessions['max']:.2f}); peak {sessions['peak_mb']:.0f} MB", flush=True)
            lookup = _spawn("request", location)
            print(f"  request ID: record {lookup['record']:.3f} s (median of 5; of 5 in "
                  f"the last 20 days, in their hotspot window: {lookup['recent']:.3f} s), "
                  f"`hotspot311 request` command {lookup['command']:.2f} s wall", flush=True)
            results[kind] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            results[kind].update(sessions=sessions, lookup=lookup)
        _summary(results, args)
    finally:
        if server is not None:
            server.stop()


def _summary(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"\nmedians, {args.n:,} requests")
    print(f"{'':<10}{'first map':>11}{'rerun map':>11}{'rerun all':>11}{'peak MB':>9}"
          f"{'p95 ' + str(args.sessions):>9}{'request':>9}")
    for kind, r in results.items():
        print(f"{kind:<10}{r['first_map']:>10.2f}s{r['rerun_map']:>10.2f}s"
              f"{r['rerun_total']:>10.2f}s{r['peak_mb']:>9.0f}{r['sessions']['p95']:>8.2f}s"
              f"{r['lookup']['record']:>8.3f}s")
    if "embedded" in results and "postgis" in results:
        e, p = results["embedded"], results["postgis"]
        print(f"postgis/embedded: first map {p['first_map'] / e['first_map']:.2f}x, "
              f"rerun map {p['rerun_map'] / e['rerun_map']:.2f}x, "
              f"memory {p['peak_mb'] / e['peak_mb']:.2f}x")
    if "postgis" in results:
        p = results["postgis"]
        goals = [("first map < 3 s", p["first_map"] < 3),
                 ("rerun < 1 s", p["rerun_map"] < 1),
                 ("< 500 MB per process", p["peak_mb"] < 500),
                 (f"p95 < 2 s with {args.sessions} sessions", p["sessions"]["p95"] < 2),
                 ("request ID < 0.5 s (inside its hotspot window too)",
                  max(p["lookup"]["record"], p["lookup"]["recent"]) < 0.5)]
        print("goals on PostGIS: " + "; ".join(f"{g}: {'met' if ok else 'NOT met'}"
                                               for g, ok in goals))


def _count(location: str) -> int:
    from geo.store.base import open_store
    from layers.profile import load_profile

    store = open_store(location, load_profile("philadelphia"))
    try:
        return store.request_summary(__import__("geo.store.reads", fromlist=["x"])
                                     .RequestFilter()).count
    finally:
        store.close()


def _fill(location: str, csv: Path) -> None:
    from geo.ingest.pipeline import ingest
    from geo.store.base import open_store
    from layers.profile import load_profile

    store = open_store(location, load_profile("philadelphia"))
    try:
        ingest(csv, store)
    finally:
        store.close()


def _spawn(what: str, location: str, *more: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", what, location, *more],
                         capture_output=True, text=True, cwd=ROOT, check=False,
                         env={**os.environ, **ENV, "HOTSPOT311_STORE": location})
    if out.returncode != 0:
        raise SystemExit(f"the {what} process failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# --- children ---------------------------------------------------------------------------
class _MapClock:
    """Times from a mark to ``st_folium`` handing over the map, per session (the page runs
    in AppTest's script thread; a session is named by ``st.session_state["bench_id"]``)."""

    def __init__(self) -> None:
        self.start: dict[str, float] = {}
        self.done: dict[str, float] = {}

    def mark(self, sid: str = "main") -> None:
        self.done.pop(sid, None)
        self.start[sid] = time.perf_counter()

    def install(self) -> None:
        import streamlit as st
        import streamlit_folium

        real = streamlit_folium.st_folium

        def timed(*args: Any, **kwargs: Any) -> Any:
            sid = str(st.session_state.get("bench_id", "main"))
            out = real(*args, **kwargs)
            if sid not in self.done and sid in self.start:
                self.done[sid] = time.perf_counter() - self.start[sid]
            return out

        streamlit_folium.st_folium = timed

    def seconds(self, sid: str = "main") -> float:
        if sid not in self.done:
            raise SystemExit(f"session {sid}: the page ended without drawing the map")
        return self.done[sid]


def _shared_runtime() -> None:
    """Let sessions run at once in one process under ``AppTest``.

    ``AppTest.run`` installs a stand-in ``Runtime`` for its run and removes it when the run
    ends, so with several sessions running at once the first to end removed it under the
    others (their scripts then failed: "Runtime hasn't been created!"). While the sessions
    run, ``Runtime.instance()`` falls back to one shared stand-in built the same way.
    """
    from unittest.mock import MagicMock

    from streamlit.components.v2.component_manager import BidiComponentManager
    from streamlit.runtime import Runtime
    from streamlit.runtime.caching.storage.dummy_cache_storage import (
        MemoryCacheStorageManager,
    )
    from streamlit.runtime.dataframe_source_manager import DataframeSourceManager
    from streamlit.runtime.media_file_manager import MediaFileManager
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    shared = MagicMock(spec=Runtime)
    shared.media_file_mgr = MediaFileManager(MemoryMediaFileStorage("/mock/media"))
    shared.dataframe_source_mgr = DataframeSourceManager()
    shared.cache_storage_manager = MemoryCacheStorageManager()
    registry = BidiComponentManager()
    registry.discover_and_register_components(start_file_watching=False)
    shared.bidi_component_registry = registry

    def instance(cls: type[Runtime]) -> Runtime:
        return cls._instance or shared  # type: ignore[return-value]

    Runtime.instance = classmethod(instance)  # type: ignore[method-assign,assignment]
    # and one compiled script for all, as a server's one script cache gives (each AppTest
    # run compiles it anew, and CPython 3.11's parser fails when threads parse at once)
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache

    compiled: dict[str, Any] = {}
    lock = threading.Lock()
    own = ScriptCache.get_bytecode

    def get_bytecode(self: ScriptCache, script_path: str) -> Any:
        with lock:
            if script_path not in compiled:
                compiled[script_path] = own(self, script_path)
            return compiled[script_path]

    ScriptCache.get_bytecode = get_bytecode  # type: ignore[method-assign]


def _peak_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from
    the parent that forked it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(argv: list[str]) -> None:
    what, location = argv[0], argv[1]
    from streamlit.logger import set_log_level

    set_log_level("error")
    start = time.perf_counter()
    from streamlit.testing.v1 import AppTest

    import hotspot311.web.appdata
    import hotspot311.web.maps  # noqa: F401

    imports = time.perf_counter() - start
    floor_mb = _peak_mb()  # the interpreter with the page's imports, before any data
    clock = _MapClock()
    clock.install()
    script = str(ROOT / "app.py")
    if what == "page":
        at = AppTest.from_file(script, default_timeout=600)
        clock.mark()
        at.run()
        first = clock.seconds()
        _check(at)
        clock.mark()
        t0 = time.perf_counter()
        at.radio(key="status").set_value("open").run()
        total = time.perf_counter() - t0
        _check(at)
        print(json.dumps({"imports": imports, "first_map": first,
                          "rerun_map": clock.seconds(), "rerun_total": total,
                          "peak_mb": _peak_mb(), "floor_mb": floor_mb}))
    elif what == "sessions":
        k = int(argv[2])
        _shared_runtime()
        pages = []
        for i in range(k):
            at = AppTest.from_file(script, default_timeout=600)
            at.session_state["bench_id"] = str(i)
            at.run()
            _check(at)
            pages.append(at)
        names = pages[0].multiselect(key="services").options
        times: list[float] = [0.0] * k
        barrier = threading.Barrier(k)

        def session(i: int) -> None:
            barrier.wait()
            clock.mark(str(i))
            pages[i].multiselect(key="services").set_value([names[i % len(names)]]).run()
            times[i] = clock.seconds(str(i))

        threads = [threading.Thread(target=session, args=(i,)) for i in range(k)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        ordered = sorted(times)
        print(json.dumps({"p95": ordered[max(0, round(0.95 * k) - 1)],
                          "median": statistics.median(ordered), "max": ordered[-1],
                          "peak_mb": _peak_mb()}))
    elif what == "request":
        from datetime import timedelta

        from geo.store.base import open_store
        from geo.store.reads import RequestFilter
        from layers.profile import load_profile
        from layers.services import load_services
        from reports.calendar import load_calendar
        from reports.tracking import request_record

        store = open_store(location, load_profile("philadelphia"))
        ids = store.select_requests(RequestFilter(), ["service_request_id"], limit=5000)
        chosen = ids["service_request_id"].iloc[::1000].tolist()[:5]
        # and 5 of the last 20 days: inside their type's hotspot window, so the look-up
        # finds their hotspot (the costly case)
        last = store.latest_request(RequestFilter())
        recent = store.select_requests(RequestFilter(after=last - timedelta(days=20)),
                                       ["service_request_id"], limit=5000) \
            if last is not None else ids.iloc[:0]
        spent: list[float] = []
        spent_recent: list[float] = []
        for rid, into in [*((r, spent) for r in chosen),
                          *((r, spent_recent) for r in
                            recent["service_request_id"].iloc[::1000].tolist()[:5])]:
            t0 = time.perf_counter()
            request_record(store, rid, services=load_services(store.profile),
                           calendar=load_calendar(store.profile), now=_now())
            into.append(time.perf_counter() - t0)
        store.close()
        t0 = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / "hotspot311"), "--store", location,
                        "request", chosen[0]], capture_output=True, check=True)
        print(json.dumps({"record": statistics.median(spent),
                          "recent": statistics.median(spent_recent or [float("nan")]),
                          "command": time.perf_counter() - t0}))


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _check(at: Any) -> None:
    if at.exception:
        raise SystemExit("the page failed: " + "; ".join(e.message for e in at.exception))


if __name__ == "__main__":
    main()
