"""The CLI against a PostGIS store: ``db migrate``, ingest + status, connection errors."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from hotspot311.cli.main import cli
from tests.conftest import REQUESTS, ROOT

pytestmark = pytest.mark.postgis


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_db_migrate_fresh_database_then_again(postgis_server, postgis_url: str) -> None:
    fresh = postgis_server.url(f"fresh_{abs(hash(postgis_url)) % 10**8}")
    name = fresh.rsplit("/", 1)[1]
    with psycopg.connect(postgis_server.url(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        code, out, err = _invoke("--store", fresh, "db", "migrate")
        assert code == 0, err
        files = sorted((ROOT / "geo" / "store" / "migrations").glob("*.sql"))
        for f in files:
            assert f"applied {f.stem}" in out
        # the newest file's number (versions need not be contiguous: 0004 is on another branch)
        assert f"schema now at version {int(files[-1].stem[:4])}" in out
        code, out, err = _invoke("--store", fresh, "db", "migrate")
        assert code == 0, err
        assert "applied" not in out and "nothing to apply" in out
    finally:
        postgis_server.drop(fresh)


def test_db_migrate_needs_postgis(tmp_path: Path) -> None:
    code, out, err = _invoke("--store", str(tmp_path / "lib"), "db", "migrate")
    assert code == 2
    assert "needs a PostGIS store" in err and "Traceback" not in err + out


def test_ingest_then_status_through_cli(postgis_url: str) -> None:
    code, out, err = _invoke(
        "--store", postgis_url, "ingest", str(REQUESTS / "parks-maintenance.csv")
    )
    assert code == 0, err
    code, out, err = _invoke("--store", postgis_url, "status")
    assert code == 0, err
    assert "PostGIS store" in out


@pytest.mark.parametrize("args", [("status",), ("db", "migrate")])
def test_wrong_port_is_one_line_exit_3(args: tuple[str, ...]) -> None:
    url = "postgresql://postgres:pw@127.0.0.1:1/nodb"
    code, out, err = _invoke("--store", url, *args)
    assert code == 3
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "postgres@127.0.0.1:1/nodb" in lines[0] and ":pw@" not in err
    assert "Traceback" not in err + out


def test_migration_0003_keeps_area_codes_of_an_existing_database(postgis_server) -> None:
    """A database at version 2 with area codes keeps them when request_areas is partitioned."""
    from geo.store.postgis_schema import migrate, migrations

    fresh = postgis_server.clone("v2")
    name = fresh.rsplit("/", 1)[1]
    with psycopg.connect(postgis_server.url(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(fresh) as conn:
            conn.execute(
                "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            for m in migrations()[:2]:
                conn.execute(m.text)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (m.version, m.name),
                )
            rows = [("r1", "ward", "A"), ("r2", "ward", "B"), ("r1", "zip", "19104")]
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO request_areas VALUES (%s, %s, %s)", rows)
            conn.commit()
            assert migrate(conn) == [m.version for m in migrations()[2:]]
            kind = conn.execute(
                "SELECT relkind FROM pg_class WHERE relname = 'request_areas'"
            ).fetchone()
            assert kind == ("p",)
            kept = conn.execute(
                "SELECT service_request_id, layer_key, code FROM request_areas ORDER BY 1, 2"
            ).fetchall()
            assert kept == sorted(rows)
            with pytest.raises(psycopg.errors.UniqueViolation):
                conn.execute("INSERT INTO request_areas VALUES ('r1', 'ward', 'C')")
    finally:
        postgis_server.drop(fresh)


def test_grant_readonly_makes_a_role_that_reads_and_logs_exports_only(
        postgis_url: str) -> None:
    from geo.store.base import open_store
    from geo.store.reads import RequestFilter
    from layers.profile import load_profile

    code, _, err = _invoke("--store", postgis_url, "ingest",
                           str(REQUESTS / "parks-maintenance.csv"))
    assert code == 0, err
    role = f"app_ro_{abs(hash(postgis_url)) % 10**6}"
    code, out, err = _invoke("--store", postgis_url, "db", "grant-readonly", role)
    assert code == 0, err
    assert f"role {role} created" in out
    code, out, err = _invoke("--store", postgis_url, "db", "grant-readonly", role)
    assert code == 0 and f"role {role} narrowed" in out, err
    profile = load_profile("philadelphia")
    owner = open_store(postgis_url, profile)
    readonly_url = postgis_url.replace("postgres@", f"{role}@")
    reader = open_store(readonly_url, profile)
    try:
        assert "requests" in owner.write_privileges()  # the test server's superuser
        assert reader.write_privileges() == []
        assert reader.request_summary(RequestFilter()).count == \
            owner.request_summary(RequestFilter()).count > 0
        reader.record_export(user="viewer@city.gov", role="lead", department=None,
                             what="work list CSV", filters={}, rows=3)
        assert owner.exports()["user_name"].tolist()[-1] == "viewer@city.gov"
    finally:
        owner.close()
        reader.close()
    with psycopg.connect(readonly_url) as conn, pytest.raises(
            psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM requests")
    code, _, err = _invoke("--store", postgis_url, "db", "grant-readonly", "Robert'); DROP")
    assert code == 2 and "role: got" in err and "lower-case letters" in err
    code, _, err = _invoke("--store", postgis_url, "db", "grant-readonly", "postgres")
    assert code == 2 and "is a superuser" in err


def test_db_clean_staging_drops_what_a_killed_ingest_left(postgis_url: str,
                                                          tmp_path: Path) -> None:
    from tests.geo.store.test_postgis_staging import running

    with running(postgis_url) as dead, running(postgis_url) as live:
        dead.kill(postgis_url)
        code, out, err = _invoke("--store", postgis_url, "db", "clean-staging", "--dry-run")
        assert code == 0, err
        for name in dead.staging.tables:
            assert f"would drop  {name}  (its run is gone)" in out
        for name in live.staging.tables:
            assert f"kept        {name}  (in use by a running ingest)" in out
        assert "3 staging tables to drop (dry run), 3 in use" in out
        code, out, err = _invoke("--store", postgis_url, "db", "clean-staging")
        assert code == 0, err
        assert "3 staging tables dropped, 3 in use" in out
        with psycopg.connect(postgis_url) as conn:
            left = {r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE tablename LIKE 'ingest_staging%'")}
        assert left == set(live.staging.tables)
    code, out, err = _invoke("--store", str(tmp_path / "store"), "db", "clean-staging")
    assert code == 2 and "db clean-staging needs a PostGIS store" in err
