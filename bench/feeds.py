"""Benchmark: a feed backfill and an incremental sync, against ingesting a file, in one run.

    python bench/feeds.py [--n 1000000] [--page-size 50000] [--batch-rows 250000]
                          [--changed 1000] [--postgis [--postgis-only]] [--repeat 3]
                          [--problems]

1. The same n synthetic requests (real Philadelphia intersections, NYC 311 column
   names) are ingested from a CSV file into an empty embedded store (the floor), and
   synced from a local Socrata-protocol server over real HTTP (keyset pages of
   ``--page-size``, batches of ``--batch-rows``) into another: rows/s of each, and their
   ratio (goal: backfill >= 0.5 x file).
2. ``--changed`` rows change on the server; the time of the sync that brings them in,
   on top of the n stored (goal: < 2 s), on the embedded store and (``--postgis``) on a
   throwaway PostGIS server (``tests.postgis_server``), where the backfill is timed too.
   ``--repeat`` such incremental syncs are run one after another (other rows each time)
   and each is printed; the figure is their median. ``--postgis-only`` skips the
   embedded store.

With ``--problems`` every write (the file floor, the backfill, the incremental sync) keeps
``problem_id`` current with the city's problem rule, as the ``ingest`` and ``sync``
commands do; without it the writes leave ``problem_id`` empty (the library default).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

from bench.common import city_requests, peak_rss_gib, write_csv
from geo.feeds.config import make_config
from geo.feeds.engine import sync
from geo.ingest.mapping import ColumnMapping
from geo.ingest.pipeline import ingest
from geo.store.base import Store
from geo.store.embedded import EmbeddedStore
from layers.profile import load_profile
from tests.geo.feeds.servers import Table, serve

NYC = {"service_request_id": "unique_key", "requested_datetime": "created_date",
       "closed_datetime": "closed_date", "service_name": "complaint_type",
       "agency_responsible": "agency", "description": "descriptor", "status": "status",
       "address": "incident_address", "lat": "latitude", "lon": "longitude",
       "expected_datetime": "due_date", "source": "open_data_channel_type"}


class FrameDataset:
    """A Socrata dataset held as a frame, sorted by (``:updated_at``, ``:id``)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.sort()

    def sort(self) -> None:
        keys = (self.frame[":updated_at"] + "|" + self.frame[":id"]).to_numpy(dtype=str)
        order = np.argsort(keys, kind="stable")
        self.frame = self.frame.iloc[order].reset_index(drop=True)
        self.keys = keys[order]

    def route(self, handler: Any, path: str, q: dict[str, str]) -> tuple[int, dict, bytes]:
        where = q.get("$where", "")
        if where.startswith(":updated_at > '"):
            t = where.split("'")[1]
            rid = where.rsplit(":id > '", 1)[1][:-2].replace("''", "'")
            start = int(np.searchsorted(self.keys, f"{t}|{rid}", side="right"))
        elif where.startswith(":updated_at >= '"):
            start = int(np.searchsorted(self.keys, where.split("'")[1], side="left"))
        else:
            start = 0
        limit = int(q.get("$limit", "1000"))
        page = self.frame.iloc[start:start + limit]
        body = page.to_json(orient="records").encode("utf-8")
        return 200, {"X-SODA2-Fields": json.dumps(list(self.frame.columns))}, body


def socrata_frame(n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The canonical requests and the same rows as a Socrata dataset (NYC names)."""
    canon = city_requests(n, seed=13)
    soda = canon.drop(columns=["synthetic"]).rename(columns=NYC)
    updated = pd.to_datetime(canon["updated_datetime"], utc=True, format="ISO8601")
    soda[":updated_at"] = updated.dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    soda[":id"] = [f"row-{i:09x}" for i in np.random.default_rng(1).permutation(n)]
    soda = soda.drop(columns=["updated_datetime"])
    soda["latitude"] = soda["latitude"].map(repr)
    soda["longitude"] = soda["longitude"].map(repr)
    return canon, soda


def add_source(store: Store, url: str, page_size: int) -> None:
    store.save_source(make_config(
        "nyc", kind="socrata", url=url, dataset="erm2-nwe9", page_size=page_size,
        rate_limit=1000, maps=[f"{k}={v}" for k, v in NYC.items()]))


def change_rows(dataset: FrameDataset, count: int, *, seed: int = 7) -> None:
    """Give ``count`` rows a new status note and a later ``:updated_at``."""
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(dataset.frame), size=count, replace=False)
    later = pd.Timestamp(dataset.frame[":updated_at"].max()).floor("s") + pd.Timedelta(days=1)
    frame = dataset.frame.copy()
    frame.loc[picked, "status"] = "Open"
    frame.loc[picked, ":updated_at"] = [
        (later + pd.Timedelta(seconds=int(i))).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        for i in range(count)]
    dataset.frame = frame
    dataset.sort()


def timed_sync(store: Store, label: str, **options: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    report = sync(store, "nyc", client_options={"timeout": 120}, problems=PROBLEMS[0],
                  **options)
    seconds = time.perf_counter() - start
    print(f"  {label:<52} {seconds:8.2f} s  ({report.rows:,} rows, {report.pages} pages)",
          flush=True)
    return seconds, report


#: The problem rule handed to every write (``--problems``), else ``None``.
PROBLEMS: list[Any] = [None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--page-size", type=int, default=50_000)
    parser.add_argument("--batch-rows", type=int, default=250_000)
    parser.add_argument("--changed", type=int, default=1_000)
    parser.add_argument("--postgis", action="store_true")
    parser.add_argument("--postgis-only", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--problems", action="store_true")
    args = parser.parse_args()
    args.postgis |= args.postgis_only
    profile = load_profile("philadelphia")
    if args.problems:
        from clustering.problems import ProblemAssigner, ProblemRules

        PROBLEMS[0] = ProblemAssigner(ProblemRules.for_city(profile))
    n = args.n
    with tempfile.TemporaryDirectory(prefix="bench-feeds-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        canon, soda = socrata_frame(n)
        csv = write_csv(soda.drop(columns=[":id", ":updated_at"]).assign(
            updated_datetime=canon["updated_datetime"]), work / "requests.csv")
        print(f"generated {n:,} rows in {time.perf_counter() - t:.1f} s", flush=True)
        dataset = FrameDataset(soda)
        del canon, soda
        mapping = ColumnMapping.from_pairs([f"{k}={v}" for k, v in NYC.items()])
        pg: dict[str, float] = {}

        with serve(dataset.route, Table([])) as server:
            if args.postgis_only:
                pg = postgis_part(dataset, server.url, csv, mapping, profile, args)
        if args.postgis_only:
            print("results (one run; the machine is shared with other work):")
            for label, value in pg.items():
                print(f"  {label}: {value:.2f}")
            return
        print("embedded store:")
        floor_store = EmbeddedStore(work / "from-file", profile)
        floor_store.ensure_profile_layers()
        start = time.perf_counter()
        ingest(csv, floor_store, mapping=mapping, problems=PROBLEMS[0])
        floor = time.perf_counter() - start
        print(f"  {'floor: ingest the same rows from a CSV file':<52} {floor:8.2f} s", flush=True)
        with serve(dataset.route, Table([])) as server:
            store = EmbeddedStore(work / "from-feed", profile)
            store.ensure_profile_layers()
            add_source(store, server.url, args.page_size)
            backfill, report = timed_sync(store, "backfill from the Socrata-protocol server",
                                          batch_rows=args.batch_rows)
            assert report.rows == n, report
            change_rows(dataset, args.changed)
            incr, report = timed_sync(store, f"incremental: {args.changed:,} changed rows")
            assert report.rows == args.changed
            print(f"  peak memory so far: {peak_rss_gib():.1f} GiB")
            if args.postgis:
                pg = postgis_part(dataset, server.url, csv, mapping, profile, args)
    print("results (one run; the machine is shared with other work):")
    print(f"  backfill rows/s {n / backfill:,.0f}   file ingest rows/s {n / floor:,.0f}   "
          f"ratio backfill/file = {floor / backfill:.2f}  (goal >= 0.5)")
    print(f"  incremental sync of {args.changed:,} on {n:,} stored, embedded: {incr:.2f} s "
          f"(goal < 2 s){' with the problem rule' if args.problems else ''}")
    for label, value in pg.items():
        print(f"  {label}: {value:.2f}")


def postgis_part(dataset: FrameDataset, url: str, csv: Path, mapping: ColumnMapping,
                 profile: Any, args: argparse.Namespace) -> dict[str, float]:
    """The backfill, its floor and the incremental sync on a throwaway PostGIS server."""
    from geo.store.postgis import PostGISStore
    from tests.postgis_server import start_server

    server = start_server()
    out: dict[str, float] = {}
    try:
        print("PostGIS store:")
        floor_store = PostGISStore.open(server.clone("feeds_floor"), profile)
        floor_store.ensure_profile_layers()
        start = time.perf_counter()
        ingest(csv, floor_store, mapping=mapping, problems=PROBLEMS[0])
        floor = time.perf_counter() - start
        print(f"  {'floor: ingest the same rows from a CSV file':<52} {floor:8.2f} s", flush=True)
        floor_store.close()
        store = PostGISStore.open(server.clone("feeds_sync"), profile)
        store.ensure_profile_layers()
        add_source(store, url, args.page_size)
        backfill, _ = timed_sync(store, "backfill from the Socrata-protocol server",
                                 batch_rows=args.batch_rows)
        times = []
        for k in range(max(args.repeat, 1)):
            change_rows(dataset, args.changed, seed=8 + k)
            seconds, report = timed_sync(store, f"incremental #{k + 1}: {args.changed:,} "
                                         "changed rows")
            assert report.rows == args.changed
            times.append(seconds)
        incr = float(np.median(times))
        store.close()
        out["PostGIS ratio backfill/file (goal >= 0.5)"] = floor / backfill
        out[f"PostGIS incremental sync of {args.changed:,} on {args.n:,} stored, median of "
            f"{len(times)} (s, goal < 2)"] = incr
    finally:
        server.stop()
    return out


if __name__ == "__main__":
    main()
