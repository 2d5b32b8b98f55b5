#!/usr/bin/env bash
# Refresh the lock files from pyproject.toml's ranges (run after changing dependencies):
#   requirements/app.lock  what the app and the CLI need (pip install -r, then the package)
#   requirements/dev.lock  that plus the dev extra: what the test suite runs with
# Both are universal (any OS and CPU, Python 3.11+) and carry hashes. uv does the
# resolution; it is installed into .venv on first use. Extra arguments go to uv, e.g.
#   bash scripts/lock.sh --upgrade-package streamlit
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.9
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
if ! .venv/bin/uv --version 2>/dev/null | grep -q " $UV_VERSION"; then
  .venv/bin/python -m pip install --quiet "uv==$UV_VERSION"
fi
common=(--universal --python-version 3.11 --generate-hashes --quiet --no-header)
.venv/bin/uv pip compile pyproject.toml "${common[@]}" "$@" -o requirements/app.lock
.venv/bin/uv pip compile pyproject.toml --extra dev "${common[@]}" "$@" -o requirements/dev.lock
echo "wrote requirements/app.lock ($(grep -c '^[a-z]' requirements/app.lock) packages)" \
     "and requirements/dev.lock ($(grep -c '^[a-z]' requirements/dev.lock) packages)"
