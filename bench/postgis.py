"""Benchmark the PostGIS store: bulk load and joins, as ratios within one run.

Usage::

    python bench/postgis.py [--rows 1000000] [--url postgresql://…]

Without ``--url`` a throwaway server is started with the test helper
(:mod:`tests.postgis_server`), which runs with ``fsync``, ``synchronous_commit`` and
``full_page_writes`` off; ``--url`` measures a server of the deployment's own settings.
Data: ``--rows`` synthetic requests at real Philadelphia
intersections (:func:`bench.common.city_requests`, seeded), written as a CSV. Steps:

1. floor: the raw CSV copied by PostgreSQL into an UNLOGGED table of text columns with
   no index (no validation, no types, no WAL) — what no loader can beat on this machine;
2. load: CSV → validated batch (``geo.ingest.pipeline.prepare``, timed apart, shared with the
   embedded store) → ``write_batch`` into a store holding the seven layers (binary COPY,
   upsert, index builds, area codes located in Python and COPYed), beside the floors
   (pyarrow ``read_csv``, the raw COPY, locate alone); the store's binary COPY against
   psycopg ``executemany`` of the same ``--executemany-rows`` rows into the same
   unindexed temporary table;
   then the same file again (all unchanged);
3. join to all seven Philadelphia layers: ``rejoin()`` (the points read back and located
   in Python by the embedded store's index and rule, a fresh partition per layer), a new
   generation of each layer (``add_generation``, everything included: areas and pieces
   stored, index built and kept, every request located the same way) and PostgreSQL's
   join, the fall-back without ADBC (``join_requests``: subdivided pieces, lowest-code
   rule, a fresh partition per layer; rolled back) against two hand-written
   indexed ``ST_Covers`` queries on the whole polygons — the bare join (every match
   into an unindexed temporary table: no tie rule, no key, no WAL) and one giving the
   store's result (lowest code per request and layer into a keyed temporary table) —
   and against the embedded store's ``rejoin()``;
4. read back: ``requests()`` (binary COPY decoded into Arrow by
   :mod:`geo.store.pgcopy_out`) against PostgreSQL's binary COPY of the table out,
   drained by psycopg without parsing, and against the same read through ADBC's
   PostgreSQL driver (the fall-back where psycopg's libpq is out of reach). A read is
   timed from the call to its return; freeing the frame afterwards (a million shapely
   points among its columns) is timed apart, as the caller pays it when it lets the
   frame go.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest.mock import patch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd
import psycopg
import pyarrow.csv as pa_csv
from psycopg import sql

from bench.common import city_requests, write_csv
from geo.ingest.pipeline import prepare
from geo.joins import build_index, locate
from geo.store import pgcopy_out
from geo.store.embedded import EmbeddedStore
from geo.store.pgcopy import copy_arrow
from geo.store.postgis import PostGISStore
from geo.store.postgis_join import join_requests
from geo.store.postgis_load import FLOAT_COLUMNS, REQUEST_COLUMNS, request_rows
from hotspot311.schema import TIME_FIELDS
from layers.profile import load_profile
from layers.registry import load_layer


def floor_copy(conn: psycopg.Connection, csv: Path) -> float:
    """Seconds for PostgreSQL to COPY the raw CSV into an UNLOGGED all-text table."""
    with csv.open("rb") as f:
        header = f.readline().decode().strip().split(",")
        cols = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in header)
        conn.execute(sql.SQL("CREATE UNLOGGED TABLE floor_copy ({})").format(cols))
        t = time.perf_counter()
        with conn.cursor() as cur, cur.copy("COPY floor_copy FROM STDIN (FORMAT csv)") as copy:
            while block := f.read(1 << 20):
                copy.write(block)
        conn.commit()
        elapsed = time.perf_counter() - t
    conn.execute("DROP TABLE floor_copy")
    conn.commit()
    return elapsed


def column_values(frame: pd.DataFrame, column: str) -> list[object]:
    """One column as a list of Python values (times as epoch microseconds).

    The benchmark's ``executemany`` comparison sends these; the store's load sends
    Arrow arrays by binary COPY (:func:`geo.store.postgis_load.arrow_column`).
    """
    if column not in frame.columns:
        return [None] * len(frame)
    s = frame[column]
    if column in TIME_FIELDS or column == "quarantined_at":
        micros = pd.to_datetime(s, utc=True).dt.as_unit("ns").array.asi8 // 1000  # type: ignore[attr-defined]
        na = s.isna().to_numpy()
        return [None if n else int(m) for m, n in zip(micros, na, strict=True)]
    if column == "row_hash":
        return s.to_numpy(dtype="uint64").view("int64").tolist()
    if column in FLOAT_COLUMNS:
        return s.to_numpy(dtype="float64").tolist()
    if column == "synthetic":
        return s.fillna(False).to_numpy(dtype=bool).tolist()
    arr = s.to_numpy(dtype=object)
    return [None if v is None or (isinstance(v, float) and v != v) else str(v) for v in arr]


def executemany_rate(conn: psycopg.Connection, batch: pd.DataFrame, n: int, srid: int) -> float:
    """Rows per second of psycopg ``executemany`` inserting the first ``n`` rows."""
    part = batch.iloc[:n]
    data = list(zip(*[column_values(part, c) for c in REQUEST_COLUMNS], strict=True))
    conn.execute("CREATE TEMP TABLE em (LIKE requests INCLUDING DEFAULTS)")
    times = {"requested_datetime", "updated_datetime", "expected_datetime", "closed_datetime"}
    epoch = sql.SQL("timestamptz 'epoch' + {} * interval '1 microsecond'")
    exprs = [
        epoch.format(sql.Placeholder())
        if c in times
        else sql.SQL("{}::jsonb").format(sql.Placeholder())
        if c == "extra"
        else sql.Placeholder()
        for c in REQUEST_COLUMNS
    ]
    stmt = sql.SQL(
        "INSERT INTO em ({cols}, geom_city) VALUES ({exprs}, ST_SetSRID(ST_MakePoint(%s, %s), %s))"
    ).format(
        cols=sql.SQL(", ").join(map(sql.Identifier, REQUEST_COLUMNS)),
        exprs=sql.SQL(", ").join(exprs),
    )
    rows = [(*r, r[REQUEST_COLUMNS.index("x")], r[REQUEST_COLUMNS.index("y")], srid) for r in data]
    t = time.perf_counter()
    with conn.cursor() as cur:
        cur.executemany(stmt, rows)
    conn.commit()
    elapsed = time.perf_counter() - t
    conn.execute("DROP TABLE em")
    conn.commit()
    return n / elapsed


def copy_rate(conn: psycopg.Connection, batch: pd.DataFrame, n: int, srid: int) -> float:
    """Rows per second of the store's own binary COPY of the first ``n`` rows into the
    table :func:`executemany_rate` fills (a temporary copy of ``requests``, no index):
    the rows made into Arrow (``request_rows``, both geometries) inside the clock, where
    ``executemany``'s Python rows are made before it starts."""
    part = batch.iloc[:n]
    conn.execute("CREATE TEMP TABLE ec (LIKE requests INCLUDING DEFAULTS)")
    t = time.perf_counter()
    copy_arrow(conn, "ec", request_rows(part, srid), jsonb=("extra",))
    conn.commit()
    elapsed = time.perf_counter() - t
    conn.execute("DROP TABLE ec")
    conn.commit()
    return n / elapsed


def handwritten_join(conn: psycopg.Connection, *, same_result: bool) -> float:
    """Seconds for a hand-written indexed ST_Covers join of every request to every layer.

    ``same_result=False``: the bare query, every match into an unindexed temporary table
    (no tie rule, no key) — the join alone. ``same_result=True``: the same rows as the
    store keeps — one per request and layer, the lowest code on shared edges — into a
    temporary table with the same primary key.
    """
    table = sql.Identifier("hw_same" if same_result else "hw_bare")
    key = sql.SQL(", PRIMARY KEY (service_request_id, layer_key)" if same_result else "")
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE {} (service_request_id text, layer_key text, code text{})"
        ).format(table, key)
    )
    code = sql.SQL('min(a.code COLLATE "C")' if same_result else "a.code")
    group = sql.SQL(" GROUP BY 1, 2" if same_result else "")
    t = time.perf_counter()
    conn.execute(
        sql.SQL(
            "INSERT INTO {} SELECT r.service_request_id, a.layer_key, {}"
            " FROM requests r JOIN areas a ON ST_Covers(a.geom, r.geom_city)"
            " JOIN generations g ON g.layer_key = a.layer_key AND g.generation = a.generation"
            " AND g.active{}"
        ).format(table, code, group)
    )
    conn.commit()
    return time.perf_counter() - t


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--executemany-rows", type=int, default=20_000)
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
        csv = write_csv(city_requests(args.rows, seed=311), work / "requests.csv")
        print(f"generated {args.rows:,} rows in {time.perf_counter() - t:.1f} s")
        with psycopg.connect(url) as conn:
            floor = floor_copy(conn, csv)
        print(
            f"floor: PostgreSQL COPY of the raw CSV into an UNLOGGED text table, no index:"
            f" {floor:.2f} s ({args.rows / floor:,.0f} rows/s)"
        )
        t = time.perf_counter()
        pa_csv.read_csv(csv)
        read_floor = time.perf_counter() - t
        print(f"floor: pyarrow read_csv of the CSV: {read_floor:.2f} s")
        layers = {s.key: load_layer(s, crs=profile.crs) for s in profile.layers}
        store = PostGISStore.open(url, profile)
        for spec in profile.layers:  # an empty store with the seven layers (and their indexes)
            store.add_generation(spec, layers[spec.key])
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
            f"PostGIS write_batch (COPY + upsert + locate 7 layers + COPY codes): {n:,} requests"
            f" + {nq:,} quarantine rows in {load:.2f} s = {n / load:,.0f} requests/s"
            f" ({result.inserted:,} inserted)"
        )
        end_to_end = prep + load
        print(f"PostGIS ingest end to end (read+validate+write+join): {end_to_end:.2f} s"
              f" ({args.rows / end_to_end:,.0f} rows/s)")
        x, y = batch.requests["x"].to_numpy(), batch.requests["y"].to_numpy()
        indexes = {k: build_index(a) for k, a in layers.items()}
        t = time.perf_counter()
        for index in indexes.values():
            locate(x, y, index)
        locate_floor = time.perf_counter() - t
        print(f"floor: hotspot311 locate only, 7 layers (indexes built): {locate_floor:.2f} s")
        t = time.perf_counter()
        again = store.write_batch(batch, info=info)
        reload = time.perf_counter() - t
        print(
            f"PostGIS write_batch of the same rows again: {reload:.2f} s"
            f" ({n / reload:,.0f} rows/s; {again.unchanged:,} unchanged)"
        )
        with psycopg.connect(url) as conn:
            m = min(args.executemany_rows, n)
            rate = executemany_rate(conn, batch.requests, m, store.srid)
            copied = copy_rate(conn, batch.requests, m, store.srid)
        print(
            f"the same {m:,} rows into an unindexed temporary table: psycopg executemany"
            f" {rate:,.0f} rows/s, the store's binary COPY {copied:,.0f} rows/s"
            f" ({copied / rate:.1f}x)"
        )

        t = time.perf_counter()
        outside = store.rejoin()
        pg_join = time.perf_counter() - t
        print(
            f"PostGIS rejoin, 7 layers (located in Python): {pg_join:.2f} s"
            f" ({n / pg_join:,.0f} requests/s); outside: {outside}"
        )
        t = time.perf_counter()
        for spec in profile.layers:  # codes renamed: a new digest, so no kept index is reused
            store.add_generation(spec, layers[spec.key].assign(
                code=layers[spec.key]["code"].astype(str) + "-2"))
        new_gen = time.perf_counter() - t
        print(f"PostGIS new generation of each of the 7 layers (add_generation: areas and pieces"
              f" stored, index built and kept, every request located in Python): {new_gen:.2f} s")
        with psycopg.connect(url) as conn, conn.transaction(force_rollback=True):
            gens = list(store.active().values())
            t = time.perf_counter()
            join_requests(conn, gens, only_changed=False)
            sql_join = time.perf_counter() - t
        print(f"PostGIS join in SQL, 7 layers (the fall-back without ADBC; rolled back):"
              f" {sql_join:.2f} s")
        with psycopg.connect(url) as conn:
            conn.execute("ANALYZE")
            conn.commit()
            hw = handwritten_join(conn, same_result=False)
            hw_same = handwritten_join(conn, same_result=True)
        print(f"hand-written indexed ST_Covers join, bare (every match, no key): {hw:.2f} s")
        print(f"hand-written, same result (lowest code, keyed table): {hw_same:.2f} s")
        store.request_columns(["status"])  # numba compiles the decoder on first use (cached)
        reads: dict[str, list[float]] = {"copy": [], "adbc": []}
        frees: dict[str, list[float]] = {"copy": [], "adbc": []}
        shape = (0, 0)
        for _ in range(3):  # in turn, so that neither way alone pays for fresh memory
            for way in reads:
                with patch.object(pgcopy_out, "available",
                                  pgcopy_out.available if way == "copy" else lambda: False):
                    t = time.perf_counter()
                    frame = store.requests()
                    reads[way].append(time.perf_counter() - t)
                shape = frame.shape
                t = time.perf_counter()  # the caller's cost when it lets the frame go
                del frame
                frees[way].append(time.perf_counter() - t)
        read, read_adbc = (statistics.median(reads[w]) for w in ("copy", "adbc"))
        print(
            f"PostGIS requests() read (binary COPY decoded by hotspot311): {shape[0]:,} rows"
            f" x {shape[1]} columns in {read:.2f} s (median of 3 taken in turn with ADBC's:"
            f" {', '.join(f'{x:.2f}' for x in reads['copy'])}; freeing the frame after:"
            f" {statistics.median(frees['copy']):.2f} s)"
        )
        print(f"PostGIS requests() read through ADBC's driver (the fall-back): {read_adbc:.2f} s"
              f" ({', '.join(f'{x:.2f}' for x in reads['adbc'])}; freeing the frame after:"
              f" {statistics.median(frees['adbc']):.2f} s)")
        with psycopg.connect(url) as conn, conn.cursor() as cur:
            t = time.perf_counter()
            with cur.copy("COPY requests TO STDOUT (FORMAT binary)") as copy:
                for _ in copy:
                    pass
            read_floor_pg = time.perf_counter() - t
        print(f"floor: PostgreSQL binary COPY of the requests table out, drained:"
              f" {read_floor_pg:.2f} s")

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
        print("each step against its floor (same run; <1 means slower than the floor):")
        print(f"  ingest end to end / (read_csv + raw COPY + locate) floors  ="
              f" {(read_floor + floor + locate_floor) / end_to_end:.2f}")
        print(f"  requests() / binary COPY out of the table                 ="
              f" {read_floor_pg / read:.2f}")
        print(f"  requests() / requests() through ADBC                      ="
              f" {read_adbc / read:.2f}")
        print("ratios (>1 means the PostGIS store is faster):")
        print(f"  load   store's binary COPY / executemany, same rows = {copied / rate:.2f}")
        print(f"  load   PostGIS write_batch / floor     = {floor / load:.2f}")
        print(f"  join   hand-written bare / PostGIS rejoin        = {hw / pg_join:.2f}")
        print(f"  join   hand-written same result / PostGIS rejoin = {hw_same / pg_join:.2f}")
        print(f"  join   hand-written bare / PostGIS new generations = {hw / new_gen:.2f}")
        print(f"  join   hand-written bare / PostGIS join in SQL    = {hw / sql_join:.2f}")
        print(f"  join   embedded rejoin / PostGIS rejoin = {emb_join / pg_join:.2f}")
        store.close()
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
