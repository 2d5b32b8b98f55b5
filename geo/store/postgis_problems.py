"""``problem_id`` in the PostGIS store: the incremental update inside a write.

The context (see :mod:`geo.store.problem_ids`) is found in SQL: the requests listed in
the write's temporary table ``changed`` (written by
:func:`geo.store.postgis_load.upsert_requests`), the stored requests within the
assigner's reach of one of them (``ST_DWithin`` on the indexed ``geom_city`` and the
time window), and every request of the problems those belong to, the old problems of
updated requests included (the loader leaves ``problem_id`` as it was when it updates
a row). Only the context is read and recomputed; rows whose id changes are written
back through a temporary table and one ``UPDATE``.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from psycopg import sql

from geo.ingest.sink import ProblemAssigner
from geo.store.pgcopy import copy_arrow
from geo.store.postgis_load import index_changed, needs_analyze, stored_estimate
from geo.store.problem_ids import reassign

#: A big write (:data:`WHOLE_CITY_ROWS` rows or more) of at least 1/WHOLE_CITY_SHARE of
#: the stored requests recomputes the whole city (one sequential read, linked in memory)
#: instead of searching the neighbours of each written row in SQL: the search costs a
#: GiST probe and its neighbours per row (minutes for a 250,000-row backfill batch on
#: dense data), the whole city a few microseconds a row. A smaller write stays
#: incremental below half of the store, as in the embedded store.
WHOLE_CITY_SHARE: Final = 16
WHOLE_CITY_ROWS: Final = 10_000


def whole_city(n_changed: int, n_stored: int) -> bool:
    """Whether a write of ``n_changed`` rows on ``n_stored`` recomputes the whole city.

    Examples
    --------
    >>> whole_city(1_000, 1_000_000), whole_city(250_000, 750_000), whole_city(3, 6)
    (False, True, True)
    >>> whole_city(5_000, 20_000), whole_city(50_000, 1_000_000)
    (False, False)
    """
    return 2 * n_changed >= n_stored or (
        n_changed >= WHOLE_CITY_ROWS and WHOLE_CITY_SHARE * n_changed >= n_stored)


def update_problems(conn: psycopg.Connection, problems: ProblemAssigner | None) -> int:
    """Bring ``problem_id`` up to date after an upsert that filled ``changed``.

    Parameters
    ----------
    conn
        Connection inside the write's transaction.
    problems
        The problem rule; without one the written rows lose their ``problem_id``.

    Returns
    -------
    int
        Rows whose ``problem_id`` was written.
    """
    if problems is None:
        cur = conn.execute(
            "UPDATE requests SET problem_id = NULL WHERE problem_id IS NOT NULL"
            " AND service_request_id IN (SELECT service_request_id FROM changed)"
        )
        return cur.rowcount
    # an index and statistics for the planner: without the statistics the joins below on
    # this temporary table become sequential scans of every request (~1 s each at 1M for
    # a one-row write); without the index, a plan made on stale statistics of ``requests``
    # (no null ``problem_id`` seen, then a batch of new rows) probes the new rows with one
    # scan of ``changed`` each: 250,000 x 250,000 rows in a backfill (stuck for minutes)
    index_changed(conn)
    first = conn.execute("SELECT count(*) FROM changed").fetchone()
    n_changed = int(first[0]) if first else 0
    # stored rows counted only as far as the WHOLE_CITY_SHARE test needs
    row = conn.execute(
        "SELECT (SELECT count(*) FROM (SELECT 1 FROM requests LIMIT %s) s),"
        " EXISTS (SELECT 1 FROM requests r WHERE r.problem_id IS NULL AND NOT EXISTS"
        "  (SELECT 1 FROM changed c WHERE c.service_request_id = r.service_request_id))",
        (WHOLE_CITY_SHARE * n_changed + 1,)).fetchone()
    n_stored, orphans = (int(row[0]), bool(row[1])) if row else (0, False)
    if n_changed == 0:
        return 0
    where: sql.Composable | list[sql.Composable]
    if orphans or whole_city(n_changed, n_stored):
        where = sql.SQL("TRUE")
        params: dict[str, object] = {}
    else:
        distance, gap = problems.reach()
        # the time window as a difference, which no index answers: written as a range on
        # requested_datetime the planner ANDs the GiST probe (tens of rows) with a bitmap
        # of the whole window from the time index (45,000 rows at 200k stored, more at
        # 1M) for every written row: 9 s for 1,000 rows at 200k, 30 s at 1M. No JIT either:
        # compiling costs more than this query of index probes runs
        conn.execute("SET LOCAL jit = off")
        conn.execute(
            "CREATE TEMP TABLE touched ON COMMIT DROP AS"
            " SELECT DISTINCT r.problem_id FROM changed c"
            " JOIN requests q ON q.service_request_id = c.service_request_id"
            " JOIN requests r ON ST_DWithin(r.geom_city, q.geom_city, %(d)s)"
            "  AND r.requested_datetime - q.requested_datetime BETWEEN -%(g)s AND %(g)s"
            " WHERE r.problem_id IS NOT NULL"
            " UNION SELECT q.problem_id FROM changed c"
            " JOIN requests q ON q.service_request_id = c.service_request_id"
            " WHERE q.problem_id IS NOT NULL",
            {"d": float(distance), "g": gap.to_pytimedelta()},
        )
        # the members of the touched problems (every written row that has a problem among
        # them: its own is touched) and the written rows without one, as two index look-ups
        # on arrays (init plans): "problem_id IN (…) OR service_request_id IN (…)" is a
        # sequential scan of every request (1.1 s at 1M for a one-row write), a semi-join
        # may be answered by one too (1.5-2.6 s at 1M for a context of 45,000 rows), and
        # collecting the ids first fetches every row twice (0.3 s more at 45,000 rows)
        where = [
            sql.SQL("problem_id = ANY (ARRAY(SELECT problem_id FROM touched))"),
            sql.SQL("problem_id IS NULL AND service_request_id = ANY"
                    " (ARRAY(SELECT service_request_id FROM changed))"),
        ]
        params = {}
    frame = read_context(conn, where, params)
    return write_ids(conn, reassign(frame, np.ones(len(frame), dtype=bool), problems),
                     frame)


def rebuild(conn: psycopg.Connection, problems: ProblemAssigner) -> int:
    """Recompute every ``problem_id``; the number of rows whose id changed."""
    conn.execute("LOCK TABLE requests IN SHARE ROW EXCLUSIVE MODE")
    frame = read_context(conn, sql.SQL("TRUE"), {})
    if frame.empty:
        return 0
    return write_ids(conn, reassign(frame, np.ones(len(frame), dtype=bool), problems), frame)


_COLUMNS = ("service_request_id", "service_name", "x", "y", "requested_datetime",
            "closed_datetime", "problem_id")


def read_context(conn: psycopg.Connection, where: sql.Composable | list[sql.Composable],
                 params: dict[str, object]) -> pd.DataFrame:
    """The rule's columns of the requests matching ``where`` (COPY as CSV, read by Arrow).

    A list of conditions reads the rows of each in turn (``UNION ALL``): they must not
    overlap.
    """
    cols = sql.SQL(", ").join(
        sql.SQL("(extract(epoch FROM {}) * 1000000)::int8").format(sql.Identifier(c))
        if c.endswith("_datetime") else sql.Identifier(c)
        for c in _COLUMNS
    )
    parts = [where] if isinstance(where, sql.Composable) else where
    select = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {} FROM requests WHERE {}").format(cols, w) for w in parts)
    stmt = sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(select)
    sink = pa.BufferOutputStream()
    with conn.cursor() as cur, cur.copy(stmt, params or None) as copy:
        for chunk in copy:
            sink.write(chunk)
    data = sink.getvalue()
    types = {"service_request_id": pa.string(), "service_name": pa.string(),
             "x": pa.float64(), "y": pa.float64(), "requested_datetime": pa.int64(),
             "closed_datetime": pa.int64(), "problem_id": pa.string()}
    if data.size == 0:
        table = pa.table({c: pa.array([], type=t) for c, t in types.items()})
    else:
        table = pa_csv.read_csv(
            pa.BufferReader(data),
            read_options=pa_csv.ReadOptions(column_names=list(_COLUMNS)),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(column_types=types,
                                                  strings_can_be_null=True,
                                                  quoted_strings_can_be_null=False),
        )
    out: dict[str, object] = {}
    for c in _COLUMNS:
        col = table.column(c)
        if c.endswith("_datetime"):  # epoch microseconds, cast in Arrow (no Python ints)
            stamps = pc.cast(col, pa.timestamp("us", tz="UTC")).to_pandas()
            out[c] = stamps.astype("datetime64[ns, UTC]")
        elif c in ("x", "y"):
            out[c] = col.to_numpy(zero_copy_only=False).astype("float64")
        else:
            out[c] = col.to_numpy(zero_copy_only=False).astype(object)
    return pd.DataFrame(out)


def write_ids(conn: psycopg.Connection, fresh: pd.Series, frame: pd.DataFrame) -> int:
    """Write ``fresh`` (new ids of rows of ``frame``) with one ``UPDATE``."""
    if fresh.empty:
        return 0
    conn.execute("CREATE TEMP TABLE new_problem_ids (service_request_id text,"
                 " problem_id text) ON COMMIT DROP")
    copy_arrow(conn, "new_problem_ids", pa.table({
        "service_request_id": pa.array(frame.loc[fresh.index, "service_request_id"]
                                       .astype(str).tolist(), type=pa.string()),
        "problem_id": pa.array(fresh.astype(str).tolist(), type=pa.string()),
    }))
    conn.execute("ANALYZE new_problem_ids")  # a few rows: index look-ups, not a scan
    cur = conn.execute(
        "UPDATE requests r SET problem_id = n.problem_id FROM new_problem_ids n"
        " WHERE r.service_request_id = n.service_request_id"
    )
    written = cur.rowcount
    if needs_analyze(written, stored_estimate(conn)):
        # a big write analyzes requests before its problem ids are written: left so,
        # the planner believed problem_id NULL everywhere until autovacuum came by, and
        # each one-row post (the touched problems' query) scanned every request through
        # the problem_id index, 4 s instead of 0.1 s at 1M; this column alone, 0.14 s
        conn.execute("ANALYZE requests (problem_id)")
    return written
