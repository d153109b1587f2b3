#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what it needs
# (system packages, MariaDB, the venv), starts MariaDB, then runs the checks:
# ruff, mypy, and pytest (SQLite3 ODBC and MariaDB Connector/ODBC tests).
set -euo pipefail
cd "$(dirname "$0")/.."
BRIDGE_WITH_MARIADB=1 scripts/bootstrap.sh
scripts/ensure-mariadb.sh
export QT_QPA_PLATFORM=offscreen
echo "== ruff";  .venv/bin/ruff check .
echo "== mypy";  .venv/bin/mypy
echo "== pytest"
# one worker per core, whole test files per worker (module fixtures stay shared)
.venv/bin/pytest -n auto --dist loadfile "$@"
