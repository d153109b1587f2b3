"""The engine against a real SQLite practice: health, outage, recovery, and
``bridge run`` / ``bridge status`` as separate processes."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyodbc
import pytest
from conftest import MARIADB_HOST, MARIADB_PORT, mariadb_connection_string

from bridge.config import load_settings
from bridge.engine import Engine
from bridge.pms.profile import load_profile
from bridge.secrets import MemorySecretStore
from bridge.state import open_state
from bridge.status import StatusSnapshot, read_status
from sandbox.practice import BuildReport, build_practice

CONFIG = """
[practice]
name = "Test Dental"
timezone = "America/Los_Angeles"

[pms]
profile = "opendental"
connection_string = 'Driver={{SQLite3}};Database={db}'

[cloud]
url = "https://127.0.0.1:8443"
agent_id = "agent-1"
"""


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def pms_status(snapshot: StatusSnapshot) -> str | None:
    pms = snapshot.component("pms")
    return pms.status if pms is not None else None


def pms_kind(snapshot: StatusSnapshot) -> str | None:
    pms = snapshot.component("pms")
    return pms.error_kind if pms is not None else None


@pytest.mark.mariadb
def test_engine_reports_pms_health_through_an_outage(
    tmp_path: Path, mariadb_database: str, mariadb_admin: pyodbc.Connection
) -> None:
    user = f"bridge_eng_{secrets.token_hex(3)}"
    mariadb_admin.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'Pw-1'")
    mariadb_admin.execute(f"GRANT SELECT ON `{mariadb_database}`.* TO '{user}'@'%'")
    build_practice(
        f"mariadb://root@{MARIADB_HOST}:{MARIADB_PORT}/{mariadb_database}",
        size="demo",
        replace=True,
    )
    config = tmp_path / "bridge.toml"
    config.write_text(
        CONFIG.format(db="").replace(
            "connection_string = 'Driver={SQLite3};Database='",
            f"connection_string = '{mariadb_connection_string(mariadb_database, user=user)}'\n"
            'password_secret = "pms-password"',
        ),
        encoding="utf-8",
    )
    settings = load_settings(config)
    store = open_state(tmp_path / "state.sqlite3")
    engine = Engine(
        settings,
        store,
        MemorySecretStore({"pms-password": "Pw-1"}),
        load_profile("opendental"),
        heartbeat_seconds=0.2,
        pms_ping_seconds=0.2,
    )
    stop = threading.Event()
    runner = threading.Thread(target=engine.run, args=(stop,))
    runner.start()
    try:
        wait_for(lambda: pms_status(read_status(store)) == "ok")
        assert read_status(store).engine == "running"

        # The PMS server throws the bridge out and refuses its login.
        mariadb_admin.execute(f"ALTER USER '{user}'@'%' ACCOUNT LOCK")
        for (pid,) in mariadb_admin.execute(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?", user
        ).fetchall():
            mariadb_admin.execute(f"KILL {pid}")
        # The killed session is first reported as a lost connection
        # (unreachable); the reconnect attempt then meets the locked account.
        wait_for(lambda: pms_kind(read_status(store)) == "login_failed")
        pms = read_status(store).component("pms")
        assert pms is not None and pms.status == "fail"
        assert pms.error_kind == "login_failed" and "locked" in pms.message
        assert pms.last_ok_at is not None and pms.fix
        assert "Pw-1" not in pms.message

        mariadb_admin.execute(f"ALTER USER '{user}'@'%' ACCOUNT UNLOCK")
        wait_for(lambda: pms_status(read_status(store)) == "ok", timeout=90)
    finally:
        stop.set()
        runner.join(20)
        mariadb_admin.execute(f"DROP USER IF EXISTS '{user}'@'%'")
    assert not runner.is_alive()
    assert read_status(store).engine == "stopped"
    store.close()


def test_bridge_run_and_status_as_separate_processes(tmp_path: Path, practice: BuildReport) -> None:
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    db = practice.connection_string.split("Database=", 1)[1]
    (home / "config" / "bridge.toml").write_text(CONFIG.format(db=db), encoding="utf-8")
    env = dict(os.environ, BRIDGE_HOME=str(home))
    bridge = [sys.executable, "-m", "bridge"]

    def status() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*bridge, "status"], env=env, capture_output=True, text=True, check=False
        )

    first = status()
    assert first.returncode == 3 and "never started" in first.stdout

    engine = subprocess.Popen(
        [*bridge, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(lambda: "pms      ok" in status().stdout, timeout=60)
        running = status()
        assert running.returncode == 0 and "engine   running" in running.stdout

        second = subprocess.run(
            [*bridge, "run", "--seconds", "1"], env=env, capture_output=True, text=True, check=False
        )
        assert (
            second.returncode != 0 and "another bridge engine is already running" in second.stderr
        )
    finally:
        engine.send_signal(signal.SIGTERM)
        engine.wait(20)
    assert engine.returncode == 0
    stopped = status()
    assert stopped.returncode == 3 and "engine   stopped" in stopped.stdout

    # Every record (the home is fresh, so "since a day ago" is all of them), not
    # the last 50: under load the engine logs more than that before it stops.
    logs = subprocess.run(
        [*bridge, "logs", "--json", "--since", "1d"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert logs.returncode == 0, logs.stderr
    messages = [json.loads(line)["msg"] for line in logs.stdout.splitlines()]
    assert "engine started" in messages and "PMS connected" in messages
