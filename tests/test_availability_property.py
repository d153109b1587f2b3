"""Properties of published availability.

1. For random diaries (the slot engine's own generators, ``tests/test_slots.py``),
   a published day holds exactly the free slots a minute-by-minute brute force
   finds in the Web Sched operatories: never a slot overlapping an occupying
   appointment (with its buffer), a blockout or a holiday, or outside the
   provider's hours; never a free one left out.
2. For random sequences of diary edits on the demo practice (bookings, moves,
   status changes, deletes with their tombstones, blockouts, holidays, deleted
   provider hours), made through a raw connection and found by the real read
   path, the days the upkeep republished incrementally equal a full
   recomputation of every day: no change is missed, no freed day stays stale.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from conftest import sqlite_connection_string
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_availability import LA, Practice, no_secrets, profile, settings_for, synced, text
from test_idle_cost import FakeTime, count_statements
from test_slots import Case, _minute, brute_force, diaries

from bridge.availability import AvailabilityUpkeep
from bridge.availability.publish import Bookable, bookable_types, day_records
from bridge.bookings.slots import OCCUPYING_STATUSES, diary_end
from bridge.pms.convert import localize
from bridge.pms.odbc import OdbcSettings, connect
from bridge.state import open_state
from bridge.sync.loops import PmsSyncLoop
from bridge.sync.outbox import Outbox

__all__ = ["synced"]  # the module fixture, shared with test_availability

WINDOW_DAYS = 21

# -- 1. a published day is exactly the brute force's free slots -------------------------


@settings(max_examples=150, deadline=None)
@given(diaries())
def test_a_published_day_is_exactly_the_free_slots_of_the_web_sched_chairs(case: Case) -> None:
    snapshot, tz, minutes = case.snapshot, case.snapshot.tz, case.minutes
    day = snapshot.first_day
    (record,) = day_records(case.finder(), day, day, [Bookable("7", minutes)], timezone=str(tz.key))
    assert record.key == day.isoformat()
    web = {op.id for op in snapshot.operatories if op.web_sched}
    openings = cast(list[dict[str, Any]], record.data["openings"])
    published = {
        (_minute(datetime.fromisoformat(s["start"])), o["provider_id"], o["operatory_id"])
        for o in openings
        for s in o["slots"]
    }
    expected = {slot for slot in brute_force(case) if slot[2] in web}
    assert published == expected  # nothing overlapping, nothing free left out

    # the literal property, against the diary's own rows
    buffer = case.buffer * 60
    for o in openings:
        op = next(x for x in snapshot.operatories if x.id == o["operatory_id"])
        assert op.web_sched and o["appointment_type_id"] == "7"
        for s in o["slots"]:
            start, end = datetime.fromisoformat(s["start"]), datetime.fromisoformat(s["end"])
            # as instants: Python never calls an ambiguous time equal across zones
            assert end.timestamp() == diary_end(start, minutes, tz).timestamp()
            a, b = start.timestamp(), end.timestamp()
            for apt in snapshot.appointments:
                if apt.status not in OCCUPYING_STATUSES:
                    continue
                c, d = apt.start.timestamp(), apt.end.timestamp()
                if apt.operatory_id == op.id:
                    assert not (a - buffer < d and c < b + buffer)
                if o["provider_id"] in apt.provider_ids:
                    assert not (a < d and c < b)
            for blockout in snapshot.blockouts:
                if blockout.operatory_id == op.id:
                    assert not (a < blockout.end.timestamp() and blockout.start.timestamp() < b)
            assert not any(h.clinic_id in (None, op.clinic_id) for h in snapshot.holidays)


# -- 2. incremental upkeep equals a full recomputation --------------------------------------


@pytest.fixture
def small_window(tmp_path: Path, synced: Path) -> Iterator[Practice]:
    """As ``practice_copy`` in test_availability, with a 21-day window."""
    for name in ("od.sqlite3", "state.sqlite3"):
        shutil.copy(synced / name, tmp_path / name)
    db = tmp_path / "od.sqlite3"
    config = settings_for(tmp_path, db, days=WINDOW_DAYS)
    store = open_state(tmp_path / "state.sqlite3")
    outbox = Outbox(store, "agent-1")
    fake = FakeTime()
    loop = PmsSyncLoop(
        config, profile(), store, no_secrets(), outbox, threading.Event(), monotonic=fake
    )
    now = [datetime.now(UTC)]
    statements: Counter[str] = Counter()
    with (
        connect(OdbcSettings(sqlite_connection_string(db))) as sync_conn,
        connect(OdbcSettings(sqlite_connection_string(db))) as conn,
    ):
        count_statements(conn, statements)
        upkeep = AvailabilityUpkeep(
            config, store, outbox, threading.Event(), lambda: conn, clock=lambda: now[0]
        )
        loop.observers.append(upkeep.changed)
        raw = sqlite3.connect(db, isolation_level=None)
        try:
            p = Practice(loop, upkeep, sync_conn, conn, store, raw, fake, now, statements)
            p.publish()
            p.poll(4)
            p.publish()
            yield p
        finally:
            raw.close()
    store.close()


DAY = st.integers(0, WINDOW_DAYS + 2)  # a few days past the window too
MINUTE = st.integers(7 * 4, 18 * 4).map(lambda q: q * 15)
OPS = st.sampled_from([1, 2, 3, 4])
PROVIDERS = st.sampled_from([1, 2, 3, 4])
BOOK_FREE = st.tuples(st.just("book_free"), DAY, st.integers(0, 10_000), st.integers(1, 18))
EDITS = st.lists(
    st.one_of(
        st.tuples(st.just("book"), DAY, MINUTE, st.integers(1, 18), OPS, PROVIDERS),
        BOOK_FREE,
        st.tuples(st.just("move"), st.integers(0, 9), DAY, MINUTE),
        st.tuples(st.just("move"), st.integers(0, 9), DAY, MINUTE),
        st.tuples(st.just("status"), st.integers(0, 9), st.sampled_from([1, 2, 3, 5, 6])),
        st.tuples(st.just("delete"), st.integers(0, 9)),
        st.tuples(st.just("blockout"), DAY, MINUTE, st.integers(1, 12), OPS),
        st.tuples(st.just("holiday"), DAY),
        st.tuples(st.just("no_hours"), DAY, PROVIDERS),
    ),
    min_size=1,
    max_size=6,
)


def apply(p: Practice, edit: tuple[Any, ...], booked: list[int], today: date) -> None:
    raw, kind = p.raw, edit[0]

    def at(offset: int, minute: int) -> datetime:
        wall = datetime.combine(today + timedelta(days=offset), time()) + timedelta(minutes=minute)
        return localize(wall, LA)

    if kind == "book_free":  # into a slot published as free (else nothing changes)
        _, offset, pick, units = edit
        published = p.published.get((today + timedelta(days=offset)).isoformat())
        free = [
            (o["operatory_id"], o["provider_id"], s["start"])
            for o in (published or {}).get("openings", [])
            for s in o["slots"]
        ]
        if not free:
            return
        op_id, prov_id, start_text = free[pick % len(free)]
        start = datetime.fromisoformat(start_text)
        wall = start.astimezone(LA).replace(tzinfo=None)
        minute = (wall - datetime.combine(wall.date(), time())).seconds // 60
        edit = ("book", (wall.date() - today).days, minute, units, int(op_id), int(prov_id))
    if edit[0] == "book":
        _, offset, minute, units, op, prov = edit
        cursor = raw.execute(
            "INSERT INTO appointment (PatNum, AptStatus, Pattern, Op, ProvNum, ProvHyg,"
            " AptDateTime, IsHygiene, Note) VALUES (1, 1, ?, ?, ?, 0, ?, 0, '')",
            ("X" * units, op, prov, text(at(offset, minute))),
        )
        assert cursor.lastrowid is not None
        booked.append(cursor.lastrowid)
    elif kind in ("move", "status", "delete"):
        if not booked:
            return
        apt = booked[edit[1] % len(booked)]
        if kind == "move":
            raw.execute(
                "UPDATE appointment SET AptDateTime = ? WHERE AptNum = ?",
                (text(at(edit[2], edit[3])), apt),
            )
        elif kind == "status":
            raw.execute("UPDATE appointment SET AptStatus = ? WHERE AptNum = ?", (edit[2], apt))
        else:
            raw.execute("DELETE FROM appointment WHERE AptNum = ?", (apt,))
            raw.execute("INSERT INTO deletedobject (ObjectNum, ObjectType) VALUES (?, 0)", (apt,))
            booked.remove(apt)
    elif kind == "blockout":
        _, offset, minute, units, op = edit
        start = datetime.combine(date.min, time()) + timedelta(minutes=minute)
        stop = min(start + timedelta(minutes=15 * units), start.replace(hour=23, minute=45))
        num = raw.execute(
            "INSERT INTO schedule (SchedDate, StartTime, StopTime, SchedType, Note, Status)"
            " VALUES (?, ?, ?, 2, '', 0)",
            ((today + timedelta(days=offset)).isoformat(), f"{start:%H:%M:%S}", f"{stop:%H:%M:%S}"),
        ).lastrowid
        raw.execute("INSERT INTO scheduleop (ScheduleNum, OperatoryNum) VALUES (?, ?)", (num, op))
    elif kind == "holiday":
        raw.execute(
            "INSERT INTO schedule (SchedDate, SchedType, Status, Note) VALUES (?, 0, 2, '')",
            ((today + timedelta(days=edit[1])).isoformat(),),
        )
    elif kind == "no_hours":  # Open Dental tombstones deleted provider schedules (type 1)
        _, offset, prov = edit
        rows = raw.execute(
            "SELECT ScheduleNum FROM schedule WHERE SchedDate = ? AND SchedType = 1"
            " AND ProvNum = ?",
            ((today + timedelta(days=offset)).isoformat(), prov),
        ).fetchall()
        for (num,) in rows:
            raw.execute("DELETE FROM schedule WHERE ScheduleNum = ?", (num,))
            raw.execute("INSERT INTO deletedobject (ObjectNum, ObjectType) VALUES (?, 1)", (num,))


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    bookings=st.lists(BOOK_FREE, min_size=1, max_size=4),
    batches=st.lists(EDITS, min_size=1, max_size=3),
)
def test_incremental_upkeep_equals_a_full_recomputation(
    small_window: Practice,
    bookings: list[tuple[Any, ...]],
    batches: list[list[tuple[Any, ...]]],
) -> None:
    p = small_window
    today = p.upkeep.today()
    booked: list[int] = []
    for batch in [bookings, *batches]:  # bookings first, so later edits have some to move
        for edit in batch:
            apply(p, edit, booked, today)
        p.poll(2)
        p.publish()
    fresh = AvailabilityUpkeep(
        p.upkeep.settings,
        p.store,
        Outbox(p.store, "x"),
        threading.Event(),
        lambda: p.conn,
        clock=lambda: p.now[0],
    )
    engine = fresh.engine(p.conn)
    first, last = fresh.window() or (today, today)
    types = bookable_types(engine.diary.appointment_types(), fresh.policy.for_type)
    full = day_records(
        engine.finder(first, last), first, last, types, timezone="America/Los_Angeles"
    )
    assert {r.key: r.data for r in full} == p.published
