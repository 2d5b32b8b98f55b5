"""Stopping the work a write runs on a second connection when the write fails.

A big write fills its layers' partitions on a connection of its own while its own
connection loads the requests (:func:`geo.store.postgis_areas.stage_partitions`). When
the write fails (an error, or the analyst's Ctrl-C), that work is of no use, and the
write would wait for it (seconds at 1M requests) before it could roll back.
:class:`HelperStop` lets the write stop it: the statement running on the helper's
connection is cancelled, and the helper checks before each statement it starts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import psycopg


class HelperStopped(Exception):
    """The write that asked for this work has failed; the work was given up."""


class HelperStop:
    """A stop signal for the helper connection of one write.

    Examples
    --------
    >>> stop = HelperStop()
    >>> stop.check()
    >>> stop.stop()
    >>> stop.check()
    Traceback (most recent call last):
    ...
    geo.store.helper_stop.HelperStopped: the write failed; its helper connection stopped
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None
        self._stopped = False

    def stop(self) -> None:
        """Stop the helper: cancel the statement it runs now, and refuse the next."""
        with self._lock:
            self._stopped = True
            if self._conn is not None:
                # best effort: the connection may be closing; the checks still refuse
                with suppress(psycopg.Error):
                    self._conn.cancel_safe(timeout=10.0)

    def check(self) -> None:
        """Raise :class:`HelperStopped` once :meth:`stop` was called."""
        with self._lock:
            if self._stopped:
                raise HelperStopped("the write failed; its helper connection stopped")

    @contextmanager
    def watching(self, conn: psycopg.Connection) -> Iterator[None]:
        """Within the block, :meth:`stop` cancels what ``conn`` (the helper's
        connection) runs; the block is refused once stopped."""
        with self._lock:
            if self._stopped:
                raise HelperStopped("the write failed; its helper connection stopped")
            self._conn = conn
        try:
            yield
        finally:
            with self._lock:
                self._conn = None

    @contextmanager
    def on_error(self) -> Iterator[None]:
        """Stop the helper when the block raises (then re-raise)."""
        try:
            yield
        except BaseException:
            self.stop()
            raise
