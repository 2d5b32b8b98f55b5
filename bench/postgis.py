"""Benchmark the PostGIS store: bulk load and joins, as ratios within one run.

Usage::

    python bench/postgis.py [--rows 1000000] [--url postgresql://…]

Without ``--url`` a throwaway server is started with the test helper
(:mod:`tests.postgis_server`). Steps, on ``--rows`` generated requests (seeded, inside
Philadelphia's bounding box):

1. load: CSV → validated batch (``geo.ingest.prepare``, timed apart) → ``write_batch``
   into a store without layers (COPY + upsert), against psycopg ``executemany`` of the
   same rows (run on ``--executemany-rows`` and extrapolated);
2. join to all seven Philadelphia layers: ``rejoin()`` (ST_Covers on subdivided pieces,
   lowest-code rule) against a hand-written indexed ``ST_Covers`` query on the whole
   polygons, and against the embedded store's ``rejoin()``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd
import psycopg

from geo.embedded import EmbeddedStore
from geo.ingest import prepare
from geo.postgis import PostGISStore
from geo.postgis_load import REQUEST_COLUMNS, column_values
from layers.profile import load_profile
from layers.registry import load_layer


def generate_csv(path: Path, rows: int, seed: int = 311) -> Path:
    """Write ``rows`` canonical requests inside Philadelphia's bounding box."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2023-01-01 00:00")
    req = start + pd.to_timedelta(rng.integers(0, 365 * 86400, rows), unit="s")
    frame = pd.DataFrame(
        {
            "service_request_id": np.char.add("B", np.arange(rows).astype(str)),
            "status": rng.choice(["open", "closed"], rows),
            "service_name": rng.choice(
                ["Graffiti Removal", "Pothole Repair", "Illegal Dumping", "Street Light Outage"],
                rows,
            ),
            "agency_responsible": rng.choice(["Streets", "CLIP", "Parks & Recreation"], rows),
            "description": rng.choice(
                ["", "near corner", "large pile of tires", "repeat call"], rows
            ),
            "requested_datetime": req.strftime("%Y-%m-%d %H:%M:%S"),
            "updated_datetime": (
                req + pd.to_timedelta(rng.integers(0, 30 * 86400, rows), unit="s")
            ).strftime("%Y-%m-%d %H:%M:%S"),
            "address": np.char.add(rng.integers(1, 9000, rows).astype(str), " MARKET ST"),
            "zipcode": rng.choice(["19103", "19104", "19122", "19147"], rows),
            "lat": rng.uniform(39.87, 40.14, rows).round(7),
            "lon": rng.uniform(-75.28, -74.96, rows).round(7),
        }
    )
    frame.to_csv(path, index=False)
    return path


def executemany_rate(conn: psycopg.Connection, batch: pd.DataFrame, n: int, srid: int) -> float:
    """Rows per second of psycopg ``executemany`` inserting the first ``n`` rows."""
    part = batch.iloc[:n]
    data = list(zip(*[column_values(part, c) for c in REQUEST_COLUMNS], strict=True))
    conn.execute("CREATE TEMP TABLE em (LIKE requests INCLUDING DEFAULTS)")
    cols = ", ".join(REQUEST_COLUMNS)
    times = {"requested_datetime", "updated_datetime", "expected_datetime", "closed_datetime"}
    exprs = ", ".join(
        "timestamptz 'epoch' + %s * interval '1 microsecond'"
        if c in times
        else "%s::jsonb"
        if c == "extra"
        else "%s"
        for c in REQUEST_COLUMNS
    )
    stmt = (
        f"INSERT INTO em ({cols}, geom_city)"  # noqa: S608 - column names from REQUEST_COLUMNS
        f" VALUES ({exprs}, ST_SetSRID(ST_MakePoint(%s, %s), %s))"
    )
    rows = [(*r, r[REQUEST_COLUMNS.index("x")], r[REQUEST_COLUMNS.index("y")], srid) for r in data]
    t = time.perf_counter()
    with conn.cursor() as cur:
        cur.executemany(stmt.encode(), rows)
    conn.commit()
    return n / (time.perf_counter() - t)


def handwritten_join(conn: psycopg.Connection) -> float:
    """Seconds for the plain indexed ST_Covers join of every request to every active layer."""
    conn.execute("CREATE TEMP TABLE hw (service_request_id text, layer_key text, code text)")
    t = time.perf_counter()
    conn.execute(
        "INSERT INTO hw SELECT r.service_request_id, a.layer_key, a.code"
        " FROM requests r JOIN areas a ON ST_Covers(a.geom, r.geom_city)"
        " JOIN generations g ON g.layer_key = a.layer_key AND g.generation = a.generation"
        " AND g.active"
    )
    conn.commit()
    return time.perf_counter() - t


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--executemany-rows", type=int, default=100_000)
    parser.add_argument("--url", help="a migrated (or empty) database; default: start a server")
    args = parser.parse_args()
    profile = load_profile("philadelphia")
    server = None
    url = args.url
    if url is None:
        from tests.postgis_server import start_server

        server = start_server()
        url = server.clone("bench")
    work = Path(tempfile.mkdtemp(prefix="bench-postgis-"))
    try:
        t = time.perf_counter()
        csv = generate_csv(work / "requests.csv", args.rows)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - t:.1f} s")
        store = PostGISStore.open(url, profile)
        t = time.perf_counter()
        batch, info = prepare(csv, store)
        prep = time.perf_counter() - t
        n = len(batch.requests)
        print(
            f"read+validate (shared by both stores): {prep:.1f} s ({args.rows / prep:,.0f} rows/s)"
        )

        t = time.perf_counter()
        result = store.write_batch(batch, info=info)
        load = time.perf_counter() - t
        nq = len(batch.quarantine)
        print(
            f"PostGIS write_batch (COPY + upsert, no layers): {n:,} requests + {nq:,} quarantine"
            f" rows in {load:.2f} s = {n / load:,.0f} requests/s, {(n + nq) / load:,.0f} rows/s"
            f" ({result.inserted:,} inserted)"
        )
        print(f"ingest end to end (read+validate+write): {args.rows / (prep + load):,.0f} rows/s")
        with psycopg.connect(url) as conn:
            m = min(args.executemany_rows, n)
            rate = executemany_rate(conn, batch.requests, m, store.srid)
        print(
            f"psycopg executemany: {rate:,.0f} rows/s (measured on {m:,} rows, extrapolated); "
            f"COPY path is {n / load / rate:.1f}x faster"
        )

        layers = {s.key: load_layer(s, crs=profile.crs) for s in profile.layers}
        for spec in profile.layers:
            store.add_generation(spec, layers[spec.key])  # each re-joins its own layer
        t = time.perf_counter()
        outside = store.rejoin()
        pg_join = time.perf_counter() - t
        print(
            f"PostGIS rejoin, 7 layers: {pg_join:.2f} s ({n / pg_join:,.0f} requests/s); "
            f"outside: {outside}"
        )
        with psycopg.connect(url) as conn:
            conn.execute("ANALYZE")
            conn.commit()
            hw = handwritten_join(conn)
        print(f"hand-written indexed ST_Covers join: {hw:.2f} s")
        t = time.perf_counter()
        frame = store.requests()
        read = time.perf_counter() - t
        print(
            f"PostGIS requests() read: {len(frame):,} rows x {frame.shape[1]} columns"
            f" in {read:.2f} s"
        )

        emb = EmbeddedStore(work / "embedded", profile)
        for spec in profile.layers:
            emb.add_generation(spec, layers[spec.key])
        t = time.perf_counter()
        emb.write_batch(batch, info=info)
        emb_load = time.perf_counter() - t
        t = time.perf_counter()
        emb.rejoin()
        emb_join = time.perf_counter() - t
        print(
            f"embedded write_batch (join + GeoParquet): {emb_load:.2f} s;"
            f" embedded rejoin: {emb_join:.2f} s"
        )
        print("ratios (>1 means the PostGIS store is faster):")
        print(f"  load   PostGIS COPY / executemany      = {n / load / rate:.2f}")
        print(f"  join   hand-written / PostGIS rejoin   = {hw / pg_join:.2f}")
        print(f"  join   embedded rejoin / PostGIS rejoin = {emb_join / pg_join:.2f}")
        store.close()
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
