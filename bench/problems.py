"""Benchmark clustering.problems against a brute-force radius query.

City-like requests (``bench.common.city_requests``, real Philadelphia intersections) with
planted repeat calls: a share of the requests get 1–8 more calls within 15 m and 10
days. Problems use the catalogue's per-service rules (30 m / 30 days for lights, 50 m /
14 days for dumping, …).

- ``ours``: :func:`clustering.problems.assign_problems` in one pass; then an incremental
  ingest of 1,000 new requests on top (:func:`geo.store.problem_ids.update_frame`, the
  step both stores run inside a write: find the context, recompute it only).
- ``sklearn``: per service, ``KDTree.query_radius`` over every request, the time and
  closing conditions on the returned pairs in numpy, and a union-find in numpy (pointer
  jumping). For the 1,000 new requests it has no incremental form: it recomputes all.

Each comparison runs twice: with the catalogue's distances and with every distance
times 4 (``--scales``), which multiplies the neighbours of each request: the brute force
holds them all, ours holds none. Each implementation runs in its own subprocess, so its
peak RSS after the pass (over the RSS with the data loaded) is its own; a time and
memory cap turn a blow-up into ``timeout`` / ``OOM``.
Both must give the same partition; the run checks it.

Usage::

    python bench/problems.py --size 1000000
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
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_data(n: int, path: Path, *, seed: int = 16) -> None:
    """``n`` requests (``n`` minus the planted repeats from the generator) to Parquet."""
    from pyproj import Transformer

    from bench.common import city_requests
    from layers.profile import load_profile

    rng = np.random.default_rng(seed)
    n_base = int(n * 0.85)
    base = city_requests(n_base, seed=seed)
    profile = load_profile("philadelphia")
    x, y = Transformer.from_crs("EPSG:4326", profile.crs, always_xy=True).transform(
        base["lon"].to_numpy(), base["lat"].to_numpy())
    frame = pd.DataFrame({
        "service_request_id": base["service_request_id"].astype(str),
        "service_name": base["service_name"].astype(str),
        "x": x, "y": y,
        "requested_datetime": pd.to_datetime(base["requested_datetime"], utc=True),
        "closed_datetime": pd.to_datetime(base["closed_datetime"], utc=True),
    })
    # planted repeat calls: 1-8 more calls about a request, within 15 m and 10 days
    n_more = n + 1000 - n_base
    parent = rng.integers(0, n_base, n_more)
    angle, dist = rng.uniform(0, 2 * np.pi, n_more), rng.uniform(0, 15 / 0.3048, n_more)
    more = frame.iloc[parent].reset_index(drop=True).copy()
    more["service_request_id"] = [f"REP-{i:08d}" for i in range(n_more)]
    more["x"] += dist * np.cos(angle)
    more["y"] += dist * np.sin(angle)
    more["requested_datetime"] += pd.to_timedelta(rng.uniform(0, 10, n_more), unit="D")
    more["closed_datetime"] = more["closed_datetime"].where(
        more["closed_datetime"] > more["requested_datetime"], pd.NaT)
    frame = pd.concat([frame, more], ignore_index=True)
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    frame.to_parquet(path)


def _rss_gib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def city_rules(scale: float) -> Any:
    """The catalogue's rules, every distance times ``scale`` (more neighbours)."""
    from dataclasses import replace

    from clustering.problems import ProblemRule, ProblemRules
    from layers.profile import load_profile

    rules = ProblemRules.for_city(load_profile("philadelphia"))
    if scale == 1:
        return rules

    def bigger(r: ProblemRule) -> ProblemRule:
        return ProblemRule(r.distance_m * scale, r.gap_days)

    return replace(rules, default=bigger(rules.default),
                   rules={k: bigger(v) for k, v in rules.rules.items()})


def run_ours(path: Path, scale: float) -> dict[str, object]:
    from clustering.problems import ProblemAssigner, assign_problems
    from geo.store.problem_ids import update_frame

    frame = pd.read_parquet(path)
    stored, new = frame.iloc[:-1000].reset_index(drop=True), frame.iloc[-1000:]
    rules = city_rules(scale)
    small = stored.iloc[:2000].assign(problem_id=None)  # compile / load numba
    update_frame(small, np.arange(2000) >= 1900, pd.Series([], dtype=object),
                 ProblemAssigner(rules))
    before = _rss_gib()
    start = time.perf_counter()
    ids = assign_problems(stored, rules)
    one_pass = time.perf_counter() - start
    peak = _peak_gib()
    stored = stored.assign(problem_id=ids.to_numpy())
    merged = pd.concat([stored, new.assign(problem_id=None)], ignore_index=True)
    changed = np.arange(len(merged)) >= len(stored)
    start = time.perf_counter()
    updated = update_frame(merged, changed, pd.Series([], dtype=object),
                           ProblemAssigner(rules))
    incremental = time.perf_counter() - start
    full = assign_problems(merged, rules)
    same = bool((updated["problem_id"].to_numpy() == full.to_numpy()).all())
    return {"one_pass": one_pass, "incremental": incremental, "problems": int(ids.nunique()),
            "incremental_equals_full": same, "rss_before": before,
            "peak": peak, "ids_file": _save(ids)}


def _save(ids: pd.Series) -> str:
    out = Path(tempfile.mkdtemp()) / "ids.parquet"
    pd.DataFrame({"problem_id": ids.astype(str).to_numpy()}).to_parquet(out)
    return str(out)


def _brute(frame: pd.DataFrame, rules) -> np.ndarray:
    from sklearn.neighbors import KDTree

    n = len(frame)
    parent = np.arange(n)
    service = frame["service_name"].to_numpy()
    t = pd.DatetimeIndex(frame["requested_datetime"]).as_unit("ns").asi8
    c = pd.DatetimeIndex(frame["closed_datetime"]).as_unit("ns").asi8
    nat = np.iinfo(np.int64).min
    for name in np.unique(service):
        rows = np.flatnonzero(service == name)
        rule = rules.rule_of(rules.key_of(str(name)))
        d = rule.distance_m / rules.crs_unit_m
        gap = round(rule.gap_days * 86_400e9)
        xy = frame[["x", "y"]].to_numpy()[rows]
        near = KDTree(xy).query_radius(xy, r=d)
        counts = np.fromiter((len(a) for a in near), dtype=np.int64, count=len(near))
        r = np.repeat(np.arange(len(rows)), counts)
        s = np.concatenate(near) if len(near) else np.empty(0, dtype=np.int64)
        del near
        ri, si = rows[r], rows[s]
        dt = t[ri] - t[si]
        keep = (ri != si) & (dt >= 0) & (dt <= gap) & ((c[si] == nat) | (t[ri] - c[si] <= gap))
        a, b = ri[keep], si[keep]
        while len(a):  # union-find by pointer jumping
            ra, rb = parent[a], parent[b]
            lo, hi = np.minimum(ra, rb), np.maximum(ra, rb)
            moved = lo != hi
            if not moved.any():
                break
            np.minimum.at(parent, hi[moved], lo[moved])
            while True:
                nxt = parent[parent]
                if (nxt == parent).all():
                    break
                parent = nxt
    while True:
        nxt = parent[parent]
        if (nxt == parent).all():
            return parent
        parent = nxt


def run_sklearn(path: Path, scale: float) -> dict[str, object]:
    frame = pd.read_parquet(path)
    stored = frame.iloc[:-1000].reset_index(drop=True)
    rules = city_rules(scale)
    _brute(stored.iloc[:2000], rules)  # imports, first calls
    before = _rss_gib()
    start = time.perf_counter()
    labels = _brute(stored, rules)
    one_pass = time.perf_counter() - start
    peak = _peak_gib()
    start = time.perf_counter()
    _brute(frame, rules)
    again = time.perf_counter() - start
    out = Path(tempfile.mkdtemp()) / "labels.parquet"
    pd.DataFrame({"label": labels}).to_parquet(out)
    return {"one_pass": one_pass, "incremental": again, "problems": len(np.unique(labels)),
            "rss_before": before, "peak": peak, "ids_file": str(out)}


def child(impl: str, path: str, scale: str) -> None:
    run = run_ours if impl == "ours" else run_sklearn
    result = run(Path(path), float(scale))
    print("RESULT " + json.dumps(result))


def spawn(impl: str, path: Path, scale: float, cap_seconds: float,
          cap_gib: float) -> dict[str, object]:
    def limit() -> None:
        cap = int(cap_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    try:
        proc = subprocess.run([sys.executable, __file__, "--child", impl, str(path), str(scale)],
                              capture_output=True, text=True, timeout=cap_seconds,
                              preexec_fn=limit, check=False,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    except subprocess.TimeoutExpired:
        return {"status": "timeout"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return {"status": "ok", **json.loads(line[7:])}
    tail = proc.stderr.strip().splitlines()[-1:] if proc.stderr.strip() else ["?"]
    return {"status": "OOM" if "MemoryError" in proc.stderr else "failed", "error": tail[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--cap-seconds", type=float, default=900)
    parser.add_argument("--cap-gib", type=float, default=8)
    parser.add_argument("--scales", default="1,4", help="Distances times these factors "
                        "(more neighbours per request), one comparison each.")
    parser.add_argument("--child", nargs=3, metavar=("IMPL", "PATH", "SCALE"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "requests.parquet"
        start = time.perf_counter()
        make_data(args.size, path)
        print(f"{args.size:,} city-like requests with planted repeat calls (+1,000 new): "
              f"{time.perf_counter() - start:.1f} s to make", flush=True)
        for scale in (float(v) for v in args.scales.split(",")):
            print(f"\n== catalogue distances x{scale:g} ==", flush=True)
            ours = spawn("ours", path, scale, args.cap_seconds, args.cap_gib)
            brute = spawn("sklearn", path, scale, args.cap_seconds, args.cap_gib)
            report(ours, brute)


def report(ours: dict[str, object], brute: dict[str, object]) -> None:
    """Print one comparison."""
    for name, r in (("ours", ours), ("sklearn KDTree + numpy union-find", brute)):
        if r["status"] != "ok":
            print(f"{name}: {r['status']} {r.get('error', '')}")
            continue
        print(f"{name}: one pass {r['one_pass']:.2f} s, 1,000 new on top "
              f"{r['incremental']:.3f} s, {r['problems']:,} problems, peak RSS after the "
              f"pass {r['peak']:.2f} GiB ({float(r['peak']) - float(r['rss_before']):.2f} GiB "
              "over the data)")
    if ours["status"] == "ok":
        print(f"ours: incremental equals recomputation: {ours['incremental_equals_full']}")
    if ours["status"] == "ok" and brute["status"] == "ok":
        a = pd.read_parquet(str(ours["ids_file"]))["problem_id"].to_numpy()
        b = pd.read_parquet(str(brute["ids_file"]))["label"].to_numpy()
        pairs = pd.DataFrame({"a": a, "b": b}).drop_duplicates()
        same = pairs["a"].is_unique and pairs["b"].is_unique
        print(f"same partition: {same}")
        print(f"ratio one pass (sklearn / ours):         "
              f"{float(brute['one_pass']) / float(ours['one_pass']):.1f}x")
        print(f"ratio 1,000 new (sklearn recompute / ours incremental): "
              f"{float(brute['incremental']) / float(ours['incremental']):.1f}x")
        ours_mem = float(ours["peak"]) - float(ours["rss_before"])
        brute_mem = float(brute["peak"]) - float(brute["rss_before"])
        print(f"memory over the data (sklearn / ours):  {brute_mem / max(ours_mem, 1e-3):.1f}x")


if __name__ == "__main__":
    main()
