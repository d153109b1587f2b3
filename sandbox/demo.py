"""The README's demo: a sample practice, the bridge pointed at it, doctor, run.

The first sync is shown as a progress bar read from the engine's own status
snapshot (:func:`bridge.status.read_status`); then the receptionist simulator
makes a few edits and each is followed until it appears in the reference
cloud (action, entity and key only: no personal data on screen). Then the
cloud sends online bookings (:mod:`sandbox.bookings`): clean ones land in
the diary through the stand-in of Open Dental's API Service, a clash comes
back with alternatives, an ambiguous patient waits in the front desk's
queue and is resolved with ``bridge exceptions choose``; ``bridge audit
verify`` proves the audit trail.

Everything happens under ``var/demo/`` in the working tree: the practice
database, and ``BRIDGE_HOME`` (config, state, logs) of the demo bridge. The
bridge is driven through its real CLI in subprocesses, exactly as practice
IT would run it. Re-running the demo starts from a fresh practice.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyodbc

from bridge.state import open_state
from bridge.status import read_status
from sandbox.bookings import booking_requests
from sandbox.cloud.server import ReferenceCloud
from sandbox.odapi.testing import OdApiProcess
from sandbox.practice import TIMEZONE, BuildReport, build_practice
from sandbox.practice.simulator import Edit, Receptionist

EDITS = 16  # receptionist edits followed to the cloud
DEMO_DEVELOPER_KEY = "demo-developer-key"
DEMO_CUSTOMER_KEY = "demo-customer-key"

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


def _bar(done: int, total: int, width: int = 30) -> str:
    share = min(1.0, done / total) if total else 0.0
    filled = round(share * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {share:4.0%}"


def _show_first_sync(state_db: Path, timeout: float) -> None:
    """A progress bar of the first sync, from the engine's own status snapshot."""
    deadline = time.monotonic() + timeout
    while not state_db.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # let the engine finish creating (migrating) its state
    store = open_state(state_db)
    started = time.monotonic()
    line = ""
    try:
        while time.monotonic() < deadline:
            health = {c.component: c for c in read_status(store).components}
            sync = health.get("sync")
            if sync is not None:
                details = sync.details
                done = int(str(details.get("rows_done", 0)))
                total = int(str(details.get("rows_total", 0)))
                line = f"  {_bar(done, total)} {done:,} of {total:,} rows"
                rate, eta = details.get("rate_rows_per_s"), details.get("eta_seconds")
                if rate:
                    line += f", {float(str(rate)):,.0f} rows/s"
                if eta is not None and not sync.message.startswith("watching"):
                    line += f", about {eta} s to go"
                print(f"\r{line:<90}", end="", flush=True)
                if sync.message.startswith("watching"):
                    break
            time.sleep(0.3)
    finally:
        store.close()
    print(f"\n  read in {time.monotonic() - started:.1f} s")


def _follow_edits(connection_string: str, cloud: ReferenceCloud, *, edits: int) -> None:
    """Make ``edits`` edits and print, for each, how long until the cloud had it."""
    pending: list[tuple[Edit, datetime]] = []
    print("  Each line: what the receptionist did, the record, seconds until it was in the cloud.")
    print("  (appointments, patients and schedules are polled in real time; payments and")
    print("  claims every minute.)")
    with Receptionist(connection_string, seed=int(time.time()) % 1000) as receptionist:
        for _ in range(edits):
            made = receptionist.edit()
            pending.append((made, datetime.fromtimestamp(made.committed_at, UTC)))
            time.sleep(0.7)
    deadline = time.monotonic() + 75
    latencies: list[float] = []
    while pending and time.monotonic() < deadline:
        for item in list(pending):
            made, committed = item
            arrived = _arrival(cloud, made, committed)
            if arrived is not None:
                pending.remove(item)
                latencies.append(arrived)
                print(
                    f"  {made.action:<20} {made.entity:<12} {made.key:>7}  "
                    f"in the cloud after {arrived:5.1f} s"
                )
        time.sleep(0.2)
    for made, _ in pending:
        print(f"  {made.action:<20} {made.entity:<12} {made.key:>7}  not in the cloud yet")
    if latencies:
        latencies.sort()
        print(f"  median {latencies[len(latencies) // 2]:.1f} s over {len(latencies)} edits")


def _bookings(env: dict[str, str], connection_string: str, cloud: ReferenceCloud) -> None:
    """Online bookings: clean ones land, a clash gets alternatives, a doubt waits."""
    _say("Online bookings arrive from the cloud: clean, clashing and ambiguous")
    planned = booking_requests(connection_string, clean=3, clash=1, ambiguous=1)
    queued = [(plan.kind, cloud.enqueue("booking.request", plan.payload)) for plan in planned]
    deadline = time.monotonic() + 60
    results: dict[str, Any] = {}
    while time.monotonic() < deadline and len(results) < len(queued):
        results = {r.id: r for r in cloud.results()}
        time.sleep(0.1)
    for kind, item in queued:
        result = results.get(item.id)
        if result is None:
            print(f"  {kind:<10} no result yet")
            continue
        created = datetime.fromisoformat(item.created_at)
        seconds = (datetime.fromisoformat(result.received_at) - created).total_seconds()
        body = result.result
        reason = (body.get("reason") or {}).get("code", "")
        ids = ", ".join(f"{k} #{v}" for k, v in (body.get("pms_ids") or {}).items())
        alternatives = len(body.get("alternatives") or [])
        line = f"  {kind:<10} -> {result.status:<12} {reason:<18} in {seconds:.2f} s"
        if ids:
            line += f"  ({ids})"
        if alternatives:
            line += f"  ({alternatives} alternatives offered)"
        print(line)
    _say("The front desk's queue (bridge exceptions)")
    _bridge(env, "exceptions", "list", check=False)
    ambiguous = [item for kind, item in queued if kind == "ambiguous"]
    waiting = _open_exception_for(env, ambiguous[0].id) if ambiguous else None
    if waiting is not None:
        exception_id, candidate = waiting
        _bridge(env, "exceptions", "show", str(exception_id), check=False)
        print("  The receptionist knows the patient: book it for the candidate.")
        _bridge(
            env, "exceptions", "choose", str(exception_id), candidate, "--by", "demo", check=False
        )
    _say("The audit trail of every write and decision (bridge audit verify)")
    _bridge(env, "audit", "verify", check=False)


def _open_exception_for(env: dict[str, str], item_id: str) -> tuple[int, str] | None:
    listed = subprocess.run(
        [sys.executable, "-m", "bridge", "exceptions", "list", "--json"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if listed.returncode != 0:
        return None
    for view in json.loads(listed.stdout or "[]"):
        candidates = view.get("context", {}).get("candidates") or []
        if view["item_id"] == item_id and candidates:
            return int(view["id"]), str(candidates[0]["patient_id"])
    return None


def _arrival(cloud: ReferenceCloud, made: Edit, committed: datetime) -> float | None:
    """Seconds from the commit to the first change the cloud received that the bridge
    read after the commit (so it carries the edit); None if none yet."""
    for entry in cloud.change_log(entity=made.entity, key=made.key):
        observed = datetime.fromisoformat(entry.observed_at)
        if observed >= committed and (made.op == "upsert" or entry.op == "delete"):
            received = datetime.fromisoformat(entry.received_at)
            return max(0.0, (received - committed).total_seconds())
    return None


def write_demo_config(
    config_file: Path,
    connection_string: str,
    cloud_url: str,
    ca_path: Path,
    writer_url: str = "http://127.0.0.1:30223/api/v1",
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
                "# Bookings are written through the stand-in of Open Dental's API Service.",
                "[writer]",
                'kind = "opendental-api"',
                f'url = "{writer_url}"',
                'developer_key_secret = "od-developer-key"',
                'customer_key_secret = "od-customer-key"',
                "",
                "[bookings]",
                "min_notice_minutes = 60",
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
    # A fresh practice and a fresh cloud need a fresh bridge: old local state
    # would take the new practice for one already synced.
    shutil.rmtree(home, ignore_errors=True)
    cloud = ReferenceCloud(
        cloud_dir / "cloud.sqlite3", tokens={"demo-agent": "demo-token"}, tls=True
    )
    cloud.start()
    print(f"  {cloud.url} (CA {cloud.ca_path})")
    _say("Starting the stand-in of Open Dental's API Service (the sanctioned write route)")
    database = report.connection_string.split("Database=", 1)[1].split(";", 1)[0]
    odapi = OdApiProcess(database, root / "odapi", keys=[(DEMO_DEVELOPER_KEY, DEMO_CUSTOMER_KEY)])
    odapi.start()
    print(f"  {odapi.api_url}")
    try:
        _configure_and_run(env, home, report, cloud, run_seconds, odapi.api_url)
    finally:
        odapi.stop()
        cloud.stop()
    print(f"\nDemo files are under {root}. Try: BRIDGE_HOME={home} .venv/bin/bridge doctor")


def _configure_and_run(
    env: dict[str, str],
    home: Path,
    report: BuildReport,
    cloud: ReferenceCloud,
    run_seconds: float,
    writer_url: str,
) -> None:
    _say("Configuring the bridge")
    config_file = home / "config" / "bridge.toml"
    assert cloud.ca_path is not None
    write_demo_config(config_file, report.connection_string, cloud.url, cloud.ca_path, writer_url)
    _bridge(env, "--version")
    for name, value in (
        ("cloud-token", "demo-token"),
        ("od-developer-key", DEMO_DEVELOPER_KEY),
        ("od-customer-key", DEMO_CUSTOMER_KEY),
    ):
        print(f"$ bridge secret set {name} --from-stdin   (secrets go to the keyring)")
        subprocess.run(
            [sys.executable, "-m", "bridge", "secret", "set", name, "--from-stdin"],
            input=value,
            text=True,
            env=env,
            check=True,
        )
    _bridge(env, "config", "check")

    _say("bridge doctor")
    _bridge(env, "doctor", check=False)

    _say("Running the engine (bridge run)")
    print("  (its log lines go to the log files: 'bridge logs' shows them at the end)")
    engine = subprocess.Popen(
        [sys.executable, "-m", "bridge", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state_db = home / "data" / "state.sqlite3"
    _say("First sync: the whole practice goes to the cloud")
    _show_first_sync(state_db, timeout=run_seconds)
    _wait_until_synced(state_db, timeout=run_seconds)
    _say("bridge status (while the engine runs)")
    _bridge(env, "status", check=False)
    _say("The front desk at work: the receptionist simulator edits the diary")
    _follow_edits(report.connection_string, cloud, edits=EDITS)
    _bookings(env, report.connection_string, cloud)
    engine.send_signal(signal.SIGINT)  # what Ctrl+C or a service stop does
    engine.wait(timeout=60)

    _say("What the cloud received")
    for entity in ("patient", "appointment", "provider", "operatory", "schedule", "procedure"):
        live = sum(not row.deleted for row in cloud.mirror(entity).values())
        print(f"  {entity:<12} {live:>8,} records")

    _say("bridge status (after it stopped)")
    _bridge(env, "status", check=False)
    _say("bridge logs (last lines)")
    _bridge(env, "logs", "-n", "8")
