"""Thousands of invalid or hostile booking items: no crash, no PMS write, each rejected.

The real path: the reference cloud (HTTPS on loopback) holds the items; the
inbox loop long-polls, stores and validates them and hands the survivors to
the booking pipeline, which writes through the Open Dental API stand-in into
the demo practice. Items are generated from a fixed seed: SQL fragments and
markup in names, huge strings, impossible and far dates, times in the
daylight-saving gap and the repeated hour, wrong types, unknown appointment
types, providers, operatories and appointments. Afterwards the PMS tables
are byte-for-byte what they were, every item has a ``rejected`` result with
a reason code, and the loop is still running.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from booking_world import TZ, build

from bridge.bookings.pipeline import booking_handlers
from bridge.cloud.client import CloudClient
from bridge.config import load_settings
from bridge.inbox import InboxLoop
from bridge.secrets import MemorySecretStore
from bridge.state import StateStore
from sandbox.cloud.server import ReferenceCloud
from sandbox.odapi import OdApiServer
from sandbox.odapi.testing import CUSTOMER_KEY, DEVELOPER_KEY

pytestmark = pytest.mark.timeout(600)

AGENT = "agent-1"
TOKEN = "tok-hostile-1"
ITEMS = 2_000

HOSTILE_TEXT = [
    "Robert'); DROP TABLE patient;--",
    "' OR '1'='1",
    "1; DELETE FROM appointment",
    "<script>alert(1)</script>",
    "${jndi:ldap://x/a}",
    "%s%s%s%n",
    "\x00\x01\x02",
    "Ana\u202eevil",
    "😀😀",
    "Bob\nSmith",
    "",
    "   ",
    "A" * 5_000,
]
BAD_DATES = ["2026-02-30", "1899-12-31", "2999-01-01", "0000-00-00", "1990/01/01", "yesterday"]
DST_GAP = "2027-03-14T02:30:00-08:00"
REPEATED = "2027-11-07T01:30:00-07:00"


def hostile_item(rng: random.Random, good_start: str) -> tuple[str, dict[str, Any]]:
    """One invalid booking item; the comment on each branch says what is wrong."""
    patient: dict[str, Any] = {
        "first_name": "Mia",
        "last_name": "Quinlan",
        "date_of_birth": "1984-03-09",
        "phone": "+1 503 555 0177",
    }
    body: dict[str, Any] = {"patient": patient, "start": good_start, "appointment_type": "Recall"}
    choice = rng.randrange(16)
    if choice == 0:  # hostile or empty names
        patient[rng.choice(["first_name", "last_name"])] = rng.choice(HOSTILE_TEXT)
    elif choice == 1:  # impossible birth dates
        patient["date_of_birth"] = rng.choice(BAD_DATES)
    elif choice == 2:  # times the diary cannot hold
        body["start"] = rng.choice(
            [DST_GAP, REPEATED, "2026-12-01T10:00:00", "2020-01-01T10:00:00-08:00", "soon"]
        )
    elif choice == 3:  # wrong types everywhere
        key = rng.choice(["patient", "start", "appointment_type", "duration_minutes"])
        wrong = [42, 3.5, True, [], {"a": 1}, "x" * 20_000]
        body[key] = rng.choice(wrong if key == "duration_minutes" else [None, *wrong])
    elif choice == 4:  # unknown appointment type (passes validation, refused by the pipeline)
        body["appointment_type"] = rng.choice(["Teleportation", "99999", HOSTILE_TEXT[0]])
    elif choice == 5:  # unknown provider / operatory ids
        body[rng.choice(["provider_id", "operatory_id"])] = rng.choice(
            ["987654", "0", "-1", "1 OR 1=1", 10**30]
        )
    elif choice == 6:  # no way to confirm who the patient is
        patient.pop("phone")
    elif choice == 7:  # not a phone, not an email
        patient["phone"] = rng.choice(["call me", "12", "+999 999", HOSTILE_TEXT[1]])
        patient["email"] = rng.choice(["no-at-sign", "a@b", "x@@y.com", "a b@c.com"])
    elif choice == 8:  # durations outside the pattern grid
        body["duration_minutes"] = rng.choice([0, 7, -30, 10_000, "30"])
    elif choice == 9:  # start off the 5-minute grid or with seconds
        body["start"] = good_start.replace(":00-", ":07-", 1)
    elif choice == 10:  # a start in the wrong zone's offset
        body["start"] = good_start[:-6] + "+05:30"
    elif choice == 11:  # cancel/reschedule of appointments that do not exist or ids that are not
        return rng.choice(["booking.cancel", "booking.reschedule"]), {
            "pms_appointment_id": rng.choice(["987654321", "1; DROP", "", None, -4]),
            "start": good_start,
        }
    elif choice == 12:  # a payload that is not an object's worth of fields
        return "booking.request", {"junk": [1, 2, {"deep": ["x"] * 50}]}
    elif choice == 13:  # notes and postcodes far too long or with control characters
        body["notes"] = "n" * 3_000
    elif choice == 14:  # markup in the postcode
        patient["postcode"] = "<b>97201</b>"
    else:  # too far ahead for any diary
        body["start"] = "2031-01-06T10:00:00-08:00"
    return "booking.request", body


def snapshot(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(db) as raw:
        return {
            table: raw.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            for table in ("patient", "appointment", "securitylog")
        }


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[ReferenceCloud]:
    with ReferenceCloud(tmp_path / "cloud" / "cloud.sqlite3", tokens={AGENT: TOKEN}) as c:
        yield c


def test_thousands_of_hostile_items_are_rejected_without_a_write(
    tmp_path: Path, db: Path, store: StateStore, cloud: ReferenceCloud
) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(
        f"""[practice]
name = "Test Dental"
timezone = "America/Los_Angeles"
[pms]
profile = "opendental"
connection_string = 'Driver={{SQLite3}};Database={db}'
[cloud]
url = "{cloud.url}"
agent_id = "{AGENT}"
timeout_seconds = 10
""",
        encoding="utf-8",
    )
    settings = load_settings(config)
    rng = random.Random(20261123)
    good = (datetime.now(TZ) + timedelta(days=5)).replace(
        hour=10, minute=0, second=0, microsecond=0
    )
    kinds: dict[str, int] = {}
    for _ in range(ITEMS):
        kind, payload = hostile_item(rng, good.isoformat())
        cloud.enqueue(kind, payload)
        kinds[kind] = kinds.get(kind, 0) + 1
    before = snapshot(db)
    secrets = MemorySecretStore({"cloud-token": TOKEN})
    with OdApiServer(db, keys=[(DEVELOPER_KEY, CUSTOMER_KEY)]) as api:
        pipeline = build(db, store, api)
        loop = InboxLoop(
            settings,
            store,
            secrets,
            booking_handlers(pipeline),
            wait_seconds=0.5,
            client_factory=lambda: CloudClient(settings.cloud, secrets),
        )
        stop = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                loop(stop)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=run, name="inbox-hostile")
        started = time.monotonic()
        thread.start()
        try:
            deadline = time.monotonic() + 480
            # a count, not the records: this thread shares the GIL with the loop
            while cloud.stats().results < ITEMS and time.monotonic() < deadline:
                assert thread.is_alive(), errors
                time.sleep(0.5)
        finally:
            stop.set()
            thread.join(30)
            pipeline.shutdown()
        elapsed = time.monotonic() - started
    assert not errors, errors
    results = cloud.results()
    assert len(results) == ITEMS, f"{len(results)} of {ITEMS} answered in {elapsed:.0f} s"
    statuses = {r.status for r in results}
    items = {i.id: i for i in cloud.inbox()}
    odd = [(items[r.id].payload, r.result) for r in results if r.status != "rejected"]
    assert statuses == {"rejected"}, [o[0] for o in odd[:3]]
    codes: dict[str, int] = {}
    for record in results:
        reason = record.result["reason"]
        assert reason["code"] and reason["message"], record
        assert "DROP" not in reason["message"] and "Quinlan" not in reason["message"]
        codes[reason["code"]] = codes.get(reason["code"], 0) + 1
    assert snapshot(db) == before, "a hostile item wrote into the PMS"
    assert {"invalid_request", "unknown_appointment_type"} <= set(codes), codes
    print(f"{ITEMS} hostile items in {elapsed:.1f} s: {kinds} -> {codes}")
