"""Kill test: SIGKILL the engine hundreds of times while the front desk edits.

``bridge run`` runs as a real subprocess (the CLI, a config file, BRIDGE_HOME
in a temporary folder, the token in a file keyring) against a SQLite demo
practice, with the reference cloud listening on loopback and the receptionist
simulator editing the practice concurrently. Each start of the engine ends in
a SIGKILL: at a named crash point (``BRIDGE_CRASHPOINT=name@N``, see
:mod:`bridge.crashpoints`) or at a random moment (``os.kill`` from the test).
Then it is started again, as a service manager would.

Several independent *lanes* (each its own practice copy, bridge home, agent
and receptionist, on one cloud) run side by side, because an engine start
costs about a second of CPU and one lane alone would need minutes for the
200 kills.

At the end the receptionist stops and each engine runs unkilled until its
outbox is empty, and then:

* the cloud's mirror equals the PMS exactly: every record of every entity,
  every field (read through :class:`bridge.sync.records.RecordReader`, the
  bridge's own canonical conversion), deleted rows deleted;
* nothing was applied twice: the cloud's change log has no stale change, no
  version logged twice, per key strictly increasing versions and never the
  same content twice in a row; every batch the cloud applied before the
  engine could record the acknowledgement (``uplink.sent``) came back with
  the same id and was acknowledged as a duplicate.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from statistics import median

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

from bridge.crashpoints import POINTS
from sandbox.cloud.server import ReferenceCloud
from sandbox.practice import BuildReport, build_practice
from sandbox.practice.simulator import Edit, Receptionist

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

LANES = 2
# The read path's crash points (the inbox has its own, exercised by its tests).
READ_PATH_POINTS = tuple(p for p in POINTS if p.startswith(("detector.", "uplink.")))
# Per lane: kills at each crash point (the N of name@N: the N-th time the point is
# reached in that process), then random kills. 2 lanes x (5 x 12 + 45) = 210.
DETECTOR_HITS = (1, 1, 2, 3, 4, 6, 8, 11, 15, 20, 27, 35)
UPLINK_HITS = (1, 1, 1, 1, 2, 2, 2, 3, 3, 4, 5, 6)
RANDOM_KILLS = 45
RANDOM_DELAY = (0.2, 2.5)  # seconds after the start, before SIGKILL
CRASHPOINT_WAIT = 25.0  # a crash point not reached by then: the test kills it
EDITS_PER_MINUTE = 600.0  # per lane
DRAIN_TIMEOUT = 90.0
TODAY = date.today()


@dataclass
class Lane:
    name: str
    db: Path
    home: Path
    env: dict[str, str]
    seed: int
    kills: Counter[str] = field(default_factory=Counter)
    starts: int = 0
    start_seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)

    @property
    def agent(self) -> str:
        return f"agent-{self.name}"

    @property
    def config(self) -> Path:
        return self.home / "config" / "bridge.toml"

    @property
    def state_db(self) -> Path:
        return self.home / "data" / "state.sqlite3"

    @property
    def stderr(self) -> Path:
        return self.home / "engine-stderr.log"


def _plan(seed: int) -> list[tuple[str, float]]:
    """(crash point or "random", N or delay) for each start, shuffled per lane."""
    rng = random.Random(seed)
    plan: list[tuple[str, float]] = []
    for point in READ_PATH_POINTS:
        hits = DETECTOR_HITS if point.startswith("detector.") else UPLINK_HITS
        plan += [(point, float(n)) for n in hits]
    plan += [("random", rng.uniform(*RANDOM_DELAY)) for _ in range(RANDOM_KILLS)]
    rng.shuffle(plan)
    return plan


def _start(lane: Lane, crashpoint: str | None) -> subprocess.Popen[bytes]:
    env = dict(lane.env)
    env.pop("BRIDGE_CRASHPOINT", None)
    if crashpoint:
        env["BRIDGE_CRASHPOINT"] = crashpoint
    lane.starts += 1
    with lane.stderr.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "bridge", "run", "--seconds", "120"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def _chaos(lane: Lane, stop: threading.Event) -> None:
    """Start the engine again and again; each run ends in a SIGKILL."""
    for kind, value in _plan(lane.seed):
        if stop.is_set():
            return
        started = time.monotonic()
        if kind == "random":
            process = _start(lane, None)
            time.sleep(value)
            outcome = process.poll()
            if outcome is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                lane.kills["random"] += 1
                continue
        else:
            process = _start(lane, f"{kind}@{int(value)}")
            try:
                outcome = process.wait(CRASHPOINT_WAIT)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                lane.kills["random (crash point not reached)"] += 1
                continue
            if outcome == -signal.SIGKILL:
                lane.kills[kind] += 1
                lane.start_seconds.append(time.monotonic() - started)
                continue
        lane.failures.append(f"engine exited with {outcome} (start {lane.starts})")


def _receptionist(lane: Lane, stop: threading.Event) -> None:
    with Receptionist(
        sqlite_connection_string(lane.db), seed=lane.seed, today=TODAY
    ) as receptionist:
        receptionist.run(per_minute=EDITS_PER_MINUTE, stop=stop, on_edit=lane.edits.append)


def _drain(lanes: list[Lane], cloud: ReferenceCloud) -> dict[str, list[str]]:
    """Run the engines unkilled until each mirror equals its PMS; the differences left."""
    engines = [_start(lane, None) for lane in lanes]
    try:
        expected = {lane.name: expected_cloud_state(lane.config) for lane in lanes}
        left = {lane.name: ["the outbox never emptied"] for lane in lanes}
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while time.monotonic() < deadline and any(left.values()):
            time.sleep(2.0)
            for lane in lanes:
                if left[lane.name] and outbox_depth(lane.state_db) == 0:
                    left[lane.name] = mirror_differences(expected[lane.name], cloud, lane.agent)
    finally:
        for process in engines:
            process.send_signal(signal.SIGINT)
        for process in engines:
            process.wait(60)
    return left


def test_engine_survives_hundreds_of_kills(tmp_path: Path) -> None:
    started = time.monotonic()
    practice: BuildReport = build_practice(tmp_path / "practice.sqlite3", size="demo", today=TODAY)
    source = Path(practice.connection_string.split("Database=", 1)[1])
    lanes = []
    for index in range(LANES):
        home = tmp_path / f"lane{index}"
        home.mkdir()
        db = home / "od.sqlite3"
        shutil.copy(source, db)
        lanes.append(Lane(str(index), db, home, bridge_env(home), seed=100 + index))
    tokens = {lane.agent: f"token-{lane.name}-0123456789" for lane in lanes}
    with ReferenceCloud(tmp_path / "cloud" / "cloud.sqlite3", tokens=tokens) as cloud:
        for lane in lanes:
            write_bridge_config(
                lane.home,
                connection_string=sqlite_connection_string(lane.db),
                cloud_url=cloud.url,
                agent_id=lane.agent,
                poll_seconds=0.5,
            )
            store_cloud_token(lane.env, tokens[lane.agent])

        stop = threading.Event()
        threads = [
            threading.Thread(
                target=target, args=(lane, stop), name=f"{target.__name__}-{lane.name}"
            )
            for lane in lanes
            for target in (_chaos, _receptionist)
        ]
        for thread in threads:
            thread.start()
        chaos = [t for t in threads if t.name.startswith("_chaos")]
        for thread in chaos:
            thread.join()
        chaos_seconds = time.monotonic() - started
        stop.set()
        for thread in threads:
            thread.join(60)

        left = _drain(lanes, cloud)
        log_problems = {
            lane.name: change_log_problems(cloud.change_log(agent_id=lane.agent)) for lane in lanes
        }
        duplicates = {
            lane.name: sum(b.duplicates for b in cloud.batches(agent_id=lane.agent))
            for lane in lanes
        }
        stats = cloud.stats()

    kills = sum((lane.kills for lane in lanes), Counter[str]())
    edits = sum(len(lane.edits) for lane in lanes)
    starts = [s for lane in lanes for s in lane.start_seconds]
    print(
        f"\n{sum(kills.values())} kills {dict(kills)}; {sum(lane.starts for lane in lanes)} "
        f"engine starts; {edits} edits; chaos {chaos_seconds:.0f} s, total "
        f"{time.monotonic() - started:.0f} s; crash-point runs took "
        f"{min(starts):.2f}..{max(starts):.2f} s (median {median(starts):.2f} s); "
        f"cloud: {stats.batches} batches, {stats.duplicate_batches} duplicates, "
        f"{stats.changes_applied} changes applied, {stats.changes_stale} stale"
    )
    failures = []
    for lane in lanes:
        if lane.failures:
            tail = lane.stderr.read_text(errors="replace")[-2000:]
            failures.append(f"lane {lane.name}: {lane.failures}\n{tail}")
        if left[lane.name]:
            failures.append(f"lane {lane.name}: the mirror differs from the PMS:")
            failures += [f"  {line}" for line in left[lane.name]]
        if log_problems[lane.name]:
            failures.append(
                f"lane {lane.name}: {len(log_problems[lane.name])} change-log problem(s):"
            )
            failures += [f"  {line}" for line in log_problems[lane.name][:20]]
        # Every kill at uplink.sent left a batch the cloud had applied: resent with
        # the same id, it must have been acknowledged as a duplicate.
        if duplicates[lane.name] < lane.kills["uplink.sent"]:
            failures.append(
                f"lane {lane.name}: {duplicates[lane.name]} duplicate batch(es) acknowledged, "
                f"fewer than the {lane.kills['uplink.sent']} kills at uplink.sent"
            )
    assert not failures, "\n".join(failures)
    assert sum(kills.values()) >= 200
    assert all(kills[point] >= 6 for point in READ_PATH_POINTS), kills  # every crash point reached
    assert edits >= 2000
