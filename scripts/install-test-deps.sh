#!/usr/bin/env bash
# Install the system packages the test suite needs, when missing:
#   postgresql-15-postgis-3  (PostgreSQL 15 + PostGIS 3, for the PostGIS store tests)
#   chromium                 (headless browser tests)
# Idempotent: a no-op when everything is present. Needs root (or sudo) for apt-get.
set -euo pipefail

need=()
[ -f /usr/share/postgresql/15/extension/postgis.control ] \
  && [ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15-postgis-3)
command -v chromium >/dev/null 2>&1 || need+=(chromium)

if [ ${#need[@]} -eq 0 ]; then
  echo "install-test-deps: nothing to do"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-test-deps: need root to install ${need[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "install-test-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
