"""The app's read-only database role.

:func:`grant_readonly` makes (or narrows) a login role that may read every table of the
store and insert into ``export_audit`` only, so that an app whose process is taken over
still cannot change requests, layers or runs. The app checks its role at start
(:meth:`geo.store.postgis_reads.PostGISReads.write_privileges`) and refuses one that can
write unless told it may.
"""

from __future__ import annotations

import re

import psycopg
from psycopg import sql

from hotspot311.errors import InputError, describe

_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def grant_readonly(conn: psycopg.Connection, role: str, *, password: str | None = None
                   ) -> bool:
    """Create ``role`` (a login role) or narrow it to reading the store, in one transaction.

    Parameters
    ----------
    conn
        A connection as the store's owner (or a superuser).
    role
        Role name: lower-case letters, digits and ``_``, at most 63 characters.
    password
        Sets the role's password when given.

    Returns
    -------
    bool
        Whether the role was created now.

    Raises
    ------
    InputError
        When ``role`` is not a plain lower-case name, or names a superuser.
    """
    if not _ROLE.match(role):
        raise InputError(f"role: got {describe(role)}; allowed: lower-case letters, digits "
                         "and _, starting with a letter or _, at most 63 characters")
    ident = sql.Identifier(role)
    with conn.transaction():
        row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,)
                           ).fetchone()
        if row is not None and row[0]:
            raise InputError(f"role: {role!r} is a superuser; a superuser can write whatever "
                             "it is granted; choose another name")
        created = row is None
        if created:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident))
        if password is not None:
            # DDL takes no bound parameters: the password goes in as an escaped literal
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident, sql.Literal(password)))
        dbname = conn.execute("SELECT current_database()").fetchone()
        schema = conn.execute("SELECT current_schema()").fetchone()
        assert dbname is not None and schema is not None  # always one row
        db, sch = sql.Identifier(dbname[0]), sql.Identifier(schema[0])
        for stmt in (
            "GRANT CONNECT ON DATABASE {db} TO {role}",
            "GRANT USAGE ON SCHEMA {sch} TO {role}",
            "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA {sch} FROM {role}",
            "GRANT SELECT ON ALL TABLES IN SCHEMA {sch} TO {role}",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA {sch} GRANT SELECT ON TABLES TO {role}",
            "GRANT INSERT ON {sch}.export_audit TO {role}",
            "GRANT USAGE ON SEQUENCE {sch}.export_audit_audit_id_seq TO {role}",
        ):
            conn.execute(sql.SQL(stmt).format(db=db, sch=sch, role=ident))
    return created
