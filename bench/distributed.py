"""Partitioned DBSCAN on a Dask LocalCluster against the single-machine DBSCAN, same run.

    python bench/distributed.py                       # 5M and 20M city-like points
    python bench/distributed.py --sizes 5e6 20e6 50e6 # 50M needs ~12 GB free

For each size: the points are made block by block (the same blocks on the workers and,
concatenated, in this process), clustered by :func:`clustering.dbscan.dbscan` here and by
:func:`clustering.partitioned.dbscan_partitioned` on ``LocalCluster(2 workers, 1 thread
each)``, once with everything in the workers' memory and once with ``spill_dir`` (blocks,
tile pieces and tile states in files); prints wall times, their ratio, peak memory per
worker (a fresh cluster per run) and of this process, and whether the labels are
identical. With ``spill_dir`` the peak per worker should stay the same from one size to
the next: one block or one tile at a time. Then, from the per-point costs and shuffle
volume measured at the largest size, an *estimate* for 500M points on 50 workers.

Eps 100 m (328 ft) and min_samples 10, as in ``bench/dbscan.py``; one fresh cluster per
size so that worker peaks belong to that size.

    python bench/distributed.py --ingest 1e6 [--files 8]

instead loads the same N city-like requests into PostGIS twice, on one throwaway server
(:mod:`tests.postgis_server`), each into a fresh database holding the seven layers:
the single-process ``ingest`` of one CSV file, and the parallel load of ``ingest --engine
dask`` (:func:`geo.store.postgis_parallel.ingest_parallel`: the same rows cut into
``--files`` CSV files, staged by ``LocalCluster(2 workers)``, applied in one
transaction); prints both wall times and their ratio, and checks both stores hold the
same number of requests and area codes.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Run as a script, this file's folder comes first on sys.path and its name would hide the
# ``distributed`` package: drop the folder, put the repository root instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench.dbscan import EPS_FT, EXTENT, MIN_SAMPLES  # noqa: E402
from clustering.dbscan import dbscan  # noqa: E402
from clustering.partitioned import DEFAULT_MEMORY_PER_TILE, dbscan_partitioned  # noqa: E402

BLOCK = 1_000_000
#: Assumed network rate per worker for the 500M estimate (10 GbE, half used), bytes/s.
NET_BYTES_PER_S = 600e6
#: Bytes a point occupies in a block or a tile piece (x, y, weight; index; role).
POINT_BYTES = 24 + 8 + 1


def city_block(n: int, total: int, seed: int, block: int) -> np.ndarray:
    """One block of city-like points: background, tight clusters, duplicate addresses.

    Cluster centres and addresses depend only on ``total`` and ``seed``, so every block
    draws from the same city; the rest depends on the block number.
    """
    lo, hi = EXTENT
    shared = np.random.default_rng(seed)
    centres = shared.uniform(lo, hi, (max(total // 2_000, 1), 2))
    addresses = shared.uniform(lo, hi, (max(total // 50, 1), 2)).round(1)
    rng = np.random.default_rng([seed, block])
    n_bg = int(n * 0.4)
    n_cl = int(n * 0.3)
    bg = rng.uniform(lo, hi, (n_bg, 2))
    cl = centres[rng.integers(0, len(centres), n_cl)] + rng.normal(0.0, 150.0, (n_cl, 2))
    dup = addresses[rng.integers(0, len(addresses), n - n_bg - n_cl)]
    xy = np.concatenate([bg, cl, dup])
    return xy[rng.permutation(n)]


def _sizes(n: int) -> list[int]:
    return [min(BLOCK, n - s) for s in range(0, n, BLOCK)]


def _proc_status_gib(field: str) -> float:
    """``VmHWM`` (peak) or ``VmRSS`` (now) of this process, GiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 2**20  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _worker_peak_gib() -> float:
    """Peak resident memory of this process since its start or the last reset (VmHWM;
    not ru_maxrss, which a process inherits from the one that forked it)."""
    return _proc_status_gib("VmHWM")


def _reset_peak() -> float:
    """Start the peak again from the present resident memory; return that, GiB."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return _proc_status_gib("VmRSS")


def _partitioned(n: int, sizes: list[int], memory_per_tile: int, spill: Path | None) -> dict:
    """One partitioned run on a fresh LocalCluster(2); labels, time, worker peaks, info."""
    import dask
    import dask.array as da
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0", memory_limit="10GiB") as cluster, \
            Client(cluster) as client:
        parts = [da.from_delayed(dask.delayed(city_block)(m, n, 0, b), shape=(m, 2),
                                 dtype=np.float64) for b, m in enumerate(sizes)]
        xy_dask = da.concatenate(parts)
        client.run(gc.collect)
        base = sorted(client.run(_reset_peak).values())
        info: dict = {}
        start = time.perf_counter()
        labels = dbscan_partitioned(xy_dask, eps=EPS_FT, min_samples=MIN_SAMPLES,
                                    client=client, memory_per_tile=memory_per_tile, info=info,
                                    spill_dir=spill)
        seconds = time.perf_counter() - start
        peaks = sorted(client.run(_worker_peak_gib).values())
    return {"labels": labels, "s": seconds, "peaks": peaks, "base": base, "info": info}


def run_size(n: int, memory_per_tile: int, spill_root: Path) -> dict:
    """Single machine, partitioned in memory, partitioned spilling; the measurements."""
    sizes = _sizes(n)
    print(f"\n{n:,} city-like points (eps {EPS_FT:.1f} ft, min_samples {MIN_SAMPLES})",
          flush=True)
    out: dict = {"n": n}
    runs = {"memory": _partitioned(n, sizes, memory_per_tile, None),
            "spill": _partitioned(n, sizes, memory_per_tile, spill_root)}
    xy = np.concatenate([city_block(m, n, 0, b) for b, m in enumerate(sizes)])
    start = time.perf_counter()
    labels_s = dbscan(xy, eps=EPS_FT, min_samples=MIN_SAMPLES)
    out["single_s"] = time.perf_counter() - start
    out["identical"] = all(bool(np.array_equal(labels_s, r.pop("labels"))) for r in runs.values())
    out["clusters"] = int(labels_s.max()) + 1
    out["driver_peak_gib"] = _worker_peak_gib()
    del xy, labels_s
    gc.collect()
    out["runs"] = runs
    out["info"] = runs["spill"]["info"]
    out["dask_s"] = runs["spill"]["s"]
    out["worker_peak_gib"] = runs["spill"]["peaks"]
    print(f"  single machine dbscan              {out['single_s']:8.2f} s", flush=True)
    for name, r in runs.items():
        info = r["info"]
        secs = info["seconds"]
        print(f"  LocalCluster(2), {name:<6}          {r['s']:8.2f} s   ratio "
              f"{r['s'] / out['single_s']:.2f}x the single-machine time", flush=True)
        print("    stages: " + ", ".join(f"{k} {v:.2f} s" for k, v in secs.items()), flush=True)
        print(f"    peak memory per worker {', '.join(f'{g:.2f}' for g in r['peaks'])} GiB "
              f"(resident before the run {', '.join(f'{g:.2f}' for g in r['base'])} GiB)",
              flush=True)
    info = out["info"]
    plan = info["plan"]
    print(f"  tiles {info['tiles']} of side {plan.side:,.0f} ft; points in tiles "
          f"{info['points_in_tiles']:,} ({info['points_in_tiles'] / n:.3f} per point); "
          f"largest tile {info['largest_tile']:,}; halo core points merged "
          f"{info['halo_core_points']:,}", flush=True)
    print(f"  this process {out['driver_peak_gib']:.2f} GiB (holds the single-machine run too)",
          flush=True)
    print(f"  labels identical (both runs): {out['identical']} ({out['clusters']:,} clusters)",
          flush=True)
    return out


def estimate(measured: dict, memory_per_tile: int, n: int = 500_000_000,
             workers: int = 50) -> None:
    """Print the 500M-point plan from the costs measured at the largest size."""
    m = measured["n"]
    info = measured["info"]
    secs = info["seconds"]
    worker_s = sum(v for k, v in secs.items() if k in ("split", "cores", "labelled")) * 2
    per_point = worker_s / m  # worker-seconds per point (2 workers were busy)
    dup = info["points_in_tiles"] / m
    tile_points = max(info["largest_tile"], 1)
    tiles = max(int(np.ceil(n * dup / tile_points)), workers)
    shuffle = n * dup * POINT_BYTES
    compute_s = per_point * n / workers
    net_s = shuffle / workers / NET_BYTES_PER_S
    merge_s = secs.get("merged", 0.0) * n / m
    input_gib = n * 24 / workers / 2**30
    print(f"\nESTIMATE (not measured): {n / 1e6:.0f}M points on {workers} workers, tile budget "
          f"{memory_per_tile / 2**20:.0f} MiB")
    print(f"  from {m / 1e6:.0f}M measured: {per_point * 1e6:.2f} worker-µs per point, "
          f"{dup:.3f} tile copies per point, merge {secs.get('merged', 0.0):.2f} s on the "
          "client")
    print(f"  tiles ≈ {tiles:,} of ≤ {tile_points:,} points (as many per tile as measured)")
    held = max(measured["worker_peak_gib"])
    files_gib = n / workers * (24 + 2 * dup * POINT_BYTES) / 2**30
    print(f"  memory per worker (with spill_dir): one block or one tile at a time; measured "
          f"here {held:.2f} GiB at the busiest worker for {m / 2 / 1e6:.0f}M points a worker; "
          f"where the by-size line shows it flat, ≈ {held:.2f} GiB at "
          f"{n / workers / 1e6:.0f}M points a worker too (input share {input_gib:.2f} GiB, "
          f"spill files ≈ {files_gib:.2f} GiB a worker on the shared disk)")
    print(f"  shuffle ≈ {shuffle / 2**30:.1f} GiB in all ({shuffle / workers / 2**30:.2f} GiB "
          f"a worker, {net_s:.1f} s at {NET_BYTES_PER_S / 1e6:.0f} MB/s)")
    print(f"  expected time ≈ compute {compute_s:.0f} s + shuffle {net_s:.0f} s + client "
          f"merge {merge_s:.0f} s ≈ {compute_s + net_s + merge_s:.0f} s; the client holds "
          f"{n * 8 / 2**30:.1f} GiB of labels")


def ingest_comparison(n: int, files: int) -> None:
    """Single-process ingest against the parallel PostGIS load of the same rows."""
    import pandas as pd
    from distributed import Client, LocalCluster

    from bench.common import city_requests, write_csv
    from geo.ingest.pipeline import ingest
    from geo.store.postgis import PostGISStore
    from geo.store.postgis_parallel import ingest_parallel
    from layers.profile import load_profile
    from tests.postgis_server import start_server

    profile = load_profile("philadelphia")
    print(f"bench/distributed.py --ingest: {n:,} requests into PostGIS, {os.cpu_count()} "
          "cores (shared machine: compare the ratio, not the seconds)", flush=True)
    server = start_server()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        rows = city_requests(n, seed=17)
        whole = write_csv(rows, Path(tmp) / "requests.csv")
        parts = [write_csv(pd.DataFrame(rows.iloc[chunk]), Path(tmp) / f"part-{i}.csv")
                 for i, chunk in enumerate(np.array_split(np.arange(n), files))]
        del rows
        stores = {}
        try:
            for name in ("single", "parallel"):
                stores[name] = PostGISStore.open(server.clone(f"ingest_{name}"), profile)
                stores[name].ensure_profile_layers()
            start = time.perf_counter()
            single = ingest(whole, stores["single"])
            single_s = time.perf_counter() - start
            print(f"  single process, 1 file:           {single_s:8.2f} s "
                  f"({single.result.inserted:,} inserted)", flush=True)
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                              dashboard_address=":0") as cluster, Client(cluster) as client:
                start = time.perf_counter()
                reports = ingest_parallel(parts, stores["parallel"], client=client)
                parallel_s = time.perf_counter() - start
            inserted = sum(r.result.inserted for r in reports)
            print(f"  --engine dask, {files} files, 2 workers: {parallel_s:8.2f} s "
                  f"({inserted:,} inserted)", flush=True)
            same: list[tuple[int, int]] = []
            for store in stores.values():
                with store.pool.connection() as conn:
                    row = conn.execute("SELECT (SELECT count(*) FROM requests),"
                                       " (SELECT count(*) FROM request_areas)").fetchone()
                    same.append((int(row[0]), int(row[1])) if row else (0, 0))
            print(f"  stores hold the same requests and area codes: {same[0] == same[1]} "
                  f"({same[0][0]:,} requests, {same[0][1]:,} codes)")
            print(f"  ratio parallel / single process = {parallel_s / single_s:.2f} "
                  "(below 1: the parallel load is faster)")
        finally:
            for store in stores.values():
                store.close()
            server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[5e6, 20e6])
    parser.add_argument("--memory-per-tile", type=int, default=DEFAULT_MEMORY_PER_TILE)
    parser.add_argument("--ingest", type=float, metavar="N",
                        help="compare the PostGIS loads of N requests instead (see above)")
    parser.add_argument("--files", type=int, default=8, help="--ingest: files for the "
                        "parallel load")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    if args.ingest:
        ingest_comparison(int(args.ingest), args.files)
        return
    print(f"bench/distributed.py: {os.cpu_count()} cores; tile budget "
          f"{args.memory_per_tile / 2**20:.0f} MiB")
    with tempfile.TemporaryDirectory(prefix="hotspot311-spill-") as spill:
        results = [run_size(int(n), args.memory_per_tile, Path(spill)) for n in args.sizes]
    peaks = [max(r["worker_peak_gib"]) for r in results]
    print("\npeak memory per worker with spill_dir, by size: " + ", ".join(
        f"{r['n'] / 1e6:.0f}M {p:.2f} GiB" for r, p in zip(results, peaks, strict=True))
        + f"; largest / smallest {max(peaks) / min(peaks):.2f}")
    estimate(results[-1], args.memory_per_tile)
    if not all(r["identical"] for r in results):
        raise SystemExit("labels differ")


if __name__ == "__main__":
    main()
