"""Shared fixtures.

MariaDB tests are marked ``mariadb``. They never skip: if the server is not
reachable they fail, because CI must prove them (``.ci/run`` starts the
server first). Each test gets its own throw-away database.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pyodbc
import pytest

MARIADB_DRIVER = os.environ.get("BRIDGE_TEST_MARIADB_DRIVER", "MariaDB Unicode")
MARIADB_HOST = os.environ.get("BRIDGE_TEST_MARIADB_HOST", "127.0.0.1")
MARIADB_PORT = int(os.environ.get("BRIDGE_TEST_MARIADB_PORT", "3306"))
MARIADB_USER = os.environ.get("BRIDGE_TEST_MARIADB_USER", "root")
MARIADB_PASSWORD = os.environ.get("BRIDGE_TEST_MARIADB_PASSWORD", "")
SQLITE_DRIVER = "SQLite3"


def mariadb_connection_string(database: str = "", *, user: str | None = None) -> str:
    """ODBC connection string for the test server, without a password."""
    parts = [
        f"Driver={{{MARIADB_DRIVER}}}",
        f"Server={MARIADB_HOST}",
        f"Port={MARIADB_PORT}",
        f"User={user or MARIADB_USER}",
    ]
    if database:
        parts.append(f"Database={database}")
    return ";".join(parts)


def sqlite_connection_string(path: Path) -> str:
    return f"Driver={{{SQLITE_DRIVER}}};Database={path}"


def _admin_connect() -> pyodbc.Connection:
    conn_str = mariadb_connection_string() + f";Password={MARIADB_PASSWORD}"
    try:
        return pyodbc.connect(conn_str, autocommit=True, timeout=5)
    except pyodbc.Error as exc:  # pragma: no cover - environment failure
        pytest.fail(
            f"MariaDB is not reachable at {MARIADB_HOST}:{MARIADB_PORT} through "
            f"'{MARIADB_DRIVER}' ({exc}); .ci/run starts it - run that or start mariadbd",
            pytrace=False,
        )


@pytest.fixture
def mariadb_admin() -> Iterator[pyodbc.Connection]:
    """An autocommit admin connection to the test MariaDB server."""
    conn = _admin_connect()
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def mariadb_database(mariadb_admin: pyodbc.Connection) -> Iterator[str]:
    """Create a uniquely named empty database and drop it afterwards."""
    name = f"bridge_test_{secrets.token_hex(4)}"
    mariadb_admin.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb3")
    try:
        yield name
    finally:
        mariadb_admin.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def bridge_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every bridge path (config, data, logs) at a temporary folder."""
    home = tmp_path / "bridge-home"
    monkeypatch.setenv("BRIDGE_HOME", str(home))
    return home
