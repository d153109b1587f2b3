"""Bookings through the whole product: cloud inbox -> engine -> diary -> front desk -> cloud.

``bridge run`` in a subprocess on the demo practice (SQLite3 ODBC driver),
writing through the Open Dental API Service stand-in (a process of its own)
with its keys in the keyring, the reference cloud on loopback. The cloud
sends a clean booking and an ambiguous one; the clean one lands, the
ambiguous one waits; the front desk resolves it with ``bridge exceptions
choose`` (through the engine's control channel) and the cloud's result for
that item turns from ``needs_review`` into ``confirmed``. A crash right
after the hold is written (``BRIDGE_CRASHPOINT=booking.hold_written``) is
recovered without a second appointment.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import bridge_env, sqlite_connection_string, store_cloud_token, write_bridge_config

from bridge.bookings.lookups import marker
from sandbox.bookings import booking_requests
from sandbox.cloud.server import ReferenceCloud
from sandbox.odapi.testing import OdApiProcess

pytestmark = pytest.mark.timeout(300)

AGENT = "agent-bookings"
TOKEN = "bookings-token-0123456789"
DEV, CUST = "e2e-developer-key", "e2e-customer-key"


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


class Bridge:
    def __init__(self, home: Path, db: Path, cloud: ReferenceCloud, api_url: str) -> None:
        self.home, self.db, self.cloud = home, db, cloud
        self.env = bridge_env(home)
        config = write_bridge_config(
            home,
            connection_string=sqlite_connection_string(db),
            cloud_url=cloud.url,
            agent_id=AGENT,
        )
        with config.open("a", encoding="utf-8") as out:
            out.write(
                f"""[writer]
kind = "opendental-api"
url = "{api_url}"
developer_key_secret = "od-developer-key"
customer_key_secret = "od-customer-key"
[bookings]
min_notice_minutes = 60
"""
            )
        store_cloud_token(self.env, TOKEN)
        for name, value in (("od-developer-key", DEV), ("od-customer-key", CUST)):
            self.cli("secret", "set", name, "--from-stdin", stdin=value, check=True)
        self.process: subprocess.Popen[bytes] | None = None

    def cli(
        self, *args: str, stdin: str | None = None, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bridge", *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=check,
        )

    def start(self, **env: str) -> Bridge:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "run"],
            env={**self.env, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(60)
        self.process = None

    def result(self, item_id: str) -> Any:
        return {r.id: r for r in self.cloud.results()}.get(item_id)


@pytest.fixture
def bridge(tmp_path: Path, db: Path) -> Iterator[Bridge]:
    with ReferenceCloud(tmp_path / "cloud" / "cloud.sqlite3", tokens={AGENT: TOKEN}) as cloud:
        api = OdApiProcess(db, tmp_path / "odapi", keys=[(DEV, CUST)]).start()
        world = Bridge(tmp_path / "home", db, cloud, api.api_url)
        try:
            yield world
        finally:
            world.stop()
            api.stop()


def test_a_booking_and_a_front_desk_decision_travel_the_whole_way(bridge: Bridge) -> None:
    plans = {
        p.kind: p
        for p in booking_requests(
            sqlite_connection_string(bridge.db), clean=1, clash=0, ambiguous=1
        )
    }
    clean = bridge.cloud.enqueue("booking.request", plans["clean"].payload)
    doubtful = bridge.cloud.enqueue("booking.request", plans["ambiguous"].payload)
    bridge.start()
    wait_for(lambda: bridge.result(clean.id) and bridge.result(doubtful.id), 90, "both results")
    landed = bridge.result(clean.id)
    assert landed.status == "confirmed", landed.result
    with sqlite3.connect(bridge.db) as raw:
        [(note, when)] = raw.execute(
            "SELECT Note, AptDateTime FROM appointment WHERE AptNum = ?",
            (int(landed.result["pms_ids"]["appointment"]),),
        ).fetchall()
    assert note.startswith(marker(clean.id))
    assert when.startswith(plans["clean"].payload["start"][:16].replace("T", " "))
    assert bridge.result(doubtful.id).status == "needs_review"

    listed = bridge.cli("exceptions", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [waiting] = json.loads(listed.stdout)
    candidate = waiting["context"]["candidates"][0]["patient_id"]
    shown = bridge.cli("exceptions", "show", str(waiting["id"]))
    assert "unconfirmed_match" in shown.stdout and candidate in shown.stdout
    chosen = bridge.cli("exceptions", "choose", str(waiting["id"]), candidate, "--by", "amy")
    assert chosen.returncode == 0, chosen.stderr
    assert "confirmed" in chosen.stdout
    wait_for(
        lambda: bridge.result(doubtful.id).status == "confirmed", 30, "the decision in the cloud"
    )
    assert bridge.result(doubtful.id).result["pms_ids"]["patient"] == candidate
    assert json.loads(bridge.cli("exceptions", "list", "--json").stdout) == []
    verified = bridge.cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_crash_right_after_the_hold_never_writes_a_second_one(bridge: Bridge) -> None:
    [plan] = booking_requests(
        sqlite_connection_string(bridge.db), clean=1, clash=0, ambiguous=0
    )
    item = bridge.cloud.enqueue("booking.request", plan.payload)
    bridge.start(BRIDGE_CRASHPOINT="booking.hold_written")
    assert bridge.process is not None
    bridge.process.wait(90)
    assert bridge.process.returncode == -signal.SIGKILL
    bridge.process = None
    with sqlite3.connect(bridge.db) as raw:
        holds = raw.execute(
            "SELECT COUNT(*) FROM appointment WHERE Note LIKE ?", (marker(item.id) + "%",)
        ).fetchone()[0]
    assert holds == 1, "the hold was written before the crash"
    assert bridge.result(item.id) is None
    bridge.start()
    wait_for(lambda: bridge.result(item.id), 90, "the result after the restart")
    assert bridge.result(item.id).status == "confirmed", bridge.result(item.id).result
    with sqlite3.connect(bridge.db) as raw:
        rows = raw.execute(
            "SELECT AptNum FROM appointment WHERE Note LIKE ?", (marker(item.id) + "%",)
        ).fetchall()
    assert len(rows) == 1, "a second hold was written after the crash"
    assert str(rows[0][0]) == bridge.result(item.id).result["pms_ids"]["appointment"]
