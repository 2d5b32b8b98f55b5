#!/usr/bin/env bash
# Run the map on the bundled Philadelphia data with the embedded store (./.hotspot311).
# First run: installs into .venv and builds the demo store (real + labelled synthetic data).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HOTSPOT311_STORE=${HOTSPOT311_STORE:-.hotspot311}
.venv/bin/hotspot311 demo --if-empty
# Without logins (HOTSPOT311_AUTH unset or off) the demo serves this computer only; the
# page refuses another address unless HOTSPOT311_ALLOW_OPEN=1 (README: Logins and roles).
if [ "${HOTSPOT311_AUTH:-off}" = "oidc" ]; then
  exec .venv/bin/streamlit run app.py --server.headless true "$@"
fi
exec .venv/bin/streamlit run app.py --server.headless true --server.address 127.0.0.1 "$@"
