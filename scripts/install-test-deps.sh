#!/usr/bin/env bash
# Install what the tests need beyond Python packages, when missing and possible:
# PostGIS for PostgreSQL 15 and Chromium (Debian packages). Idempotent.
set -uo pipefail
need=()
[ -f /usr/share/postgresql/15/extension/postgis.control ] || need+=(postgresql-15-postgis-3)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "install-test-deps: missing ${need[*]} and not root; PostGIS/browser tests will skip (or fail under CI=true)" >&2
    exit 0
  fi
fi
echo "install-test-deps: installing ${need[*]}" >&2
$SUDO apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
  || echo "install-test-deps: apt-get install ${need[*]} failed" >&2
