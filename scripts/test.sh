#!/usr/bin/env bash
# The full test suite, from a fresh clone: Python environment (from the lock file),
# PostGIS, Chromium, the import-layering contracts, then pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k joins). The tests run in one
# process per core (pytest-xdist, whole files to a process); HOTSPOT311_TEST_WORKERS=0
# runs them in this process, or sets the number of processes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/install-test-deps.sh
.venv/bin/lint-imports --no-cache
workers=${HOTSPOT311_TEST_WORKERS:-auto}
if [ "$workers" = 0 ]; then
  exec .venv/bin/python -m pytest "$@"
fi
exec .venv/bin/python -m pytest -n "$workers" --dist loadfile "$@"
