#!/usr/bin/env bash
# Makes sure a MariaDB server answers on 127.0.0.1:3306 for the test suite:
# starts an installed but stopped server, waits for it, and fails loudly if it
# cannot be reached (MariaDB tests must run, never skip).
set -euo pipefail

ping() { mariadb-admin --protocol=tcp -h 127.0.0.1 -P 3306 -uroot ping >/dev/null 2>&1; }

if ping; then echo "mariadb: running"; exit 0; fi
if ! command -v mariadbd >/dev/null 2>&1 && [[ ! -x /usr/sbin/mariadbd ]]; then
  echo "mariadb: server not installed (bootstrap with BRIDGE_WITH_MARIADB=1)" >&2
  exit 1
fi
echo "mariadb: starting"
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
if [[ ! -d /var/lib/mysql/mysql ]]; then
  mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
fi
start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
for _ in $(seq 1 60); do
  if ping; then echo "mariadb: running"; exit 0; fi
  sleep 1
done
echo "mariadb: did not answer on 127.0.0.1:3306 within 60 s" >&2
exit 1
