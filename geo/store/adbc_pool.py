"""Idle ADBC connections kept for the next read, per connection URI and process.

Opening an ADBC PostgreSQL connection costs about 90 ms, 50 ms of it CPU in this
process: the driver reads the server's type catalogue on every connect. The app reads
the store through ADBC several times a rerun and from many sessions at once, so each
read takes an idle connection when there is one and gives it back afterwards, its
transaction rolled back. A kept connection is checked with a one-row query before it is
handed out (about 0.6 ms; the server may have restarted since, even a moment ago); one
that fails the check, or whose read failed, is closed instead of kept.

A forked child never uses its parent's connections (their sockets are the parent's):
it starts with no idle connection and keeps the inherited ones unclosed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, Final

import adbc_driver_postgresql.dbapi as adbc

#: Idle connections kept per URI; more at once are closed when given back.
MAX_IDLE: Final = 8

_lock = threading.Lock()
_idle: dict[str, list[Any]] = {}
#: Connections inherited over a fork: kept referenced, never closed (their sockets
#: belong to the parent).
_inherited: list[Any] = []


def _forget_after_fork() -> None:
    global _lock
    _lock = threading.Lock()
    for kept in _idle.values():
        _inherited.extend(kept)
    _idle.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


@contextmanager
def connection(uri: str) -> Iterator[Any]:
    """An ADBC connection to ``uri``: an idle one when there is one, else a new one.

    Parameters
    ----------
    uri : str
        A ``postgresql://`` URI (see :func:`geo.store.postgis_read.adbc_uri`).

    Yields
    ------
    adbc_driver_postgresql.dbapi.Connection
        A connection in a fresh transaction (autocommit off, as ADBC's DB-API opens it).
        When the block ends normally it is rolled back and kept for the next read;
        when the block raises it is closed.
    """
    conn = _take(uri) or adbc.connect(uri)
    try:
        yield conn
    except BaseException:
        _close(conn)
        raise
    try:
        conn.rollback()
    except Exception:  # the driver's own error types: the connection is not reusable
        _close(conn)
        return
    with _lock:
        kept = _idle.setdefault(uri, [])
        if len(kept) < MAX_IDLE:
            kept.append(conn)
            return
    _close(conn)


def close_idle(uri: str) -> int:
    """Close the idle connections kept for ``uri`` (a store closing).

    Parameters
    ----------
    uri : str
        The connection URI.

    Returns
    -------
    int
        How many connections were closed.
    """
    with _lock:
        kept = _idle.pop(uri, [])
    for conn in kept:
        _close(conn)
    return len(kept)


def idle_count(uri: str) -> int:
    """How many connections to ``uri`` are kept idle now.

    Parameters
    ----------
    uri : str
        The connection URI.

    Returns
    -------
    int
        The number of idle connections.
    """
    with _lock:
        return len(_idle.get(uri, ()))


def _take(uri: str) -> Any | None:
    """The most recently used idle connection to ``uri`` that still answers, or None."""
    while True:
        with _lock:
            kept = _idle.get(uri)
            if not kept:
                return None
            conn = kept.pop()
        if _answers(conn):
            return conn
        _close(conn)


def _answers(conn: Any) -> bool:
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchall()
        conn.rollback()
    except Exception:  # the driver's own error types
        return False
    return True


def _close(conn: Any) -> None:
    with suppress(Exception):
        conn.close()
