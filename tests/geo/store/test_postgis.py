"""PostGIS store specifics: connection errors, migrations, city binding, atomicity."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest

import geo.store.postgis
import geo.store.postgis_areas
from geo.ingest.pipeline import ingest
from geo.store.postgis import PostGISStore, server_label
from geo.store.postgis_schema import migrate, migrations
from hotspot311.errors import StoreConnectionError, StoreError
from layers.profile import CityProfile
from tests.geo.store.stores import NOW, TESTVILLE, spec, squares, write_csv

pytestmark = pytest.mark.postgis


def _row(rid: str, lon: float = -75.15, lat: float = 39.95, desc: str = "d") -> dict[str, object]:
    return {
        "service_request_id": rid,
        "requested_datetime": "2023-05-01 10:00",
        "updated_datetime": "2023-05-02 10:00",
        "description": desc,
        "lon": lon,
        "lat": lat,
    }


def test_connection_error_names_server_not_password() -> None:
    url = "postgresql://alice:s3cret-pw@127.0.0.1:1/nodb"
    with pytest.raises(StoreConnectionError, match=r"alice@127\.0\.0\.1:1/nodb") as info:
        PostGISStore.open(url, TESTVILLE)
    assert "s3cret-pw" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_pg_variables_select_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGPORT", "1")
    monkeypatch.setenv("PGDATABASE", "fromenv")
    monkeypatch.setenv("PGUSER", "bob")
    assert server_label("") == "bob@127.0.0.1:1/fromenv"
    with pytest.raises(StoreConnectionError, match=r"bob@127\.0\.0\.1:1/fromenv"):
        PostGISStore.open("postgresql:", TESTVILLE)


def test_open_store_selects_postgis_by_url(postgis_url: str) -> None:
    from geo.store.base import open_store

    store = open_store(postgis_url, TESTVILLE)
    try:
        assert isinstance(store, PostGISStore)
        assert "postgres@127.0.0.1" in store.describe()
    finally:
        store.close()


def test_migrate_twice_is_a_no_op(postgis_url: str) -> None:
    with psycopg.connect(postgis_url) as conn:
        assert migrate(conn) == []  # the template is migrated already
        assert migrate(conn) == []
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    assert [r[0] for r in rows] == [m.version for m in migrations()]
    assert migrations()[0].version == 1


def test_fresh_database_is_migrated_on_open(postgis_server, postgis_url: str) -> None:
    with psycopg.connect(postgis_url, autocommit=True) as conn:
        conn.execute("DROP TABLE schema_migrations")
        conn.execute(
            "DROP TABLE hotspot_members, hotspots, hotspot_runs, request_areas, area_pieces,"
            " areas, generations, layers, quarantine, requests, batches, store_meta,"
            " contacts, contact_quarantine, join_indexes, source_services, sources, api_keys,"
            " export_audit, data_version"
        )
        conn.execute("DROP FUNCTION requests_changed()")
    store = PostGISStore.open(postgis_url, TESTVILLE)
    store.close()
    with psycopg.connect(postgis_url) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (
            len(migrations()),
        )
        assert conn.execute("SELECT to_regclass('area_pieces') IS NOT NULL").fetchone() == (True,)


def test_city_binding_and_srid_check(postgis_url: str) -> None:
    PostGISStore.open(postgis_url, TESTVILLE).close()
    other = CityProfile(name="Elsewhere", crs="EPSG:32618", timezone="UTC", bbox=(0, 0, 1, 1))
    with pytest.raises(StoreError, match="holds 'Testville' requests"):
        PostGISStore.open(postgis_url, other)
    with psycopg.connect(postgis_url) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO requests (service_request_id, row_hash, geom_city)"
            " VALUES ('x', 0, ST_SetSRID(ST_MakePoint(1, 2), 4326))"
        )


def test_failure_half_way_leaves_database_as_it_was(
    postgis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = PostGISStore.open(postgis_url, TESTVILLE)
    try:
        ingest(write_csv(tmp_path / "a.csv", [_row("1")]), store, now=NOW)
        store.add_generation(spec("district"), squares([("A", (2.0e6, 1.0e5, 3.0e6, 4.0e5))]))
        before = (
            store.requests().drop(columns="geometry").to_json(date_format="iso"),
            store.quarantine().to_json(date_format="iso"),
            store.batches().to_json(date_format="iso"),
        )

        def boom(*args: object, **kwargs: object) -> None:
            raise RuntimeError("disk on fire")

        monkeypatch.setattr(geo.store.postgis_areas, "load_area_rows", boom)  # ingest
        monkeypatch.setattr(geo.store.postgis_areas, "fill_partition", boom)  # a new generation
        bad = write_csv(
            tmp_path / "b.csv", [_row("1", desc="changed"), _row("2"), {"service_request_id": "q"}]
        )
        with pytest.raises(RuntimeError, match="disk on fire"):
            ingest(bad, store, now=NOW)
        after = (
            store.requests().drop(columns="geometry").to_json(date_format="iso"),
            store.quarantine().to_json(date_format="iso"),
            store.batches().to_json(date_format="iso"),
        )
        assert after == before
        with pytest.raises(RuntimeError, match="disk on fire"):
            store.add_generation(spec("ward"), squares([("W", (2.0e6, 1.0e5, 3.0e6, 4.0e5))]))
        assert store.layer_keys() == ("district",)
    finally:
        store.close()


def test_add_generation_rejoins_that_layer_only(postgis_url: str, tmp_path: Path) -> None:
    store = PostGISStore.open(postgis_url, TESTVILLE)
    try:
        ingest(write_csv(tmp_path / "a.csv", [_row("1"), _row("2", lon=-75.0)]), store, now=NOW)
        box = (2.0e6, 1.0e5, 3.0e6, 4.0e5)
        store.add_generation(spec("district"), squares([("A", box)]))
        store.add_generation(spec("ward"), squares([("W", box)]))
        with store.pool.connection() as conn:  # mark the ward rows, then add a district generation
            conn.execute("UPDATE request_areas SET code = 'marked' WHERE layer_key = 'ward'")
        store.add_generation(spec("district"), squares([("A2", box)]))
        frame = store.requests().set_index("service_request_id")
        assert set(frame["district"]) == {"A2"} and set(frame["ward"]) == {"marked"}
        with store.pool.connection() as conn:
            active = conn.execute(
                "SELECT layer_key, generation FROM generations WHERE active ORDER BY layer_key"
            ).fetchall()
            pieces = conn.execute("SELECT count(*) FROM area_pieces").fetchone()
        assert active == [("district", 2), ("ward", 1)]
        assert pieces == (3,)
        with store.pool.connection() as conn:  # one partition per layer, nothing left over
            parts = conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'request_areas'::regclass ORDER BY 1"
            ).fetchall()
            left = conn.execute("SELECT count(*) FROM ra_default").fetchone()
            fresh = conn.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'ra_fresh%'")
            assert fresh.fetchone() == (0,)
        assert parts == [("ra_default",), ("ra_layer_district",), ("ra_layer_ward",)]
        assert left == (0,)
    finally:
        store.close()


def test_large_polygons_are_subdivided(postgis_url: str, tmp_path: Path) -> None:
    import shapely

    store = PostGISStore.open(postgis_url, TESTVILLE)
    try:
        ring = shapely.Point(2.69e6, 2.36e5).buffer(20000, quad_segs=256)  # 1025 vertices
        import geopandas as gpd

        areas = gpd.GeoDataFrame(
            {"code": ["C"], "name": ["circle"]}, geometry=[ring], crs=TESTVILLE.crs
        )
        store.add_generation(spec("circle"), areas)
        with store.pool.connection() as conn:
            n, most = conn.execute(
                "SELECT count(*), max(ST_NPoints(geom)) FROM area_pieces"
            ).fetchone()
        assert n > 10 and most <= 64
    finally:
        store.close()


def _indexes(store: PostGISStore) -> list[str]:
    with store.pool.connection() as conn:
        rows = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'requests' ORDER BY indexname"
        ).fetchall()
    return [r[0] for r in rows]


def test_bulk_load_rebuilds_indexes_atomically(
    postgis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import geo.store.postgis_load

    monkeypatch.setattr(geo.store.postgis_load, "BULK_ROWS", 1)
    store = PostGISStore.open(postgis_url, TESTVILLE)
    try:
        indexes = _indexes(store)
        assert indexes == ["requests_geom_city_gist", "requests_open311_order", "requests_pkey",
                           "requests_problem", "requests_requested", "requests_service_order",
                           "requests_updated"]
        store.add_generation(spec("district"), squares([("A", (2.0e6, 1.0e5, 3.0e6, 4.0e5))]))
        ingest(write_csv(tmp_path / "a.csv", [_row("1"), _row("2", lon=-75.0)]), store, now=NOW)
        assert _indexes(store) == indexes
        assert store.requests()["district"].tolist() == ["A", "A"]

        def boom(*args: object, **kwargs: object) -> None:
            raise RuntimeError("disk on fire")

        # a big write's partitions are filled on a second connection and committed
        # unattached; the write fails after that, when it would swap them in
        monkeypatch.setattr(geo.store.postgis, "swap_partition", boom)
        rows = [_row(str(i)) for i in range(3, 10)]
        with pytest.raises(RuntimeError, match="disk on fire"):
            ingest(write_csv(tmp_path / "b.csv", rows), store, now=NOW)
        assert _indexes(store) == indexes and store.count() == 2
        assert store.requests()["district"].tolist() == ["A", "A"]
        assert _stages(store) == []  # dropped by the failed write
    finally:
        store.close()


def _stages(store: PostGISStore) -> list[str]:
    with store.pool.connection() as conn:
        return [r[0] for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relname LIKE 'ra\\_stage\\_%' ORDER BY 1")]


def test_a_failing_big_write_cancels_its_second_connection(
    postgis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A big write that fails while its second connection is filling partitions cancels
    the statement running there, instead of waiting for it: nothing staged is left, and
    the store is as it was."""
    import geo.store.postgis_load

    monkeypatch.setattr(geo.store.postgis_load, "BULK_ROWS", 1)
    store = PostGISStore.open(postgis_url, TESTVILLE)
    try:
        store.add_generation(spec("district"), squares([("A", (2.0e6, 1.0e5, 3.0e6, 4.0e5))]))
        ingest(write_csv(tmp_path / "a.csv", [_row("1"), _row("2")]), store, now=NOW)
        events: list[str] = []
        sleeping = threading.Event()
        real_table = geo.store.postgis_areas._new_layer_table

        def slow_table(conn: psycopg.Connection, *args: object, **kwargs: object) -> None:
            events.append("sleeping")
            sleeping.set()
            try:
                conn.execute("SELECT pg_sleep(30)")  # a long statement on the helper
            except psycopg.errors.QueryCanceled:
                events.append("cancelled")
                raise
            events.append("slept")
            real_table(conn, *args, **kwargs)  # type: ignore[arg-type]

        def failing_rebuild(*args: object, **kwargs: object) -> None:
            assert sleeping.wait(20)  # the helper is inside its statement
            raise RuntimeError("disk on fire")

        monkeypatch.setattr(geo.store.postgis_areas, "_new_layer_table", slow_table)
        monkeypatch.setattr(geo.store.postgis_load, "rebuild_bulk_indexes", failing_rebuild)
        rows = [_row(str(i)) for i in range(3, 10)]
        with pytest.raises(RuntimeError, match="disk on fire"):
            ingest(write_csv(tmp_path / "b.csv", rows), store, now=NOW)
        assert events == ["sleeping", "cancelled"]
        assert _stages(store) == [] and store.count() == 2
        assert store.requests()["district"].tolist() == ["A", "A"]
    finally:
        store.close()


def test_a_big_write_replaces_tables_a_killed_one_left(
    postgis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A big write killed after its partitions were staged leaves them unattached (here
    made by hand, with a wrong code); the next big write drops and refills them, and
    only its own rows and codes are seen."""
    import geo.store.postgis_load

    monkeypatch.setattr(geo.store.postgis_load, "BULK_ROWS", 1)
    store = PostGISStore.open(postgis_url, TESTVILLE)
    try:
        store.add_generation(spec("district"), squares([("A", (2.0e6, 1.0e5, 3.0e6, 4.0e5))]))
        ingest(write_csv(tmp_path / "a.csv", [_row("1"), _row("2", lon=-75.0)]), store, now=NOW)
        with store.pool.connection() as conn:
            conn.execute("CREATE TABLE ra_stage_district (LIKE request_areas)")
            conn.execute("INSERT INTO ra_stage_district VALUES ('1', 'district', 'LEFT OVER')")
        ingest(write_csv(tmp_path / "b.csv", [_row(str(i)) for i in range(3, 7)]), store,
               now=NOW)
        codes = store.requests().set_index("service_request_id")["district"].to_dict()
        assert codes == {str(i): "A" for i in range(1, 7)}
        assert _stages(store) == []
        with store.pool.connection() as conn:
            assert conn.execute("SELECT count(*) FROM ra_layer_district").fetchone() == (6,)
    finally:
        store.close()


def _waiting(url: str, n: int) -> bool:
    """Whether at least ``n`` lock requests are waiting (polls for up to 10 s)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(200):
            row = conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()
            if row and row[0] >= n:
                return True
            time.sleep(0.05)
    return False


def test_rejoin_does_not_undo_a_concurrent_new_generation(postgis_url: str, tmp_path: Path) -> None:
    """add_generation and rejoin racing behind a running load: the new generation stays."""
    store = PostGISStore.open(postgis_url, TESTVILLE)
    try:
        ingest(write_csv(tmp_path / "a.csv", [_row(str(i)) for i in range(5)]), store, now=NOW)
        box = (2.0e6, 1.0e5, 3.0e6, 4.0e5)
        store.add_generation(spec("ward"), squares([("OLD", box)]))
        errors: list[str] = []

        def run(call: Callable[[], object]) -> None:
            try:
                call()
            except Exception as err:  # reported by the assertion below
                errors.append(repr(err))

        with psycopg.connect(postgis_url) as load:  # a write_batch in progress
            load.execute("LOCK TABLE requests IN SHARE ROW EXCLUSIVE MODE")
            adding = threading.Thread(
                target=run,
                args=(lambda: store.add_generation(spec("ward"), squares([("NEW", box)])),),
            )
            adding.start()
            assert _waiting(postgis_url, 1)
            rejoining = threading.Thread(target=run, args=(store.rejoin,))
            rejoining.start()
            assert _waiting(postgis_url, 2)
        adding.join()
        rejoining.join()
        assert errors == []
        assert {k: g.generation for k, g in store.active().items()} == {"ward": 2}
        assert set(store.requests()["ward"]) == {"NEW"}
    finally:
        store.close()


def test_overlapping_areas_give_the_lowest_code(postgis_url: str, tmp_path: Path) -> None:
    """Points inside two overlapping areas (not on an edge) still get one row: the lowest code."""
    store = PostGISStore.open(postgis_url, TESTVILLE)
    try:
        ingest(write_csv(tmp_path / "a.csv", [_row(str(i)) for i in range(4)]), store, now=NOW)
        box = (2.0e6, 1.0e5, 3.0e6, 4.0e5)
        store.add_generation(spec("ward"), squares([("B", box), ("A", box), ("C", box)]))
        assert store.requests()["ward"].tolist() == ["A"] * 4
        assert store.rejoin() == {"ward": 0}
        with store.pool.connection() as conn:
            rows = conn.execute("SELECT count(*) FROM request_areas").fetchone()
        assert rows == (4,)
    finally:
        store.close()


def test_the_three_ways_of_reading_requests_give_one_frame(
    postgis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``requests()`` reads by binary COPY decoded by hotspot311 where psycopg's libpq is
    reachable; else through ADBC; else, for a ``key=value`` connection string with a
    parameter ADBC's URI cannot carry (here ``sslmode``), by CSV ``COPY`` parsed by
    Arrow. All three give exactly one frame (texts, times, hashes, codes, the missing
    ones included), on one connection or two."""
    from psycopg.conninfo import conninfo_to_dict

    from geo.store import pgcopy_out, postgis_read

    rows = [_row("1"), _row("2", desc="=HYPERLINK(\"x\")"), _row("3", lon=-75.2, desc=""),
            {**_row("4"), "updated_datetime": None, "description": "line\nbreak, \"quoted\""},
            _row("5", lon=-74.97)]  # outside every area: no code

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("another way was taken")

    store = PostGISStore.open(postgis_url, TESTVILLE)
    try:
        store.add_generation(spec("district"), squares([("A", (2.0e6, 1.0e5, 2.72e6, 4.0e5))]))
        store.add_generation(spec("ward"), squares([("W", (2.0e6, 1.0e5, 2.69e6, 4.0e5))]))
        ingest(write_csv(tmp_path / "a.csv", rows), store, now=NOW)
        with monkeypatch.context() as m:
            m.setattr(postgis_read, "fetch_arrow_split", refuse)
            m.setattr(store, "_requests_by_copy", refuse)
            by_copy = store.requests()
        with monkeypatch.context() as m:
            m.setattr(pgcopy_out, "available", lambda: False)
            m.setattr(store, "_requests_by_copy", refuse)
            by_adbc = store.requests()
    finally:
        store.close()
    one = PostGISStore.open(postgis_url, TESTVILLE, max_size=1)  # no second connection
    try:
        with monkeypatch.context() as m:
            m.setattr(postgis_read, "fetch_arrow_split", refuse)
            one_connection = one.requests()
    finally:
        one.close()
    params = conninfo_to_dict(postgis_url)
    keyvalue = " ".join(f"{k}={v}" for k, v in params.items()) + " sslmode=disable"
    assert postgis_read.adbc_uri(keyvalue) is None
    monkeypatch.setattr(postgis_read, "fetch_arrow", refuse)
    monkeypatch.setattr(pgcopy_out, "available", lambda: False)
    store = PostGISStore.open(keyvalue, TESTVILLE)
    try:
        by_csv = store.requests()
    finally:
        store.close()
    assert len(by_copy) == 5 and by_copy["district"].tolist()[:4] == ["A"] * 4
    assert by_copy["district"].isna().tolist() == [False] * 4 + [True]
    assert by_copy["ward"].notna().sum() == 1
    for other in (by_adbc, one_connection, by_csv):
        pd.testing.assert_frame_equal(other.drop(columns="geometry"),
                                      by_copy.drop(columns="geometry"))
        assert other.geometry.geom_equals(by_copy.geometry).all()


def test_codes_read_from_a_partition_or_the_default_one_and_any_columns_alike(
    postgis_url: str, tmp_path: Path
) -> None:
    """A layer's codes are read straight from its own partition, or from
    ``ra_default`` when its rows are kept there: the frame is the same. Columns read
    without ``service_request_id`` come in the same id order as with it."""
    from geo.store.postgis_join import own_partitions

    rows = [_row(str(i), lon=lon) for i, lon in
            ((7, -75.2), (3, -75.15), (11, -75.2), (1, -75.15), (5, -75.2))]
    store = PostGISStore.open(postgis_url, TESTVILLE)
    try:
        store.add_generation(spec("district"), squares([("A", (2.0e6, 1.0e5, 2.72e6, 4.0e5))]))
        store.add_generation(spec("ward"), squares([("W", (2.0e6, 1.0e5, 2.69e6, 4.0e5))]))
        ingest(write_csv(tmp_path / "a.csv", rows), store, now=NOW)
        before = store.requests()
        some = store.request_columns(["status", "ward", "district"])
        with psycopg.connect(postgis_url, autocommit=True) as conn:
            assert own_partitions(conn, ["district", "ward", "nope"]) == {"district", "ward"}
            conn.execute("ALTER TABLE request_areas DETACH PARTITION ra_layer_ward")
            conn.execute("INSERT INTO request_areas SELECT * FROM ra_layer_ward")
            conn.execute("DROP TABLE ra_layer_ward")
            assert own_partitions(conn, ["district", "ward"]) == {"district"}
            assert conn.execute("SELECT count(*) FROM ra_default").fetchone() == (
                before["ward"].notna().sum(),)
        after = store.requests()
    finally:
        store.close()
    assert before["service_request_id"].tolist() == ["1", "11", "3", "5", "7"]
    assert before["ward"].notna().sum() == 3 and before["district"].notna().all()
    pd.testing.assert_frame_equal(after.drop(columns="geometry"),
                                  before.drop(columns="geometry"))
    pd.testing.assert_frame_equal(some, before[["status", "ward", "district"]])


@pytest.mark.parametrize("way", ["copy", "adbc"])
def test_a_write_between_the_reads_statements_is_not_seen(
    postgis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    """``requests()`` reads the requests and each layer's codes by separate statements
    on two connections; a write committed once the reads have begun is seen by none of
    them (one snapshot), so the codes read are those of the requests read (here the
    write moves request 1 from area A to area B). Both ways of reading: binary COPY
    decoded by hotspot311, and ADBC (when psycopg's libpq is out of reach)."""
    from adbc_driver_manager import dbapi

    from geo.store import pgcopy_out

    store = PostGISStore.open(postgis_url, TESTVILLE)
    try:
        store.add_generation(spec("district"), squares([("A", (2.0e6, 1.0e5, 2.69e6, 4.0e5)),
                                                        ("B", (2.69e6, 1.0e5, 3.0e6, 4.0e5))]))
        west = -75.2  # in A; -75.15 is in B
        ingest(write_csv(tmp_path / "a.csv", [_row("1", lon=west), _row("2", lon=west)]), store,
               now=NOW)
        before = store.requests()
        written: list[int] = []

        def write_once() -> None:
            if not written:  # another session writes
                written.append(1)
                other = PostGISStore.open(postgis_url, TESTVILLE)
                try:
                    ingest(write_csv(tmp_path / "b.csv", [_row("1", desc="moved"),
                                                          _row("3", lon=west)]), other, now=NOW)
                finally:
                    other.close()

        if way == "copy":
            real_copy = pgcopy_out.copy_table

            def write_then_copy(conn: psycopg.Connection, query: Any) -> object:
                write_once()  # both snapshots are taken before either statement runs
                return real_copy(conn, query)

            monkeypatch.setattr(pgcopy_out, "copy_table", write_then_copy)
        else:
            real = dbapi.Cursor.fetch_arrow_table

            def fetch_then_write(cursor: dbapi.Cursor) -> object:
                table = real(cursor)
                write_once()  # after the first statement
                return table

            monkeypatch.setattr(pgcopy_out, "available", lambda: False)
            monkeypatch.setattr(dbapi.Cursor, "fetch_arrow_table", fetch_then_write)
        during = store.requests()
        monkeypatch.undo()
        after = store.requests()
    finally:
        store.close()
    assert written
    pd.testing.assert_frame_equal(during.drop(columns="geometry"),
                                  before.drop(columns="geometry"))
    assert after["service_request_id"].tolist() == ["1", "2", "3"]
    assert before["district"].tolist() == ["A", "A"]
    assert after["district"].tolist() == ["B", "A", "A"]
    assert after.loc[after["service_request_id"] == "1", "description"].item() == "moved"


def test_join_indexes_are_kept_in_the_database(
        postgis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each generation's join index is built once, kept in ``join_indexes`` with the
    digest of its stored areas, and used by a later ingest in a new process (the process
    memo cleared) without being built again; one of another format is built again and
    kept."""
    import geo.joins
    from geo.joins import INDEX_FORMAT
    from geo.store.postgis_areas import _LOADED, _read_areas, areas_digest

    left, right = (2.0e6, 1.0e5, 2.69e6, 4.0e5), (2.69e6, 1.0e5, 3.0e6, 4.0e5)
    store = PostGISStore.open(postgis_url, TESTVILLE)
    try:
        store.add_generation(spec("district"), squares([("W", left), ("E", right)]))
        store.add_generation(spec("ward"), squares([("A", (2.0e6, 1.0e5, 3.0e6, 4.0e5))]))
        with store.pool.connection() as conn:
            kept = conn.execute("SELECT layer_key, generation, digest, format FROM join_indexes"
                                " ORDER BY layer_key").fetchall()
            gens = store.active()
            digests = {k: areas_digest(_read_areas(conn, gens[k], TESTVILLE.crs))
                       for k in gens}
        assert kept == [("district", 1, digests["district"], INDEX_FORMAT),
                        ("ward", 1, digests["ward"], INDEX_FORMAT)]

        built: list[int] = []
        real = geo.joins.build_index

        def counted(areas: object) -> object:
            built.append(1)
            return real(areas)  # type: ignore[arg-type]

        monkeypatch.setattr(geo.store.postgis_areas, "build_index", counted)
        _LOADED.clear()  # as a new process starts
        ingest(write_csv(tmp_path / "a.csv", [_row("1", lon=-75.2), _row("2", lon=-75.0)]),
               store, now=NOW)
        assert built == []  # read from join_indexes, not built
        frame = store.requests().set_index("service_request_id")
        assert frame.loc["1", "district"] != frame.loc["2", "district"]
        assert set(frame["ward"]) == {"A"}

        with store.pool.connection() as conn:  # an index of an older format
            conn.execute("UPDATE join_indexes SET format = 'old' WHERE layer_key = 'ward'")
        _LOADED.clear()
        ingest(write_csv(tmp_path / "b.csv", [_row("3", lon=-75.2)]), store, now=NOW)
        assert built == [1]  # that one only, built again
        with store.pool.connection() as conn:
            formats = conn.execute("SELECT layer_key, format, digest FROM join_indexes"
                                   " ORDER BY layer_key").fetchall()
        assert formats == [("district", INDEX_FORMAT, digests["district"]),
                           ("ward", INDEX_FORMAT, digests["ward"])]
        assert store.requests().set_index("service_request_id").loc["3", "ward"] == "A"
    finally:
        store.close()


@pytest.mark.slow
def test_rejoin_locates_the_rows_postgresql_joins_on_real_requests(
    postgis_url: str, philly_profile: CityProfile, philly_layers: dict,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``rejoin`` locates the stored requests again in Python (the embedded store's index
    and rule) instead of joining them in PostgreSQL; on real Philadelphia requests and
    the seven real layers both ways keep the same rows of ``request_areas``, row for
    row, and count the same requests outside each layer."""
    requests_dir = Path(__file__).resolve().parents[3] / "data" / "philadelphia" / "requests"
    store = PostGISStore.open(postgis_url, philly_profile)
    try:
        for layer in philly_profile.layers:
            store.add_generation(layer, philly_layers[layer.key])
        assert ingest(requests_dir / "parks-maintenance.csv", store, now=NOW).balanced

        def stored() -> list[tuple[str, str, str]]:
            with store.pool.connection() as conn:
                return conn.execute(
                    "SELECT service_request_id, layer_key, code FROM request_areas"
                    ' ORDER BY service_request_id COLLATE "C", layer_key').fetchall()

        def refuse(*args: object, **kwargs: object) -> None:
            raise AssertionError("the other way was taken")

        with monkeypatch.context() as m:  # PostgreSQL joins when ADBC cannot connect
            m.setattr(store, "_adbc_uri", lambda: None)
            m.setattr(geo.store.postgis_areas, "relocate_layers", refuse)
            joined = store.rejoin()
        by_join = stored()
        monkeypatch.setattr(geo.store.postgis, "join_requests", refuse)
        located = store.rejoin()
        assert located == joined
        assert stored() == by_join
        keys = {layer.key for layer in philly_profile.layers}
        n = len(store.requests())
        assert n > 150 and {r[1] for r in by_join} == keys
        assert set(located) == keys and sum(located.values()) == n * len(keys) - len(by_join)
        assert len(by_join) > 0.9 * n * len(keys)
        with store.pool.connection() as conn:  # the partitions were COPYed frozen
            pages = conn.execute(
                "SELECT c.relname, c.relpages, c.relallvisible FROM pg_inherits i"
                " JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'request_areas'::regclass AND c.relname <> 'ra_default'"
            ).fetchall()
            defaults = conn.execute(  # the layer key's default while COPYing is gone
                "SELECT count(*) FROM pg_attrdef d JOIN pg_inherits i ON i.inhrelid = d.adrelid"
                " WHERE i.inhparent = 'request_areas'::regclass").fetchone()
        assert defaults == (0,)
        assert len(pages) == len(keys)
        assert all(total > 0 and visible == total for _, total, visible in pages)
        # a new generation is located the same way (PostgreSQL's join still refused)
        before = stored()
        tracts = next(layer for layer in philly_profile.layers if layer.key == "census_tract")
        assert store.add_generation(tracts, philly_layers["census_tract"]).generation == 2
        assert stored() == before == by_join
    finally:
        store.close()


def test_a_new_generation_is_joined_in_sql_when_the_points_cannot_be_read(
    postgis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ADBC, a new generation's layer is joined by PostgreSQL: the lowest code on
    a shared edge, and a request outside every area without a row."""
    store = PostGISStore.open(postgis_url, TESTVILLE)
    try:
        west = -75.25  # x 2.669e6: in A; the default -75.15 is in B
        ingest(write_csv(tmp_path / "a.csv", [_row("1", lon=west), _row("2"),
                                              _row("3", lon=-74.97)]), store, now=NOW)
        joined: list[object] = []
        real_join = geo.store.postgis.join_requests
        monkeypatch.setattr(store, "_adbc_uri", lambda: None)
        monkeypatch.setattr(geo.store.postgis, "join_requests",
                            lambda *a, **k: joined.append(a) or real_join(*a, **k))
        store.add_generation(spec("district"), squares([("B", (2.69e6, 1.0e5, 2.72e6, 4.0e5)),
                                                        ("A", (2.0e6, 1.0e5, 2.69e6, 4.0e5)),
                                                        ("AA", (2.0e6, 1.0e5, 2.69e6, 4.0e5))]))
        assert len(joined) == 1
        codes = store.requests().set_index("service_request_id")["district"]
        assert codes.fillna("(none)").to_dict() == {"1": "A", "2": "B", "3": "(none)"}
    finally:
        store.close()


def test_a_big_write_without_a_second_connection_fills_its_partitions_itself(
    postgis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the second connection of a big write fails (the server allows no more, say),
    the write fills the layers' partitions in its own transaction instead."""
    import geo.store.postgis_load

    def refused(*args: object, **kwargs: object) -> None:
        raise psycopg.OperationalError("sorry, too many clients already")

    monkeypatch.setattr(geo.store.postgis_load, "BULK_ROWS", 1)
    monkeypatch.setattr(geo.store.postgis_areas, "stage_partitions", refused)
    store = PostGISStore.open(postgis_url, TESTVILLE)
    try:
        store.add_generation(spec("district"), squares([("A", (2.0e6, 1.0e5, 2.69e6, 4.0e5)),
                                                        ("B", (2.69e6, 1.0e5, 3.0e6, 4.0e5))]))
        west = -75.25  # x 2.669e6: in A; the default -75.15 is in B
        ingest(write_csv(tmp_path / "a.csv", [_row("1", lon=west), _row("2")]), store, now=NOW)
        ingest(write_csv(tmp_path / "b.csv", [_row("3", lon=west), _row("4"),
                                              _row("5", lon=west)]), store, now=NOW)
        codes = store.requests().set_index("service_request_id")["district"].to_dict()
        assert codes == {"1": "A", "2": "B", "3": "A", "4": "B", "5": "A"}
        assert _stages(store) == []
    finally:
        store.close()


def test_layer_keys_that_extend_one_another_stage_side_by_side(
    postgis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Layers ``ward`` and ``pkey_ward``: no name of one's staged table or key is the
    other's, so a big write stages both (no fall-back) and each gets its own codes."""
    import geo.store.postgis_load

    monkeypatch.setattr(geo.store.postgis_load, "BULK_ROWS", 1)
    store = PostGISStore.open(postgis_url, TESTVILLE)
    try:
        store.add_generation(spec("ward"), squares([("W", (2.0e6, 1.0e5, 3.0e6, 4.0e5))]))
        store.add_generation(spec("pkey_ward"), squares([("P", (2.0e6, 1.0e5, 3.0e6, 4.0e5))]))
        with caplog.at_level("WARNING", logger="hotspot311.store"):
            ingest(write_csv(tmp_path / "a.csv", [_row("1"), _row("2")]), store, now=NOW)
        assert caplog.records == []
        got = store.requests()
        assert got["ward"].tolist() == ["W", "W"] and got["pkey_ward"].tolist() == ["P", "P"]
        assert _stages(store) == []
    finally:
        store.close()


def test_rejoin_joins_in_sql_when_the_points_cannot_be_read(
    postgis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ADBC failure reading the points back (or a lock waited for too long) leaves
    nothing written by the locating way; PostgreSQL's join re-joins instead."""
    store = PostGISStore.open(postgis_url, TESTVILLE)
    try:
        store.add_generation(spec("district"), squares([("A", (2.0e6, 1.0e5, 3.0e6, 4.0e5))]))
        ingest(write_csv(tmp_path / "a.csv", [_row("1"), _row("2")]), store, now=NOW)

        def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("the ADBC driver failed")

        joined: list[object] = []
        real_join = geo.store.postgis.join_requests
        monkeypatch.setattr(geo.store.postgis_areas, "fetch_arrow", broken)
        monkeypatch.setattr(geo.store.postgis, "join_requests",
                            lambda *a, **k: joined.append(a) or real_join(*a, **k))
        assert store.rejoin() == {"district": 0}
        assert len(joined) == 1
        assert store.requests()["district"].tolist() == ["A", "A"]
    finally:
        store.close()
