"""``hotspot311 db``: maintenance of the PostGIS store's database.

``hotspot311 --store postgresql://… db migrate`` applies the schema migrations the
database has not had yet (:func:`geo.store.postgis_schema.migrate`) and prints them; running it
again applies nothing. It needs a PostGIS store: with a store directory it exits 2.

``hotspot311 db grant-readonly ROLE`` makes the app's database role: it may read the
store and write the export log, nothing else (:mod:`geo.store.postgis_roles`).

``hotspot311 db clean-staging [--dry-run]`` drops the staging tables
(``ingest_staging_*``) that an ``ingest --engine dask`` whose client died left behind,
and lists those of runs still going, which it leaves alone
(:func:`geo.store.postgis_staging.clean_staging`).
"""

from __future__ import annotations

import click

from hotspot311.cli.base import Context, handle_errors, pass_ctx
from hotspot311.errors import InputError, StoreConnectionError, StoreError
from hotspot311.settings import is_postgres_url


@click.group("db")
def db_group() -> None:
    """Maintain the PostGIS store's database (schema migrations)."""


def _need_postgis(ctx: Context, command: str) -> str:
    location = str(ctx.store_location)
    if not is_postgres_url(location):
        raise InputError(
            f"db {command} needs a PostGIS store (--store postgresql://user@host:port/dbname "
            f"or postgresql: for the PG* variables); the store is {location!r}, a store "
            "directory")
    return location


@db_group.command("grant-readonly")
@click.argument("role")
@click.option("--password-env", metavar="VAR",
              help="Set the role's password from this environment variable (never on the "
                   "command line).")
@pass_ctx
@handle_errors
def grant_readonly_cmd(ctx: Context, role: str, password_env: str | None) -> None:
    """Create ROLE (or narrow it): read the store, write only the export log. Give it to
    the app (HOTSPOT311_STORE=postgresql://ROLE@host/db)."""
    import os

    import psycopg

    from geo.store.postgis import conninfo_for, server_label
    from geo.store.postgis_roles import grant_readonly

    location = _need_postgis(ctx, "grant-readonly")
    password = None
    if password_env:
        password = os.environ.get(password_env)
        if not password:
            raise InputError(f"--password-env: {password_env} is not set or empty")
    ctx.store()  # opening migrates: export_audit exists before the grant
    conninfo = conninfo_for(location)
    label = server_label(conninfo)
    try:
        with psycopg.connect(conninfo, connect_timeout=10) as conn:
            created = grant_readonly(conn, role, password=password)
    except psycopg.Error as err:
        raise StoreError(f"cannot grant {role!r} at {label}: {err}") from None
    click.echo(f"{label}: role {role} {'created' if created else 'narrowed'}: reads the "
               "store, writes only the export log")


@db_group.command("migrate")
@pass_ctx
@handle_errors
def migrate_cmd(ctx: Context) -> None:
    """Apply pending schema migrations (safe to run twice) and print them."""
    location = str(ctx.store_location)
    if not is_postgres_url(location):
        raise InputError(
            f"db migrate needs a PostGIS store (--store postgresql://user@host:port/dbname or "
            f"postgresql: for the PG* variables); the store is {location!r}, a store directory"
        )
    import psycopg

    from geo.store.postgis import conninfo_for, server_label
    from geo.store.postgis_schema import migrate, migrations

    conninfo = conninfo_for(location)
    label = server_label(conninfo)
    try:
        with psycopg.connect(conninfo, connect_timeout=10) as conn:
            applied = migrate(conn)
            current = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    except psycopg.OperationalError as err:
        text = str(err).strip()
        reason = text.splitlines()[-1] if text else type(err).__name__
        raise StoreConnectionError(f"cannot connect to PostgreSQL at {label}: {reason}") from None
    except psycopg.Error as err:
        raise StoreError(f"cannot migrate the PostGIS store at {label}: {err}") from None
    names = {m.version: m.name for m in migrations()}
    for version in applied:
        click.echo(f"applied {version:04d}_{names[version]}")
    schema_version = current[0] if current else None
    if not applied:
        click.echo(f"{label}: schema is current (version {schema_version}); nothing to apply")
    else:
        click.echo(f"{label}: schema now at version {schema_version}")


@db_group.command("clean-staging")
@click.option("--dry-run", is_flag=True, help="List what would be dropped; drop nothing.")
@pass_ctx
@handle_errors
def clean_staging_cmd(ctx: Context, dry_run: bool) -> None:
    """Drop the staging tables left by parallel ingests whose client died.

    A running ``ingest --engine dask`` holds a lock for as long as its client is
    connected; its tables are listed as in use and kept.
    """
    import psycopg

    from geo.store.postgis import conninfo_for, server_label
    from geo.store.postgis_staging import clean_staging

    location = _need_postgis(ctx, "clean-staging")
    conninfo = conninfo_for(location)
    label = server_label(conninfo)
    try:
        with psycopg.connect(conninfo, connect_timeout=10) as conn:
            report = clean_staging(conn, dry_run=dry_run)
    except psycopg.OperationalError as err:
        raise StoreConnectionError(f"cannot connect to PostgreSQL at {label}: {err}") from None
    except psycopg.Error as err:
        raise StoreError(f"cannot clean the staging tables at {label}: {err}") from None
    verb = "would drop" if dry_run else "dropped"
    for name in report.dropped:
        click.echo(f"{verb:<11} {name}  (its run is gone)")
    for name in report.in_use:
        click.echo(f"{'kept':<11} {name}  (in use by a running ingest)")
    for name in report.unknown:
        click.echo(f"{'left alone':<11} {name}  (not a staging table's name)")
    click.echo(f"{label}: {len(report.dropped)} staging tables "
               f"{'to drop (dry run)' if dry_run else 'dropped'}, "
               f"{len(report.in_use)} in use")
