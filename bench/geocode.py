"""Geocoding speed: addresses per second on 100k seeded addresses from real ranges.

Run: ``PYTHONPATH=. python bench/geocode.py [--n 100000] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from geo.geocode.geocoder import Geocoder
from geo.geocode.streets import read_city_streets

ROOT = Path(__file__).resolve().parents[1]
STREETS = ROOT / "data" / "philadelphia" / "streets"


def _misspell(name: str, rng: np.random.Generator) -> str:
    if len(name) < 6 or name[0].isdigit():
        return name
    i = int(rng.integers(1, len(name) - 1))
    return name[:i] + name[i + 1:] if rng.random() < 0.5 else name[:i] + name[i] * 2 + name[i:]


def make_addresses(n: int, *, seed: int = 0) -> pd.Series:
    """Addresses drawn from real ranges: 75% clean, 10% misspelled, 15% intersections."""
    rng = np.random.default_rng(seed)
    ranges, nodes, _ = read_city_streets(STREETS)
    ranges = ranges[(ranges["l_to"] > ranges["l_from"]) & (ranges["l_from"] > 0)]
    rows = ranges.iloc[rng.integers(0, len(ranges), n)]
    num = rows["l_from"].to_numpy() + 2 * rng.integers(0, 50, n)
    num = np.minimum(num, rows["l_to"].to_numpy())
    streets = (rows["predir"] + " " + rows["name"] + " " + rows["suffix"]).str.strip()
    out = [f"{a} {s}" for a, s in zip(num, streets, strict=True)]
    names = dict(zip(ranges["street_code"], rows["name"], strict=False))
    full = ranges.drop_duplicates("street_code").set_index("street_code")
    label = (full["predir"] + " " + full["name"] + " " + full["suffix"]).str.strip().to_dict()
    pick = nodes.iloc[rng.integers(0, len(nodes), n)]
    kinds = rng.random(n)
    for i in range(n):
        if kinds[i] < 0.15:
            a, b = label.get(pick["code_1"].iat[i]), label.get(pick["code_2"].iat[i])
            if a and b:
                out[i] = f"{a} and {b}"
        elif kinds[i] < 0.25:
            nm = rows["name"].iat[i]
            out[i] = out[i].replace(nm, _misspell(nm, rng))
    del names
    return pd.Series(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--loop", type=int, default=3_000, help="rows for the per-row loop")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3,
                    help="timed runs (each from a cleared cache); the best is reported, since "
                    "a shared machine adds noise")
    args = ap.parse_args()
    g = Geocoder.from_city_streets(STREETS, cache_dir=ROOT / ".cache" / "geocoder")
    addrs = make_addresses(args.n, seed=args.seed)
    print(f"{args.n:,} addresses, {addrs.nunique():,} distinct")
    def best_of(series: pd.Series) -> tuple[float, pd.DataFrame]:
        times, res = [], None
        for _ in range(max(1, args.repeat)):
            g.clear_cache()  # parses, street names, fuzzy lookups and matches
            t0 = time.perf_counter()
            res = g.geocode(series)
            times.append(time.perf_counter() - t0)
        assert res is not None
        return min(times), res

    dt, out = best_of(addrs)
    rate = args.n / dt
    print(f"vectorized, cold cache: {rate:,.0f} addresses/s ({dt:.2f} s); matched "
          f"{(out['match_type'] != 'unmatched').mean():.1%}")
    print(out["match_type"].value_counts().to_string())
    distinct = pd.Series(addrs.unique())
    dd, _ = best_of(distinct)
    print(f"vectorized, distinct addresses only: {len(distinct) / dd:,.0f} addresses/s")
    sample = addrs.iloc[: args.loop]
    t = time.perf_counter()
    for text in sample:
        g.geocode_one(text)
    dl = time.perf_counter() - t
    loop_rate = len(sample) / dl
    print(f"per-row loop (geocode_one): {loop_rate:,.0f} addresses/s on {len(sample):,} rows")
    print(f"ratio vectorized / loop: {rate / loop_rate:.1f}x "
          f"(distinct only: {len(distinct) / dd / loop_rate:.1f}x)")


if __name__ == "__main__":
    main()
