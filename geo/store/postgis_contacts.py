"""The contact log in the PostGIS store (tables of migration 0005).

Every function takes an open connection and runs in the caller's transaction. A batch is
COPYed into a temporary table and upserted with ``INSERT … ON CONFLICT (contact_id) DO
UPDATE … WHERE the content differs``; ``RETURNING (xmax = 0)`` tells inserted rows from
updated ones. Quarantine rows already there (same ``quarantine_id``) are left alone.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from geo.ingest.contacts import (
    CONTACT_COLUMNS,
    CONTACT_QUARANTINE_COLUMNS,
    empty_contact_quarantine,
    empty_contacts,
    typed_contact_quarantine,
    typed_contacts,
)

_UPDATABLE: Final = tuple(c for c in CONTACT_COLUMNS if c != "contact_id")


def _py(value: object) -> object:
    """A frame value as a Python value psycopg can COPY (NA → None)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


def upsert_contacts(conn: psycopg.Connection, contacts: pd.DataFrame) -> tuple[int, int]:
    """Insert new contacts and replace changed ones.

    Parameters
    ----------
    conn
        Connection inside a transaction.
    contacts
        Validated contacts (:data:`geo.ingest.contacts.CONTACT_COLUMNS`).

    Returns
    -------
    tuple of int
        Rows inserted, rows updated.
    """
    if contacts.empty:
        return 0, 0
    cols = list(CONTACT_COLUMNS)
    idents = sql.SQL(", ").join(map(sql.Identifier, cols))
    conn.execute(sql.SQL("CREATE TEMP TABLE incoming_contacts ON COMMIT DROP AS"
                         " SELECT {} FROM contacts WITH NO DATA").format(idents))
    frame = contacts[cols].copy()
    frame["row_hash"] = frame["row_hash"].astype("uint64").astype("int64")
    with conn.cursor() as cur, cur.copy(
        sql.SQL("COPY incoming_contacts ({}) FROM STDIN").format(idents)
    ) as copy:
        for row in frame.itertuples(index=False, name=None):
            copy.write_row([_py(v) for v in row])
    updates = sql.SQL(", ").join(
        sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
        for c in _UPDATABLE
    )
    rows = conn.execute(
        sql.SQL("INSERT INTO contacts ({cols}) SELECT {cols} FROM incoming_contacts"
                " ON CONFLICT (contact_id) DO UPDATE SET {updates}"
                " WHERE contacts.row_hash IS DISTINCT FROM EXCLUDED.row_hash"
                " RETURNING (xmax = 0)").format(cols=idents, updates=updates)
    ).fetchall()
    inserted = sum(1 for r in rows if r[0])
    return inserted, len(rows) - inserted


def write_contact_quarantine(conn: psycopg.Connection, frame: pd.DataFrame) -> None:
    """Add ``frame``'s quarantine rows that are not there yet."""
    if frame.empty:
        return
    cols = list(CONTACT_QUARANTINE_COLUMNS)
    idents = sql.SQL(", ").join(map(sql.Identifier, cols))
    with conn.cursor() as cur:
        cur.executemany(
            sql.SQL("INSERT INTO contact_quarantine ({}) VALUES ({})"
                    " ON CONFLICT (quarantine_id) DO NOTHING").format(
                idents, sql.SQL(", ").join(sql.Placeholder() * len(cols))),
            [[_py(v) for v in row] for row in frame[cols].itertuples(index=False, name=None)],
        )


def read_contacts(conn: psycopg.Connection) -> pd.DataFrame:
    """Every stored contact, ordered by ``contact_id`` (byte order), typed as the embedded
    store's frame."""
    cols = list(CONTACT_COLUMNS)
    rows = conn.execute(
        sql.SQL('SELECT {} FROM contacts ORDER BY contact_id COLLATE "C"').format(
            sql.SQL(", ").join(map(sql.Identifier, cols)))
    ).fetchall()
    if not rows:
        return empty_contacts()
    frame = pd.DataFrame(rows, columns=cols, dtype=object)
    return typed_contacts(frame)


def read_contact_quarantine(conn: psycopg.Connection) -> pd.DataFrame:
    """Every quarantined contact row, in the order quarantined."""
    cols = list(CONTACT_QUARANTINE_COLUMNS)
    rows = conn.execute(
        sql.SQL("SELECT {} FROM contact_quarantine ORDER BY seq").format(
            sql.SQL(", ").join(map(sql.Identifier, cols)))
    ).fetchall()
    if not rows:
        return empty_contact_quarantine()
    return typed_contact_quarantine(pd.DataFrame(rows, columns=cols, dtype=object))
