"""Published availability end to end: the real engine reads the demo practice (SQLite
over ODBC) and pushes to the reference cloud over loopback; a receptionist's booking
in the diary changes the cloud's availability within seconds, and the cloud's
``sync.request`` for ``availability`` recomputes every day."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bridge.config import load_settings
from bridge.engine import Engine
from bridge.pms.profile import load_profile
from bridge.secrets import MemorySecretStore
from bridge.state import open_state
from bridge.state.models import SyncCursor
from sandbox.cloud.server import ReferenceCloud
from sandbox.practice import BuildReport

LA = ZoneInfo("America/Los_Angeles")


def wait_for(predicate: Callable[[], bool], timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def starts(data: dict[str, Any] | None, op: str, at: str) -> list[str]:
    """The published slots in ``op`` starting at ``at`` (any type, any provider)."""
    return [
        s["start"]
        for o in (data or {}).get("openings", [])
        if o["operatory_id"] == op
        for s in o["slots"]
        if s["start"] == at
    ]


def test_a_booking_in_the_diary_reaches_the_clouds_availability_within_seconds(
    tmp_path: Path, practice: BuildReport
) -> None:
    db = tmp_path / "od.sqlite3"
    shutil.copy(practice.connection_string.split("Database=", 1)[1], db)
    with ReferenceCloud(tmp_path / "cloud.sqlite3", tokens={"agent-1": "tok-123456"}) as cloud:
        config = tmp_path / "bridge.toml"
        config.write_text(
            f"""
[practice]
name = "Test Dental"
timezone = "America/Los_Angeles"
[pms]
profile = "opendental"
connection_string = 'Driver={{SQLite3}};Database={db}'
[cloud]
url = "{cloud.url}"
agent_id = "agent-1"
[bookings]
availability_days = 30
""",
            encoding="utf-8",
        )
        store = open_state(tmp_path / "state.sqlite3")
        engine = Engine(
            load_settings(config),
            store,
            MemorySecretStore({"cloud-token": "tok-123456"}),
            load_profile("opendental"),
            realtime_seconds=0.2,
        )
        stop = threading.Event()
        runner = threading.Thread(target=engine.run, args=(stop,))
        runner.start()
        try:
            wait_for(lambda: len(cloud.mirror("availability")) == 30, timeout=120)
            expected = practice.counts["appointment"]
            wait_for(lambda: len(cloud.mirror("appointment")) == expected, timeout=120)
            today = datetime.now(UTC).astimezone(LA).date()
            day = today + timedelta(days=8)
            key = day.isoformat()
            data = cloud.mirror("availability")[key].data
            assert data is not None and data["date"] == key
            opening = next(o for o in data["openings"] if o["slots"])
            op, prov, at = opening["operatory_id"], opening["provider_id"], opening["slots"][0]
            start = datetime.fromisoformat(at["start"]).astimezone(LA)

            with sqlite3.connect(db) as raw:  # the receptionist books that slot
                raw.execute(
                    "INSERT INTO appointment (PatNum, AptStatus, Pattern, Op, ProvNum, ProvHyg,"
                    " AptDateTime, IsHygiene, Note) VALUES (1, 1, 'XXXXXX', ?, ?, 0, ?, 0, '')",
                    (int(op), int(prov), start.strftime("%Y-%m-%d %H:%M:%S")),
                )

            def taken() -> bool:
                row = cloud.mirror("availability").get(key)
                return row is not None and not starts(row.data, op, at["start"])

            latency = wait_for(taken, timeout=10)
            print(f"the booking reached the cloud's availability in {latency:.2f} s")
            assert latency < 5
            untouched = today + timedelta(days=20)
            log = cloud.change_log(entity="availability", key=untouched.isoformat())
            assert len(log) == 1  # other days were not sent again

            # the cloud asks for availability again: every day is recomputed
            with store.read() as session:
                cursor = session.get(SyncCursor, "availability")
                assert cursor is not None and cursor.last_success_at is not None
                before = cursor.last_success_at
            item = cloud.enqueue("sync.request", {"entities": ["availability"]})

            def answered() -> bool:
                return any(r.id == item.id for r in cloud.results())

            wait_for(answered, timeout=20)
            result = next(r for r in cloud.results() if r.id == item.id)
            assert result.status == "confirmed", result.result

            def recomputed() -> bool:
                with store.read() as session:
                    cursor = session.get(SyncCursor, "availability")
                    return (
                        cursor is not None
                        and cursor.last_success_at is not None
                        and (cursor.last_success_at > before and cursor.rows_done == 30)
                    )

            wait_for(recomputed, timeout=20)
        finally:
            stop.set()
            runner.join(30)
            store.close()
        assert not runner.is_alive()
        assert len(cloud.change_log(entity="availability", key=untouched.isoformat())) == 1
