"""A receptionist and the bridge fight over the same chairs (MariaDB, 1,000 trials).

The demo practice in MariaDB, read through MariaDB Connector/ODBC; the
bridge writes through the Open Dental API stand-in on the same database; a
"receptionist" thread writes appointments straight into the ``appointment``
table (as Open Dental's own client does, taking no locks) at the very time
and chair the bridge is booking, after a random delay that lands before,
during or after the bridge's check, hold and verify.

After every trial the diary must be in one of two states:

* the bridge lost: its result is ``conflict`` with alternatives, and no
  hold of its own still occupies the chair;
* the bridge won: its appointment stands, and if the receptionist's landed
  on top of it after the verify, the collision watch has reported it as a
  ``double_booked`` exception.

So zero overlaps are left unreported.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pyodbc
import pytest
from booking_world import TZ, World, booking, make_settings
from conftest import MARIADB_HOST, MARIADB_PASSWORD, MARIADB_PORT, MARIADB_USER, _admin_connect

from bridge.bookings import exceptions as desk
from bridge.bookings.diary import OpenDentalDiary
from bridge.bookings.matching import PatientMatcher
from bridge.bookings.pipeline import BookingPipeline
from bridge.bookings.slot_engine import SlotEngine
from bridge.bookings.slots import Slot
from bridge.bookings.watch import CollisionWatch
from bridge.pms.odbc import OdbcSettings, PmsConnection, connect
from bridge.pms.writers import OpenDentalApiWriter
from bridge.secrets import Secret
from bridge.state import StateStore
from sandbox.odapi import OdApiServer
from sandbox.odapi.testing import CUSTOMER_KEY, DEVELOPER_KEY
from sandbox.practice import BuildReport, build_practice

pytestmark = [pytest.mark.mariadb, pytest.mark.timeout(900)]

TRIALS = int(__import__("os").environ.get("CONTEST_TRIALS", "1000"))
OCCUPYING = (1, 2, 4, 5, 7, 8)


@pytest.fixture(scope="module")
def practice() -> Iterator[tuple[BuildReport, str]]:
    name = f"contest_{secrets.token_hex(4)}"
    target = (
        f"mariadb://{quote(MARIADB_USER)}:{quote(MARIADB_PASSWORD)}@{MARIADB_HOST}:"
        f"{MARIADB_PORT}/{name}"
    )
    yield build_practice(target, size="demo"), target
    admin = _admin_connect()
    admin.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


def receptionist_connection(report: BuildReport) -> pyodbc.Connection:
    raw = pyodbc.connect(f"{report.connection_string};Password={report.password}", autocommit=True)
    raw.setencoding(encoding="utf-8")
    return raw


def test_the_bridge_and_a_receptionist_contest_a_thousand_slots(
    practice: tuple[BuildReport, str], store: StateStore, tmp_path: Path
) -> None:
    report, target = practice
    password = Secret(report.password) if report.password else None
    settings = make_settings(tmp_path / "unused.sqlite3", buffer_minutes=0)

    def open_pms() -> PmsConnection:
        return connect(OdbcSettings(connection_string=report.connection_string, password=password))

    with OdApiServer(target, keys=[(DEVELOPER_KEY, CUSTOMER_KEY)]) as api:
        writer = OpenDentalApiWriter(
            api.api_url,
            Secret(DEVELOPER_KEY, "od-developer-key"),
            Secret(CUSTOMER_KEY, "od-customer-key"),
            timezone=TZ,
            timeout_seconds=10,
        )
        pipeline = BookingPipeline(
            settings,
            store,
            writer,
            open_pms=open_pms,
            slots_for=lambda conn, policy: SlotEngine(OpenDentalDiary(conn, TZ), policy),
            matcher_for=lambda conn: PatientMatcher(conn, "US"),
        )
        conn = open_pms()
        world = World(Path(), api, store, pipeline, conn)
        watch = CollisionWatch(pipeline)
        start = datetime.now(TZ) + timedelta(days=2)
        slots = world.engine().free_slots(start, start + timedelta(days=80), 30)
        rng = random.Random(4242)
        rng.shuffle(slots)
        pool: list[Slot] = []
        for slot in slots:  # no two pool slots share a chair or a provider at a time
            if all(
                (slot.operatory_id != s.operatory_id and slot.provider_id != s.provider_id)
                or slot.start >= s.end + timedelta(minutes=30)
                or s.start >= slot.end + timedelta(minutes=30)
                for s in pool
            ):
                pool.append(slot)
        assert len(pool) >= 50, f"only {len(pool)} free slots to contest"
        desk_raw = receptionist_connection(report)
        outcomes: Counter[str] = Counter()
        overlapped: dict[str, int] = {}  # item id -> trial, for every overlap left standing
        receptionist_ids: dict[int, str] = {}
        started = time.monotonic()
        try:
            for trial in range(TRIALS):
                slot = pool[trial % len(pool)]
                delay = rng.uniform(0.0, 0.15)

                def receptionist(
                    slot: Slot = slot, trial: int = trial, delay: float = delay
                ) -> None:
                    time.sleep(delay)
                    cursor = desk_raw.cursor()
                    cursor.execute(
                        "INSERT INTO appointment (PatNum, AptStatus, Pattern, Op, ProvNum,"
                        " AptDateTime, Note, Confirmed, DateTStamp) VALUES"
                        " (1, 1, 'XXXXXX', ?, ?, ?, 'walk-in', 0, NOW())",
                        (
                            int(slot.operatory_id),
                            int(slot.provider_id),
                            slot.start.replace(tzinfo=None),
                        ),
                    )
                    cursor.execute("SELECT LAST_INSERT_ID()")
                    receptionist_ids[trial] = str(cursor.fetchone()[0])

                clerk = threading.Thread(target=receptionist)
                clerk.start()
                result = world.send("booking.request", booking(slot, duration_minutes=30))
                clerk.join(10)
                watch.appointments_changed([receptionist_ids[trial]])  # the read path's hint
                outcomes[result.status] += 1
                if result.status == "conflict":
                    assert result.alternatives, (trial, result)
                else:
                    assert result.status == "confirmed", (trial, result)
                rows = conn.execute(
                    "SELECT AptNum FROM appointment WHERE Op = ? AND AptDateTime = ?"
                    " AND AptStatus IN (1, 2, 4, 5, 7, 8)",
                    (int(slot.operatory_id), slot.start.replace(tzinfo=None)),
                )
                assert rows, f"trial {trial}: the receptionist's appointment is gone"
                if len(rows) > 1:
                    overlapped[world.last_item.id] = trial
                # clear the chair for the next trial that contests it
                desk_raw.execute(
                    "DELETE FROM appointment WHERE Op = ? AND AptDateTime = ?",
                    (int(slot.operatory_id), slot.start.replace(tzinfo=None)),
                )
        finally:
            elapsed = time.monotonic() - started
            pipeline.shutdown()
            desk_raw.close()
            conn.close()
    # Reports are never withdrawn: one look at the queue after the last trial sees
    # every double_booked exception the watch raised during the trials.
    reported = {
        e.item_id
        for e in desk.list_exceptions(store, state=None, limit=1_000_000)
        if e.reason_code == "double_booked"
    }
    unreported = sorted(trial for item_id, trial in overlapped.items() if item_id not in reported)
    print(
        f"{TRIALS} contested bookings in {elapsed:.0f} s: {dict(outcomes)}, "
        f"{len(overlapped)} overlaps after the bridge's verify, {len(unreported)} unreported"
    )
    assert not unreported, f"overlaps left unreported in trials {unreported[:10]}"
    assert outcomes["conflict"] > 0 and outcomes["confirmed"] > 0, outcomes
