"""The app's allocators: glibc's thresholds fixed and Arrow on the system pool (jemalloc
where they cannot be fixed), unless Arrow's own variable names a pool; freed large blocks
go back to the system."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

CHECK = ("from hotspot311.web.arrowpool import use_returning_pool; import pyarrow as pa; "
         "import sys; before = pa.default_memory_pool().backend_name; "
         "after = use_returning_pool(); "
         "assert after == pa.default_memory_pool().backend_name; "
         "print(before, after, pa.array(['x'] * 3).nbytes > 0)")

# 128 blocks of 1 MB, made after one 16 MB block was freed (glibc's own rule then raises
# the size that gets a mapping to 16 MB): how many MB of the process go back when every
# other one is freed (the blocks kept between them hold the heap's holes in place)
RETURNED = """
import sys
import numpy as np
from hotspot311.web.arrowpool import fix_malloc_thresholds
def anon():
    return next(int(line.split()[1]) for line in open("/proc/self/status")
                if line.startswith("RssAnon")) // 1024
if sys.argv[1] == "fixed":
    assert fix_malloc_thresholds()
big = np.ones(16 << 20, dtype=np.uint8)
del big
blocks = [np.ones(1 << 20, dtype=np.uint8) for _ in range(128)]
before = anon()
del blocks[1::2]
print(before - anon())
"""

GLIBC = sys.platform == "linux" and platform.libc_ver()[0] == "glibc"


def _run(code: str, *args: str, **env: str) -> list[str]:
    # (without the variables that choose a pool or tune glibc's malloc from outside)
    clean = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"
             and k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", code, *args], env={**clean, **env},
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_the_app_pool_is_the_system_pool_where_glibc_is_tuned() -> None:
    if not GLIBC:
        pytest.skip("the thresholds are glibc's")
    before, after, allocated = _run(CHECK)
    assert before == "mimalloc" and after == "system" and allocated == "True"


def test_arrows_own_variable_wins() -> None:
    assert _run(CHECK, ARROW_DEFAULT_MEMORY_POOL="mimalloc")[:2] == ["mimalloc", "mimalloc"]


def test_freed_large_blocks_go_back_to_the_system_once_the_thresholds_are_fixed() -> None:
    if not GLIBC:
        pytest.skip("the thresholds are glibc's")
    fixed = int(_run(RETURNED, "fixed")[0])
    plain = int(_run(RETURNED, "plain")[0])
    assert fixed >= 60, f"{fixed} MB of 64 went back"
    assert plain < 16, f"glibc's own rule gave back {plain} MB (the test's premise)"
