"""The app's memory allocators: glibc's malloc and Arrow's pool.

A Streamlit process lives for days and its peak memory is what a server is sized by, so
what a rerun frees should go back to the system, not stay in the process for later.

- NumPy and pandas allocate from glibc's malloc. After a large block is freed, glibc
  raises the size from which blocks get a mapping of their own (up to 32 MB), so the next
  hotspot run's arrays come from a heap, and a heap gives back only its top: the freed
  middle stays in the process. The app fixes that size (:data:`MMAP_THRESHOLD`), so a
  large block is given back when it is freed.
- pyarrow allocates from mimalloc by default, which keeps freed pages for later. With
  glibc's thresholds fixed, the app has Arrow allocate from glibc too (the system pool);
  elsewhere from Arrow's jemalloc pool, which gives freed pages back after a second.

``bench/app.py``, the peak of a first map and a filter change at 1M requests on PostGIS,
same code, same run: 571 MB with jemalloc alone, 548–549 MB with jemalloc and the fixed
thresholds, 530–531 MB with the system pool and the fixed thresholds (and 603–609 MB
with mimalloc, measured at an earlier stop).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
import sys

import pyarrow as pa

#: Arrow's own variable naming a pool; when set, it wins.
POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"
#: Blocks of this size or more get a mapping of their own, given back when freed.
MMAP_THRESHOLD = 256 * 1024
#: Free memory at the top of a heap beyond this is given back.
TRIM_THRESHOLD = 1024 * 1024
# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def use_returning_pool() -> str:
    """Have freed memory go back to the system: glibc's thresholds fixed
    (:func:`fix_malloc_thresholds`) and Arrow allocating from glibc; where that cannot be
    done, Arrow allocating from its jemalloc pool. ``ARROW_DEFAULT_MEMORY_POOL``, when
    set, names the pool instead.

    Arrays already made keep the pool they came from.

    Returns
    -------
    str
        The name of the pool in use afterwards (``"system"``, ``"jemalloc"`` or
        ``"mimalloc"``).
    """
    fixed = fix_malloc_thresholds()
    if not os.environ.get(POOL_VARIABLE):
        if fixed:
            pa.set_memory_pool(pa.system_memory_pool())
        else:  # (a build without jemalloc, as the Windows wheels, keeps its pool)
            with contextlib.suppress(NotImplementedError):
                pa.set_memory_pool(pa.jemalloc_memory_pool())
    return pa.default_memory_pool().backend_name


@functools.cache
def fix_malloc_thresholds() -> bool:
    """Fix glibc malloc's mapping and trim thresholds (:data:`MMAP_THRESHOLD`,
    :data:`TRIM_THRESHOLD`), so that large freed blocks go back to the system.

    Returns
    -------
    bool
        Whether they were set: ``False`` off Linux or with another C library (musl has its
        own allocator), where nothing is changed. Done once per process.
    """
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
