"""Geometry arrays made in bulk, without the cyclic garbage collector's passes.

Every shapely geometry is an object the cyclic garbage collector tracks, so making a
million points (a store read back, a batch's coordinates) triggers hundreds of
collections, and the older generations are scanned again and again while the array
grows: measured on this project's machine, ``shapely.points`` of a million coordinates
took 0.44-0.60 s with the collector on and 0.11-0.15 s with it paused. The geometries
hold no references to other objects, so pausing the collector while they are made
leaves nothing uncollected: collections resume when the last pause ends.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import shapely

_LOCK = threading.Lock()
_STATE = {"depth": 0, "was_enabled": False}


def _after_fork() -> None:
    """A child forked inside a pause has no thread to end it: it starts unpaused."""
    global _LOCK
    _LOCK = threading.Lock()
    if _STATE["depth"] and _STATE["was_enabled"]:
        gc.enable()
    _STATE["depth"] = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the ``with`` block.

    Pauses nest and may overlap across threads: the collector is switched off when the
    first begins and back on (only if it was on) when the last ends. Reference counting
    still frees objects as usual; only the search for reference cycles waits.

    Examples
    --------
    >>> import gc
    >>> with gc_paused():
    ...     gc.isenabled()
    False
    >>> gc.isenabled()
    True
    """
    with _LOCK:
        if _STATE["depth"] == 0:
            _STATE["was_enabled"] = gc.isenabled()
            gc.disable()
        _STATE["depth"] += 1
    try:
        yield
    finally:
        with _LOCK:
            _STATE["depth"] -= 1
            if _STATE["depth"] == 0 and _STATE["was_enabled"]:
                gc.enable()


def points(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``shapely.points(x, y)`` with the collector paused (see the module docstring).

    Parameters
    ----------
    x, y
        Coordinates, equal lengths.

    Returns
    -------
    numpy.ndarray
        Object array of points.

    Examples
    --------
    >>> points(np.array([1.0, 2.0]), np.array([3.0, 4.0])).tolist()
    [<POINT (1 3)>, <POINT (2 4)>]
    """
    with gc_paused():
        return np.asarray(shapely.points(x, y), dtype=object)


def boxes(xmin: np.ndarray, ymin: np.ndarray, xmax: np.ndarray,
          ymax: np.ndarray) -> np.ndarray:
    """``shapely.box(xmin, ymin, xmax, ymax)`` with the collector paused.

    Examples
    --------
    >>> boxes(np.array([0.0]), np.array([0.0]), np.array([1.0]), np.array([2.0]))[0].bounds
    (0.0, 0.0, 1.0, 2.0)
    """
    with gc_paused():
        return np.asarray(shapely.box(xmin, ymin, xmax, ymax), dtype=object)
