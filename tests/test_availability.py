"""Published availability on the demo practice, through the SQLite3 ODBC driver.

A real :class:`~bridge.sync.loops.PmsSyncLoop` (first-synced) observes the
diary and a real :class:`~bridge.availability.AvailabilityUpkeep` publishes
into a real outbox; the diary is edited through a second, raw connection, as
a receptionist's click would. The loops are driven pass by pass (no threads,
nothing timed); what the cloud would hold is replayed from the outbox.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import sqlite_connection_string
from sqlalchemy import delete, select
from test_idle_cost import FakeTime, count_statements, subset

from bridge.availability import ENTITY, AvailabilityUpkeep
from bridge.availability.days import DayIndex, record_days
from bridge.config import Settings, load_settings
from bridge.pms.convert import localize
from bridge.pms.odbc import OdbcSettings, PmsConnection, connect
from bridge.pms.profile import Profile
from bridge.secrets import MemorySecretStore
from bridge.state import StateStore, open_state
from bridge.state.models import OutboxChange, SyncCursor
from bridge.sync.detector import EntitySync
from bridge.sync.loops import PmsSyncLoop
from bridge.sync.outbox import Outbox
from bridge.sync.records import Record, RecordReader, content_hash
from sandbox.practice import BuildReport

LA = ZoneInfo("America/Los_Angeles")
ENTITIES = ("appointment", "schedule", "provider", "operatory", "appointment_type")
WEB_SCHED = {"1", "3", "4"}  # the demo practice's operatories marked IsWebSched
EMERGENCY = "10"  # the demo's "Emergency" type: policy never below
POLL = 2.0


def settings_for(folder: Path, db: Path, *, days: int = 60) -> Settings:
    config = folder / "bridge.toml"
    config.write_text(
        f"""
[practice]
name = "Test"
timezone = "America/Los_Angeles"
[pms]
profile = "opendental"
connection_string = '{sqlite_connection_string(db)}'
[cloud]
url = "https://cloud.invalid"
agent_id = "agent-1"
[bookings]
type_policies = {{ "Emergency" = "never" }}
min_notice_minutes = 120
availability_days = {days}
""",
        encoding="utf-8",
    )
    return load_settings(config)


def profile() -> Profile:
    return subset(ENTITIES)


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory, practice: BuildReport) -> Path:
    """The practice and a state store after the first sync, built once per module."""
    folder = tmp_path_factory.mktemp("synced")
    shutil.copy(practice.connection_string.split("Database=", 1)[1], folder / "od.sqlite3")
    store = open_state(folder / "state.sqlite3")
    outbox, cut = Outbox(store, "agent-1"), profile()
    with connect(OdbcSettings(sqlite_connection_string(folder / "od.sqlite3"))) as conn:
        for name in ENTITIES:  # the detectors the loop will resume, stepped to the end
            sync = EntitySync(RecordReader(cut, name, LA), outbox, store)
            while not sync.step(conn).done:
                pass
    with store.write() as session:
        session.execute(delete(OutboxChange))
    store.close()
    return folder


def no_secrets() -> MemorySecretStore:
    return MemorySecretStore({})


@dataclass
class Practice:
    """The loops on a private copy of the practice, the raw writer and the cloud's view."""

    loop: PmsSyncLoop
    upkeep: AvailabilityUpkeep
    sync_conn: PmsConnection
    conn: PmsConnection  # the upkeep's own
    store: StateStore
    raw: sqlite3.Connection
    time: FakeTime
    now: list[datetime]
    statements: Counter[str]
    published: dict[str, dict[str, Any]] = field(default_factory=dict)

    def poll(self, passes: int = 1) -> None:
        for _ in range(passes):
            self.time.now += POLL
            self.loop.run_pass(self.sync_conn)

    def publish(self) -> int:
        """One upkeep round if it has work (as its loop does); the days it recomputed."""
        days = self.upkeep.run_once(self.conn) if self.upkeep.pending() else 0
        self.take()
        return days

    def take(self) -> list[tuple[str, str]]:
        """Replay the outbox's availability changes into :attr:`published`, then empty it."""
        with self.store.write() as session:
            rows = session.scalars(
                select(OutboxChange).where(OutboxChange.entity == ENTITY).order_by(OutboxChange.seq)
            ).all()
            changes = [(r.op, r.key, json.loads(r.payload)) for r in rows]
            session.execute(delete(OutboxChange))
        for op, key, data in changes:
            if op == "delete":
                self.published.pop(key, None)
            else:
                self.published[key] = data
        return [(op, key) for op, key, _ in changes]

    def slots(self, day: date) -> set[tuple[str, str, str, str]]:
        """(type, provider, operatory, start) of every published slot of ``day``."""
        data = self.published[day.isoformat()]
        return {
            (o["appointment_type_id"], o["provider_id"], o["operatory_id"], s["start"])
            for o in data["openings"]
            for s in o["slots"]
        }


@pytest.fixture
def practice_copy(tmp_path: Path, synced: Path) -> Iterator[Practice]:
    for name in ("od.sqlite3", "state.sqlite3"):
        shutil.copy(synced / name, tmp_path / name)
    db = tmp_path / "od.sqlite3"
    settings = settings_for(tmp_path, db)
    store = open_state(tmp_path / "state.sqlite3")
    outbox = Outbox(store, "agent-1")
    fake = FakeTime()
    loop = PmsSyncLoop(
        settings, profile(), store, no_secrets(), outbox, threading.Event(), monotonic=fake
    )
    now = [datetime.now(UTC)]
    statements: Counter[str] = Counter()
    with (
        connect(OdbcSettings(sqlite_connection_string(db))) as sync_conn,
        connect(OdbcSettings(sqlite_connection_string(db))) as conn,
    ):
        count_statements(conn, statements)
        upkeep = AvailabilityUpkeep(
            settings, store, outbox, threading.Event(), lambda: conn, clock=lambda: now[0]
        )
        loop.observers.append(upkeep.changed)
        raw = sqlite3.connect(db, isolation_level=None)
        try:
            yield Practice(loop, upkeep, sync_conn, conn, store, raw, fake, now, statements)
        finally:
            raw.close()
    store.close()


def settle(p: Practice) -> None:
    """Publish everything, then poll until the read path is idle."""
    p.publish()
    p.poll(8)
    p.publish()
    p.statements.clear()


def text(moment: datetime) -> str:
    return moment.astimezone(LA).strftime("%Y-%m-%d %H:%M:%S")


def a_free_slot(p: Practice, after: date, minutes: int = 60) -> tuple[date, str, str, datetime]:
    """(day, provider, operatory, start) of a published slot of ``minutes`` or more on
    the first day from ``after`` that has one, and whose next day has free slots too."""
    for n in range(50):
        day = after + timedelta(days=n)
        following = p.published.get((day + timedelta(days=1)).isoformat(), {})
        if not following.get("openings"):
            continue
        for opening in p.published[day.isoformat()]["openings"]:
            if opening["duration_minutes"] >= minutes and opening["slots"]:
                start = datetime.fromisoformat(opening["slots"][0]["start"])
                return day, opening["provider_id"], opening["operatory_id"], start
    raise AssertionError(f"no free slot of {minutes} minutes after {after}")


def overlapping(p: Practice, day: date, op: str, start: datetime, end: datetime) -> list[str]:
    found = []
    for o in p.published[day.isoformat()]["openings"]:
        if o["operatory_id"] != op:
            continue
        for s in o["slots"]:
            a, b = datetime.fromisoformat(s["start"]), datetime.fromisoformat(s["end"])
            if a < end and start < b:
                found.append(s["start"])
    return found


def book(p: Practice, start: datetime, minutes: int, op: str, prov: str) -> int:
    cursor = p.raw.execute(
        "INSERT INTO appointment (PatNum, AptStatus, Pattern, Op, ProvNum, ProvHyg, AptDateTime,"
        " IsHygiene, Note) VALUES (1, 1, ?, ?, ?, 0, ?, 0, '')",
        ("X" * (minutes // 5), int(op), int(prov), text(start)),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


# -- the tests ----------------------------------------------------------------------------


def test_every_day_of_the_window_is_published_from_one_read(practice_copy: Practice) -> None:
    p = practice_copy
    assert p.upkeep.run_once(p.conn) == 60
    changes = p.take()
    today = datetime.now(UTC).astimezone(LA).date()
    assert sorted(k for _, k in changes) == [
        (today + timedelta(days=n)).isoformat() for n in range(60)
    ]
    # one round: the types, then one diary read (operatory, provider, schedule,
    # appointment) and the schedule rows' keys for the index
    assert sum(p.statements.values()) == 6, p.statements
    slots = 0
    for key, data in p.published.items():
        assert data["date"] == key and data["timezone"] == "America/Los_Angeles"
        assert data["step_minutes"] == 15
        for opening in data["openings"]:
            assert opening["operatory_id"] in WEB_SCHED  # online booking only
            assert opening["appointment_type_id"] != EMERGENCY  # policy never
            for s in opening["slots"]:
                start, end = datetime.fromisoformat(s["start"]), datetime.fromisoformat(s["end"])
                assert start.astimezone(LA).date().isoformat() == key
                assert start.astimezone(LA).minute % 15 == 0
                assert (end - start) == timedelta(minutes=opening["duration_minutes"])
                slots += 1
    assert slots > 500  # the demo diary is busy in the first weeks
    # the first day respects the notice: nothing within two hours from now
    earliest = p.now[0] + timedelta(minutes=120)
    first = [
        datetime.fromisoformat(s["start"])
        for o in p.published[today.isoformat()]["openings"]
        for s in o["slots"]
    ]
    assert all(start >= earliest for start in first)
    with p.store.read() as session:
        cursor = session.get(SyncCursor, ENTITY)
        assert cursor is not None and cursor.rows_done == 60 and cursor.phase == "delta"
    # nothing changed: a second full round stages nothing (the hashes are equal)
    p.upkeep.request_full()
    p.upkeep.run_once(p.conn)
    assert p.take() == []


def test_a_booking_moved_and_deleted_recomputes_only_the_days_it_touched(
    practice_copy: Practice,
) -> None:
    p = practice_copy
    settle(p)
    day, prov, op, start = a_free_slot(p, p.upkeep.today() + timedelta(days=10))
    end = start + timedelta(minutes=60)
    assert overlapping(p, day, op, start, end)
    following = day + timedelta(days=1)
    as_it_was = {d: p.published[d.isoformat()] for d in (day, following)}
    apt = book(p, start, 60, op, prov)
    p.poll()
    assert p.publish() == 1  # only that day
    assert not overlapping(p, day, op, start, end)
    # the types, then one read of that one day
    assert sum(p.statements.values()) == 5, p.statements
    assert p.published[following.isoformat()] == as_it_was[following]

    # moved a day later: both days are recomputed, the first one is as it was
    later = start + timedelta(days=1)
    p.raw.execute("UPDATE appointment SET AptDateTime = ? WHERE AptNum = ?", (text(later), apt))
    p.poll()
    assert p.publish() == 2
    assert p.published[day.isoformat()] == as_it_was[day]
    assert not overlapping(p, following, op, later, later + timedelta(hours=1))

    # deleted (Open Dental writes a tombstone): its last day is as it was
    p.raw.execute("DELETE FROM appointment WHERE AptNum = ?", (apt,))
    p.raw.execute("INSERT INTO deletedobject (ObjectNum, ObjectType) VALUES (?, 0)", (apt,))
    p.poll()
    assert p.publish() == 1
    assert p.published[following.isoformat()] == as_it_was[following]


def test_blockouts_holidays_and_provider_hours_reach_the_published_days(
    practice_copy: Practice,
) -> None:
    p = practice_copy
    settle(p)
    day, prov, op, start = a_free_slot(p, p.upkeep.today() + timedelta(days=12))
    end = start + timedelta(hours=1)

    blockout = p.raw.execute(
        "INSERT INTO schedule (SchedDate, StartTime, StopTime, SchedType, ProvNum, Note, Status)"
        " VALUES (?, ?, ?, 2, 0, '', 0)",
        (
            day.isoformat(),
            start.astimezone(LA).strftime("%H:%M:%S"),
            end.astimezone(LA).strftime("%H:%M:%S"),
        ),
    ).lastrowid
    p.raw.execute(
        "INSERT INTO scheduleop (ScheduleNum, OperatoryNum) VALUES (?, ?)", (blockout, int(op))
    )
    p.poll()
    assert p.publish() == 1
    assert not overlapping(p, day, op, start, end)

    # the provider's hours that day are deleted (a tombstone, ObjectType 1): no slot of theirs
    rows = p.raw.execute(
        "SELECT ScheduleNum FROM schedule WHERE SchedDate = ? AND SchedType = 1 AND ProvNum = ?",
        (day.isoformat(), int(prov)),
    ).fetchall()
    assert rows
    for (num,) in rows:
        p.raw.execute("DELETE FROM schedule WHERE ScheduleNum = ?", (num,))
        p.raw.execute("DELETE FROM scheduleop WHERE ScheduleNum = ?", (num,))
        p.raw.execute("INSERT INTO deletedobject (ObjectNum, ObjectType) VALUES (?, 1)", (num,))
    p.poll()
    assert p.publish() == 1
    assert not any(s[1] == prov for s in p.slots(day))

    # a practice holiday the next day: nothing published for it
    after = day + timedelta(days=1)
    assert p.slots(after)
    p.raw.execute(
        "INSERT INTO schedule (SchedDate, SchedType, Status, Note) VALUES (?, 0, 2, 'Closed')",
        (after.isoformat(),),
    )
    p.poll()
    assert p.publish() == 1
    assert p.published[after.isoformat()]["openings"] == []


def test_an_idle_practice_costs_the_upkeep_no_statement_at_all(practice_copy: Practice) -> None:
    p = practice_copy
    settle(p)
    sync_statements: Counter[str] = Counter()
    count_statements(p.sync_conn, sync_statements)
    for _ in range(30):  # a minute of polling
        p.poll()
        assert not p.upkeep.pending()
        p.publish()
    assert sum(p.statements.values()) == 0, p.statements  # the upkeep's connection
    assert p.take() == []
    # the read path's own idle cost is what it was without an observer: no
    # statement reads a row by key (nothing re-read for availability's sake)
    assert sync_statements and not any(" IN (" in sql for sql in sync_statements)


def test_at_local_midnight_one_day_enters_and_one_leaves_with_one_days_read(
    practice_copy: Practice,
) -> None:
    p = practice_copy
    today = p.upkeep.today()
    p.now[0] = localize(datetime.combine(today, time(23, 59, 50)), LA).astimezone(UTC)
    settle(p)
    assert p.upkeep.seconds_to_midnight() == pytest.approx(11.0)
    assert len(p.published) == 60
    p.now[0] += timedelta(seconds=11)
    assert p.upkeep.pending()
    p.statements.clear()
    assert p.publish() == 1
    tomorrow = today + timedelta(days=1)
    assert sorted(p.published) == [(tomorrow + timedelta(days=n)).isoformat() for n in range(60)]
    # types 1 + the day's read 4 + the day's schedule keys 1
    assert sum(p.statements.values()) == 6, p.statements
    assert not p.upkeep.pending()


def test_nothing_is_lost_when_a_round_fails(practice_copy: Practice) -> None:
    p = practice_copy
    settle(p)
    _day, prov, op, start = a_free_slot(p, p.upkeep.today() + timedelta(days=3), minutes=30)
    book(p, start, 30, op, prov)
    p.poll()
    p.conn.close()  # the upkeep's connection breaks mid-way
    with pytest.raises(Exception):  # noqa: B017 - the driver's error, translated or not
        p.upkeep.run_once(p.conn)
    assert p.upkeep.pending()  # the day is still to do


def test_publishing_off_deletes_what_was_published(practice_copy: Practice, tmp_path: Path) -> None:
    p = practice_copy
    settle(p)
    off = AvailabilityUpkeep(
        settings_for(tmp_path, tmp_path / "od.sqlite3", days=0),
        p.store,
        Outbox(p.store, "agent-1"),
        threading.Event(),
        lambda: p.conn,
    )
    assert off.window() is None
    off.run_once(p.conn)
    assert p.published and {op for op, _ in p.take()} == {"delete"}


# -- the day index (pure) ---------------------------------------------------------------


def appointment(key: str, start: datetime, minutes: int) -> Record:
    data: dict[str, Any] = {"id": key, "start": start.isoformat(), "duration_minutes": minutes}
    return Record("appointment", key, data, None, content_hash(data))


def test_the_day_index_frees_the_old_day_of_a_moved_or_deleted_row() -> None:
    index = DayIndex(LA, buffer_minutes=15)
    monday = localize(datetime(2026, 12, 7, 10, 0), LA)
    assert index.observe(appointment("5", monday, 30)) == {date(2026, 12, 7)}
    assert index.observe(appointment("5", monday, 30)) == frozenset()  # re-read unchanged
    friday = monday + timedelta(days=4)
    assert index.observe(appointment("5", friday, 30)) == {date(2026, 12, 7), date(2026, 12, 11)}
    assert index.gone("appointment", "5") == {date(2026, 12, 11)}
    assert index.gone("appointment", "5") == frozenset()  # unknown: touched no published day
    # the buffer reaches across midnight
    late = localize(datetime(2026, 12, 7, 23, 50), LA)
    assert record_days(appointment("6", late, 5), LA, 15) == {date(2026, 12, 7), date(2026, 12, 8)}


def test_a_read_does_not_overwrite_what_was_observed_while_it_ran() -> None:
    index = DayIndex(LA, buffer_minutes=0)
    day = date(2026, 12, 7)
    at: Callable[[int], datetime] = lambda h: localize(datetime.combine(day, time(h)), LA)  # noqa: E731
    index.begin_read()
    index.observe(appointment("7", at(9) + timedelta(days=2), 30))  # moved while reading
    index.learn("appointment", [day], {"7": frozenset({day}), "8": frozenset({day})})
    index.end_read()
    assert index.days_of("appointment", "7") == {day + timedelta(days=2)}
    assert index.days_of("appointment", "8") == {day}
    index.learn("appointment", [day], {})  # 8 no longer on that day
    assert index.days_of("appointment", "8") == frozenset()


def test_an_operatory_opened_for_online_booking_republishes_every_day(
    practice_copy: Practice,
) -> None:
    p = practice_copy
    settle(p)
    assert not any(s[2] == "2" for day in p.published for s in p.slots(date.fromisoformat(day)))
    p.raw.execute("UPDATE operatory SET IsWebSched = 1 WHERE OperatoryNum = 2")
    p.poll(3)  # the operatory table is swept (no index on its stamp)
    assert p.publish() == 60
    assert any(s[2] == "2" for day in p.published for s in p.slots(date.fromisoformat(day)))
