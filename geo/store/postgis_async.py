"""One-statement reads of the PostGIS store for an asyncio server, without a thread each.

The Open311 server answers a one-request look-up in about a millisecond of its own CPU.
Run on a worker thread (the synchronous store), a third of that went to the hop itself:
handing the call to the thread pool and waking the event loop again (py-spy, 50 clients).
:class:`AsyncReads` runs the same statement (:func:`geo.store.postgis_query.query_bytes`)
on psycopg's asyncio connections from a pool of its own, opened and closed in the event
loop that uses it (one per server process). The statements are lone ``SELECT``\\s in
autocommit, as :meth:`geo.store.postgis.PostGISStore._statement` runs them.

Failures are reported as the synchronous store reports them (:func:`store_error`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from geo.store.postgis_query import columns_of, query_bytes
from geo.store.query import QUERY_COLUMNS, RequestQuery
from hotspot311.errors import StoreConnectionError, StoreError

#: Seconds to wait for a connection to open (as the synchronous store).
CONNECT_TIMEOUT: Final = 10


def first_line(err: BaseException) -> str:
    """The first non-empty line of an error's message (the server's words)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def store_error(err: psycopg.Error | PoolTimeout, where: str) -> StoreError:
    """The store's error for a database failure of ``where`` (the store's description).

    No connection from the pool, a server that stopped or a connection that broke
    mid-statement: :class:`StoreConnectionError`. An error the server reports (disk
    full, a read-only database, no privilege): :class:`StoreError` with the server's
    message. Either way the transaction was rolled back.

    Examples
    --------
    >>> type(store_error(PoolTimeout("no connection in 10 s"), "PostGIS store u@h/d"))
    <class 'hotspot311.errors.StoreConnectionError'>
    """
    if isinstance(err, PoolTimeout):
        return StoreConnectionError(f"{where}: no connection to the server ({err})")
    message = first_line(err)
    if err.sqlstate is None or err.sqlstate.startswith(("08", "57P")):
        return StoreConnectionError(
            f"{where}: the connection to the server was lost ({message}); the unfinished "
            "step was rolled back, the store is as it was")
    return StoreError(f"{where}: the server refused the step ({message}); it was rolled "
                      "back, the store is as it was")


class AsyncReads:
    """Open311 reads on a pool of asyncio connections (see the module docstring).

    Parameters
    ----------
    conninfo
        The store's libpq connection string.
    where
        The store's description, for error messages.
    srid, unit_m
        As :func:`geo.store.postgis_query.query_sql` takes them.
    max_size
        Number of pooled connections, all opened by :meth:`open`.
    """

    def __init__(self, conninfo: str, *, where: str, srid: int, unit_m: float,
                 max_size: int) -> None:
        self.where = where
        self._srid, self._unit_m = srid, unit_m
        # every connection opened at start: a pool growing under a burst of look-ups
        # makes the first of them wait for new connections
        self._pool = AsyncConnectionPool(
            conninfo, min_size=max_size, max_size=max_size, open=False,
            name="hotspot311-async",
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT})

    async def open(self) -> None:
        """Open the pool (in the event loop that will use it).

        Raises
        ------
        StoreConnectionError
            When no connection opens in time.
        """
        try:
            await self._pool.open(wait=True, timeout=CONNECT_TIMEOUT * 2)
        except PoolTimeout as err:
            raise store_error(err, self.where) from err

    async def close(self) -> None:
        """Close the pool's connections."""
        await self._pool.close()

    async def query_rows(self, query: RequestQuery, *,
                         columns: Sequence[str] = QUERY_COLUMNS) -> dict[str, list[Any]]:
        """What :meth:`geo.store.postgis.PostGISStore.query_rows` answers, read on an
        asyncio connection.

        Raises
        ------
        StoreError
            As the synchronous store raises it (:func:`store_error`).
        """
        if query.empty:
            return {c: [] for c in columns}
        stmt, params = query_bytes(query, srid=self._srid, unit_m=self._unit_m,
                                 columns=columns)
        try:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(stmt, params, binary=True)
                rows = await cursor.fetchall()
        except (psycopg.Error, PoolTimeout) as err:
            raise store_error(err, self.where) from err
        return columns_of(rows, columns)


__all__ = ["AsyncReads", "first_line", "store_error"]
