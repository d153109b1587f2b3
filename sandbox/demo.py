"""The README's demo: a sample practice, the bridge pointed at it, doctor, run.

Everything happens under ``var/demo/`` in the working tree: the practice
database, and ``BRIDGE_HOME`` (config, state, logs) of the demo bridge. The
bridge is driven through its real CLI in subprocesses, exactly as practice
IT would run it. Re-running the demo starts from a fresh practice.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pyodbc

from sandbox.practice import TIMEZONE, build_practice

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


def write_demo_config(config_file: Path, connection_string: str) -> None:
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
                "# The reference cloud of sandbox/ (the read path uses it next).",
                "[cloud]",
                'url = "https://127.0.0.1:8443"',
                'agent_id = "demo-agent"',
                "",
                "[logging]",
                'level = "INFO"',
                "",
            ]
        ),
        encoding="utf-8",
    )


def run_demo(root: Path, *, run_seconds: float = 8.0, today: date | None = None) -> None:
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

    _say("Configuring the bridge")
    config_file = home / "config" / "bridge.toml"
    write_demo_config(config_file, report.connection_string)
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

    _say(f"Running the engine for {run_seconds:.0f} seconds")
    engine = subprocess.Popen(
        [sys.executable, "-m", "bridge", "run", "--seconds", str(run_seconds)], env=env
    )
    time.sleep(min(4.0, run_seconds / 2))
    _say("bridge status (while the engine runs)")
    _bridge(env, "status", check=False)
    engine.wait(timeout=run_seconds + 30)

    _say("bridge status (after it stopped)")
    _bridge(env, "status", check=False)
    _say("bridge logs (last lines)")
    _bridge(env, "logs", "-n", "8")
    print(f"\nDemo files are under {root}. Try: BRIDGE_HOME={home} .venv/bin/bridge doctor")
