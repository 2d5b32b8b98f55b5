#!/usr/bin/env bash
# Run the map on the bundled Philadelphia data with the embedded store (./.hotspot311).
# First run: installs into .venv and builds the demo store (real + labelled synthetic data).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HOTSPOT311_STORE=${HOTSPOT311_STORE:-.hotspot311}
.venv/bin/hotspot311 demo --if-empty
exec .venv/bin/streamlit run app.py --server.headless true "$@"
