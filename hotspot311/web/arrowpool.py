"""The app's Arrow memory pool.

pyarrow allocates from mimalloc by default, which keeps what a rerun freed for later
reruns. A Streamlit process lives for days and its peak memory is what a server is sized
by, so the app allocates from Arrow's jemalloc pool, which gives freed pages back after a
second (``bench/app.py``: the peak of a first map and a filter change at 1M requests on
PostGIS, 603–609 MB with mimalloc against 554 MB with jemalloc, same code, same run).
"""

from __future__ import annotations

import contextlib
import os

import pyarrow as pa

#: Arrow's own variable naming a pool; when set, it wins.
POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"


def use_returning_pool() -> str:
    """Make Arrow's jemalloc pool the default, unless ``ARROW_DEFAULT_MEMORY_POOL``
    names one or this pyarrow was built without jemalloc.

    Arrays already made keep the pool they came from; later ones use jemalloc.

    Returns
    -------
    str
        The name of the pool in use afterwards (``"jemalloc"``, ``"mimalloc"`` or
        ``"system"``).
    """
    if not os.environ.get(POOL_VARIABLE):
        # (a build without jemalloc, as the Windows wheels, keeps its pool)
        with contextlib.suppress(NotImplementedError):
            pa.set_memory_pool(pa.jemalloc_memory_pool())
    return pa.default_memory_pool().backend_name
