"""The app's Arrow pool: jemalloc unless Arrow's own variable names another."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHECK = ("from hotspot311.web.arrowpool import use_returning_pool; import pyarrow as pa; "
         "import sys; before = pa.default_memory_pool().backend_name; "
         "after = use_returning_pool(); "
         "assert after == pa.default_memory_pool().backend_name; "
         "print(before, after, pa.array(['x'] * 3).nbytes > 0)")


def _run(**env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    out = subprocess.run([sys.executable, "-c", CHECK], env={**clean, **env},
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_the_app_pool_is_jemalloc_where_pyarrow_has_it() -> None:
    if sys.platform != "linux":
        pytest.skip("pyarrow's Windows wheels have no jemalloc")
    before, after, allocated = _run()
    assert before == "mimalloc" and after == "jemalloc" and allocated == "True"


def test_arrows_own_variable_wins() -> None:
    assert _run(ARROW_DEFAULT_MEMORY_POOL="system")[:2] == ["system", "system"]
