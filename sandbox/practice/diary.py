"""The appointment book, one day at a time: schedules, blockouts, appointments.

The diary is consistent by construction; the slot engine and the property
tests rely on these rules (also stated in the package docstring):

1. Provider hours are ``SchedType=1`` schedule rows, one per block (morning,
   afternoon; lunch is the gap between them; Fridays end at 13:00), each
   linked by scheduleop to every operatory the provider owns. Operatories
   are never shared, so provider blocks never overlap within an operatory.
2. Blockouts are ``SchedType=2`` rows with a DefCat 25 ``BlockoutType``,
   linked to operatories by scheduleop, always inside provider hours, never
   overlapping each other in an operatory.
3. Holidays are ``SchedType=0``, ``Status=2`` rows without scheduleop rows;
   on a holiday there are no other schedules and no appointments.
4. Every Scheduled (1) or Complete (2) appointment lies wholly inside one
   provider block linked to its ``Op``, whose provider is the appointment's
   ``ProvHyg`` when ``IsHygiene=1`` and its ``ProvNum`` otherwise; it overlaps
   no blockout of that operatory and no other Scheduled/Complete appointment
   in that operatory; a patient has at most one such appointment a day.
5. Broken (5) and UnschedList (3) appointments keep the slot they were booked
   in (nothing else is booked over them); Planned (6) ones have
   ``AptDateTime = 0001-01-01 00:00:00`` and ``Op = 0``; PtNote (7) and
   PtNoteCompleted (8) are notes at a time in an operatory and may overlap.
6. Past days hold Complete, Broken and UnschedList appointments; today and
   later hold Scheduled (and a few UnschedList) ones.
7. On each day the clocks change (America/Los_Angeles), the first dentist of
   each clinic works a weekend emergency clinic 01:00-04:00 and 09:00-12:00
   with back-to-back 30-minute appointments through the skipped or repeated
   hour.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from sandbox.practice import names, reference
from sandbox.practice.dates import (
    NO_DATETIME,
    DiarySpan,
    at,
    clock,
    dst_sundays,
    practice_holidays,
    stamp,
)
from sandbox.practice.draw import Weighted, between
from sandbox.practice.followup import (
    MODE_PHONE,
    MODE_TEXT,
    SOURCE_REMINDER,
    SOURCE_USER,
    Commlogs,
    Tracker,
)
from sandbox.practice.ledger import Ledger, Visit
from sandbox.practice.office import Office, Operatory, Provider
from sandbox.practice.patients import Roster
from sandbox.practice.reference import APT_TYPE_INDEX, APT_TYPES, CODE_INDEX
from sandbox.practice.rows import Output

SCHEDULED, COMPLETE, UNSCHED, BROKEN, PLANNED, PT_NOTE, PT_NOTE_DONE = 1, 2, 3, 5, 6, 7, 8
PRACTICE, PROVIDER, BLOCKOUT = 0, 1, 2
HOLIDAY = 2
FRIDAY, SUNDAY = 4, 6
EMERGENCY_BLOCKS = ((60, 240), (540, 720))
Interval = tuple[int, int]

APPOINTMENT_COLUMNS = (
    "AptNum",
    "PatNum",
    "AptStatus",
    "Pattern",
    "Confirmed",
    "Op",
    "Note",
    "ProvNum",
    "ProvHyg",
    "AptDateTime",
    "UnschedStatus",
    "IsNewPatient",
    "ProcDescript",
    "ClinicNum",
    "IsHygiene",
    "DateTStamp",
    "DateTimeArrived",
    "DateTimeSeated",
    "DateTimeDismissed",
    "InsPlan1",
    "InsPlan2",
    "AppointmentTypeNum",
    "SecUserNumEntry",
    "SecDateTEntry",
    "Priority",
)
BITEWINGS = CODE_INDEX["D0274"]
HYGIENE_KINDS = frozenset(t.kind for t in APT_TYPES if t.hygiene)
DENTAL_MIX = Weighted(reference.DENTAL_MIX)
HYGIENE_MIX = Weighted(reference.HYGIENE_MIX)
EXTRA_UNITS = Weighted([(0, 75), (1, 15), (2, 10)])
CONFIRMATIONS = {  # by status, and for Scheduled by days ahead (<= 2, <= 14, later)
    COMPLETE: Weighted([("Confirmed", 50), ("Checked Out", 30), ("Arrived", 10), ("Texted", 10)]),
    BROKEN: Weighted([("Not Called", 30), ("Unconfirmed", 40), ("Left Message", 30)]),
    2: Weighted([("Confirmed", 55), ("Left Message", 20), ("Texted", 15), ("Unconfirmed", 10)]),
    14: Weighted(
        [
            ("Unconfirmed", 45),
            ("Not Called", 25),
            ("Left Message", 15),
            ("Confirmed", 10),
            ("E-mailed", 5),
        ]
    ),
    999: Weighted([("Not Called", 70), ("Unconfirmed", 30)]),
}


def subtract(blocks: list[Interval], holes: list[Interval]) -> list[Interval]:
    """``blocks`` minus ``holes`` (all half-open minute intervals)."""
    free = blocks
    for hole_start, hole_end in holes:
        free = [
            piece
            for start, end in free
            for piece in ((start, min(end, hole_start)), (max(start, hole_end), end))
            if piece[0] < piece[1]
        ]
    return free


class Diary:
    def __init__(
        self,
        out: Output,
        rng: random.Random,
        office: Office,
        roster: Roster,
        span: DiarySpan,
        *,
        ledger: Ledger,
        commlogs: Commlogs,
        vacation_days: int,
    ) -> None:
        self.rng, self.office, self.roster, self.span = rng, office, roster, span
        self.ledger, self.commlogs = ledger, commlogs
        self.tracker = Tracker.for_patients(roster.count)
        self.add_schedule = out.table(
            "schedule",
            (
                "ScheduleNum",
                "SchedDate",
                "StartTime",
                "StopTime",
                "SchedType",
                "ProvNum",
                "BlockoutType",
                "Note",
                "Status",
                "DateTStamp",
                "ClinicNum",
            ),
        )
        self.add_schedule_op = out.table(
            "scheduleop", ("ScheduleOpNum", "ScheduleNum", "OperatoryNum")
        )
        self.add_apt = out.table("appointment", APPOINTMENT_COLUMNS)
        self.schedule_num = self.schedule_op_num = self.apt_num = 0
        self.holidays = practice_holidays(span.start, span.end)
        self.dst_days = frozenset(dst_sundays(span.start, span.end))
        self.ops = {op.num: op for op in office.operatories}
        self.rotation = {
            clinic: rng.sample(pats, len(pats)) for clinic, pats in sorted(roster.by_clinic.items())
        }
        self.cursor = dict.fromkeys(self.rotation, 0)
        weekdays = [d for d in span.days() if d.weekday() < 5 and d not in self.holidays]
        years = max(1, round(len(weekdays) / 260))
        self.away = {
            (p.num, d)
            for p in office.providers
            for d in rng.sample(weekdays, min(len(weekdays), vacation_days * years))
        }
        self.confirmed = office.def_nums(reference.APPT_CONFIRMED)
        self.unsched_status = office.defs[reference.RECALL_UNSCHED_STATUS]
        self.blockout = office.def_nums(reference.BLOCKOUT_TYPES)

    # -- schedules -------------------------------------------------------------

    def _entered(self, day: date) -> date:
        """When something for ``day`` was entered: before it, and before today."""
        entry = day - timedelta(days=self.rng.choice((0, 1, 3, 7, 14, 21, 30, 60, 90, 120)))
        if entry >= self.span.today:
            entry = self.span.today - timedelta(days=between(self.rng, 1, 30))
        return entry

    def _schedule(
        self,
        day: date,
        hours: Interval,
        kind: int,
        prov: int,
        ops: list[int],
        *,
        blockout: int = 0,
        note: str = "",
        status: int = 0,
        clinic: int = 0,
    ) -> None:
        start, stop = hours
        self.schedule_num += 1
        self.add_schedule(
            (
                self.schedule_num,
                day.isoformat(),
                clock(start),
                clock(stop),
                kind,
                prov,
                blockout,
                note,
                status,
                stamp(self._entered(day), between(self.rng, 8 * 60, 18 * 60)),
                clinic,
            )
        )
        for op in ops:
            self.schedule_op_num += 1
            self.add_schedule_op((self.schedule_op_num, self.schedule_num, op))

    @staticmethod
    def _blocks(prov: Provider, day: date) -> list[Interval]:
        if day.weekday() == FRIDAY:
            return [(prov.start, min(prov.lunch, prov.friday_stop))]
        return [(prov.start, prov.lunch), (prov.lunch_end, prov.stop)]

    def _blockouts(self, day: date, working: list[Provider]) -> dict[int, list[Interval]]:
        """Write the day's blockouts; returns the blocked intervals per operatory."""
        rng = self.rng
        blocked: dict[int, list[Interval]] = {op.num: [] for op in self.office.operatories}

        def block(start: int, stop: int, name: str, ops: list[int], note: str = "") -> None:
            self._schedule(
                day, (start, stop), BLOCKOUT, 0, ops, blockout=self.blockout[name], note=note
            )
            for op in ops:
                blocked[op].append((start, stop))

        weekday = day.weekday()
        if weekday == 0:
            for clinic in self.office.clinics:
                ops = [op for p in working if p.clinic == clinic for op in p.ops]
                if ops:
                    block(8 * 60, 8 * 60 + 30, "Staff Meeting", ops, "Morning huddle")
        for prov in working:
            if not prov.hygienist and len(prov.ops) > 1 and rng.random() < 0.6:
                block(10 * 60 + 30, 11 * 60, "Emergency", [prov.ops[1]])
            if not prov.hygienist and weekday == 1 and rng.random() < 0.3:
                block(9 * 60, 10 * 60 + 30, "High Production", [prov.ops[0]])
            if prov.hygienist and weekday == 2 and rng.random() < 0.5:
                block(14 * 60, 15 * 60, "New Patient", list(prov.ops))
            if weekday in (0, 1, 3) and rng.random() < 0.01:  # clear of the others
                block(
                    prov.stop - 120,
                    prov.stop,
                    "No Appointments",
                    list(prov.ops),
                    rng.choice(("CE course", "Dr out - personal", "Equipment repair")),
                )
        return blocked

    # -- the day -----------------------------------------------------------------

    def run(self) -> None:
        for day in self.span.days():
            self.day(day)

    def day(self, day: date) -> None:
        booked: set[int] = set()
        if day in self.holidays:
            for clinic in self.office.clinics:
                self._schedule(
                    day,
                    (0, 0),
                    PRACTICE,
                    0,
                    [],
                    note=self.holidays[day],
                    status=HOLIDAY,
                    clinic=clinic,
                )
            return
        if day in self.dst_days:
            self._emergency_clinic(day, booked)
            return
        if day.weekday() >= 5:
            return
        working = [
            p
            for p in self.office.providers
            if day.weekday() in p.workdays and (p.num, day) not in self.away
        ]
        for prov in working:
            for hours in self._blocks(prov, day):
                self._schedule(day, hours, PROVIDER, prov.num, list(prov.ops))
        blocked = self._blockouts(day, working)
        for prov in working:
            for op_num in prov.ops:
                free = subtract(self._blocks(prov, day), sorted(blocked[op_num]))
                self._fill(day, self.ops[op_num], prov, free, booked=booked)

    def _emergency_clinic(self, day: date, booked: set[int]) -> None:
        note = "Weekend emergency clinic (clocks change today)"
        for clinic in self.office.clinics:
            dentist = self.office.dentists(clinic)[0]
            op = self.ops[dentist.ops[0]]
            for hours in EMERGENCY_BLOCKS:
                self._schedule(day, hours, PROVIDER, dentist.num, [op.num], note=note)
            start, stop = EMERGENCY_BLOCKS[0]
            for minute in range(start, stop, 30):
                pat = self._pick(op, dentist, booked)
                if pat:
                    self._appointment(
                        day, op, dentist, pat, kind="emergency", pattern="/XXXX/", minute=minute
                    )
            self._fill(day, op, dentist, [EMERGENCY_BLOCKS[1]], booked=booked, only="emergency")

    def _booking_chance(self, day: date) -> float:
        ahead = (day - self.span.today).days
        if ahead < 14:
            return 0.9
        return max(0.12, 0.85 - 0.7 * (ahead - 14) / 169)

    def _pick(self, op: Operatory, prov: Provider, booked: set[int]) -> int:
        """A patient for this chair who has no other appointment today (0 if none)."""
        rng = self.rng
        for _ in range(8):
            if op.hygiene:
                ring = self.rotation.get(op.clinic, [])
                if not ring:
                    return 0
                pat = ring[self.cursor[op.clinic] % len(ring)]
                self.cursor[op.clinic] += 1
            else:
                pool = self.roster.by_dentist.get(prov.num) or self.rotation.get(op.clinic)
                if not pool:
                    return 0
                pat = rng.choice(pool)
            if pat not in booked:
                booked.add(pat)
                return pat
        return 0

    def _kind(self, op: Operatory, pat: int) -> str:
        if not op.hygiene:
            return DENTAL_MIX(self.rng)
        if self.roster.child[pat]:
            return "child"
        if self.roster.perio[pat]:
            return "perio"
        return HYGIENE_MIX(self.rng)

    def _pattern(self, kind: str) -> str:
        pattern = APT_TYPES[APT_TYPE_INDEX[kind]].pattern
        extra = EXTRA_UNITS(self.rng)
        if extra:
            first_x = pattern.index("X")
            pattern = pattern[:first_x] + "X" * extra + pattern[first_x:]
        return pattern

    def _fill(
        self,
        day: date,
        op: Operatory,
        prov: Provider,
        free: list[Interval],
        *,
        booked: set[int],
        only: str = "",
    ) -> None:
        rng, chance = self.rng, self._booking_chance(day)
        for start, end in free:
            minute = start
            while end - minute >= 20:
                if rng.random() > chance:
                    minute += 5 * between(rng, 2, 8)
                    continue
                pat = self._pick(op, prov, booked)
                if not pat:
                    minute += 30
                    continue
                kind = only or self._kind(op, pat)
                pattern = self._pattern(kind)
                if minute + 5 * len(pattern) > end:
                    kind = kind if op.hygiene else "emergency"  # the shortest visit
                    pattern = APT_TYPES[APT_TYPE_INDEX[kind]].pattern
                    if minute + 5 * len(pattern) > end:
                        booked.discard(pat)
                        break
                self._appointment(day, op, prov, pat, kind=kind, pattern=pattern, minute=minute)
                minute += 5 * len(pattern)
            if rng.random() < 0.01:
                self._note(day, op, prov, start)

    # -- appointments ------------------------------------------------------------

    def _status(self, day: date) -> int:
        r = self.rng.random()
        if day < self.span.today:
            return COMPLETE if r < 0.89 else (BROKEN if r < 0.96 else UNSCHED)
        return SCHEDULED if r < 0.98 else UNSCHED

    def _confirmation(self, status: int, ahead: int) -> str:
        if status == COMPLETE:
            return CONFIRMATIONS[COMPLETE](self.rng)
        if status in (BROKEN, UNSCHED):
            return CONFIRMATIONS[BROKEN](self.rng)
        return CONFIRMATIONS[2 if ahead <= 2 else 14 if ahead <= 14 else 999](self.rng)

    def _appointment(
        self,
        day: date,
        op: Operatory,
        prov: Provider,
        pat: int,
        *,
        kind: str,
        pattern: str,
        minute: int,
    ) -> None:
        rng, roster, tracker = self.rng, self.roster, self.tracker
        status = self._status(day)
        hygiene = kind in HYGIENE_KINDS
        dentist = roster.pri_prov[pat] if op.hygiene else prov.num
        hygienist = prov.num if op.hygiene else 0
        ordinal = day.toordinal()
        last_bw = tracker.last_bitewings[pat]
        procs = self.ledger.plan(kind, pat, not last_bw or ordinal - last_bw >= 330)
        end = minute + 5 * len(pattern)
        entry = self._entered(day)
        ahead = (day - self.span.today).days
        confirmed = self._confirmation(status, ahead)
        dstr = day.isoformat()
        if status == COMPLETE:
            edited = stamp(day, end + 5)
            times = (
                at(dstr, max(0, minute - between(rng, 0, 10))),
                at(dstr, minute + between(rng, 0, 5)),
                at(dstr, end + between(rng, 0, 5)),
            )
            plans = (roster.plan1[pat], roster.plan2[pat])
        else:
            edited = stamp(entry if status != BROKEN else day, minute + 15)
            times = (NO_DATETIME,) * 3
            plans = (0, 0)
        self.apt_num += 1
        apt_type = APT_TYPES[APT_TYPE_INDEX[kind]]
        entry_str = entry.isoformat()
        self.add_apt(
            (
                self.apt_num,
                pat,
                status,
                pattern,
                self.confirmed[confirmed],
                op.num,
                rng.choice(names.APPOINTMENT_NOTES) if rng.random() < 0.08 else "",
                dentist,
                hygienist,
                at(dstr, minute),
                rng.choice(self.unsched_status) if status == UNSCHED else 0,
                int(kind == "new"),
                self.ledger.descript(procs),
                op.clinic,
                int(op.hygiene),
                edited,
                *times,
                *plans,
                self.office.apt_type_nums[APT_TYPE_INDEX[kind]],
                between(rng, 1, 6),
                at(entry_str, between(rng, 8 * 60, 17 * 60)),
                int(status == SCHEDULED and rng.random() < 0.02),
            )
        )
        visit = Visit(
            self.apt_num,
            False,
            pat,
            day,
            dstr,
            status == COMPLETE,
            dentist,
            hygienist,
            op.clinic,
            entry,
            entry_str,
            edited,
            end,
        )
        self.ledger.record(visit, procs, hygiene_visit=op.hygiene)
        if status == COMPLETE and hygiene:
            tracker.last_hygiene[pat] = ordinal
            if any(index == BITEWINGS for index, _t, _s in procs):
                tracker.last_bitewings[pat] = ordinal
            if rng.random() < 0.07:
                self._planned(visit)
        elif status == SCHEDULED and hygiene and not tracker.next_hygiene[pat]:
            tracker.next_hygiene[pat] = ordinal
        self._log_confirmation(pat, day, confirmed, apt_type.name)

    def _log_confirmation(self, pat: int, day: date, confirmed: str, type_name: str) -> None:
        if confirmed not in ("Left Message", "Texted", "Confirmed"):
            return
        called = day - timedelta(days=self.rng.choice((1, 2, 2, 3)))
        if called >= self.span.today or self.rng.random() < 0.5:
            return
        when = stamp(called, between(self.rng, 9 * 60, 16 * 60))
        text = confirmed == "Texted"
        note = f"Reminder for {type_name} on {day:%m/%d/%Y}. " + self.rng.choice(
            names.COMMLOG_NOTES
        )
        self.commlogs.add(
            pat,
            when,
            kind="Appt Related",
            mode=MODE_TEXT if text else MODE_PHONE,
            note=note,
            source=SOURCE_REMINDER if text else SOURCE_USER,
            edited=when,
        )

    def _planned(self, visit: Visit) -> None:
        """A planned follow-up (status 6): no date, no chair, procedures attached."""
        kind = self.rng.choice(("filling", "filling", "crown", "endo", "extraction"))
        procs = self.ledger.plan(kind, visit.pat, False)
        self.apt_num += 1
        self.add_apt(
            (
                self.apt_num,
                visit.pat,
                PLANNED,
                APT_TYPES[APT_TYPE_INDEX[kind]].pattern,
                self.confirmed["Not Called"],
                0,
                "",
                visit.dentist,
                0,
                NO_DATETIME,
                0,
                0,
                self.ledger.descript(procs),
                visit.clinic,
                0,
                visit.stamp,
                NO_DATETIME,
                NO_DATETIME,
                NO_DATETIME,
                0,
                0,
                self.office.apt_type_nums[APT_TYPE_INDEX[kind]],
                1,
                at(visit.dstr, visit.end_minute),
                0,
            )
        )
        planned = Visit(
            self.apt_num,
            True,
            visit.pat,
            visit.day,
            visit.dstr,
            False,
            visit.dentist,
            0,
            visit.clinic,
            visit.day,
            visit.dstr,
            visit.stamp,
            visit.end_minute,
        )
        self.ledger.record(planned, procs, hygiene_visit=False)

    def _note(self, day: date, op: Operatory, prov: Provider, minute: int) -> None:
        """A patient note pinned in the chair's column (AptStatus 7 or 8)."""
        ring = self.rotation.get(op.clinic)
        if not ring:
            return
        pat = self.rng.choice(ring)
        done = day < self.span.today and self.rng.random() < 0.6
        entry = self._entered(day)
        self.apt_num += 1
        self.add_apt(
            (
                self.apt_num,
                pat,
                PT_NOTE_DONE if done else PT_NOTE,
                "//",
                self.confirmed["Not Called"],
                op.num,
                self.rng.choice(names.COMMLOG_NOTES),
                self.roster.pri_prov[pat] if op.hygiene else prov.num,
                prov.num if op.hygiene else 0,
                at(day.isoformat(), minute),
                0,
                0,
                "",
                op.clinic,
                int(op.hygiene),
                stamp(entry, 12 * 60),
                NO_DATETIME,
                NO_DATETIME,
                NO_DATETIME,
                0,
                0,
                0,
                between(self.rng, 1, 6),
                at(entry.isoformat(), 12 * 60),
                0,
            )
        )
