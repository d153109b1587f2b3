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
# Bytecode for the bridge's own modules: every test that runs `bridge ...` in a
# subprocess (hundreds: engine starts, CLI calls) would otherwise recompile
# them when PYTHONDONTWRITEBYTECODE is set (as in this VM's image), ~0.6 s of
# CPU each. Python still checks each .pyc against its source.
.venv/bin/python -m compileall -q bridge sandbox gui >/dev/null
# one worker per core, whole test files per worker (module fixtures stay shared);
# files in collection order, longest first (tests/conftest.py), not xdist's
# fewest-tests-last order
.venv/bin/pytest -n auto --dist loadfile --no-loadscope-reorder "$@"
