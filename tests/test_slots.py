"""The slot engine's pure part (bridge.bookings.slots): rules, clock changes, and a
property test against a minute-by-minute brute force."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.bookings.slots import (
    OCCUPYING_STATUSES,
    REASON_CODES,
    Appointment,
    Blockout,
    DiarySnapshot,
    Holiday,
    Operatory,
    Provider,
    Slot,
    SlotCheck,
    SlotFinder,
    WorkBlock,
    diary_end,
    is_representable,
    merge,
    subtract,
)
from bridge.pms.convert import localize

LA = ZoneInfo("America/Los_Angeles")
DAY = date(2026, 6, 10)  # a Wednesday, no clock change
SPRING = date(2026, 3, 8)  # clocks go 02:00 -> 03:00 in Los Angeles
AUTUMN = date(2026, 11, 1)  # clocks go 02:00 -> 01:00 in Los Angeles


def at(day: date, hhmm: str, tz: ZoneInfo = LA) -> datetime:
    return localize(datetime.combine(day, time.fromisoformat(hhmm)), tz)


def elapsed(start: datetime, end: datetime) -> timedelta:
    """Real time between two instants (Python subtracts wall clocks within one zone)."""
    return end.astimezone(UTC) - start.astimezone(UTC)


def apt(
    num: int,
    day: date,
    hhmm: str,
    minutes: int,
    op: str | None = "1",
    providers: tuple[str, ...] = ("1",),
    status: int = 1,
) -> Appointment:
    start = at(day, hhmm)
    return Appointment(
        str(num), status, op, frozenset(providers), start, diary_end(start, minutes, LA)
    )


def office(day: date = DAY, **changes: object) -> DiarySnapshot:
    """Two dentists in ops 1 and 2 (op 2 is Web Sched), a hygienist in op 3.

    Provider 1 works 08:00-12:00 and 13:00-17:00 in op 1; provider 2 works
    08:00-17:00 in op 2; provider 3 08:00-16:00 in op 3.
    """
    base: dict[str, object] = {
        "tz": LA,
        "first_day": day,
        "last_day": day,
        "operatories": (
            Operatory("1", order=0),
            Operatory("2", web_sched=True, order=1),
            Operatory("3", clinic_id="7", web_sched=True, order=2),
        ),
        "providers": (Provider("1"), Provider("2"), Provider("3")),
        "work": (
            WorkBlock("1", "1", at(day, "08:00"), at(day, "12:00")),
            WorkBlock("1", "1", at(day, "13:00"), at(day, "17:00")),
            WorkBlock("2", "2", at(day, "08:00"), at(day, "17:00")),
            WorkBlock("3", "3", at(day, "08:00"), at(day, "16:00")),
        ),
        "appointment_margin": timedelta(minutes=30),
    }
    base.update(changes)
    return DiarySnapshot(**base)  # type: ignore[arg-type]


def finder(snapshot: DiarySnapshot | None = None, **options: object) -> SlotFinder:
    return SlotFinder(snapshot or office(), **options)  # type: ignore[arg-type]


def check(
    f: SlotFinder,
    hhmm: str,
    minutes: int,
    provider: str,
    op: str,
    day: date = DAY,
    ignore: str | None = None,
) -> SlotCheck:
    return f.check(f.slot(at(day, hhmm), minutes, provider, op), ignore=ignore)


# -- intervals -----------------------------------------------------------------


def test_merge_and_subtract() -> None:
    assert merge([(5, 8), (1, 3), (3, 4), (7, 10), (12, 12)]) == [(1, 4), (5, 10)]
    assert subtract([(0, 10), (20, 30)], [(2, 3), (5, 22), (29, 40)]) == [(0, 2), (3, 5), (22, 29)]
    assert subtract([(0, 10)], []) == [(0, 10)]
    assert subtract([(0, 10)], [(0, 10)]) == []


# -- check: every reason --------------------------------------------------------


def test_a_free_slot_inside_hours() -> None:
    assert check(finder(), "09:00", 30, "1", "1") == SlotCheck(free=True)


@pytest.mark.parametrize(
    ("hhmm", "minutes", "provider", "op", "reason"),
    [
        ("07:30", 30, "1", "1", "outside_hours"),  # before the day starts
        ("11:45", 30, "1", "1", "outside_hours"),  # runs into lunch
        ("16:45", 30, "1", "1", "outside_hours"),  # runs past the end
        ("09:00", 30, "2", "1", "outside_hours"),  # provider 2 does not work in op 1
        ("09:00", 30, "1", "9", "unknown_operatory"),
        ("09:00", 30, "9", "1", "unknown_provider"),
        ("09:00", 30, "", "1", "unknown_provider"),
    ],
)
def test_structural_reasons(hhmm: str, minutes: int, provider: str, op: str, reason: str) -> None:
    result = check(finder(), hhmm, minutes, provider, op)
    assert not result.free
    assert result.reason_code == reason


def test_a_slot_spanning_two_touching_blocks_is_inside_hours() -> None:
    snapshot = office(
        work=(
            WorkBlock("1", "1", at(DAY, "08:00"), at(DAY, "12:00")),
            WorkBlock("1", "1", at(DAY, "12:00"), at(DAY, "14:00")),
        )
    )
    assert check(finder(snapshot), "11:30", 60, "1", "1").free


def test_occupied_chair_and_busy_provider() -> None:
    snapshot = office(
        appointments=(
            apt(10, DAY, "09:00", 40, op="1", providers=("1",)),
            apt(11, DAY, "10:00", 30, op="2", providers=("1",)),  # provider 1 helping in op 2
        )
    )
    f = finder(snapshot)
    taken = check(f, "09:30", 30, "1", "1")
    assert (taken.free, taken.reason_code, taken.conflicts) == (False, "slot_taken", ("10",))
    busy = check(f, "10:15", 30, "1", "1")
    assert (busy.free, busy.reason_code, busy.conflicts) == (False, "provider_busy", ("11",))
    # the chair of op 2 is taken for provider 2 as well
    assert check(f, "10:00", 30, "2", "2").reason_code == "slot_taken"
    # back to back is fine
    assert check(f, "09:40", 20, "1", "1").free
    assert check(f, "08:30", 30, "1", "1").free


def test_ignore_leaves_one_appointment_out() -> None:
    f = finder(office(appointments=(apt(10, DAY, "09:00", 40),)))
    assert check(f, "09:00", 40, "1", "1").reason_code == "slot_taken"
    assert check(f, "09:00", 40, "1", "1", ignore="10").free
    assert f.overlapping(f.slot(at(DAY, "09:00"), 40, "1", "1"), ignore="10") == []
    assert f.overlapping(f.slot(at(DAY, "09:00"), 40, "1", "1")) == ["10"]


@pytest.mark.parametrize("status", range(0, 10))
def test_which_statuses_occupy_the_chair(status: int) -> None:
    f = finder(office(appointments=(apt(10, DAY, "09:00", 60, status=status),)))
    result = check(f, "09:15", 15, "1", "1")
    occupies = status in (1, 2, 4, 5, 7, 8)
    assert status in OCCUPYING_STATUSES if occupies else status not in OCCUPYING_STATUSES
    assert result.free is not occupies
    assert result.conflicts == (("10",) if occupies else ())


def test_buffer_keeps_the_chair_free_around_appointments_only() -> None:
    snapshot = office(
        appointments=(
            apt(10, DAY, "09:00", 30, op="1", providers=("1",)),
            apt(11, DAY, "14:00", 30, op="2", providers=("1",)),
        ),
        blockouts=(Blockout("1", at(DAY, "10:00"), at(DAY, "10:30")),),
    )
    f = finder(snapshot, buffer_minutes=10)
    assert check(f, "09:30", 30, "1", "1").reason_code == "slot_taken"  # inside the buffer
    assert check(f, "08:25", 30, "1", "1").reason_code == "slot_taken"
    assert check(f, "08:20", 30, "1", "1").free  # ends 10 minutes before
    assert check(f, "09:40", 20, "1", "1").free  # just outside it
    assert check(f, "10:30", 30, "1", "1").free  # no buffer after a blockout
    assert check(f, "14:30", 30, "1", "1").free  # nor for the provider elsewhere
    assert f.overlapping(f.slot(at(DAY, "09:30"), 30, "1", "1")) == []  # verify: no buffer


def test_buffer_larger_than_the_snapshot_margin_is_refused() -> None:
    with pytest.raises(ValueError, match="appointment_margin"):
        finder(office(appointment_margin=timedelta(0)), buffer_minutes=5)


def test_blockouts_and_holidays() -> None:
    snapshot = office(
        blockouts=(Blockout("1", at(DAY, "09:00"), at(DAY, "10:00")),),
        holidays=(Holiday(DAY, "7"),),
    )
    f = finder(snapshot)
    assert check(f, "09:45", 30, "1", "1").reason_code == "blockout"
    assert check(f, "10:00", 30, "1", "1").free
    assert check(f, "09:00", 30, "3", "3").reason_code == "holiday"  # op 3 is in clinic 7
    assert check(f, "09:00", 30, "2", "2").free
    closed = finder(office(holidays=(Holiday(DAY),)))
    assert check(closed, "09:00", 30, "2", "2").reason_code == "holiday"
    assert closed.free_slots(at(DAY, "00:00"), at(DAY, "23:59"), 30) == []


def test_bounds_and_provider_term() -> None:
    f = finder(earliest=at(DAY, "10:00"), latest=at(DAY, "15:00"))
    assert check(f, "09:55", 30, "1", "1").reason_code == "too_soon"
    assert check(f, "10:00", 30, "1", "1").free
    assert check(f, "15:00", 30, "1", "1").free  # the window bounds the start
    assert check(f, "15:05", 30, "1", "1").reason_code == "outside_window"
    retired = finder(office(providers=(Provider("1", last_day=DAY - timedelta(days=1)),)))
    assert check(retired, "09:00", 30, "1", "1").reason_code == "unknown_provider"
    last_day = finder(office(providers=(Provider("1", last_day=DAY),)))
    assert check(last_day, "09:00", 30, "1", "1").free


def test_reason_order() -> None:
    assert REASON_CODES == (
        "too_soon",
        "outside_window",
        "unknown_operatory",
        "unknown_provider",
        "holiday",
        "outside_hours",
        "blockout",
        "slot_taken",
        "provider_busy",
    )
    snapshot = office(
        appointments=(apt(10, DAY, "09:00", 30),),
        blockouts=(Blockout("1", at(DAY, "09:00"), at(DAY, "09:30")),),
    )
    result = check(finder(snapshot), "09:00", 30, "1", "1")
    assert (result.reason_code, result.conflicts) == ("blockout", ("10",))


def test_bad_input_is_refused_clearly() -> None:
    f = finder()
    with pytest.raises(ValueError, match="timezone-aware"):
        f.check(Slot(datetime(2026, 6, 10, 9), datetime(2026, 6, 10, 10), "1", "1"))
    with pytest.raises(ValueError, match="outside the diary snapshot"):
        f.check(f.slot(at(DAY + timedelta(days=1), "09:00"), 30, "1", "1"))
    with pytest.raises(ValueError, match="end after it starts"):
        f.check(Slot(at(DAY, "10:00"), at(DAY, "10:00"), "1", "1"))
    with pytest.raises(ValueError, match="at least one minute"):
        f.slot(at(DAY, "10:00"), 0, "1", "1")


# -- clock changes --------------------------------------------------------------------


def test_spring_forward() -> None:
    day = SPRING
    snapshot = office(day, work=(WorkBlock("1", "1", at(day, "01:00"), at(day, "04:00")),))
    f = finder(snapshot)
    starts = [s.start for s in f.free_slots(at(day, "00:00"), at(day, "23:00"), 60)]
    walls = [s.astimezone(LA).strftime("%H:%M") for s in starts]
    # 01:00-04:00 on the wall clock is two real hours; no start in the skipped hour
    assert walls[0] == "01:00"
    assert walls[-1] == "03:00"
    assert not any(w.startswith("02:") for w in walls)
    assert all(
        elapsed(s.start, s.end) == timedelta(minutes=60)
        for s in f.free_slots(at(day, "00:00"), at(day, "23:00"), 60)
    )
    # on an odd grid, every start is still a grid point of the wall clock
    odd = finder(snapshot, step_minutes=7)
    for s in odd.free_slots(at(day, "00:00"), at(day, "23:00"), 30):
        wall = s.start.astimezone(LA)
        assert (wall.hour * 60 + wall.minute) % 7 == 0
    # a 60-minute appointment at 01:30 runs until 03:30 PDT
    assert diary_end(at(day, "01:30"), 60, LA) == datetime(2026, 3, 8, 10, 30, tzinfo=UTC)


def test_fall_back() -> None:
    day = AUTUMN
    snapshot = office(day, work=(WorkBlock("1", "1", at(day, "00:00"), at(day, "04:00")),))
    f = finder(snapshot)
    second_half_past_one = datetime(2026, 11, 1, 9, 30, tzinfo=UTC).astimezone(LA)  # 01:30 PST
    assert second_half_past_one.fold == 1
    assert not is_representable(second_half_past_one, LA)
    assert is_representable(at(day, "01:30"), LA)  # the first 01:30 (PDT)
    result = f.check(f.slot(second_half_past_one, 30, "1", "1"))
    assert result.reason_code == "outside_hours"
    slots = f.free_slots(at(day, "00:00"), at(day, "23:00"), 30)
    assert all(is_representable(s.start, LA) for s in slots)
    # 00:30 PDT + 120 minutes is shown until 02:30 PST on the wall: three real hours
    end = diary_end(at(day, "00:30"), 120, LA)
    assert end == at(day, "02:30")
    assert elapsed(at(day, "00:30"), end) == timedelta(hours=3)


# -- place, nearest_free ---------------------------------------------------------------


def test_place_prefers_web_sched_operatories_deterministically() -> None:
    f = finder()
    placed = f.place(at(DAY, "09:00"), 30)
    assert isinstance(placed, Slot)
    assert (placed.operatory_id, placed.provider_id) == ("2", "2")  # op 2: Web Sched, order 1
    busy = finder(office(appointments=(apt(10, DAY, "09:00", 30, op="2", providers=("2",)),)))
    placed = busy.place(at(DAY, "09:00"), 30)
    assert isinstance(placed, Slot)
    assert (placed.operatory_id, placed.provider_id) == ("3", "3")
    placed = f.place(at(DAY, "09:00"), 30, provider_id="1")
    assert isinstance(placed, Slot)
    assert placed.operatory_id == "1"
    placed = f.place(at(DAY, "09:00"), 30, operatory_id="3")
    assert isinstance(placed, Slot)
    assert placed.provider_id == "3"


def test_place_explains_why_not() -> None:
    f = finder(office(appointments=(apt(10, DAY, "12:30", 60),)))
    # nobody works at 02:00
    assert f.place(at(DAY, "02:00"), 30) == SlotCheck(free=False, reason_code="outside_hours")
    # provider 1 is at lunch 12:00-13:00: only a partial overlap with 11:45-12:15
    assert f.place(at(DAY, "11:45"), 30, provider_id="1") == SlotCheck(
        free=False, reason_code="outside_hours"
    )
    taken = f.place(at(DAY, "13:00"), 30, operatory_id="1")
    assert isinstance(taken, SlotCheck)
    assert (taken.reason_code, taken.conflicts) == ("slot_taken", ("10",))
    assert f.place(at(DAY, "09:00"), 30, operatory_id="8") == SlotCheck(
        free=False, reason_code="unknown_operatory"
    )
    assert f.place(at(DAY, "09:00"), 30, provider_id="8") == SlotCheck(
        free=False, reason_code="unknown_provider"
    )
    closed = finder(office(holidays=(Holiday(DAY),)))
    assert closed.place(at(DAY, "09:00"), 30) == SlotCheck(free=False, reason_code="holiday")
    both = f.place(at(DAY, "13:00"), 30, provider_id="1", operatory_id="1")
    assert isinstance(both, SlotCheck)
    assert both.reason_code == "slot_taken"


def test_nearest_free_before_and_after() -> None:
    snapshot = office(
        appointments=(
            apt(10, DAY, "08:00", 60),
            apt(11, DAY, "09:30", 90),
            apt(12, DAY, "11:30", 30),
        )
    )
    f = finder(snapshot, step_minutes=15)
    before, after = f.nearest_free(at(DAY, "10:00"), 30, provider_id="1", n=2)
    assert [s.start.strftime("%H:%M") for s in before] == ["09:00"]
    assert [s.start.strftime("%H:%M") for s in after] == ["11:00", "13:00"]
    assert all(s.provider_id == "1" and s.operatory_id == "1" for s in before + after)
    # any provider: one slot per start time, the preferred chair (op 2, Web Sched) first
    before, after = f.nearest_free(at(DAY, "10:00"), 30, n=3)
    assert [s.start.strftime("%H:%M") for s in before] == ["09:15", "09:30", "09:45"]
    assert [s.start.strftime("%H:%M") for s in after] == ["10:00", "10:15", "10:30"]
    assert {s.operatory_id for s in before + after} == {"2"}
    # a preferred operatory wins ties
    _before, after = f.nearest_free(at(DAY, "10:00"), 30, n=1, prefer_operatory="3")
    assert after[0].operatory_id == "3"


def test_free_slots_for_some_operatories_and_a_provider() -> None:
    f = finder(step_minutes=60)
    slots = f.free_slots(at(DAY, "00:00"), at(DAY, "23:00"), 60, operatory_ids={"1"})
    assert [s.start.strftime("%H") for s in slots] == [
        "08",
        "09",
        "10",
        "11",
        "13",
        "14",
        "15",
        "16",
    ]
    only_3 = f.free_slots(at(DAY, "12:00"), at(DAY, "13:00"), 60, provider_id="3")
    assert [(s.provider_id, s.operatory_id, s.start.hour) for s in only_3] == [("3", "3", 12)]


# -- the property: free_slots is exactly what a minute-by-minute brute force finds ------

ZONES = {
    "la": (ZoneInfo("America/Los_Angeles"), (DAY, SPRING, AUTUMN)),
    "lord_howe": (ZoneInfo("Australia/Lord_Howe"), (date(2026, 4, 5), date(2026, 10, 4))),
}


@dataclass(frozen=True)
class Case:
    snapshot: DiarySnapshot
    minutes: int
    buffer: int
    step: int
    earliest: datetime | None
    latest: datetime | None

    def finder(self) -> SlotFinder:
        return SlotFinder(
            self.snapshot,
            buffer_minutes=self.buffer,
            earliest=self.earliest,
            latest=self.latest,
            step_minutes=self.step,
        )

    def grid(self) -> list[datetime]:
        """The starts the PMS can hold on the wall-clock grid of the day."""
        tz, day = self.snapshot.tz, self.snapshot.first_day
        out = []
        for k in range(0, 24 * 60, self.step):
            wall = datetime.combine(day, time()) + timedelta(minutes=k)
            aware = localize(wall, tz)
            if aware.replace(tzinfo=None) == wall:
                out.append(aware)
        return out


@st.composite
def diaries(draw: st.DrawFn) -> Case:
    zone_name = draw(st.sampled_from(sorted(ZONES)))
    tz, days = ZONES[zone_name]
    day = draw(st.sampled_from(days))
    midnight = datetime.combine(day, time())

    def wall(minute: int) -> datetime:
        return localize(midnight + timedelta(minutes=minute), tz)

    ops = ("1", "2", "3")
    providers = ("1", "2", "3")
    clinics = st.sampled_from([None, None, "5", "6"])
    operatories = tuple(
        Operatory(
            op,
            clinic_id=draw(clinics),
            web_sched=draw(st.booleans()),
            order=draw(st.integers(0, 3)),
        )
        for op in ops
    )
    provider_rows = tuple(
        Provider(p, last_day=draw(st.sampled_from([None, None, day, day - timedelta(days=1)])))
        for p in providers
    )
    # times anywhere in the day, and often around 01:00-04:00, where the clocks change
    minute = st.one_of(st.integers(0, 24 * 60), st.integers(45, 255))
    work = []
    for _ in range(draw(st.integers(0, 6))):
        a = draw(minute)
        b = min(24 * 60, a + draw(st.integers(0, 12 * 60)))
        work.append(
            WorkBlock(
                draw(st.sampled_from(providers)), draw(st.sampled_from(ops)), wall(a), wall(b)
            )
        )
    blockouts = []
    for _ in range(draw(st.integers(0, 3))):
        a = draw(minute)
        b = min(24 * 60, a + draw(st.integers(0, 180)))
        blockouts.append(Blockout(draw(st.sampled_from(ops)), wall(a), wall(b)))
    holidays = [Holiday(day, draw(clinics)) for _ in range(draw(st.sampled_from([0, 0, 0, 1])))]
    appointments = []
    for num in range(draw(st.integers(0, 12))):
        start = wall(draw(st.one_of(minute, st.integers(-6 * 60, 24 * 60 + 60))))
        units = draw(st.integers(1, 40))
        appointments.append(
            Appointment(
                str(num + 1),
                draw(st.integers(0, 8)),
                draw(st.sampled_from([*ops, None])),
                frozenset(draw(st.sets(st.sampled_from(providers), max_size=2))),
                start,
                diary_end(start, units * 5, tz),
            )
        )
    buffer = draw(st.sampled_from([0, 0, 5, 10, 15]))
    snapshot = DiarySnapshot(
        tz=tz,
        first_day=day,
        last_day=day,
        operatories=operatories,
        providers=provider_rows,
        appointments=tuple(appointments),
        work=tuple(work),
        blockouts=tuple(blockouts),
        holidays=tuple(holidays),
        appointment_margin=timedelta(minutes=buffer),
    )
    return Case(
        snapshot,
        minutes=draw(st.sampled_from([5, 10, 30, 45, 60, 90, 7, 13])),
        buffer=buffer,
        step=draw(st.sampled_from([5, 5, 10, 15, 7])),
        earliest=draw(st.one_of(st.none(), minute.map(wall))),
        latest=draw(st.one_of(st.none(), minute.map(wall))),
    )


def _minute(moment: datetime) -> int:
    seconds = int(moment.timestamp())
    assert seconds % 60 == 0
    return seconds // 60


def brute_force(case: Case) -> set[tuple[int, str, str]]:
    """(start minute, provider, operatory) of every free slot, minute by minute.

    Bit m of a mask is minute m since the epoch: a minute is usable for
    (provider, operatory) when it is in the provider's hours there and in
    no holiday, blockout, buffered appointment of the chair or appointment
    of the provider. A slot is free when every minute it covers is usable.
    """
    snapshot, tz, buffer = case.snapshot, case.snapshot.tz, case.buffer

    day = snapshot.first_day
    base = _minute(localize(datetime.combine(day - timedelta(days=1), time()), tz))

    def bits(a: int, b: int) -> int:
        """Minutes [a, b) since the epoch, as bits counted from ``base`` (a day early)."""
        a, b = max(a - base, 0), b - base
        return ((1 << (b - a)) - 1) << a if b > a else 0

    cover_end = _minute(localize(datetime.combine(day + timedelta(days=1), time()), tz))
    chair: dict[str, int] = {op.id: 0 for op in snapshot.operatories}
    for holiday in snapshot.holidays:
        a = _minute(localize(datetime.combine(holiday.day, time()), tz))
        for op in snapshot.operatories:
            if holiday.clinic_id in (None, op.clinic_id):
                chair[op.id] |= bits(a, cover_end)
    for blockout in snapshot.blockouts:
        chair[blockout.operatory_id] |= bits(_minute(blockout.start), _minute(blockout.end))
    busy: dict[str, int] = {p.id: 0 for p in snapshot.providers}
    for apt in snapshot.appointments:
        if apt.status not in (1, 2, 4, 5, 7, 8):
            continue
        start, end = _minute(apt.start), _minute(apt.end)
        if apt.operatory_id is not None:
            chair[apt.operatory_id] |= bits(start - buffer, end + buffer)
        for p in apt.provider_ids:
            busy[p] |= bits(start, end)
    hours: dict[tuple[str, str], int] = {}
    for w in snapshot.work:
        key = (w.provider_id, w.operatory_id)
        hours[key] = hours.get(key, 0) | bits(_minute(w.start), _minute(w.end))
    free: set[tuple[int, str, str]] = set()
    starts = [
        (start, _minute(start), _minute(diary_end(start, case.minutes, tz)))
        for start in case.grid()
        if (case.earliest is None or start >= case.earliest)
        and (case.latest is None or start <= case.latest)
    ]
    for provider in snapshot.providers:
        if provider.last_day is not None and provider.last_day < day:
            continue
        for op in snapshot.operatories:
            usable = hours.get((provider.id, op.id), 0) & ~chair[op.id] & ~busy[provider.id]
            for _start, a, b in starts:
                if b <= cover_end and bits(a, b) & ~usable == 0:
                    free.add((a, provider.id, op.id))
    return free


@settings(max_examples=100, deadline=None)
@given(diaries())
def test_free_slots_are_exactly_the_brute_force_ones(case: Case) -> None:
    f, snapshot, minutes = case.finder(), case.snapshot, case.minutes
    buffer, tz = timedelta(minutes=case.buffer), snapshot.tz
    first = localize(datetime.combine(snapshot.first_day, time()), tz)
    last = localize(datetime.combine(snapshot.first_day + timedelta(days=1), time()), tz)
    slots = f.free_slots(first, last, minutes)
    found = {(_minute(s.start), s.provider_id, s.operatory_id) for s in slots}
    assert len(found) == len(slots)
    assert found == brute_force(case)

    # the literal property, checked directly against the diary's rows
    def overlap(a: datetime, b: datetime, c: datetime, d: datetime, pad: float = 0) -> bool:
        """Non-empty [a, b) widened by ``pad`` seconds overlaps [c, d) (as instants)."""
        a_, b_ = a.timestamp(), b.timestamp()
        return a_ < b_ and a_ - pad < d.timestamp() and c.timestamp() < b_ + pad

    for s in slots:
        assert s.end == diary_end(s.start, minutes, tz)
        op = next(o for o in snapshot.operatories if o.id == s.operatory_id)
        for apt in snapshot.appointments:
            if apt.status not in (1, 2, 4, 5, 7, 8):
                continue
            if apt.operatory_id == s.operatory_id:
                assert not overlap(apt.start, apt.end, s.start, s.end, buffer.total_seconds())
            if s.provider_id in apt.provider_ids:
                assert not overlap(apt.start, apt.end, s.start, s.end)
        for b in snapshot.blockouts:
            if b.operatory_id == s.operatory_id:
                assert not overlap(b.start, b.end, s.start, s.end)
        assert not any(h.clinic_id in (None, op.clinic_id) for h in snapshot.holidays)
        assert any(
            w.provider_id == s.provider_id
            and w.operatory_id == s.operatory_id
            and w.start.timestamp() <= s.start.timestamp() < w.end.timestamp()
            for w in snapshot.work
        )
    # check() agrees with free_slots (every fourth grid start, every pair)
    for start in case.grid()[::4]:
        end = diary_end(start, minutes, tz)
        if end > last:
            continue  # past the snapshot: check() refuses to guess (tested above)
        for p in snapshot.providers:
            for o in snapshot.operatories:
                expected = (_minute(start), p.id, o.id) in found
                assert f.check(Slot(start, end, p.id, o.id)).free == expected
