#!/usr/bin/env bash
# The full test suite, from a fresh clone: Python environment, PostGIS, Chromium, pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k joins).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/install-test-deps.sh
exec .venv/bin/python -m pytest "$@"
