"""PHI canaries: values outside the allowlist never leave the building.

Unique canary strings are planted in columns the Open Dental profile does
not allowlist (addresses, chart numbers, every note, procedure
descriptions, security hashes, insurance ids, securitylog text ...), and, as
a positive control that proves the scan can fail, in one allowlisted column
(``patient.Preferred``), which *must* reach the cloud. Two canary rows also
carry a bad value (a text in a DATE and in a DATETIME column), so the bridge
takes its bad-value error path on rows full of canaries.

``bridge run`` (a real subprocess, logging at DEBUG) does the first sync,
then the canary rows are edited (the delta path reads them again) and the
receptionist simulator makes a few more edits. Afterwards no canary may
appear in what the cloud received (its SQLite file, including the WAL: the
change log keeps every change's data as received, heartbeats their bodies),
in any log line (log files and the engine's console), or in the bridge's
local state (the state SQLite file, its WAL and shared memory, byte for
byte). The positive control must appear in the cloud's data.
"""

from __future__ import annotations

import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path

import pytest
from conftest import (
    bridge_env,
    outbox_depth,
    sqlite_connection_string,
    store_cloud_token,
    write_bridge_config,
)

from sandbox.cloud.server import ReferenceCloud
from sandbox.practice import build_practice
from sandbox.practice.simulator import Receptionist

pytestmark = pytest.mark.timeout(300)

AGENT = "agent-phi"
TOKEN = "phi-token-0123456789abcdef"

# (table, key column, key, column) of every planted canary outside the allowlist.
CANARY_COLUMNS: tuple[tuple[str, str, int, str], ...] = (
    *(
        ("patient", "PatNum", 5, column)
        for column in ("Address", "Address2", "City", "State", "ChartNumber", "Title")
    ),
    ("patient", "PatNum", 5, "SecurityHash"),
    ("appointment", "AptNum", 42, "Note"),
    ("appointment", "AptNum", 42, "ProcDescript"),
    ("appointment", "AptNum", 42, "PatternSecondary"),
    ("appointment", "AptNum", 42, "SecurityHash"),
    ("procedurelog", "ProcNum", 7, "ToothRange"),
    ("schedule", "ScheduleNum", 3, "Note"),
    ("payment", "PayNum", 9, "CheckNum"),
    ("payment", "PayNum", 9, "PayNote"),
    ("payment", "PayNum", 9, "ExternalId"),
    ("paysplit", "SplitNum", 9, "SecurityHash"),
    ("claim", "ClaimNum", 4, "ClaimIdentifier"),
    ("claimproc", "ClaimProcNum", 4, "SecurityHash"),
    ("recall", "RecallNum", 6, "Note"),
    ("commlog", "CommlogNum", 8, "Note"),
    ("insplan", "PlanNum", 1, "PlanNote"),
    ("inssub", "InsSubNum", 1, "SubscriberID"),
    ("patplan", "PatPlanNum", 1, "PatID"),
    ("provider", "ProvNum", 1, "NationalProvID"),
    ("provider", "ProvNum", 1, "SchedNote"),
    # The rows with bad values below are canary rows too.
    ("patient", "PatNum", 6, "Address"),
    ("appointment", "AptNum", 43, "Note"),
)
# Bad values that are canaries themselves: a text in a DATE and a DATETIME column.
BAD_VALUES: tuple[tuple[str, str, int, str], ...] = (
    ("patient", "PatNum", 6, "Birthdate"),
    ("appointment", "AptNum", 43, "AptDateTime"),
)


def canary(label: str) -> str:
    return f"CANARY{label.upper()}{secrets.token_hex(5)}"


def found_in(data: bytes, canaries: Iterable[str]) -> list[str]:
    return [c for c in canaries if c.encode() in data]


def read_all(paths: Iterable[Path]) -> bytes:
    return b"".join(p.read_bytes() for p in paths if p.is_file())


def sqlite_files(db: Path) -> list[Path]:
    return [db, *(db.with_name(db.name + suffix) for suffix in ("-wal", "-shm", "-journal"))]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"{what}: not reached within {timeout:.0f} s")


def test_no_canary_leaves_the_building(tmp_path: Path) -> None:
    practice = build_practice(tmp_path / "practice.sqlite3", size="demo", today=date.today())
    db = Path(practice.connection_string.split("Database=", 1)[1])
    planted: dict[tuple[str, str, int, str], str] = {}
    positive = canary("ok")
    with sqlite3.connect(db) as raw:
        for where in (*CANARY_COLUMNS, *BAD_VALUES):
            table, key_column, key, column = where
            planted[where] = canary(column[:6])
            changed = raw.execute(
                f"UPDATE {table} SET {column} = ? WHERE {key_column} = ?", (planted[where], key)
            ).rowcount
            assert changed == 1, where
        raw.execute("UPDATE patient SET Preferred = ? WHERE PatNum = 5", (positive,))
    secret = list(planted.values())

    home = tmp_path / "home"
    env = bridge_env(home)
    cloud_db = tmp_path / "cloud" / "cloud.sqlite3"
    with ReferenceCloud(cloud_db, tokens={AGENT: TOKEN}) as cloud:
        write_bridge_config(
            home,
            connection_string=sqlite_connection_string(db),
            cloud_url=cloud.url,
            agent_id=AGENT,
            poll_seconds=0.5,
            level="DEBUG",
        )
        store_cloud_token(env, TOKEN)
        console = home / "engine-console.log"
        with console.open("ab") as out:
            engine = subprocess.Popen(
                [sys.executable, "-m", "bridge", "run", "--seconds", "200"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        state_db = home / "data" / "state.sqlite3"
        try:
            wait_for(lambda: outbox_depth(state_db) == 0, 150, "first sync delivered")
            # The delta path reads the canary rows again; the securitylog row
            # (with its own canary) names the patient.
            log_canary = canary("logtext")
            secret.append(log_canary)
            with sqlite3.connect(db) as raw:
                raw.execute("UPDATE patient SET HmPhone = '555-0142' WHERE PatNum IN (5, 6)")
                raw.execute("UPDATE appointment SET Confirmed = 4 WHERE AptNum IN (42, 43)")
                raw.execute(
                    "INSERT INTO securitylog (PermType, UserNum, LogDateTime, LogText, PatNum)"
                    " VALUES (23, 1, datetime('now','localtime'), ?, 5)",
                    (log_canary,),
                )
            with Receptionist(sqlite_connection_string(db), seed=3) as receptionist:
                receptionist.run(20, per_minute=600)

            def delivered() -> bool:
                patient = cloud.mirror("patient", agent_id=AGENT).get("5")
                appointment = cloud.mirror("appointment", agent_id=AGENT).get("42")
                return (
                    outbox_depth(state_db) == 0
                    and patient is not None
                    and (patient.data or {}).get("home_phone") == "555-0142"
                    and appointment is not None
                    and (appointment.data or {}).get("confirmation_id") == "4"
                )

            wait_for(delivered, 60, "the edits of the canary rows delivered")
        finally:
            engine.send_signal(signal.SIGINT)
            engine.wait(60)
        mirrored = cloud.mirror("patient", agent_id=AGENT)["5"].data or {}
        received = [e.data for e in cloud.change_log(agent_id=AGENT, entity="patient", key="6")]

    # The positive control proves the scans can see a canary.
    assert mirrored.get("preferred_name") == positive
    cloud_bytes = read_all(sqlite_files(cloud_db))
    assert found_in(cloud_bytes, [positive]) == [positive]
    # The bad-value row still arrived, its bad field empty, and the error path ran.
    assert received and all(data is not None and data["date_of_birth"] is None for data in received)
    logs = [*sorted((home / "logs").glob("*")), console]
    log_bytes = read_all(logs)
    assert b"bad value" in log_bytes.lower() or b"badvalue" in log_bytes.lower()

    leaks = {
        "cloud (received data, heartbeats)": found_in(cloud_bytes, secret),
        "log lines": found_in(log_bytes, secret),
        "local state": found_in(read_all(sqlite_files(state_db)), secret),
    }
    named = {v: f"{t}.{c}" for (t, _k, _n, c), v in planted.items()} | {log_canary: "securitylog"}
    report = {where: [named.get(c, c) for c in found] for where, found in leaks.items() if found}
    assert not report, f"canaries leaked: {report}"
