"""The live diary and the slot engine on the demo practice, through the SQLite3 ODBC
driver; the conflicts are rows written through a second, raw connection, as a
receptionist's click would write them."""

from __future__ import annotations

import logging
import sqlite3
import time as clock
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import pytest

from bridge.bookings.diary import OpenDentalDiary
from bridge.bookings.slot_engine import SlotEngine
from bridge.bookings.slots import OCCUPYING_STATUSES, Slot, SlotCheck, is_representable
from bridge.pms.convert import localize
from bridge.pms.odbc import PmsConnection
from sandbox.practice import TIMEZONE, BuildReport

LA = ZoneInfo(TIMEZONE)
EMERGENCY_NOTE = "Weekend emergency clinic (clocks change today)"


# -- helpers shared with test_diary_mariadb -----------------------------------------


@dataclass(frozen=True)
class Bounds:
    window: timedelta = timedelta(days=120)
    min_notice: timedelta = timedelta(minutes=120)
    buffer_minutes: int = 0


class Writer(Protocol):
    """A raw connection to the practice database (not the bridge's)."""

    def run(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]: ...

    def insert(self, sql: str, params: Sequence[object]) -> int: ...


class SqliteWriter:
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)

    def run(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return list(self.db.execute(sql, tuple(params)).fetchall())

    def insert(self, sql: str, params: Sequence[object]) -> int:
        cursor = self.db.execute(sql, tuple(params))
        assert cursor.lastrowid is not None
        return cursor.lastrowid


class CountingConnection:
    """Counts the statements a diary runs on a real connection."""

    def __init__(self, conn: PmsConnection) -> None:
        self.statements = 0
        self._execute = conn.execute

    def install(self, conn: PmsConnection, monkeypatch: pytest.MonkeyPatch) -> None:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.statements += 1
            return self._execute(*args, **kwargs)

        monkeypatch.setattr(conn, "execute", counted)


def wall(day: date, hhmm: str) -> datetime:
    return localize(datetime.combine(day, time.fromisoformat(hhmm)), LA)


def text(moment: datetime) -> str:
    return moment.astimezone(LA).strftime("%Y-%m-%d %H:%M:%S")


def engine_at(conn: PmsConnection, now: datetime, **bounds: Any) -> SlotEngine:
    return SlotEngine(OpenDentalDiary(conn, LA), Bounds(**bounds), clock=lambda: now)


def add_appointment(
    writer: Writer,
    start: datetime,
    minutes: int,
    op: int,
    prov: int,
    *,
    hyg: int = 0,
    hygiene: int = 0,
    status: int = 1,
) -> int:
    return writer.insert(
        "INSERT INTO appointment (PatNum, AptStatus, Pattern, Op, ProvNum, ProvHyg,"
        " AptDateTime, IsHygiene, Note) VALUES (1, ?, ?, ?, ?, ?, ?, ?, '')",
        (status, "X" * (minutes // 5), op, prov, hyg, text(start), hygiene),
    )


def add_schedule(
    writer: Writer,
    day: date | str,
    start: str,
    stop: str,
    kind: int,
    *,
    prov: int = 0,
    status: int = 0,
    clinic: int = 0,
    ops: Sequence[int] = (),
) -> int:
    num = writer.insert(
        "INSERT INTO schedule (SchedDate, StartTime, StopTime, SchedType, ProvNum, BlockoutType,"
        " Note, Status, EmployeeNum, ClinicNum) VALUES (?, ?, ?, ?, ?, 0, '', ?, 0, ?)",
        (str(day), start, stop, kind, prov, status, clinic),
    )
    for op in ops:
        writer.insert("INSERT INTO scheduleop (ScheduleNum, OperatoryNum) VALUES (?, ?)", (num, op))
    return num


def working_day(writer: Writer, after: date, prov: int = 1) -> date:
    """The first day after ``after`` on which ``prov`` has hours in the diary."""
    rows = writer.run(
        "SELECT MIN(SchedDate) FROM schedule WHERE SchedType = 1 AND ProvNum = ?"
        " AND SchedDate > ? AND (Note IS NULL OR Note = '')",
        (prov, after.isoformat()),
    )
    found = rows[0][0]
    return found if isinstance(found, date) else date.fromisoformat(str(found)[:10])


def hours(writer: Writer, day: date, prov: int) -> list[tuple[str, str]]:
    rows = writer.run(
        "SELECT StartTime, StopTime FROM schedule WHERE SchedType = 1 AND ProvNum = ?"
        " AND SchedDate = ? ORDER BY StartTime",
        (prov, day.isoformat()),
    )
    return [(str(a)[:5], str(b)[:5]) for a, b in rows]


def clear_chair(writer: Writer, day: date, op: int) -> None:
    """Remove the appointments of ``op`` and every blockout on ``day`` (a private copy)."""
    writer.run(
        "DELETE FROM appointment WHERE Op = ? AND AptDateTime >= ? AND AptDateTime < ?",
        (op, f"{day} 00:00:00", f"{day + timedelta(days=1)} 00:00:00"),
    )
    writer.run("DELETE FROM schedule WHERE SchedType = 2 AND SchedDate = ?", (day.isoformat(),))


def dst_days(writer: Writer) -> list[date]:
    rows = writer.run(
        "SELECT DISTINCT SchedDate FROM schedule WHERE Note = ? ORDER BY SchedDate",
        (EMERGENCY_NOTE,),
    )
    return [r[0] if isinstance(r[0], date) else date.fromisoformat(str(r[0])[:10]) for r in rows]


def elapsed(start: datetime, end: datetime) -> timedelta:
    return end.astimezone(UTC) - start.astimezone(UTC)


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture
def writer(db: Path) -> Iterator[SqliteWriter]:
    w = SqliteWriter(db)
    yield w
    w.db.close()


@pytest.fixture
def day(writer: SqliteWriter, practice: BuildReport) -> date:
    """A working day of provider 1 a little ahead of the practice's today."""
    return working_day(writer, practice.today + timedelta(days=2))


@pytest.fixture
def engine(conn: PmsConnection, day: date) -> SlotEngine:
    return engine_at(conn, wall(day - timedelta(days=1), "06:00"))


# -- the snapshot ------------------------------------------------------------------------


def test_snapshot_holds_the_days_rows(conn: PmsConnection, writer: SqliteWriter, day: date) -> None:
    check_snapshot_against_rows(conn, writer, day)


def check_snapshot_against_rows(conn: PmsConnection, writer: Writer, day: date) -> None:
    """The diary's snapshot of ``day`` holds what the raw rows say."""
    snapshot = OpenDentalDiary(conn, LA).read(day, day)
    assert {op.id for op in snapshot.operatories} == {"1", "2", "3", "4"}  # 5 is hidden
    assert {op.id for op in snapshot.operatories if op.web_sched} == {"1", "3", "4"}
    assert {p.id for p in snapshot.providers} == {"1", "2", "3", "4"}  # 5 (billing) is hidden
    expected_work = {
        (str(p), str(o), str(a)[:5], str(b)[:5])
        for p, o, a, b in writer.run(
            "SELECT s.ProvNum, so.OperatoryNum, s.StartTime, s.StopTime FROM schedule s"
            " JOIN scheduleop so ON so.ScheduleNum = s.ScheduleNum"
            " WHERE s.SchedType = 1 AND s.SchedDate = ?",
            (day.isoformat(),),
        )
    }
    got_work = {
        (w.provider_id, w.operatory_id, w.start.strftime("%H:%M"), w.end.strftime("%H:%M"))
        for w in snapshot.work
    }
    assert got_work == expected_work
    assert expected_work
    expected_blocked = {
        (str(o), str(a)[:5], str(b)[:5])
        for o, a, b in writer.run(
            "SELECT so.OperatoryNum, s.StartTime, s.StopTime FROM schedule s"
            " JOIN scheduleop so ON so.ScheduleNum = s.ScheduleNum"
            " WHERE s.SchedType = 2 AND s.SchedDate = ?",
            (day.isoformat(),),
        )
    }
    got_blocked = {
        (b.operatory_id, b.start.strftime("%H:%M"), b.end.strftime("%H:%M"))
        for b in snapshot.blockouts
    }
    assert got_blocked == expected_blocked
    rows = writer.run(
        "SELECT AptNum, AptStatus, Pattern, Op, ProvNum, ProvHyg, IsHygiene FROM appointment"
        " WHERE AptDateTime >= ? AND AptDateTime < ?",
        (f"{day} 00:00:00", f"{day + timedelta(days=1)} 00:00:00"),
    )
    read = {a.id: a for a in snapshot.appointments}
    occupying = [r for r in rows if r[1] in OCCUPYING_STATUSES]
    assert occupying
    for num, _status, pattern, op, prov, hyg, hygiene in occupying:
        apt = read[str(num)]
        assert apt.operatory_id == str(op)
        assert elapsed(apt.start, apt.end) == timedelta(minutes=5 * len(pattern))
        assert apt.provider_ids == ({str(hyg)} if hygiene and hyg else {str(prov)})
    assert not {str(r[0]) for r in rows if r[1] not in OCCUPYING_STATUSES} & set(read)
    # nothing that starts after the day (and its margin) was read
    assert all(a.start < wall(day + timedelta(days=1), "01:00") for a in snapshot.appointments)


# -- check against existing and new rows ---------------------------------------------------


def first_appointment(writer: Writer, day: date, op: int) -> tuple[int, datetime, int, int]:
    num, start, pattern, prov = writer.run(
        "SELECT AptNum, AptDateTime, Pattern, ProvNum FROM appointment WHERE Op = ?"
        " AND AptStatus = 1 AND AptDateTime >= ? AND AptDateTime < ? ORDER BY AptDateTime",
        (op, f"{day} 00:00:00", f"{day + timedelta(days=1)} 00:00:00"),
    )[0]
    moment = start if isinstance(start, datetime) else datetime.fromisoformat(str(start))
    return num, localize(moment, LA), 5 * len(pattern), prov


def test_an_existing_appointment_is_taken_unless_ignored(
    engine: SlotEngine, writer: SqliteWriter, day: date
) -> None:
    num, start, minutes, prov = first_appointment(writer, day, 1)
    taken = engine.check(start, minutes, str(prov), "1")
    assert (taken.free, taken.reason_code) == (False, "slot_taken")
    assert str(num) in taken.conflicts
    assert engine.check(start, minutes, str(prov), "1", ignore_appointment=str(num)).free
    assert engine.overlapping(start, minutes, "1", str(prov)) == [str(num)]
    assert engine.overlapping(start, minutes, "1", str(prov), ignore_appointment=str(num)) == []


def test_a_receptionists_booking_is_seen_at_once(
    conn: PmsConnection, engine: SlotEngine, writer: SqliteWriter, day: date
) -> None:
    clear_chair(writer, day, 1)
    start = wall(day, hours(writer, day, 1)[0][0]) + timedelta(hours=1)
    assert engine.check(start, 30, "1", "1") == SlotCheck(free=True)
    num = add_appointment(writer, start + timedelta(minutes=25), 20, op=1, prov=1)
    result = engine.check(start, 30, "1", "1")
    assert (result.free, result.reason_code, result.conflicts) == (False, "slot_taken", (str(num),))
    for status, occupies in ((3, False), (6, False), (5, True), (7, True), (8, True), (2, True)):
        writer.run("UPDATE appointment SET AptStatus = ? WHERE AptNum = ?", (status, num))
        assert engine.check(start, 30, "1", "1").free is not occupies, status
    # touching is not overlapping; a buffer makes it so
    writer.run(
        "UPDATE appointment SET AptStatus = 1, AptDateTime = ? WHERE AptNum = ?",
        (text(start + timedelta(minutes=30)), num),
    )
    assert engine.check(start, 30, "1", "1").free
    buffered = engine_at(conn, engine.clock(), buffer_minutes=10)
    assert buffered.check(start, 30, "1", "1").reason_code == "slot_taken"
    assert buffered.overlapping(start, 30, "1", "1") == []


def test_providers_are_busy_in_other_chairs_but_not_for_hygiene_exams(
    engine: SlotEngine, writer: SqliteWriter, day: date
) -> None:
    clear_chair(writer, day, 1)
    start = wall(day, hours(writer, day, 1)[0][0]) + timedelta(minutes=30)
    assert engine.check(start, 30, "1", "1").free
    num = add_appointment(writer, start, 30, op=2, prov=1)  # provider 1 helping in op 2
    busy = engine.check(start, 30, "1", "1")
    assert (busy.reason_code, busy.conflicts) == ("provider_busy", (str(num),))
    # a hygiene visit names the patient's dentist, but keeps only the hygienist busy
    writer.run("UPDATE appointment SET Op = 3, ProvHyg = 3, IsHygiene = 1 WHERE AptNum = ?", (num,))
    assert engine.check(start, 30, "1", "1").free
    writer.run("UPDATE appointment SET IsHygiene = 0 WHERE AptNum = ?", (num,))
    assert engine.check(start, 30, "1", "1").reason_code == "provider_busy"


def test_blockouts_holidays_and_hours_from_schedule_rows(
    engine: SlotEngine, writer: SqliteWriter, day: date
) -> None:
    clear_chair(writer, day, 1)
    first_start, _first_stop = hours(writer, day, 1)[0]
    start = wall(day, first_start) + timedelta(minutes=30)
    assert engine.check(start, 30, "1", "1").free
    assert engine.check(start - timedelta(minutes=60), 30, "1", "1").reason_code == (
        "outside_hours"
    )
    hhmm = start.strftime("%H:%M:%S")
    later = (start + timedelta(minutes=15)).strftime("%H:%M:%S")
    blockout = add_schedule(writer, day, hhmm, later, 2, ops=[1])
    assert engine.check(start, 30, "1", "1").reason_code == "blockout"
    writer.run("DELETE FROM scheduleop WHERE ScheduleNum = ?", (blockout,))  # no op: every op
    assert engine.check(start, 30, "1", "1").reason_code == "blockout"
    writer.run("DELETE FROM schedule WHERE ScheduleNum = ?", (blockout,))
    note = add_schedule(writer, day, "00:00:00", "00:00:00", 0, status=0)  # a practice note
    assert engine.check(start, 30, "1", "1").free
    add_schedule(writer, day, "00:00:00", "00:00:00", 0, status=2, clinic=9)  # another clinic
    assert engine.check(start, 30, "1", "1").free
    writer.run("UPDATE schedule SET Status = 2 WHERE ScheduleNum = ?", (note,))
    assert engine.check(start, 30, "1", "1").reason_code == "holiday"
    assert engine.place(start, 30) == SlotCheck(free=False, reason_code="holiday")


def test_provider_hours_without_operatories_apply_to_the_providers_own_chairs(
    engine: SlotEngine, writer: SqliteWriter, day: date
) -> None:
    clear_chair(writer, day, 1)
    start = wall(day, hours(writer, day, 1)[0][0]) + timedelta(minutes=30)
    writer.run(
        "DELETE FROM scheduleop WHERE ScheduleNum IN (SELECT ScheduleNum FROM schedule"
        " WHERE SchedType = 1 AND SchedDate = ? AND ProvNum = 1)",
        (day.isoformat(),),
    )
    assert engine.check(start, 30, "1", "1").free  # op 1's ProvDentist is provider 1
    assert engine.check(start, 30, "1", "2").reason_code == "outside_hours"


def test_place_picks_a_web_sched_chair_deterministically(
    conn: PmsConnection, writer: SqliteWriter, day: date
) -> None:
    for op in (1, 2, 3, 4):
        clear_chair(writer, day, op)
    engine = engine_at(conn, wall(day - timedelta(days=1), "06:00"))
    start = wall(day, "10:00")
    working = {
        str(o): str(p)
        for p, o in writer.run(
            "SELECT s.ProvNum, so.OperatoryNum FROM schedule s JOIN scheduleop so"
            " ON so.ScheduleNum = s.ScheduleNum WHERE s.SchedType = 1 AND s.SchedDate = ?"
            " AND s.StartTime <= '10:00:00' AND s.StopTime >= '10:30:00'",
            (day.isoformat(),),
        )
    }
    order = {
        str(o): (not w, i)
        for o, w, i in writer.run(
            "SELECT OperatoryNum, IsWebSched, ItemOrder FROM operatory WHERE IsHidden = 0"
        )
    }
    expected_op = min(working, key=lambda o: order[o])
    placed = engine.place(start, 30)
    assert placed == Slot(start, start + timedelta(minutes=30), working[expected_op], expected_op)
    assert engine.place(start, 30) == placed
    add_appointment(writer, start, 30, op=int(expected_op), prov=int(working[expected_op]))
    again = engine.place(start, 30)
    assert isinstance(again, Slot)
    assert again.operatory_id != expected_op
    named = engine.place(start, 30, provider_id=working[expected_op])
    assert isinstance(named, SlotCheck)
    assert named.reason_code == "slot_taken"


def test_alternatives_are_free_and_nearest(
    engine: SlotEngine, writer: SqliteWriter, day: date
) -> None:
    _num, start, minutes, prov = first_appointment(writer, day, 1)
    alternatives = engine.alternatives(start, minutes, str(prov), "1", n=3)
    assert alternatives
    before = [s for s in alternatives if s.start < start]
    after = [s for s in alternatives if s.start >= start]
    assert len(before) <= 3
    assert len(after) == 3
    assert alternatives == sorted(alternatives, key=lambda s: s.start)
    assert len({s.start for s in alternatives}) == len(alternatives)
    for slot in alternatives:
        assert slot.provider_id == str(prov)
        assert engine.check(slot.start, minutes, slot.provider_id, slot.operatory_id).free
    # nothing free for the provider between the nearest alternatives and the time asked
    free = engine.free_slots(
        wall(day - timedelta(days=30), "00:00"),
        wall(day + timedelta(days=30), "00:00"),
        minutes,
        provider_id=str(prov),
    )
    starts = sorted({s.start for s in free})
    assert [s for s in starts if s < start][-3:] == [s.start for s in before]
    assert [s for s in starts if s >= start][:3] == [s.start for s in after]


def test_alternatives_stay_inside_notice_and_window(
    conn: PmsConnection, writer: SqliteWriter, day: date
) -> None:
    now = wall(day, "06:00")
    engine = engine_at(conn, now, window=timedelta(days=3), min_notice=timedelta(hours=4))
    far = wall(day + timedelta(days=30), "10:00")
    assert engine.check(far, 30, "1", "1").reason_code == "outside_window"
    assert engine.check(wall(day, "09:00"), 30, "1", "1").reason_code == "too_soon"
    for slot in engine.alternatives(far, 30, "1", None, n=5):
        assert wall(day, "10:00") <= slot.start <= now + timedelta(days=3)


def test_appointment_types(engine: SlotEngine, writer: SqliteWriter) -> None:
    recall = engine.appointment_type("Recall")
    assert recall is not None
    assert (recall.id, recall.name, recall.minutes, recall.pattern) == (
        "2",
        "Recall",
        50,
        "/XXXXXXXX/",
    )
    assert engine.appointment_type(" recall ") == recall
    assert engine.appointment_type("2") == recall
    assert engine.appointment_type("Tooth whitening") is None
    writer.run("UPDATE appointmenttype SET IsHidden = 1 WHERE AppointmentTypeNum = 2")
    assert engine.appointment_type("Recall") is None
    assert engine.appointment_type("2") is None


def test_clock_change_days(conn: PmsConnection, writer: SqliteWriter) -> None:
    check_clock_change_days(conn, writer)


def check_clock_change_days(conn: PmsConnection, writer: Writer) -> None:
    """The weekend emergency clinic on each clock change reads and books right."""
    days = dst_days(writer)
    assert days, "the demo practice has a weekend emergency clinic on each clock change"
    for day in days:
        engine = engine_at(conn, wall(day - timedelta(days=5), "06:00"))
        snapshot = engine.diary.read(day, day)
        night = min(snapshot.work, key=lambda w: w.start.timestamp())
        spring = day.month < 7
        # 01:00-04:00 on the wall clock: two real hours in spring, four in autumn
        assert elapsed(night.start, night.end) == timedelta(hours=2 if spring else 4)
        free = engine.free_slots(wall(day, "00:00"), wall(day + timedelta(days=1), "00:00"), 30)
        assert all(is_representable(s.start, LA) for s in free)
        for apt in snapshot.appointments:
            if night.start <= apt.start < night.end:
                assert elapsed(apt.start, apt.end) >= timedelta(minutes=30)
        if not spring:
            repeated = datetime(day.year, day.month, day.day, 9, 30, tzinfo=UTC)  # 01:30 PST
            assert not is_representable(repeated, LA)
            result = engine.check(repeated, 30, night.provider_id, night.operatory_id)
            assert result.reason_code == "outside_hours"


def test_unreadable_rows_are_skipped_or_block_safely(
    engine: SlotEngine, writer: SqliteWriter, day: date, caplog: pytest.LogCaptureFixture
) -> None:
    clear_chair(writer, day, 1)
    start = wall(day, hours(writer, day, 1)[0][0]) + timedelta(minutes=30)
    assert engine.check(start, 30, "1", "1").free
    writer.run(
        "INSERT INTO appointment (PatNum, AptStatus, Pattern, Op, ProvNum, AptDateTime)"
        " VALUES (1, 1, 'XXXX', 1, 1, ?)",
        (f"{day} 25:99:00",),
    )
    with caplog.at_level(logging.WARNING):
        assert engine.check(start, 30, "1", "1").free
    add_schedule(writer, day, "1x:00:00", "nonsense", 1, prov=1, ops=[1])  # skipped
    assert engine.check(start, 30, "1", "1").free
    add_schedule(writer, day, "99:99:99", "10:00:00", 2, ops=[1])  # blocks the whole day
    with caplog.at_level(logging.WARNING):
        assert engine.check(start, 30, "1", "1").reason_code == "blockout"
    assert "blockout with unreadable times" in caplog.text
    assert "25:99" not in caplog.text


def test_cost_of_one_check_and_one_alternatives(
    conn: PmsConnection,
    day: date,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    counter = CountingConnection(conn)
    counter.install(conn, monkeypatch)
    engine = engine_at(conn, wall(day - timedelta(days=1), "06:00"))
    figures = measure(engine, counter, wall(day, "10:00"))
    assert figures["check"][0] == 4
    assert figures["alternatives"][0] in (4, 8)
    assert figures["too_soon"][0] == 0
    with capsys.disabled():
        print(f"\nslot engine on SQLite (demo practice): {format_figures(figures)}")


def measure(
    engine: SlotEngine, counter: CountingConnection, start: datetime, runs: int = 5
) -> dict[str, tuple[int, float]]:
    """(statements, median milliseconds) per question."""
    questions: dict[str, Callable[[], object]] = {
        "check": lambda: engine.check(start, 30, "1", "1"),
        "alternatives": lambda: engine.alternatives(start, 30, "1", "1", n=3),
        "place": lambda: engine.place(start, 30),
        "too_soon": lambda: engine.check(engine.clock(), 30, "1", "1"),
    }
    figures = {}
    for name, ask in questions.items():
        times = []
        for _ in range(runs):
            counter.statements = 0
            began = clock.perf_counter()
            ask()
            times.append((clock.perf_counter() - began) * 1000)
        figures[name] = (counter.statements, sorted(times)[runs // 2])
    return figures


def format_figures(figures: dict[str, tuple[int, float]]) -> str:
    return ", ".join(f"{k}: {q} statements {ms:.1f} ms" for k, (q, ms) in figures.items())
