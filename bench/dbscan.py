"""Benchmark clustering.dbscan against scikit-learn's DBSCAN.

Each (implementation, case, size) runs in its own subprocess under an address-space cap
(``RLIMIT_AS``) and a time cap, so a blow-up is reported as ``OOM`` or ``timeout``
instead of ending the run. The table gives the clustering time, the numba load/compile
time (ours; measured on a tiny input first), the child's peak RSS and the RSS before
clustering (data and imports), ratios against scikit-learn, and whether the core points
and their partition are the same where both finished.

Usage::

    python bench/dbscan.py --sizes 100000,1000000 --cap-seconds 300 --cap-gib 12
    python bench/dbscan.py --sizes 5000000 --impls ours
    python bench/dbscan.py --sizes 100000,1000000 --impls ours,sklearn,postgis --pg auto

``postgis`` times ``ST_ClusterDBSCAN`` on a server (``--pg URL``, or ``--pg auto`` to start
a throwaway PostGIS server as the tests do). The function ignores ``statement_timeout``,
so on the time cap the benchmark terminates the server backend itself. Its memory is the
server's, not the child's, and is not reported. It returns no core mask: the comparison
column checks that noise is the same and that the reference's core points are
partitioned the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

EPS_FT = 328.084  # 100 m in US survey-ish feet (EPSG:2272)
MIN_SAMPLES = 10
EXTENT = (np.array([2_660_000.0, 200_000.0]), np.array([2_750_000.0, 310_000.0]))
ROOT = Path(__file__).resolve().parents[1]


def city_like(n: int, seed: int = 0) -> np.ndarray:
    """Uniform background over Philadelphia, tight clusters and duplicate addresses."""
    rng = np.random.default_rng(seed)
    lo, hi = EXTENT
    n_bg = int(n * 0.4)
    n_cl = int(n * 0.3)
    n_dup = n - n_bg - n_cl
    bg = rng.uniform(lo, hi, (n_bg, 2))
    centres = rng.uniform(lo, hi, (max(n // 2_000, 1), 2))
    cl = centres[rng.integers(0, len(centres), n_cl)] + rng.normal(0.0, 150.0, (n_cl, 2))
    addresses = rng.uniform(lo, hi, (max(n // 50, 1), 2)).round(1)
    dup = addresses[rng.integers(0, len(addresses), n_dup)]
    xy = np.concatenate([bg, cl, dup])
    return xy[rng.permutation(n)]


def dense(n: int, seed: int = 0) -> np.ndarray:
    """Worst case: every point in a 5,000 ft square (thousands of neighbours each)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 5_000.0, (n, 2)) + EXTENT[0]


CASES = {"city": city_like, "dense": dense}


def _rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_child(impl: str, case: str, n: int, out: Path) -> None:
    """Run one case in this (child) process and write its result files."""
    sys.path.insert(0, str(ROOT))
    xy = CASES[case](n)
    result: dict[str, float] = {}
    if impl == "ours":
        t0 = time.perf_counter()
        from clustering.dbscan import dbscan_core

        dbscan_core(np.zeros((3, 2)), eps=1.0, min_samples=2)
        result["compile_s"] = time.perf_counter() - t0
        result["base_rss_gib"] = _rss_gib()
        t0 = time.perf_counter()
        labels, core = dbscan_core(xy, eps=EPS_FT, min_samples=MIN_SAMPLES)
        result["seconds"] = time.perf_counter() - t0
    elif impl == "sklearn":
        from sklearn.cluster import DBSCAN

        result["base_rss_gib"] = _rss_gib()
        t0 = time.perf_counter()
        model = DBSCAN(eps=EPS_FT, min_samples=MIN_SAMPLES, n_jobs=-1).fit(xy)
        result["seconds"] = time.perf_counter() - t0
        labels = model.labels_
        core = np.zeros(n, dtype=bool)
        core[model.core_sample_indices_] = True
    elif impl == "postgis":
        labels, core, result["seconds"] = _postgis(xy)
        result["base_rss_gib"] = float("nan")
    else:
        raise SystemExit(f"unknown implementation {impl!r}")
    result["peak_rss_gib"] = _rss_gib() if impl != "postgis" else float("nan")
    result["clusters"] = int(labels.max()) + 1
    result["noise"] = int((labels == -1).sum())
    np.savez(out.with_suffix(".npz"), labels=labels, core=core)
    out.write_text(json.dumps(result))


def _postgis(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Load points into a temp table and time ST_ClusterDBSCAN (labels, no core mask)."""
    import psycopg

    url = os.environ["HOTSPOT311_BENCH_PG"]
    with psycopg.connect(url, application_name="hotspot311-bench") as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        conn.execute("CREATE TEMP TABLE pts (id int, x float8, y float8)")
        with conn.cursor().copy("COPY pts (id, x, y) FROM STDIN") as copy:
            for i, (x, y) in enumerate(xy.tolist()):
                copy.write_row((i, x, y))
        t0 = time.perf_counter()
        rows = conn.execute(
            "SELECT ST_ClusterDBSCAN(ST_MakePoint(x, y), eps => %s, minpoints => %s) "
            "OVER () FROM pts ORDER BY id", (EPS_FT, MIN_SAMPLES)).fetchall()
        seconds = time.perf_counter() - t0
    labels = np.array([-1 if r[0] is None else r[0] for r in rows], dtype=np.int64)
    return labels, labels >= 0, seconds


def _terminate_bench_backends() -> None:
    """Stop a runaway ST_ClusterDBSCAN (it ignores statement_timeout)."""
    url = os.environ.get("HOTSPOT311_BENCH_PG")
    if not url:
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE application_name = 'hotspot311-bench'")


def run_case(impl: str, case: str, n: int, workdir: Path, cap_s: float, cap_gib: float) -> dict:
    """Run one case in a capped subprocess; return its result or the failure."""
    out = workdir / f"{impl}-{case}-{n}.json"
    cap_bytes = int(cap_gib * 2**30)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap_bytes, cap_bytes))

    cmd = [sys.executable, __file__, "--child", impl, case, str(n), str(out)]
    try:
        proc = subprocess.run(
            cmd, preexec_fn=limit, timeout=cap_s, capture_output=True, text=True, check=False
        )
    except subprocess.TimeoutExpired:
        if impl == "postgis":
            _terminate_bench_backends()
        return {"status": "timeout"}
    if proc.returncode != 0 or not out.exists():
        err = proc.stderr
        oom = "MemoryError" in err or "Cannot allocate" in err or "bad_alloc" in err
        oom = oom or proc.returncode in (-9, -6)
        tail = err.strip().splitlines()[-1:] if err.strip() else [f"rc={proc.returncode}"]
        return {"status": "OOM" if oom else f"error: {tail[0][:60]}"}
    return {"status": "ok", **json.loads(out.read_text())}


def same_core_partition(a: Path, b: Path, *, core_known: bool = True) -> str:
    """'yes' if core masks and core partitions agree (labels too: 'yes, labels equal').

    Without a core mask for ``a`` (PostGIS), noise must agree and ``b``'s core points
    must be partitioned the same way.
    """
    x, y = np.load(a), np.load(b)
    if not core_known:
        if not np.array_equal(x["labels"] == -1, y["labels"] == -1):
            return "NO (noise differs)"
        la, lb = x["labels"][y["core"]], y["labels"][y["core"]]
        pairs = np.unique(np.stack([la, lb]), axis=1)
        same = len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))
        return "yes (noise, core partition)" if same else "NO (partitions differ)"
    if not np.array_equal(x["core"], y["core"]):
        return "NO (core masks differ)"
    la, lb = x["labels"][x["core"]], y["labels"][y["core"]]
    pairs = np.unique(np.stack([la, lb]), axis=1)
    bijective = len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))
    if not bijective:
        return "NO (partitions differ)"
    return "yes, labels equal" if np.array_equal(x["labels"], y["labels"]) else "yes"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--cases", default="city,dense")
    parser.add_argument("--impls", default="ours,sklearn")
    parser.add_argument("--cap-seconds", type=float, default=300.0)
    parser.add_argument("--cap-gib", type=float, default=12.0)
    parser.add_argument("--pg", help="PostgreSQL URL for the postgis implementation, or 'auto'")
    parser.add_argument("--child", nargs=4, metavar=("IMPL", "CASE", "N", "OUT"))
    args = parser.parse_args(argv)
    if args.child:
        impl, case, n, out = args.child
        run_child(impl, case, int(n), Path(out))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    impls = args.impls.split(",")
    server = None
    if "postgis" in impls:
        if args.pg in (None, "auto"):
            sys.path.insert(0, str(ROOT))
            from tests.postgis_server import start_server

            server = start_server()
            os.environ["HOTSPOT311_BENCH_PG"] = server.url()
        else:
            os.environ["HOTSPOT311_BENCH_PG"] = args.pg
    try:
        _table(args, sizes, impls)
    finally:
        if server is not None:
            server.stop()


def _table(args: argparse.Namespace, sizes: list[int], impls: list[str]) -> None:
    print(
        f"eps={EPS_FT} ft, min_samples={MIN_SAMPLES}, caps {args.cap_seconds:.0f} s / "
        f"{args.cap_gib:g} GiB, {os.cpu_count()} CPUs"
    )
    header = (
        f"{'case':6} {'n':>9} {'impl':8} {'status':8} {'time s':>8} {'compile s':>9} "
        f"{'peak GiB':>8} {'base GiB':>8} {'x faster':>8} {'mem ratio':>9} "
        f"{'clusters':>8}  same as sklearn"
    )
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for case in args.cases.split(","):
            for n in sizes:
                res = {
                    impl: run_case(impl, case, n, work, args.cap_seconds, args.cap_gib)
                    for impl in impls
                }
                sk = res.get("sklearn", {})
                for impl, r in res.items():
                    ok = r["status"] == "ok"
                    cols = [
                        f"{case:6} {n:>9} {impl:8} {r['status'][:8]:8}",
                        f"{r['seconds']:8.2f}" if ok else f"{'-':>8}",
                        f"{r['compile_s']:9.2f}" if ok and "compile_s" in r else f"{'-':>9}",
                        f"{r['peak_rss_gib']:8.2f}" if ok else f"{'-':>8}",
                        f"{r['base_rss_gib']:8.2f}" if ok else f"{'-':>8}",
                    ]
                    both = ok and impl != "sklearn" and sk.get("status") == "ok"
                    if both:
                        cols.append(f"{sk['seconds'] / r['seconds']:8.1f}")
                        cols.append(f"{sk['peak_rss_gib'] / r['peak_rss_gib']:9.1f}"
                                    if impl != "postgis" else f"{'-':>9}")
                    else:
                        cols += [f"{'-':>8}", f"{'-':>9}"]
                    cols.append(f"{r['clusters']:8d}" if ok else f"{'-':>8}")
                    if both:
                        cols.append(
                            " "
                            + same_core_partition(
                                work / f"{impl}-{case}-{n}.npz", work / f"sklearn-{case}-{n}.npz",
                                core_known=impl != "postgis",
                            )
                        )
                    print(" ".join(cols), flush=True)


if __name__ == "__main__":
    main()
