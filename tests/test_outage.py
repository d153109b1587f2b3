"""Cloud outages while the front desk keeps editing: nothing lost, nothing reordered.

``bridge run`` (a real subprocess) syncs a SQLite demo practice into the
reference cloud; once the first sync is done the receptionist simulator
starts editing and the cloud fails in turn: 503 with Retry-After, connections
dropped before the request is read, connections dropped *after* the batch
was applied (so the bridge must resend a batch the cloud already has), and
finally the cloud process stopped altogether and restarted on the same port
and database. Afterwards everything is delivered (the mirror equals the PMS)
and per key the cloud received versions in increasing order: never an older
version after a newer one, never one applied twice.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from conftest import (
    bridge_env,
    change_log_problems,
    expected_cloud_state,
    mirror_differences,
    outbox_depth,
    sqlite_connection_string,
    store_cloud_token,
    write_bridge_config,
)

from sandbox.cloud.models import Fault
from sandbox.cloud.server import ReferenceCloud
from sandbox.practice import build_practice
from sandbox.practice.simulator import Edit, Receptionist

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

AGENT = "agent-outage"
TOKEN = "outage-token-0123456789"
OUTAGE_SECONDS = 8.0
FAULT_WAIT_SECONDS = 90.0  # the uplink's backoff is capped at 60 s
EDITS_PER_MINUTE = 300.0


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"{what}: not reached within {timeout:.0f} s")


def test_outages_lose_nothing_and_keep_order(tmp_path: Path) -> None:
    practice = build_practice(tmp_path / "practice.sqlite3", size="demo", today=date.today())
    db = Path(practice.connection_string.split("Database=", 1)[1])
    home = tmp_path / "home"
    env = bridge_env(home)
    cloud_db = tmp_path / "cloud" / "cloud.sqlite3"
    cloud = ReferenceCloud(cloud_db, tokens={AGENT: TOKEN}).start()
    port = cloud.port
    config = write_bridge_config(
        home,
        connection_string=sqlite_connection_string(db),
        cloud_url=cloud.url,
        agent_id=AGENT,
        poll_seconds=0.5,
    )
    store_cloud_token(env, TOKEN)
    stderr = (home / "engine-stderr.log").open("ab")
    engine = subprocess.Popen(
        [sys.executable, "-m", "bridge", "run", "--seconds", "400"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    state_db = home / "data" / "state.sqlite3"
    edits: list[Edit] = []
    during_outage: list[int] = []
    stop = threading.Event()
    try:
        wait_for(lambda: outbox_depth(state_db) == 0, 180, "first sync delivered")

        def edit() -> None:
            with Receptionist(sqlite_connection_string(db), seed=11) as receptionist:
                receptionist.run(per_minute=EDITS_PER_MINUTE, stop=stop, on_edit=edits.append)

        editor = threading.Thread(target=edit, name="receptionist")
        editor.start()
        time.sleep(3.0)

        def outage(fault: Fault) -> None:
            before = len(edits)
            fired_before = cloud.stats().faults_fired.get(fault.kind, 0)
            rule = cloud.set_fault(fault)
            time.sleep(OUTAGE_SECONDS)
            # The uplink may still be backing off from the previous outage:
            # the fault lasts until it has met at least one request.
            wait_for(
                lambda: cloud.stats().faults_fired.get(fault.kind, 0) > fired_before,
                FAULT_WAIT_SECONDS,
                f"the {fault.kind} fault met a request",
            )
            cloud.clear_faults(rule.id)
            during_outage.append(len(edits) - before)
            time.sleep(3.0)

        outage(Fault("unavailable", path_prefix="/v1/changes", retry_after=1))
        outage(Fault("drop_before", path_prefix="/v1/changes"))
        outage(Fault("drop_after", probability=0.6, path_prefix="/v1/changes"))
        outage(Fault("error", probability=0.5, path_prefix="/v1/changes"))
        fired = cloud.stats().faults_fired

        # The cloud goes away entirely, then comes back on the same port and data.
        cloud.stop()
        before = len(edits)
        time.sleep(OUTAGE_SECONDS)
        during_outage.append(len(edits) - before)
        cloud = ReferenceCloud(cloud_db, tokens={AGENT: TOKEN}, port=port).start()
        time.sleep(3.0)
        stop.set()
        editor.join(30)

        expected = expected_cloud_state(config)
        differences = ["not checked"]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if outbox_depth(state_db) == 0:
                differences = mirror_differences(expected, cloud, AGENT)
                if not differences:
                    break
            time.sleep(1.0)
        log = cloud.change_log(agent_id=AGENT)
        duplicates = sum(b.duplicates for b in cloud.batches(agent_id=AGENT))
    finally:
        stop.set()
        engine.send_signal(signal.SIGINT)
        engine.wait(60)
        stderr.close()
        cloud.stop()

    print(
        f"\n{len(edits)} edits, {during_outage} of them during the 5 outages; "
        f"faults fired {fired}; {duplicates} duplicate batch(es) acknowledged; "
        f"{len(log)} changes logged"
    )
    assert all(n > 0 for n in during_outage), "the receptionist must keep editing during outages"
    assert {"unavailable", "drop_before", "drop_after", "error"} <= set(fired), fired
    assert not differences, "the mirror differs from the PMS:\n" + "\n".join(differences)
    problems = change_log_problems(log)
    assert not problems, f"{len(problems)} ordering problem(s):\n" + "\n".join(problems[:20])
    # Batches the cloud applied without answering (drop_after) came back with the
    # same id and were acknowledged as duplicates, not applied again.
    assert duplicates >= 1
