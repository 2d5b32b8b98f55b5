"""Schema of the PostGIS store: versioned SQL migrations and binding a database to a city.

Migrations are the files ``geo/store/migrations/NNNN_name.sql``, applied in version order,
each inside the one transaction that :func:`migrate` holds, and recorded in
``schema_migrations``. A transaction-level advisory lock serialises concurrent callers,
so running :func:`migrate` twice (or from two processes at once) applies each file once.

The city's projected SRID is not in the migrations: a database is bound to one city by
:func:`bind_city` when a store first opens it. Binding records the city in
``store_meta`` and adds ``CHECK (ST_SRID(geom) = <srid>)`` constraints to the
city-CRS geometry columns (``requests.geom_city``, ``areas.geom``,
``area_pieces.geom``), which are declared ``geometry(Point)`` / ``geometry(Polygon)``
without an SRID. The SRID is an integer taken from the profile's CRS via pyproj; DDL
cannot take bound parameters, so that one integer is composed with
:class:`psycopg.sql.Literal` after ``int()`` — never a value from the data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Final

import psycopg
import pyproj
from psycopg import sql

from hotspot311.errors import StoreError
from layers.profile import CityProfile

#: ``pg_advisory_xact_lock`` key of the migration lock ("h311" in ASCII).
MIGRATION_LOCK: Final = 0x68333131
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

#: Geometry columns in the city CRS: (table, column, constraint name).
CITY_GEOMETRY_COLUMNS: Final = (
    ("requests", "geom_city", "requests_geom_city_srid"),
    ("areas", "geom", "areas_geom_srid"),
    ("area_pieces", "geom", "area_pieces_geom_srid"),
)


@dataclass(frozen=True)
class Migration:
    """One migration file.

    Attributes
    ----------
    version
        The file's number.
    name
        The rest of the file name.
    text
        SQL statements, UTF-8 bytes.
    """

    version: int
    name: str
    text: bytes


def migrations() -> list[Migration]:
    """The migration files shipped with the package, in version order.

    Raises
    ------
    StoreError
        When two files share a version number.
    """
    found: dict[int, Migration] = {}
    for entry in resources.files("geo.store").joinpath("migrations").iterdir():
        match = _FILE.match(entry.name)
        if not match:
            continue
        version = int(match.group(1))
        if version in found:
            raise StoreError(
                f"migrations {found[version].name!r} and {entry.name!r} share version {version}"
            )
        found[version] = Migration(version, match.group(2), entry.read_bytes())
    return [found[v] for v in sorted(found)]


def migrate(conn: psycopg.Connection) -> list[int]:
    """Apply the migrations this database has not had yet.

    Runs inside one transaction (a failing file leaves the database as it was) and
    holds an advisory lock, so concurrent or repeated calls are safe.

    Parameters
    ----------
    conn
        An open connection (not in autocommit mode is fine: a transaction block is used).

    Returns
    -------
    list of int
        The versions applied now (empty when the schema was current).
    """
    applied_now: list[int] = []
    if _is_current(conn):  # reads only: a read-only database or role can open the store
        return applied_now
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for migration in migrations():
            if migration.version in done:
                continue
            conn.execute(migration.text)
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )
            applied_now.append(migration.version)
    return applied_now


def _check_bound(row: tuple[object, object], profile: CityProfile, srid: int) -> int:
    """``srid`` when the bound city of ``row`` is ``profile``'s, else a StoreError."""
    city, bound = row
    if city != profile.name or bound != srid:
        raise StoreError(
            f"this database holds {city!r} requests (SRID {bound}); it cannot be opened "
            f"with the {profile.name!r} profile (SRID {srid}); use another database"
        )
    return srid


def _is_current(conn: psycopg.Connection) -> bool:
    """Whether every shipped migration is recorded as applied (without writing)."""
    with conn.transaction():
        row = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
        if row is None or row[0] is None:
            return False
        done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
    return all(m.version in done for m in migrations())


def city_srid(profile: CityProfile) -> int:
    """The EPSG code of the profile's projected CRS.

    Raises
    ------
    StoreError
        When the CRS has no EPSG code (PostGIS identifies CRSs by SRID).
    """
    try:
        code = pyproj.CRS(profile.crs).to_epsg()
    except pyproj.exceptions.CRSError as err:
        raise StoreError(
            f"profile {profile.name!r}: crs {profile.crs!r} is not a CRS ({err})"
        ) from err
    if code is None:
        raise StoreError(
            f"profile {profile.name!r}: crs {profile.crs!r} has no EPSG code; the PostGIS store "
            "needs one (e.g. 'EPSG:2272')"
        )
    return int(code)


def bind_city(conn: psycopg.Connection, profile: CityProfile) -> int:
    """Bind the database to ``profile``'s city on first use; check it on later opens.

    Parameters
    ----------
    conn
        Connection to a migrated database.
    profile
        The city profile the store is opened with.

    Returns
    -------
    int
        The city SRID.

    Raises
    ------
    StoreError
        When the database holds another city, or the SRID is unknown to PostGIS.
    """
    srid = city_srid(profile)
    with conn.transaction():  # bound already (the usual case): a read, no lock
        row = conn.execute("SELECT city, city_srid FROM store_meta").fetchone()
    if row is not None:
        return _check_bound(row, profile, srid)
    with conn.transaction():
        conn.execute("LOCK TABLE store_meta IN EXCLUSIVE MODE")
        row = conn.execute("SELECT city, city_srid FROM store_meta").fetchone()
        if row is not None:
            return _check_bound(row, profile, srid)
        known = conn.execute("SELECT 1 FROM spatial_ref_sys WHERE srid = %s", (srid,)).fetchone()
        if known is None:
            raise StoreError(f"PostGIS does not know SRID {srid} (profile crs {profile.crs!r})")
        for table, column, name in CITY_GEOMETRY_COLUMNS:
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK (ST_SRID({}) = {})").format(
                    sql.Identifier(table),
                    sql.Identifier(name),
                    sql.Identifier(column),
                    sql.Literal(int(srid)),
                )
            )
        conn.execute(
            "INSERT INTO store_meta (city, crs, city_srid) VALUES (%s, %s, %s)",
            (profile.name, profile.crs, srid),
        )
    return srid
