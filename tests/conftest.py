"""Shared fixtures.

MariaDB tests are marked ``mariadb``. They never skip: if the server is not
reachable they fail, because CI must prove them (``.ci/run`` starts the
server first). Each test gets its own throw-away database.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyodbc
import pytest

from bridge.pms.odbc import OdbcSettings, PmsConnection, connect
from bridge.state import StateStore, open_state
from sandbox.practice import BuildReport, build_practice

MARIADB_DRIVER = os.environ.get("BRIDGE_TEST_MARIADB_DRIVER", "MariaDB Unicode")
MARIADB_HOST = os.environ.get("BRIDGE_TEST_MARIADB_HOST", "127.0.0.1")
MARIADB_PORT = int(os.environ.get("BRIDGE_TEST_MARIADB_PORT", "3306"))
MARIADB_USER = os.environ.get("BRIDGE_TEST_MARIADB_USER", "root")
MARIADB_PASSWORD = os.environ.get("BRIDGE_TEST_MARIADB_PASSWORD", "")
SQLITE_DRIVER = "SQLite3"

# The longest test files, longest first (single-process seconds measured on
# 2026-11-23, a loaded 2-core VM). Collection puts them ahead of every other
# file, so ``--dist loadfile --no-loadscope-reorder`` (scripts/test.sh) starts
# them at once and the short files fill in around them. (xdist's default
# reorder does the opposite: files with the fewest tests go last, and most of
# these hold a single test.) Order inside a file never changes.
LONGEST_FILES_FIRST = (
    "test_crash_recovery.py",  # 496 s
    "test_booking_contest.py",  # 244 s
    "test_outage.py",  # 140 s
    "test_booking_engine.py",  # 134 s
    "test_reconcile.py",  # 113 s
    "test_gui_exceptions.py",  # 94 s
    "test_booking_hostile_input.py",  # 74 s
    "test_read_path_e2e.py",  # 69 s
    "test_control_engine.py",  # 60 s
    "test_files_load.py",  # 58 s
    "test_phi_canaries.py",  # 46 s
    "test_gui_panel.py",  # 43 s
    "test_engine.py",  # 39 s
    "test_files_big.py",  # 35 s
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest files first (see ``LONGEST_FILES_FIRST``); a stable sort."""
    rank = {name: index for index, name in enumerate(LONGEST_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


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


# -- the demo practice in SQLite, read through the SQLite3 ODBC driver ---------


@pytest.fixture(scope="module")
def practice(tmp_path_factory: pytest.TempPathFactory) -> BuildReport:
    """The demo practice, built once per module; tests work on copies (``db``)."""
    return build_practice(tmp_path_factory.mktemp("practice") / "od.sqlite3", size="demo")


@pytest.fixture
def db(tmp_path: Path, practice: BuildReport) -> Path:
    """A private copy of the demo practice's SQLite file."""
    path = tmp_path / "od.sqlite3"
    shutil.copy(practice.connection_string.split("Database=", 1)[1], path)
    return path


@pytest.fixture
def conn(db: Path) -> Iterator[PmsConnection]:
    with connect(OdbcSettings(connection_string=f"Driver={{SQLite3}};Database={db}")) as c:
        yield c


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    """A fresh local state store."""
    s = open_state(tmp_path / "state.sqlite3")
    yield s
    s.close()


@pytest.fixture
def bridge_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every bridge path (config, data, logs) at a temporary folder."""
    home = tmp_path / "bridge-home"
    monkeypatch.setenv("BRIDGE_HOME", str(home))
    return home


# -- helpers for the end-to-end tests (crash recovery, outage, PHI canaries) --


def bridge_env(home: Path) -> dict[str, str]:
    """Environment for a ``bridge`` subprocess keeping everything under ``home``.

    Linux test machines have no Secret Service: secrets go to a file keyring
    inside ``home`` (as the demo does).
    """
    return dict(
        os.environ,
        BRIDGE_HOME=str(home),
        PYTHON_KEYRING_BACKEND="keyrings.alt.file.PlaintextKeyring",
        XDG_DATA_HOME=str(home / "xdg"),
    )


def write_bridge_config(
    home: Path,
    *,
    connection_string: str,
    cloud_url: str,
    agent_id: str,
    poll_seconds: float = 0.5,
    level: str = "INFO",
    timezone: str = "America/Los_Angeles",
) -> Path:
    """Write ``home/config/bridge.toml`` (what ``BRIDGE_HOME=home`` reads)."""
    config = home / "config" / "bridge.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f"""[practice]
name = "Test Dental"
timezone = "{timezone}"
[pms]
profile = "opendental"
connection_string = '{connection_string}'
[cloud]
url = "{cloud_url}"
agent_id = "{agent_id}"
[engine]
poll_interval_seconds = {poll_seconds}
[logging]
level = "{level}"
""",
        encoding="utf-8",
    )
    return config


def store_cloud_token(env: dict[str, str], token: str) -> None:
    """``bridge secret set cloud-token --from-stdin``, through the real CLI."""
    subprocess.run(
        [sys.executable, "-m", "bridge", "secret", "set", "cloud-token", "--from-stdin"],
        input=token,
        text=True,
        env=env,
        check=True,
        capture_output=True,
    )


def expected_cloud_state(config: Path) -> dict[str, dict[str, Any]]:
    """entity -> key -> canonical data, read from the PMS the way the bridge reads it
    (:class:`bridge.sync.records.RecordReader`), as the cloud should hold it."""
    from bridge.config import load_settings  # noqa: PLC0415
    from bridge.pms.profile import load_profile  # noqa: PLC0415
    from bridge.pms.source import connect_pms  # noqa: PLC0415
    from bridge.secrets import MemorySecretStore  # noqa: PLC0415
    from bridge.sync.records import RecordReader  # noqa: PLC0415

    settings = load_settings(config)
    profile = load_profile(settings.pms.profile)
    conn = connect_pms(settings, MemorySecretStore({}))
    try:
        return {
            entity: {
                record.key: json.loads(json.dumps(dict(record.data), ensure_ascii=False))
                for record in RecordReader(profile, entity, settings.practice.zone).read(conn)
            }
            for entity in profile.entities
        }
    finally:
        conn.close()


def mirror_differences(
    expected: dict[str, dict[str, Any]], cloud: Any, agent_id: str, limit: int = 12
) -> list[str]:
    """How the cloud's mirror of ``agent_id`` differs from ``expected`` (empty: equal).

    Every expected record must be there, live, with exactly the same fields;
    every other mirrored key must be a tombstone. Lines name entity, key and
    field names only.
    """
    problems: list[str] = []
    counts: dict[str, int] = {}
    for entity, records in expected.items():
        mirror = cloud.mirror(entity, agent_id=agent_id)
        for key, data in records.items():
            row = mirror.get(key)
            if row is None:
                problem = f"{entity} {key}: missing in the cloud"
            elif row.deleted:
                problem = f"{entity} {key}: deleted in the cloud, present in the PMS"
            elif row.data != data:
                fields = sorted(
                    f
                    for f in set(row.data or {}) | set(data)
                    if (row.data or {}).get(f) != data.get(f)
                )
                problem = f"{entity} {key}: fields differ: {', '.join(fields)}"
            else:
                continue
            counts[entity] = counts.get(entity, 0) + 1
            problems.append(problem)
        for key, row in mirror.items():
            if key not in records and not row.deleted:
                counts[entity] = counts.get(entity, 0) + 1
                problems.append(f"{entity} {key}: live in the cloud, absent from the PMS")
    if not problems:
        return []
    summary = ", ".join(f"{entity}: {n}" for entity, n in sorted(counts.items()))
    return [f"{len(problems)} difference(s) ({summary})", *problems[:limit]]


def change_log_problems(log: list[Any]) -> list[str]:
    """What in the cloud's change log shows a change applied twice or out of order.

    * a change the cloud found ``stale`` (an older version after a newer one,
      or a version re-sent in a new batch);
    * the same (entity, key, version) logged twice (a change re-sent in a
      different batch: a repeated batch is acknowledged as a duplicate and
      never logged again);
    * per key, versions not increasing in arrival order;
    * the same content sent twice in a row for a key (an unchanged record
      re-sent).
    """
    problems: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    last: dict[tuple[str, str], Any] = {}
    for entry in log:
        ident = (entry.entity, entry.key, entry.version)
        where = f"{entry.entity} {entry.key} v{entry.version} (batch {entry.batch_id[:8]})"
        if entry.outcome != "applied":
            problems.append(f"{where}: {entry.outcome}")
        if ident in seen:
            problems.append(f"{where}: the same version arrived twice")
        seen.add(ident)
        previous = last.get((entry.entity, entry.key))
        if previous is not None:
            if int(previous.version) >= int(entry.version):
                problems.append(f"{where}: after version {previous.version}")
            # A computed day of availability often returns to what the cloud has (a
            # booking and its cancellation) while the intermediate change still
            # waits in the outbox, which replaces it: the cloud then receives the
            # same content again, by design (docs/availability.md).
            same = (previous.op, previous.data) == (entry.op, entry.data)
            if same and entry.entity != "availability":
                problems.append(f"{where}: same content as version {previous.version}")
        last[(entry.entity, entry.key)] = entry
    return problems


def outbox_depth(state_db: Path) -> int | None:
    """Changes waiting in a bridge's outbox (None if the state is not readable yet)."""
    try:
        with sqlite3.connect(f"file:{state_db}?mode=ro", uri=True, timeout=5) as state:
            waiting = state.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
            initial = state.execute(
                "SELECT COUNT(*) FROM sync_cursor WHERE phase = 'initial'"
            ).fetchone()[0]
            cursors = state.execute("SELECT COUNT(*) FROM sync_cursor").fetchone()[0]
    except sqlite3.Error:
        return None
    if not cursors or initial:
        return None
    return int(waiting)
