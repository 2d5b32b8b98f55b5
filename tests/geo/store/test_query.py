"""Open311 reads pushed into both stores (``Store.query_requests``) and API keys, on the
hand-drawn Testville: each filter, ties in time broken by id, keyset pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from geo.ingest.readers import ROW_COLUMN
from geo.ingest.validate import validate
from geo.store.api_keys import hash_key, new_key
from geo.store.base import Store
from geo.store.query import RequestQuery
from hotspot311.errors import InputError
from tests.geo.store.stores import NOW, to_xy

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _fill(store: Store, n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    lon = rng.uniform(-75.25, -75.00, n)
    lat = rng.uniform(39.90, 40.10, n)
    # every third request shares its time with the one before: ties broken by id
    minutes = np.repeat(np.arange(0, n, 3), 3)[:n] * 7
    rows = pd.DataFrame({
        "service_request_id": [f"R{i:04d}" for i in rng.permutation(n)],
        "requested_datetime": [(T0 + timedelta(minutes=int(m))).isoformat() for m in minutes],
        "updated_datetime": [(T0 + timedelta(days=int(d))).isoformat()
                             for d in rng.integers(0, 20, n)],
        "status": rng.choice(["open", "closed"], n),
        "service_name": rng.choice(["Pothole", "Graffiti", "Light"], n),
        "lat": [repr(float(v)) for v in lat], "lon": [repr(float(v)) for v in lon],
        ROW_COLUMN: np.arange(1, n + 1)}, dtype=object)
    rows[ROW_COLUMN] = rows[ROW_COLUMN].astype("int64")
    batch = validate(rows, profile=store.profile, batch_id="q", source_file="q.csv", now=NOW)
    store.write_batch(batch, info={"batch_id": "q", "source_file": "q.csv"})
    frame = pd.DataFrame(store.requests().drop(columns="geometry"))
    frame["requested_datetime"] = pd.to_datetime(frame["requested_datetime"], utc=True)
    frame["updated_datetime"] = pd.to_datetime(frame["updated_datetime"], utc=True)
    return frame.sort_values(["requested_datetime", "service_request_id"],
                             ascending=False).reset_index(drop=True)


def _ids(frame: pd.DataFrame) -> list[str]:
    return list(frame["service_request_id"])


def test_each_filter_equals_pandas(store: Store) -> None:
    ref = _fill(store)
    cases = {
        RequestQuery(service_names=("Pothole",)): ref["service_name"] == "Pothole",
        RequestQuery(status="closed"): ref["status"] == "closed",
        RequestQuery(start=T0 + timedelta(hours=3), end=T0 + timedelta(hours=9)):
            ref["requested_datetime"].between(T0 + timedelta(hours=3),
                                              T0 + timedelta(hours=9), inclusive="left"),
        RequestQuery(updated_after=T0 + timedelta(days=5), updated_before=T0 + timedelta(days=9)):
            (ref["updated_datetime"] > T0 + timedelta(days=5))
            & (ref["updated_datetime"] < T0 + timedelta(days=9)),
        RequestQuery(bbox=(-75.2, 39.95, -75.1, 40.05)):
            ref["lon"].between(-75.2, -75.1) & ref["lat"].between(39.95, 40.05),
        RequestQuery(ids=("R0001", "R0002", "nope")): ref["service_request_id"].isin(
            ["R0001", "R0002"]),
        RequestQuery(service_names=()): ref["status"] == "never",
    }
    x0, y0 = to_xy(-75.12, 40.0)
    feet = np.hypot(ref["x"] - x0, ref["y"] - y0)
    cases[RequestQuery(near=(40.0, -75.12, 2000.0))] = feet * 0.3048006096 <= 2000.0
    for query, mask in cases.items():
        got = store.query_requests(query)
        assert _ids(got) == _ids(ref[mask]), query
    assert 0 < int(cases[RequestQuery(near=(40.0, -75.12, 2000.0))].sum()) < len(ref)


def test_keyset_pages_cover_everything_once_in_order(store: Store) -> None:
    ref = _fill(store)
    seen: list[str] = []
    after = None
    while True:
        page = store.query_requests(RequestQuery(after=after, limit=37))
        if page.empty:
            break
        seen += _ids(page)
        last = page.iloc[-1]
        after = (pd.Timestamp(last["requested_datetime"]).to_pydatetime(),
                 str(last["service_request_id"]))
    assert seen == _ids(ref)
    shallow = store.query_requests(RequestQuery(limit=10, offset=20))
    assert _ids(shallow) == _ids(ref)[20:30]
    times = pd.to_datetime(store.query_requests(RequestQuery(limit=5))["requested_datetime"],
                           utc=True)
    assert times.is_monotonic_decreasing


def test_query_refuses_what_it_cannot_answer() -> None:
    with pytest.raises(InputError, match="limit: 5000"):
        RequestQuery(limit=5000)
    with pytest.raises(InputError, match="no time zone"):
        RequestQuery(start=datetime(2024, 1, 1))
    with pytest.raises(InputError, match="status: 'pending'"):
        RequestQuery(status="pending")


def test_api_keys_are_stored_hashed_revoked_and_listed(store: Store) -> None:
    key = new_key()
    added = store.add_api_key("ann", "liaison", hash_key(key))
    assert added.active and added.role == "liaison"
    store.add_api_key("bot", "partner", hash_key(new_key()))
    assert [k.name for k in store.api_keys()] == ["ann", "bot"]
    found = store.api_key_by_hash(hash_key(key))
    assert found is not None and found.name == "ann"
    assert store.api_key_by_hash(hash_key("h311_other")) is None
    with pytest.raises(InputError, match="already has a key"):
        store.add_api_key("ann", "liaison", hash_key(new_key()))
    with pytest.raises(InputError, match="mayor"):
        store.add_api_key("carl", "mayor", hash_key(new_key()))
    revoked = store.revoke_api_key("ann")
    assert not revoked.active
    again = store.api_key_by_hash(hash_key(key))
    assert again is not None and not again.active
    assert store.revoke_api_key("ann").revoked_at == revoked.revoked_at
    with pytest.raises(InputError, match="no account 'zed'"):
        store.revoke_api_key("zed")


@pytest.mark.postgis
def test_one_service_open_page_walks_the_service_index(postgis_url: str) -> None:
    """At city scale (seven types, a sixth open) the one-service page walks
    ``requests_service_order`` in page order: without migration 0013's statistics the
    planner multiplies the two name conditions' selectivity, expects too few rows, and
    sorts what a bitmap scan finds, or at 1M scans the table (1.7 s instead of 11 ms)."""
    import psycopg
    from psycopg import sql

    from geo.store.postgis import PostGISStore
    from geo.store.postgis_query import query_sql
    from geo.store.query import QUERY_COLUMNS
    from tests.geo.store.stores import TESTVILLE

    PostGISStore.open(postgis_url, TESTVILLE).close()  # the schema, migrated
    with psycopg.connect(postgis_url) as conn:
        conn.execute(
            "INSERT INTO requests (service_request_id, status, service_name,"
            " requested_datetime, description, row_hash)"
            " SELECT 'S' || i,"
            " CASE WHEN hashint4(i + 1) %% 6 = 0 THEN 'open' ELSE 'closed' END,"
            " (ARRAY['Street Light Outage', 'Pothole', 'Graffiti', 'Rubbish',"
            "        'Abandoned Vehicle', 'Illegal Dumping', 'Other'])[1 + abs(hashint4(i)) %% 7],"
            " %s::timestamptz + i * interval '30 seconds', repeat('x', 200), i"
            # stored in an order unrelated to time, as a spatially ordered load stores them
            " FROM generate_series(1, 200000) AS i ORDER BY hashint4(3 * i)", [T0])
        conn.execute("ANALYZE requests")
        query = RequestQuery(service_names=("Street Light Outage",), status="open",
                             start=T0, end=T0 + timedelta(days=400), limit=1000)
        stmt, params = query_sql(query, srid=2272, unit_m=0.3048, columns=QUERY_COLUMNS)
        row = conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + stmt, params).fetchone()
        assert row is not None
        scan = row[0][0]["Plan"]["Plans"][0]  # under the Limit
        # walked in page order (no Sort above it), and the rows it expects are the rows
        # there are: without the statistics it expects a seventh of them
        assert (scan["Node Type"], scan.get("Index Name")) == (
            "Index Scan", "requests_service_order"), scan
        matching = conn.execute(
            "SELECT count(*) FROM requests WHERE service_name = %s AND status = 'open'",
            ["Street Light Outage"]).fetchone()
        assert matching is not None
        assert matching[0] / 2 < scan["Plan Rows"] < matching[0] * 2, (scan, matching)
        assert len(conn.execute(stmt, params).fetchall()) == 1000


def test_the_data_version_changes_with_every_write_of_requests_and_only_then(
        store: Store) -> None:
    """What the Open311 page cache checks: the same token while nothing is written (reads
    only), a new one after each write of requests, never an earlier one."""
    empty = store.data_version()
    frame = _fill(store, 40)
    filled = store.data_version()
    assert filled is not None and filled != empty
    store.query_rows(RequestQuery(limit=5))
    store.requests()
    assert store.data_version() == filled
    seen = {empty, filled}
    rows = frame.head(3).copy()
    rows["updated_datetime"] = (T0 + timedelta(days=40)).isoformat()
    rows["requested_datetime"] = rows["requested_datetime"].map(lambda t: t.isoformat())
    rows = rows[["service_request_id", "requested_datetime", "updated_datetime", "status",
                 "service_name", "lat", "lon"]].astype(str)
    rows[ROW_COLUMN] = np.arange(1, 4)
    batch = validate(rows, profile=store.profile, batch_id="u", source_file="u.csv", now=NOW)
    assert store.write_batch(batch, info={"batch_id": "u", "source_file": "u.csv"}).updated == 3
    updated = store.data_version()
    assert updated not in seen
    assert store.data_version() == updated  # asked again, unchanged


@pytest.mark.postgis
def test_any_statement_that_writes_requests_changes_the_postgis_data_version(
        postgis_url: str) -> None:
    """The trigger of migration 0016 counts writes by anybody (here plain SQL), when they
    commit: a rolled-back write leaves the token as it was."""
    import psycopg

    from geo.store.postgis import PostGISStore
    from tests.geo.store.stores import TESTVILLE

    store = PostGISStore.open(postgis_url, TESTVILLE)
    try:
        _fill(store, 10)
        tokens = [store.data_version()]
        with psycopg.connect(postgis_url) as conn:
            conn.execute("UPDATE requests SET status = 'closed' WHERE false")  # no row
            conn.commit()
            tokens.append(store.data_version())
            conn.execute("DELETE FROM requests WHERE service_request_id = 'R0001'")
            assert store.data_version() == tokens[-1]  # not committed: not seen
            conn.rollback()
            tokens.append(store.data_version())
            conn.execute("TRUNCATE requests CASCADE")
            conn.commit()
            tokens.append(store.data_version())
        assert tokens[2] == tokens[1] and len(set(tokens)) == 3
    finally:
        store.close()
