#!/usr/bin/env bash
# The demo, from a fresh Debian machine: installs what it needs (system
# packages and the venv), then builds the sample Open Dental practice in
# SQLite and runs the bridge against it through the SQLite3 ODBC driver.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/python -m sandbox demo "$@"
