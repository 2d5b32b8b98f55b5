"""Benchmark the Open311 server: 50 concurrent clients against the same reads run
directly on the store, in one run.

Usage::

    python bench/api.py [--rows 1000000] [--stores embedded,postgis] [--clients 1,50]
                        [--seconds 15] [--workers 1] [--url postgresql://…] [--keep]

A 1M store takes minutes to build: ``--keep`` leaves the PostGIS server running and
prints its ``--url``; a later run with that ``--url`` reuses the stored requests.

Data: ``--rows`` synthetic requests at real Philadelphia intersections
(:func:`bench.common.city_requests`), loaded with the profile's layers into a fresh
store of each kind (PostGIS: a throwaway server from :mod:`tests.postgis_server` unless
``--url``). The server is ``hotspot311 serve api --workers N`` in its own
process(es) (``--workers``; with ``--uvicorn OPTIONS``, uvicorn's own command); the
clients are one asyncio loop of ``--clients`` aiohttp tasks, each sending its next
request when the last one is answered, for ``--seconds`` per scenario, once per
``--clients`` count (1 client: the per-request cost; 50: the same work queued, p95 ≈
50 / throughput). The server, the database and the clients share the machine's cores,
so each line also prints the CPU time per request of the
server process(es) and of the clients:

- ``single``: ``GET requests/{id}.json`` of random stored ids;
- ``filtered``: ``GET requests.json`` for one service, open, the last 365 days, a
  1,000-row page;
- ``varied``: the same page with another ``end_date`` (a second earlier) each time: a
  page nobody asked before, which the server's page cache (:mod:`hotspot311.api.cache`,
  serving ``filtered`` again while the requests are unchanged) cannot answer; its rows
  were served before, so the server puts it together from the rows it keeps
  (:mod:`hotspot311.api.rowcache`; PostGIS). ``--row-cache 0`` serves with no kept rows:
  every page made whole;
- ``deep``: ``GET requests.json`` from a keyset cursor half-way through all requests,
  a 1,000-row page;
- ``post``: ``POST requests.json`` (lat/long) with an API key.

Beside each, the floor: the same query run directly on the store in this process
(``Store.query_requests``; for the post, the intake's validate + ``write_batch`` of a
one-row batch), one at a time. Figures: requests/s and p50/p95 latency in ms.
The machine is shared with other work: compare within a run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import httpx
import numpy as np
import pandas as pd

from bench.common import city_requests, write_csv
from geo.ingest.pipeline import prepare
from geo.ingest.validate import in_extent
from geo.store.api_keys import hash_key, new_key
from geo.store.base import Store
from geo.store.query import RequestQuery
from layers.profile import load_profile

ROOT = Path(__file__).resolve().parents[1]


def fill(store: Store, args: argparse.Namespace, work: Path) -> int:
    """Load ``--rows`` requests with the profile's layers, then give every request its
    problem id (so a later one-row write recomputes only its neighbourhood); return the
    stored count. A store that already holds ``--rows`` requests (``--url`` of a
    database filled by an earlier run) is used as it is."""
    from clustering.problems import ProblemAssigner, ProblemRules

    n = len(store.request_columns(["service_request_id"]))
    if n >= 0.99 * args.rows:  # a few generated rows are quarantined
        print(f"  reusing the {n:,} requests already stored", flush=True)
        return n
    t = time.perf_counter()
    csv = write_csv(city_requests(args.rows, seed=14), work / "requests.csv")
    print(f"  generated {args.rows:,} rows in {time.perf_counter() - t:.1f} s", flush=True)
    t = time.perf_counter()
    store.ensure_profile_layers()
    batch, info = prepare(csv, store)
    store.write_batch(batch, info=info)
    # one rebuild after the bulk write: a first write of 1M rows with the problem rule
    # spends its time in the store's "orphans" check (seen taking > 13 min)
    store.rebuild_problems(ProblemAssigner(ProblemRules.for_city(store.profile)))
    n = len(store.request_columns(["service_request_id"]))
    print(f"  loaded {n:,} requests with layers and problem ids in "
          f"{time.perf_counter() - t:.1f} s", flush=True)
    return n


def pct(values: list[float]) -> tuple[float, float]:
    """p50 and p95 in ms."""
    arr = np.asarray(values) * 1000
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 95))


async def load(url: str, make: Callable[[int], tuple[str, str, dict[str, Any]]],
               clients: int, seconds: float) -> tuple[float, list[float], int]:
    """``clients`` tasks sending ``make(i)`` requests for ``seconds``.

    The clients are aiohttp's: httpx's asyncio client spends 2–6 ms of CPU per request
    (measured here at 50 clients), so on a shared 2-core machine it was the load
    generator that set the 50-client figures; aiohttp spends about 0.4 ms.
    """
    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as client:
        async def worker(k: int) -> None:
            nonlocal errors
            i = k
            while time.perf_counter() < stop:
                method, path, kw = make(i)
                t = time.perf_counter()
                try:
                    async with client.request(method, path, **kw) as r:
                        await r.read()
                        failed = r.status >= 400
                except TimeoutError:
                    failed = True
                lat.append(time.perf_counter() - t)
                errors += failed
                i += clients
        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        wall = time.perf_counter() - started
    return len(lat) / wall, lat, errors


def cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by a process and its children (uvicorn's workers)."""
    import psutil

    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def floor(func: Callable[[int], Any], n: int) -> tuple[float, list[float]]:
    """Run ``func(i)`` ``n`` times in a row; rate and latencies."""
    lat = []
    t0 = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        func(i)
        lat.append(time.perf_counter() - t)
    return n / (time.perf_counter() - t0), lat


def serve(location: str, port: int, workers: int, media: Path, *, root: Path = ROOT,
          extra: tuple[str, ...] = (), row_cache: int | None = None) -> subprocess.Popen:
    """The server from the checkout at ``root`` (another one: a before/after comparison):
    ``hotspot311 serve api --workers N``, or uvicorn itself when ``extra`` gives it
    options; ``row_cache``: its ``HOTSPOT311_API_ROW_CACHE`` (default: the server's)."""
    env = {**os.environ, "HOTSPOT311_STORE": location, "HOTSPOT311_API_MEDIA": str(media),
           "HOTSPOT311_API_READ_RATE": "100000000/minute",
           "HOTSPOT311_API_WRITE_RATE": "100000000/minute", "PYTHONPATH": str(root)}
    if row_cache is not None:
        env["HOTSPOT311_API_ROW_CACHE"] = str(row_cache)
    command = ([sys.executable, "-m", "uvicorn", "hotspot311.api.asgi:app_from_env",
                "--factory", "--host", "127.0.0.1", "--port", str(port), "--workers",
                str(workers), "--no-access-log", "--log-level", "warning", *extra] if extra
               else [sys.executable, "-m", "hotspot311", "--store", location, "serve", "api",
                     "--port", str(port), "--workers", str(workers)])
    proc = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/open311/v2/services.json").status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not start")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(kind: str, location: str, store: Store, args: argparse.Namespace, work: Path) -> None:
    """Every scenario against ``store`` served from ``location``."""
    print(f"\n== {kind} store, {args.rows:,} requests ==", flush=True)
    fill(store, args, work)
    key = new_key()
    store.add_api_key(f"bench-{kind}-{time.time_ns()}", "partner", hash_key(key))
    ids = store.request_columns(["service_request_id"])["service_request_id"]
    rng = np.random.default_rng(1)
    pick = list(ids.iloc[rng.integers(0, len(ids), 5000)])
    now = datetime.now(UTC)
    filt = RequestQuery(service_names=("Street Light Outage",), status="open",
                        start=now - timedelta(days=365), end=now, limit=1000)
    times = store.request_columns(["requested_datetime"])["requested_datetime"]
    mid = pd.to_datetime(times, utc=True).sort_values().iloc[len(times) // 2]
    edge = store.query_requests(RequestQuery(end=mid.to_pydatetime(), limit=1))
    cursor = (pd.Timestamp(edge["requested_datetime"].iloc[0]).to_pydatetime(),
              str(edge["service_request_id"].iloc[0]))
    deep = RequestQuery(start=datetime(2000, 1, 1, tzinfo=UTC), after=cursor, limit=1000)
    from hotspot311.api.reads import encode_cursor

    token = encode_cursor(pd.Timestamp(cursor[0]), cursor[1])
    sizes = {"filtered": len(store.query_requests(filt)), "deep": len(store.query_requests(deep))}
    print(f"  page sizes: filtered {sizes['filtered']}, deep {sizes['deep']}", flush=True)
    lats = rng.uniform(39.95, 40.05, 200_000)
    lons = rng.uniform(-75.20, -75.10, 200_000)
    inside = in_extent(lons, lats, store.profile)  # posts in the city: an error is a fault
    lats, lons = lats[inside], lons[inside]
    scenarios: dict[str, tuple[Callable[[int], tuple[str, str, dict[str, Any]]],
                               Callable[[int], Any], int]] = {
        "single": (lambda i: ("GET", f"/open311/v2/requests/{pick[i % len(pick)]}.json", {}),
                   lambda i: store.query_requests(RequestQuery(ids=(pick[i % len(pick)],),
                                                               limit=1)), 300),
        "filtered": (lambda i: ("GET", "/open311/v2/requests.json", {"params": {
            "service_code": "street-light-outage", "status": "open",
            "start_date": (now - timedelta(days=365)).isoformat(), "end_date": now.isoformat(),
            "page_size": "1000"}}), lambda i: store.query_requests(filt), 30),
        "varied": (lambda i: ("GET", "/open311/v2/requests.json", {"params": {
            "service_code": "street-light-outage", "status": "open",
            "start_date": (now - timedelta(days=365)).isoformat(),
            "end_date": (now - timedelta(seconds=i)).isoformat(), "page_size": "1000"}}),
            lambda i: store.query_requests(filt), 30),
        "deep": (lambda i: ("GET", "/open311/v2/requests.json", {"params": {
            "start_date": "2000-01-01T00:00:00Z", "after": token, "page_size": "1000"}}),
            lambda i: store.query_requests(deep), 30),
        "post": (lambda i: ("POST", "/open311/v2/requests.json", {"data": {
            "api_key": key, "service_code": "street-defect", "lat": f"{lats[i]:.6f}",
            "long": f"{lons[i]:.6f}", "description": "bench"}}), None, 0),  # type: ignore[dict-item]
    }
    port = free_port()
    server = serve(location, port, args.workers, work / f"media-{kind}",
                   root=Path(args.server_root) if args.server_root else ROOT,
                   extra=tuple(args.uvicorn.split()) if args.uvicorn else (),
                   row_cache=args.row_cache)
    clients = [int(c) for c in str(args.clients).split(",")]
    try:
        for name in args.scenarios.split(","):
            make, direct, n = scenarios[name]
            if direct is None:
                direct = post_floor(store, lats, lons)
                n = 5 if kind == "embedded" else 30
            rate_f, lat_f = floor(direct, n)
            f50, f95 = pct(lat_f)
            print(f"  {name:<9} store directly (1 at a time) {rate_f:8.1f}/s  p50 {f50:7.1f} ms"
                  f"  p95 {f95:7.1f} ms", flush=True)
            for c in clients:
                server_cpu, client_cpu = cpu_seconds(server.pid), time.process_time()
                rate, lat, errors = asyncio.run(load(f"http://127.0.0.1:{port}", make, c,
                                                     args.seconds))
                server_cpu = cpu_seconds(server.pid) - server_cpu
                client_cpu = time.process_time() - client_cpu
                p50, p95 = pct(lat)
                print(f"  {name:<9} API {c:3d} client(s) {rate:8.1f} req/s  p50 {p50:8.1f} ms"
                      f"  p95 {p95:8.1f} ms  ({len(lat):,} requests, {errors} errors)"
                      f" | p95 API/store {p95 / f95:5.1f}x | CPU per request: server "
                      f"{1e3 * server_cpu / max(len(lat), 1):.2f} ms, clients "
                      f"{1e3 * client_cpu / max(len(lat), 1):.2f} ms", flush=True)
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()


def post_floor(store: Store, lats: np.ndarray, lons: np.ndarray) -> Callable[[int], Any]:
    """A one-row batch validated and written (what the intake does besides HTTP)."""
    from clustering.problems import ProblemAssigner, ProblemRules
    from geo.ingest.readers import ROW_COLUMN
    from geo.ingest.validate import validate

    problems = ProblemAssigner(ProblemRules.for_city(store.profile))

    def one(i: int) -> None:
        now = datetime.now(UTC).isoformat()
        row = pd.DataFrame({"service_request_id": [f"FLOOR-{i}-{time.time_ns()}"],
                            "requested_datetime": [now], "status": ["open"],
                            "service_name": ["Street Defect"], "lat": [f"{lats[-i - 1]:.6f}"],
                            "lon": [f"{lons[-i - 1]:.6f}"], ROW_COLUMN: [1]}, dtype=object)
        row[ROW_COLUMN] = row[ROW_COLUMN].astype("int64")
        batch = validate(row, profile=store.profile, batch_id=f"floor-{i}", source_file="floor")
        store.write_batch(batch, info={"batch_id": f"floor-{i}"}, problems=problems)

    return one


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--stores", default="embedded,postgis")
    parser.add_argument("--scenarios", default="single,filtered,varied,deep,post")
    parser.add_argument("--clients", default="1,50",
                        help="client counts, comma-separated (1: the per-request cost; "
                             "50: with queueing)")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--url", help="a database, empty or filled by an earlier run with "
                                      "--keep (reused as it is); default: start a server")
    parser.add_argument("--server-root", help="serve from this checkout instead (e.g. an "
                                              "older commit's `git archive`, for a before figure)")
    parser.add_argument("--uvicorn", help="extra uvicorn options, e.g. '--loop asyncio --http h11'")
    parser.add_argument("--row-cache", type=int, default=None,
                        help="bytes of rendered rows each server process keeps "
                             "(HOTSPOT311_API_ROW_CACHE; 0: every page made whole)")
    parser.add_argument("--keep", action="store_true",
                        help="leave the started PostGIS server running, to reuse with --url")
    args = parser.parse_args()
    profile = load_profile("philadelphia")
    work = Path(tempfile.mkdtemp(prefix="bench-api-"))
    print(f"{args.rows:,} requests; {args.clients} clients, {args.seconds:g} s per scenario, "
          f"{args.workers} server process(es); {os.cpu_count()} cores shared with other work; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    if "embedded" in args.stores:
        from geo.store.embedded import EmbeddedStore

        location = str(work / "store")
        run("embedded", location, EmbeddedStore(Path(location), profile), args, work)
    if "postgis" in args.stores:
        from geo.store.postgis import PostGISStore

        server = None
        url = args.url
        if url is None:
            from tests.postgis_server import start_server

            server = start_server()
            url = server.clone("bench_api")
        store = PostGISStore.open(url, profile)
        try:
            run("postgis", url, store, args, work)
        finally:
            store.close()
            if server is not None and not args.keep:
                server.stop()
            elif server is not None:
                print(f"kept: --url {url} (stop: pg_ctl -D {server.root / 'data'} stop)")


if __name__ == "__main__":
    main()
