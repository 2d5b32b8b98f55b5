"""The PostGIS store's Open311 reads and API keys: one parameterized statement each.

A query is composed with :mod:`psycopg.sql` (identifiers from a fixed list, every value
a parameter) and ordered by ``(requested_datetime, service_request_id COLLATE "C")``
descending, the order of the ``requests_open311_order`` index (migration 0007); deep
pages use the keyset condition on that pair, never ``OFFSET``. ``updated_after`` and
``updated_before`` compare the last change (``coalesce(updated_datetime,
requested_datetime)``, indexed by migration 0012). ``near`` is
``ST_DWithin`` on ``geom_city`` (GiST); ``bbox`` is the envelope in the city CRS on
``geom_city`` and then the exact test on ``lat``/``lon``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Final

import pandas as pd
import psycopg
from psycopg import sql

from geo.store.api_keys import ApiKey, check_account
from geo.store.embedded_query import empty_result
from geo.store.query import QUERY_COLUMNS, PageKeys, RequestQuery, unit_metres
from hotspot311.errors import InputError, StoreError
from hotspot311.schema import TIME_FIELDS

_C = sql.SQL('COLLATE "C"')
#: A request's last change, as the ``requests_updated`` index holds it (migration 0012).
_LAST_CHANGE = sql.SQL("coalesce(updated_datetime, requested_datetime)")


_RID, _REQ = sql.Identifier("service_request_id"), sql.Identifier("requested_datetime")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NAME = sql.Identifier("service_name")

#: Each filter's condition, by name (every value a parameter; see :func:`_parameters`).
_CONDITIONS: Final[dict[str, sql.Composable]] = {
    "id": sql.SQL("{} = %s").format(_RID),
    "ids": sql.SQL("{} = ANY(%s)").format(_RID),
    # equality on the indexed prefix, so the planner walks requests_service_order
    # (migration 0012) in page order; then the whole name
    "service": sql.SQL("left({name}, 200) = left(%s, 200) AND {name} = %s").format(name=_NAME),
    "services": sql.SQL("{} = ANY(%s)").format(_NAME),
    "status": sql.SQL("{} = %s").format(sql.Identifier("status")),
    "start": sql.SQL("{} >= %s").format(_REQ),
    "end": sql.SQL("{} < %s").format(_REQ),
    "updated_after": sql.SQL("{} > %s").format(_LAST_CHANGE),
    "updated_before": sql.SQL("{} < %s").format(_LAST_CHANGE),
    "bbox": sql.SQL(
        "geom_city && ST_Transform(ST_MakeEnvelope(%s, %s, %s, %s, 4326), %s) "
        "AND lon BETWEEN %s AND %s AND lat BETWEEN %s AND %s"),
    "near": sql.SQL(
        "ST_DWithin(geom_city, ST_Transform(ST_SetSRID(ST_MakePoint(%s, %s), 4326), %s), "
        "%s)"),
    "after": sql.SQL("({}, {} {}) < (%s, %s {})").format(_REQ, _RID, _C, _C),
    "nothing": sql.SQL("false"),
}


def held(values: Sequence[str]) -> list[str]:
    """The ``values`` a text column of this store can hold: PostgreSQL text cannot hold
    U+0000 (ingest stores it as U+FFFD, and quarantines an id holding one), so a value
    with a NUL character matches nothing here, and sending it would be refused.

    Examples
    --------
    >>> held(["a", "b\\x00c"])
    ['a']
    """
    return [v for v in values if "\x00" not in v]


def cursor_id(value: str) -> str:
    """A cursor's id as sent to PostgreSQL, ordering every stored id (none holds a NUL)
    as the id itself would in ``COLLATE "C"``: one with a NUL character becomes its part
    before the first NUL followed by U+0001 (a stored id sorts before ``p\\0q`` exactly
    when it sorts before ``p\\x01``).

    Examples
    --------
    >>> cursor_id("abc"), cursor_id("ab\\x00z")
    ('abc', 'ab\\x01')
    """
    head, nul, _ = value.partition("\x00")
    return head + "\x01" if nul else value


def query_sql(query: RequestQuery, *, srid: int, unit_m: float,
              columns: Sequence[str]) -> tuple[sql.Composed, list[Any]]:
    """The statement and parameters answering ``query``.

    Parameters
    ----------
    query
        Filters, order position and size.
    srid
        The city SRID of ``geom_city``.
    unit_m
        Metres per unit of the city CRS (``near`` radius conversion).
    columns
        Columns to return.

    Returns
    -------
    tuple
        The composed statement and its parameters.
    """
    shape, params = _parameters(query, srid=srid, unit_m=unit_m)
    return _statement(shape, tuple(columns)), params


def query_bytes(query: RequestQuery, *, srid: int, unit_m: float,
                columns: Sequence[str]) -> tuple[bytes, list[Any]]:
    """:func:`query_sql` with the statement as the bytes psycopg sends.

    A statement depends only on which filters are set and on the columns, so its text is
    composed once per such shape and kept: composing and quoting it again on every
    one-request look-up cost a tenth of the server's time for it.
    """
    shape, params = _parameters(query, srid=srid, unit_m=unit_m)
    return _statement_bytes(shape, tuple(columns)), params


def _parameters(query: RequestQuery, *, srid: int, unit_m: float
                ) -> tuple[tuple[str, ...], list[Any]]:
    """The names of the conditions of ``query`` (:data:`_CONDITIONS`, in order) and the
    statement's parameters."""
    shape: list[str] = []
    params: list[Any] = []
    ids = held(query.ids)
    if len(ids) == 1:  # a look-up: no array to send
        shape.append("id")
        params.append(ids[0])
    elif ids:
        shape.append("ids")
        params.append(ids)
    elif query.ids:  # only ids this store cannot hold
        shape.append("nothing")
    if query.service_names is not None and len(query.service_names) == 1:
        shape.append("service")
        params += [query.service_names[0], query.service_names[0]]
    elif query.service_names is not None:
        shape.append("services")
        params.append(list(query.service_names))
    if query.status is not None:
        shape.append("status")
        params.append(query.status)
    for name, value in (("start", query.start), ("end", query.end),
                        ("updated_after", query.updated_after),
                        ("updated_before", query.updated_before)):
        if value is not None:
            shape.append(name)
            params.append(value)
    if query.bbox is not None:
        w, s, e, n = query.bbox
        shape.append("bbox")
        params += [w, s, e, n, srid, w, e, s, n]
    if query.near is not None:
        lat, lon, radius = query.near
        shape.append("near")
        params += [lon, lat, srid, radius / unit_m]
    if query.after is not None:
        shape.append("after")
        params += [query.after[0], cursor_id(query.after[1])]
    params += [query.limit, query.offset]
    return tuple(shape), params


@lru_cache(maxsize=256)
def _statement(shape: tuple[str, ...], columns: tuple[str, ...]) -> sql.Composed:
    cond = (sql.SQL(" AND ").join(_CONDITIONS[name] for name in shape) if shape
            else sql.SQL("true"))
    return sql.SQL(
        "SELECT {cols} FROM requests WHERE {cond} "
        "ORDER BY {req} DESC, {rid} {c} DESC LIMIT %s OFFSET %s").format(
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in columns), cond=cond, req=_REQ,
        rid=_RID, c=_C)


#: The two numbers of the store's :meth:`~PostGISApiMixin.data_version` token, as
#: columns: initplans, run once per statement, so they name the state the statement's
#: rows were read in (numbers: no text to make per row).
_VERSION = sql.SQL(
    "(SELECT oid::int8 FROM pg_database WHERE datname = current_database()),"
    " (SELECT version FROM data_version)")


_VERSION_ALONE: Final = sql.SQL("SELECT {}").format(_VERSION).as_bytes(None)


def _token(oid: int, version: int) -> str:
    """The :meth:`~PostGISApiMixin.data_version` token of the database ``oid`` at
    ``version``."""
    return f"{oid}:{version}"


@lru_cache(maxsize=256)
def _keys_statement(shape: tuple[str, ...]) -> bytes:
    """The page statement of ``shape`` returning the version, the ids and the times
    (as microseconds since 1970, numbers: only the last row's is used)."""
    plain = _statement(shape, ("service_request_id", "requested_datetime"))
    return sql.SQL(
        "SELECT {v}, q.{rid}, (extract(epoch FROM q.{req}) * 1000000)::int8 FROM ({plain}) q"
        " ORDER BY q.{req} DESC, q.{rid} {c} DESC"
    ).format(v=_VERSION, plain=plain, req=_REQ, rid=_RID, c=_C).as_bytes(None)


@lru_cache(maxsize=16)
def _rows_statement(columns: tuple[str, ...]) -> bytes:
    """The statement returning the version and ``columns`` of the rows of an id array."""
    return sql.SQL("SELECT {}, {} FROM requests WHERE {} = ANY(%s)").format(
        _VERSION, sql.SQL(", ").join(map(sql.Identifier, columns)), _RID).as_bytes(None)


@lru_cache(maxsize=256)
def _statement_bytes(shape: tuple[str, ...], columns: tuple[str, ...]) -> bytes:
    return _statement(shape, columns).as_bytes(None)


def run_query(conn: psycopg.Connection, query: RequestQuery, *, srid: int, unit_m: float,
              columns: Sequence[str] = QUERY_COLUMNS) -> pd.DataFrame:
    """Answer ``query`` on an open connection (see :func:`query_sql`).

    Returns
    -------
    pandas.DataFrame
        The page, newest first; times as UTC timestamps.
    """
    if query.empty:
        return empty_result(columns)
    stmt, params = query_sql(query, srid=srid, unit_m=unit_m, columns=columns)
    rows = conn.execute(stmt, params).fetchall()
    frame = pd.DataFrame(rows, columns=list(columns), dtype=object)
    for col in columns:
        if col in TIME_FIELDS:
            frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


def fetch_rows(conn: psycopg.Connection, query: RequestQuery, *, srid: int, unit_m: float,
               columns: Sequence[str] = QUERY_COLUMNS) -> dict[str, list[Any]]:
    """Answer ``query`` as column lists (no data frame: what the server serves from).

    The rows come in PostgreSQL's binary format: the server sends times as numbers
    instead of formatting them as text, and psycopg makes them without parsing text
    (about a sixth less client time on a 1,000-row page).

    Returns
    -------
    dict
        Column → values in page order; times as aware datetimes.
    """
    if query.empty:
        return {c: [] for c in columns}
    stmt, params = query_bytes(query, srid=srid, unit_m=unit_m, columns=columns)
    return columns_of(conn.execute(stmt, params, binary=True).fetchall(), columns)


def columns_of(rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> dict[str, list[Any]]:
    """Rows of a ``SELECT`` of ``columns`` as column lists.

    Examples
    --------
    >>> columns_of([("a", 1), ("b", 2)], ["id", "n"]), columns_of([], ["id"])
    ({'id': ['a', 'b'], 'n': [1, 2]}, {'id': []})
    """
    if not rows:
        return {c: [] for c in columns}
    return {c: list(v) for c, v in zip(columns, zip(*rows, strict=True), strict=True)}


def _key(row: Sequence[Any]) -> ApiKey:
    return ApiKey(row[0], row[1], row[2], row[3], row[4])


_KEY_COLUMNS = sql.SQL("name, role, key_hash, created_at, revoked_at")


class PostGISApiMixin:
    """Open311 reads and API keys for :class:`geo.store.postgis.PostGISStore`."""

    srid: int

    def _connection(self) -> AbstractContextManager[psycopg.Connection]:  # the store's
        raise NotImplementedError

    def _statement(self) -> AbstractContextManager[psycopg.Connection]:  # the store's
        raise NotImplementedError

    def query_requests(self, query: RequestQuery, *,
                       columns: Sequence[str] = QUERY_COLUMNS) -> pd.DataFrame:
        """Answer an Open311 query (see :func:`run_query`)."""
        unit = unit_metres(str(self.profile.crs))  # type: ignore[attr-defined]
        with self._statement() as conn:
            return run_query(conn, query, srid=self.srid, unit_m=unit, columns=columns)

    def query_rows(self, query: RequestQuery, *,
                   columns: Sequence[str] = QUERY_COLUMNS) -> dict[str, list[Any]]:
        """Answer an Open311 query as column lists (see :func:`fetch_rows`)."""
        unit = unit_metres(str(self.profile.crs))  # type: ignore[attr-defined]
        with self._statement() as conn:
            return fetch_rows(conn, query, srid=self.srid, unit_m=unit, columns=columns)

    def page_keys(self, query: RequestQuery) -> PageKeys | None:
        """The page's ids and times, and the data version, by one statement (see
        :meth:`geo.store.base.Store.page_keys`); ``None`` for a role that may not read
        the version."""
        if query.empty:
            return PageKeys(version=None, ids=[], last_requested=None)
        unit = unit_metres(str(self.profile.crs))  # type: ignore[attr-defined]
        shape, params = _parameters(query, srid=self.srid, unit_m=unit)
        rows = self._versioned(_keys_statement(shape), params)
        if rows is None:
            return None
        if not rows:
            return PageKeys(version=None, ids=[], last_requested=None)
        last = rows[-1][3]  # NULL only for a row written around the ingest's checks
        return PageKeys(version=_token(rows[0][0], rows[0][1]), ids=[r[2] for r in rows],
                        last_requested=None if last is None
                        else _EPOCH + timedelta(microseconds=last))

    def rows_by_id(self, ids: Sequence[str], *, columns: Sequence[str] = QUERY_COLUMNS
                   ) -> tuple[str | None, dict[str, list[Any]]]:
        """The rows of ``ids`` and the data version, by one statement (see
        :meth:`geo.store.base.Store.rows_by_id`)."""
        wanted = held(ids)
        rows = self._versioned(_rows_statement(tuple(columns)), [wanted]) if wanted else []
        if not rows:
            return None, {c: [] for c in columns}
        return _token(rows[0][0], rows[0][1]), columns_of([r[2:] for r in rows], columns)

    def _versioned(self, stmt: bytes, params: Sequence[Any]) -> list[Any] | None:
        """Rows of a statement whose first two columns are :data:`_VERSION` (binary
        results); ``None`` when this role may not read the version."""
        try:
            with self._statement() as conn:
                return conn.execute(stmt, params, binary=True).fetchall()
        except StoreError as err:
            if isinstance(err.__cause__, psycopg.errors.InsufficientPrivilege):
                return None
            raise

    def data_version(self) -> str | None:
        """The number migration 0016's trigger adds one to with every statement that
        writes ``requests``, after the database's oid (another database, or one made
        again from a copy, answers other tokens); ``None`` for a role that may not read
        it."""
        rows = self._versioned(_VERSION_ALONE, [])
        if not rows or rows[0][1] is None:
            return None
        return _token(rows[0][0], rows[0][1])

    def api_keys(self) -> list[ApiKey]:
        """Every account's key record, by name."""
        with self._connection() as conn:
            rows = conn.execute(sql.SQL("SELECT {} FROM api_keys ORDER BY name").format(
                _KEY_COLUMNS)).fetchall()
        return [_key(r) for r in rows]

    def add_api_key(self, name: str, role: str, key_hash: str) -> ApiKey:
        """Store a new account's key hash."""
        check_account(name, role)
        with self._connection() as conn:
            row = conn.execute(sql.SQL(
                "INSERT INTO api_keys (name, role, key_hash) VALUES (%s, %s, %s) "
                "ON CONFLICT (name) DO NOTHING RETURNING {}").format(_KEY_COLUMNS),
                [name, role, key_hash]).fetchone()
            conn.commit()
        if row is None:
            raise InputError(f"NAME: account {name!r} already has a key; revoke it or "
                             "choose another name")
        return _key(row)

    def revoke_api_key(self, name: str) -> ApiKey:
        """Mark an account's key revoked (a revoked key stays revoked)."""
        with self._connection() as conn:
            row = conn.execute(sql.SQL(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, %s) WHERE name = %s "
                "RETURNING {}").format(_KEY_COLUMNS), [datetime.now(UTC), name]).fetchone()
            conn.commit()
            if row is None:
                names = [r[0] for r in conn.execute("SELECT name FROM api_keys ORDER BY name")]
                raise InputError(f"NAME: no account {name!r}; accounts: {names}")
        return _key(row)

    def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        """The record whose hash is ``key_hash`` (revoked or not), or ``None``."""
        with self._statement() as conn:
            row = conn.execute(sql.SQL("SELECT {} FROM api_keys WHERE key_hash = %s").format(
                _KEY_COLUMNS), [key_hash]).fetchone()
        return None if row is None else _key(row)


__all__ = ["PostGISApiMixin", "fetch_rows", "query_sql", "run_query"]
