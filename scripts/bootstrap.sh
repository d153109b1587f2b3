#!/usr/bin/env bash
# Sets up everything the bridge needs on a Debian/Ubuntu machine, as root:
# system packages (unixODBC, the SQLite3 ODBC driver, MariaDB Connector/ODBC,
# Python venv support, the libraries Qt needs offscreen) and a virtual
# environment in .venv with the bridge installed in editable mode.
#
#   scripts/bootstrap.sh            runtime + dev tools + GUI
#   BRIDGE_WITH_MARIADB=1 ...       also the MariaDB server (tests need it)
#
# Idempotent: packages already present are not reinstalled, and a complete
# .venv is reused.
set -euo pipefail
cd "$(dirname "$0")/.."

need_root() {
  if [[ $(id -u) -ne 0 ]]; then
    echo "bootstrap: run as root (it installs system packages with apt-get)" >&2
    exit 1
  fi
}

packages=(unixodbc unixodbc-dev libsqliteodbc odbc-mariadb
          python3 python3-venv python3-dev gcc
          libgl1 libegl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libglib2.0-0)
if [[ "${BRIDGE_WITH_MARIADB:-0}" == 1 ]]; then
  packages+=(mariadb-server mariadb-client)
fi

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  need_root
  echo "bootstrap: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Pick a Python >= 3.11: the one on PATH if new enough, else Debian's.
python=python3
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  python=/usr/bin/python3
fi

stamp=.venv/.bridge-installed
if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
  [[ -x .venv/bin/python ]] || "$python" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[gui,dev]'
  touch "$stamp"
fi
echo "bootstrap: ready ($(.venv/bin/python --version), drivers: $(odbcinst -q -d | tr -d '[]' | paste -sd, -))"
