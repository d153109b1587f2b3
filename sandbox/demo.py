"""The README's demo: a sample practice, the bridge pointed at it, doctor, run.

Everything happens under ``var/demo/`` in the working tree: the practice
database, and ``BRIDGE_HOME`` (config, state, logs) of the demo bridge. The
bridge is driven through its real CLI in subprocesses, exactly as practice
IT would run it. Re-running the demo starts from a fresh practice.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pyodbc

from sandbox.cloud.server import ReferenceCloud
from sandbox.practice import TIMEZONE, BuildReport, build_practice

DEMO_QUERY = (
    "SELECT AptNum, PatNum, AptDateTime, Pattern, Op, ProvNum, AptStatus, DateTStamp "
    "FROM appointment WHERE AptStatus = 1 ORDER BY AptDateTime LIMIT 5"
)


def _say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def _bridge(env: dict[str, str], *args: str, check: bool = True) -> int:
    cmd = [sys.executable, "-m", "bridge", *args]
    print("$ bridge " + " ".join(args), flush=True)
    result = subprocess.run(cmd, env=env, check=False)
    if check and result.returncode != 0:
        raise SystemExit(f"'bridge {' '.join(args)}' failed with exit code {result.returncode}")
    return result.returncode


def _wait_until_synced(state_db: Path, timeout: float) -> None:
    """Wait until the first sync has finished and the outbox is empty."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(f"file:{state_db}?mode=ro", uri=True) as state:
                waiting = state.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
                initial = state.execute(
                    "SELECT COUNT(*) FROM sync_cursor WHERE phase = 'initial'"
                ).fetchone()[0]
                cursors = state.execute("SELECT COUNT(*) FROM sync_cursor").fetchone()[0]
        except sqlite3.Error:
            waiting, initial, cursors = 1, 1, 0
        if cursors and not initial and not waiting:
            print("  first sync complete: the cloud has every record")
            return
        time.sleep(0.5)
    print("  first sync still running")


def write_demo_config(
    config_file: Path, connection_string: str, cloud_url: str, ca_path: Path
) -> None:
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(
        "\n".join(
            [
                "[practice]",
                'name = "Demo Dental (sample practice)"',
                f'timezone = "{TIMEZONE}"',
                'country = "US"',
                "",
                "[pms]",
                'profile = "opendental"',
                f"connection_string = '{connection_string}'",
                "",
                "# The reference cloud of sandbox/, with its own test CA.",
                "[cloud]",
                f'url = "{cloud_url}"',
                'agent_id = "demo-agent"',
                f"ca_bundle = '{ca_path}'",
                "",
                "[logging]",
                'level = "INFO"',
                "",
            ]
        ),
        encoding="utf-8",
    )


def run_demo(root: Path, *, run_seconds: float = 60.0, today: date | None = None) -> None:
    root = root.resolve()
    home = root / "home"
    env = dict(os.environ, BRIDGE_HOME=str(home))
    # Linux demo machines have no Secret Service: keep demo secrets in a file
    # keyring inside the demo folder (doctor says so with a warning).
    env.setdefault("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    env.setdefault("XDG_DATA_HOME", str(home / "xdg"))

    _say("Building the sample Open Dental practice (SQLite, embedded default)")
    report = build_practice(root / "opendental.sqlite3", size="demo", replace=True, today=today)
    for table in ("patient", "appointment", "procedurelog", "schedule", "claim", "payment"):
        print(f"  {table:<14} {report.counts.get(table, 0):>8,} rows")
    print(f"  built in {report.seconds:.1f} s; practice time zone {report.timezone}")

    _say("Reading it back through the SQLite3 ODBC driver, with Open Dental's real names")
    print(f"  {DEMO_QUERY}")
    with pyodbc.connect(report.connection_string, autocommit=True) as conn:
        for row in conn.execute(DEMO_QUERY):
            print("  ", tuple(row))

    _say("Starting the reference cloud (HTTPS on loopback)")
    cloud_dir = root / "cloud"
    shutil.rmtree(cloud_dir, ignore_errors=True)
    cloud = ReferenceCloud(
        cloud_dir / "cloud.sqlite3", tokens={"demo-agent": "demo-token"}, tls=True
    )
    cloud.start()
    print(f"  {cloud.url} (CA {cloud.ca_path})")
    try:
        _configure_and_run(env, home, report, cloud, run_seconds)
    finally:
        cloud.stop()
    print(f"\nDemo files are under {root}. Try: BRIDGE_HOME={home} .venv/bin/bridge doctor")


def _configure_and_run(
    env: dict[str, str], home: Path, report: BuildReport, cloud: ReferenceCloud, run_seconds: float
) -> None:
    _say("Configuring the bridge")
    config_file = home / "config" / "bridge.toml"
    assert cloud.ca_path is not None
    write_demo_config(config_file, report.connection_string, cloud.url, cloud.ca_path)
    _bridge(env, "--version")
    print("$ bridge secret set cloud-token --from-stdin   (the token goes to the keyring)")
    subprocess.run(
        [sys.executable, "-m", "bridge", "secret", "set", "cloud-token", "--from-stdin"],
        input="demo-token",
        text=True,
        env=env,
        check=True,
    )
    _bridge(env, "config", "check")

    _say("bridge doctor")
    _bridge(env, "doctor", check=False)

    _say("Running the engine (bridge run)")
    engine = subprocess.Popen([sys.executable, "-m", "bridge", "run"], env=env)
    time.sleep(min(4.0, run_seconds / 2))
    _say("bridge status (while the engine runs: first sync in progress)")
    _bridge(env, "status", check=False)
    _wait_until_synced(home / "data" / "state.sqlite3", timeout=run_seconds)
    _say("A receptionist breaks an appointment in the PMS")
    database = report.connection_string.split("Database=", 1)[1]
    with sqlite3.connect(database) as raw:
        apt = raw.execute("SELECT MIN(AptNum) FROM appointment WHERE AptStatus = 1").fetchone()[0]
        raw.execute("UPDATE appointment SET AptStatus = 5 WHERE AptNum = ?", (apt,))
    changed = time.monotonic()
    while time.monotonic() - changed < 15:
        row = cloud.mirror("appointment").get(str(apt))
        if row is not None and row.data is not None and row.data.get("status") == "broken":
            took = time.monotonic() - changed
            print(f"  appointment {apt} is 'broken' in the cloud {took:.1f} s later")
            break
        time.sleep(0.2)
    else:
        print(f"  appointment {apt} has not reached the cloud yet")
    engine.send_signal(signal.SIGINT)  # what Ctrl+C or a service stop does
    engine.wait(timeout=60)

    _say("What the cloud received")
    for entity in ("patient", "appointment", "provider", "operatory", "schedule", "procedure"):
        print(f"  {entity:<12} {len(cloud.mirror(entity)):>8,} records")

    _say("bridge status (after it stopped)")
    _bridge(env, "status", check=False)
    _say("bridge logs (last lines)")
    _bridge(env, "logs", "-n", "8")
