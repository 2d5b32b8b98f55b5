#!/usr/bin/env bash
# Create .venv (if missing) and install hotspot311 into it from the lock file: the exact
# versions (with hashes) that the test suite passed with, then the package itself
# (editable, no dependency resolution). `bash scripts/lock.sh` refreshes the lock.
#   scripts/setup.sh        the dev lock (app, CLI and test tools): what both README commands use
# Idempotent: a second run installs nothing unless the lock or pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
LOCK=requirements/dev.lock
PIP_VERSION=26.3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.hotspot311-installed
if [ ! -f "$stamp" ] || [ "$LOCK" -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet "pip==$PIP_VERSION"
  .venv/bin/python -m pip install --quiet --require-hashes -r "$LOCK"
  .venv/bin/python -m pip install --quiet --no-deps -e .
  touch "$stamp"
fi
