#!/usr/bin/env bash
# The full test suite, from a fresh clone: Python environment (from the lock file),
# PostGIS, Chromium, the import-layering contracts, then pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k joins).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/install-test-deps.sh
.venv/bin/lint-imports --no-cache
exec .venv/bin/python -m pytest "$@"
