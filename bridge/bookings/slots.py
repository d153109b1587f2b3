"""The slot engine's pure part: is a slot free, and which slots are.

No I/O. A :class:`DiarySnapshot` holds what the live diary
(:mod:`bridge.bookings.diary`) read for some local days; a
:class:`SlotFinder` answers questions about it:

* :meth:`SlotFinder.check` -- is this slot free? (:class:`SlotCheck`: a
  reason code and the ids of the appointments in the way);
* :meth:`SlotFinder.free_slots` -- every free slot of a length in a range,
  for one provider, some operatories or all of them (published availability
  reuses this);
* :meth:`SlotFinder.nearest_free` -- the nearest N free start times before
  and after a time;
* :meth:`SlotFinder.place` -- a free operatory and provider for a time;
* :meth:`SlotFinder.overlapping` -- the appointments a written hold overlaps.

The rules
    **Occupying statuses.** An appointment occupies its operatory (and its
    providers, below) when its status is Scheduled 1, Complete 2, ASAP 4,
    Broken 5, PtNote 7 or PtNoteCompleted 8 (:data:`OCCUPYING_STATUSES`):
    everything Open Dental draws in the operatory column. UnschedList 3 and
    Planned 6 are not in the diary (Open Dental's own calendar query leaves
    them out). Broken appointments stay in the column until the front desk
    sends them to the Unscheduled list, and patient notes are pinned in it,
    so booking over either would put two things in one place on the
    receptionist's screen (a public copy of Open Dental's source shows its
    operatory-merge conflict check counting Scheduled, Complete, Broken and
    PtNote). ASAP (deprecated) is a scheduled appointment.

    **Providers.** Each appointment names the providers it keeps busy
    (``Appointment.provider_ids``; the Open Dental diary gives the
    hygienist alone for a hygiene appointment, see :mod:`.diary`). A slot
    for a provider is not free while that provider is busy in any
    operatory.

    **Hours, blockouts, holidays.** A slot must lie wholly inside the merged
    working blocks of its provider *in its operatory*, overlap no blockout
    of that operatory and no holiday of the operatory's clinic (a holiday
    without a clinic closes every operatory) for the whole local day.

    **Buffer.** ``buffer_minutes`` of free time is kept before and after
    every occupying appointment *in the operatory* (not for the provider,
    and not around blockouts).

    **Bounds.** A slot's start must be at or after ``earliest`` (minimum
    notice) and at or before ``latest`` (booking window).

    **Reason order.** :meth:`SlotFinder.check` reports the first that
    applies of: ``too_soon``, ``outside_window``, ``unknown_operatory``,
    ``unknown_provider`` (also a hidden or deleted provider, or a day after
    the provider's term ends), ``holiday``, ``outside_hours``, ``blockout``,
    ``slot_taken`` (the operatory, with its buffer), ``provider_busy``.
    ``conflicts`` lists every occupying appointment in the way (operatory
    with buffer, provider without), whatever the reason.

Time
    Every time is a timezone-aware :class:`~datetime.datetime`; inside, all
    arithmetic is on seconds since the epoch, so it is elapsed time, never
    wall-clock arithmetic. The PMS stores wall-clock times, so on the two
    days a year the clocks change:

    * a start the PMS cannot hold is never free: a wall time in the hour
      that repeats in autumn means its *first* occurrence to the PMS
      (:func:`bridge.pms.convert.localize`), so a start in the second
      occurrence is ``outside_hours``; starts offered on the grid are
      always ones the PMS can hold;
    * an appointment ends at :func:`diary_end`: the later of its start plus
      its length and the wall-clock end the PMS would show (they differ
      only across the repeated hour), so a slot never ends before the
      diary would say it does;
    * the grid of candidate starts is a wall-clock grid (every
      ``step_minutes`` from local midnight); wall times skipped in spring
      are not on it.

Identifiers are strings (``"12"``); lists of them are ordered numerically
when they are numbers. Nothing here holds personal data: appointments are
ids, times, operatories and providers.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal, get_args
from zoneinfo import ZoneInfo

from bridge.pms.convert import localize

PATTERN_UNIT_MINUTES = 5
LONGEST_APPOINTMENT_MINUTES = 255 * PATTERN_UNIT_MINUTES
"""``appointment.Pattern`` is a varchar(255) of 5-minute units."""
OCCUPYING_STATUSES = frozenset({1, 2, 4, 5, 7, 8})
"""Appointment statuses that occupy the chair (see the module docstring)."""

ReasonCode = Literal[
    "too_soon",
    "outside_window",
    "unknown_operatory",
    "unknown_provider",
    "holiday",
    "outside_hours",
    "blockout",
    "slot_taken",
    "provider_busy",
]
REASON_CODES: tuple[ReasonCode, ...] = get_args(ReasonCode)
"""Every reason code, in the order :meth:`SlotFinder.check` tries them."""

Span = tuple[int, int]
"""A half-open interval [start, end) in whole seconds since the epoch."""
_PreferenceKey = tuple[bool, bool, int, tuple[int, int, str], tuple[int, int, str]]

_MAX_STEP_MINUTES = 240


# -- values ---------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """A bookable place in the diary: when, with whom, in which chair."""

    start: datetime
    end: datetime
    provider_id: str
    operatory_id: str


@dataclass(frozen=True)
class SlotCheck:
    """Whether a slot is free; if not, why (``reason_code``) and what is in the way.

    ``conflicts`` holds appointment ids only, never patient data.
    """

    free: bool
    reason_code: ReasonCode | None = None
    conflicts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Operatory:
    """A visible operatory (a chair, a column of the diary)."""

    id: str
    clinic_id: str | None = None
    web_sched: bool = False
    order: int = 0


@dataclass(frozen=True)
class Provider:
    """A provider who may be booked; not after ``last_day`` when set."""

    id: str
    last_day: date | None = None


@dataclass(frozen=True)
class Appointment:
    """An appointment in the diary: ``[start, end)`` in ``operatory_id``.

    ``status`` is the PMS status number; only :data:`OCCUPYING_STATUSES`
    count. ``operatory_id`` is None for an appointment in no operatory.
    """

    id: str
    status: int
    operatory_id: str | None
    provider_ids: frozenset[str]
    start: datetime
    end: datetime


@dataclass(frozen=True)
class WorkBlock:
    """A provider's working hours in one operatory."""

    provider_id: str
    operatory_id: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Blockout:
    """Time blocked out in one operatory."""

    operatory_id: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Holiday:
    """A local day the practice (``clinic_id`` None) or one clinic is closed."""

    day: date
    clinic_id: str | None = None


@dataclass(frozen=True)
class DiarySnapshot:
    """What the diary holds for the local days ``first_day`` to ``last_day``.

    ``appointments`` must include every appointment that starts from
    :data:`LONGEST_APPOINTMENT_MINUTES` before ``first_day`` up to
    ``appointment_margin`` after the end of ``last_day``, so that the buffer
    around appointments just outside the days is seen (a finder refuses a
    buffer larger than the margin). Other appointments may be included.
    """

    tz: ZoneInfo
    first_day: date
    last_day: date
    operatories: tuple[Operatory, ...] = ()
    providers: tuple[Provider, ...] = ()
    appointments: tuple[Appointment, ...] = ()
    work: tuple[WorkBlock, ...] = ()
    blockouts: tuple[Blockout, ...] = ()
    holidays: tuple[Holiday, ...] = ()
    appointment_margin: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        if self.last_day < self.first_day:
            raise ValueError("a diary snapshot's last_day is before its first_day")


# -- time -------------------------------------------------------------------------


def _ts(moment: datetime) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("times must be timezone-aware datetimes")
    return int(moment.timestamp())


def wall_clock(moment: datetime, tz: ZoneInfo) -> datetime:
    """The naive wall-clock time the PMS would store for ``moment``."""
    return moment.astimezone(tz).replace(tzinfo=None)


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The first instant of the local ``day``."""
    return localize(datetime.combine(day, time()), tz)


def is_representable(start: datetime, tz: ZoneInfo) -> bool:
    """Whether the PMS, storing wall-clock time, reads ``start`` back unchanged."""
    return _ts(localize(wall_clock(start, tz), tz)) == _ts(start)


def diary_end(start: datetime, minutes: int, tz: ZoneInfo) -> datetime:
    """Where an appointment of ``minutes`` starting at ``start`` ends in the diary.

    The later of the elapsed end and the end the PMS shows on its wall clock
    (these differ only across the autumn repeated hour).
    """
    elapsed = _ts(start) + minutes * 60
    shown = _ts(localize(wall_clock(start, tz) + timedelta(minutes=minutes), tz))
    return datetime.fromtimestamp(max(elapsed, shown), tz)


def _id_key(value: str) -> tuple[int, int, str]:
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def sorted_ids(ids: Iterable[str]) -> tuple[str, ...]:
    """Distinct ids, numbers in numeric order, then the rest."""
    return tuple(sorted(set(ids), key=_id_key))


# -- intervals ------------------------------------------------------------------------


def merge(spans: Iterable[Span]) -> list[Span]:
    """Sorted, non-overlapping, non-touching spans covering the same time."""
    out: list[Span] = []
    for start, end in sorted(s for s in spans if s[0] < s[1]):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def subtract(spans: list[Span], holes: list[Span]) -> list[Span]:
    """``spans`` minus ``holes`` (both merged, as :func:`merge` returns them)."""
    out: list[Span] = []
    i = 0
    for start, end in spans:
        while i < len(holes) and holes[i][1] <= start:
            i += 1
        cursor = start
        j = i
        while j < len(holes) and holes[j][0] < end:
            if holes[j][0] > cursor:
                out.append((cursor, holes[j][0]))
            cursor = max(cursor, holes[j][1])
            j += 1
        if cursor < end:
            out.append((cursor, end))
    return out


def _overlaps(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    return a_start < b_end and b_start < a_end


def _inside(start: int, end: int, spans: list[Span]) -> bool:
    i = bisect.bisect_right(spans, (start, 1 << 62)) - 1
    return i >= 0 and spans[i][0] <= start and end <= spans[i][1]


# -- the finder -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Busy:
    start: int
    end: int
    id: str


class SlotFinder:
    """Answers slot questions about one :class:`DiarySnapshot` (see the module docstring).

    ``earliest``/``latest`` bound a slot's start (None: unbounded);
    ``buffer_minutes`` is kept around appointments in an operatory;
    ``step_minutes`` is the wall-clock grid of the starts it offers. Cheap to
    build and read-only after building (the grid of starts is built on first
    use, the same every time), so threads may share one.
    """

    def __init__(
        self,
        snapshot: DiarySnapshot,
        *,
        buffer_minutes: int = 0,
        earliest: datetime | None = None,
        latest: datetime | None = None,
        step_minutes: int = PATTERN_UNIT_MINUTES,
    ) -> None:
        if buffer_minutes < 0:
            raise ValueError("buffer_minutes must not be negative")
        if snapshot.appointment_margin < timedelta(minutes=buffer_minutes):
            raise ValueError(
                "the diary snapshot's appointment_margin is smaller than the buffer: "
                "appointments just after its last day would be missed"
            )
        if not 1 <= step_minutes <= _MAX_STEP_MINUTES:
            raise ValueError(f"step_minutes must be between 1 and {_MAX_STEP_MINUTES}")
        tz = snapshot.tz
        self.snapshot = snapshot
        self.tz = tz
        self.buffer = buffer_minutes * 60
        self.step_minutes = step_minutes
        self.earliest = None if earliest is None else _ts(earliest)
        self.latest = None if latest is None else _ts(latest)
        self.cover: Span = (
            _ts(local_midnight(snapshot.first_day, tz)),
            _ts(local_midnight(snapshot.last_day + timedelta(days=1), tz)),
        )
        self.operatories = {op.id: op for op in snapshot.operatories}
        self.providers = {p.id: p for p in snapshot.providers}
        self._by_op: dict[str, list[_Busy]] = {}
        self._by_provider: dict[str, list[_Busy]] = {}
        for apt in snapshot.appointments:
            if apt.status not in OCCUPYING_STATUSES:
                continue
            busy = _Busy(_ts(apt.start), _ts(apt.end), apt.id)
            if apt.operatory_id is not None:
                self._by_op.setdefault(apt.operatory_id, []).append(busy)
            for provider_id in apt.provider_ids:
                self._by_provider.setdefault(provider_id, []).append(busy)
        work: dict[tuple[str, str], list[Span]] = {}
        for block in snapshot.work:
            key = (block.provider_id, block.operatory_id)
            work.setdefault(key, []).append((_ts(block.start), _ts(block.end)))
        self._work = {key: merge(spans) for key, spans in work.items()}
        blocked: dict[str, list[Span]] = {}
        for blockout in snapshot.blockouts:
            span = (_ts(blockout.start), _ts(blockout.end))
            blocked.setdefault(blockout.operatory_id, []).append(span)
        self._blocked = {op: merge(spans) for op, spans in blocked.items()}
        closed: dict[str, list[Span]] = {}
        for holiday in snapshot.holidays:
            span = (
                _ts(local_midnight(holiday.day, tz)),
                _ts(local_midnight(holiday.day + timedelta(days=1), tz)),
            )
            for op in snapshot.operatories:
                if holiday.clinic_id is None or holiday.clinic_id == op.clinic_id:
                    closed.setdefault(op.id, []).append(span)
        self._closed = {op: merge(spans) for op, spans in closed.items()}
        self._grid: list[int] | None = None

    # -- building blocks ---------------------------------------------------------

    def slot(self, start: datetime, minutes: int, provider_id: str, operatory_id: str) -> Slot:
        """The slot of ``minutes`` at ``start``, ending at :func:`diary_end`."""
        if minutes < 1:
            raise ValueError("a slot must last at least one minute")
        start = start.astimezone(self.tz)
        return Slot(start, diary_end(start, minutes, self.tz), provider_id, operatory_id)

    def _span(self, slot: Slot) -> Span:
        start, end = _ts(slot.start), _ts(slot.end)
        if end <= start:
            raise ValueError("a slot must end after it starts")
        if start < self.cover[0] or end > self.cover[1]:
            raise ValueError(
                f"the slot is outside the diary snapshot "
                f"({self.snapshot.first_day} to {self.snapshot.last_day})"
            )
        return start, end

    def _provider_bookable(self, provider_id: str, start: int) -> bool:
        provider = self.providers.get(provider_id)
        if provider is None:
            return False
        if provider.last_day is None:
            return True
        return datetime.fromtimestamp(start, self.tz).date() <= provider.last_day

    def _op_conflicts(self, op: str, start: int, end: int, ignore: str | None) -> list[str]:
        pad = self.buffer
        return [
            b.id
            for b in self._by_op.get(op, ())
            if b.id != ignore and _overlaps(b.start - pad, b.end + pad, start, end)
        ]

    def _op_overlaps(self, op: str, start: int, end: int, ignore: str | None) -> list[str]:
        return [
            b.id
            for b in self._by_op.get(op, ())
            if b.id != ignore and _overlaps(b.start, b.end, start, end)
        ]

    def _provider_conflicts(
        self, provider_id: str, start: int, end: int, ignore: str | None
    ) -> list[str]:
        return [
            b.id
            for b in self._by_provider.get(provider_id, ())
            if b.id != ignore and _overlaps(b.start, b.end, start, end)
        ]

    # -- questions ---------------------------------------------------------------

    def check(self, slot: Slot, ignore: str | None = None) -> SlotCheck:
        """Whether ``slot`` is free; ``ignore`` is an appointment id to leave out.

        Raises ValueError for a slot that is not inside the snapshot's days,
        ends before it starts, or has naive times.
        """
        start, end = self._span(slot)
        op, provider = slot.operatory_id, slot.provider_id
        taken = self._op_conflicts(op, start, end, ignore)
        busy = self._provider_conflicts(provider, start, end, ignore)
        conflicts = sorted_ids(taken + busy)
        reason: ReasonCode | None = None
        if self.earliest is not None and start < self.earliest:
            reason = "too_soon"
        elif self.latest is not None and start > self.latest:
            reason = "outside_window"
        elif op not in self.operatories:
            reason = "unknown_operatory"
        elif not self._provider_bookable(provider, start):
            reason = "unknown_provider"
        elif any(_overlaps(a, b, start, end) for a, b in self._closed.get(op, ())):
            reason = "holiday"
        elif not is_representable(slot.start, self.tz) or not _inside(
            start, end, self._work.get((provider, op), [])
        ):
            reason = "outside_hours"
        elif any(_overlaps(a, b, start, end) for a, b in self._blocked.get(op, ())):
            reason = "blockout"
        elif taken:
            reason = "slot_taken"
        elif busy:
            reason = "provider_busy"
        return SlotCheck(free=reason is None, reason_code=reason, conflicts=conflicts)

    def overlapping(self, slot: Slot, ignore: str | None = None) -> list[str]:
        """Occupying appointments overlapping ``slot`` in its operatory or with its provider.

        No buffer: this is the read-back after a write, which looks for a
        double booking, not for a tight fit.
        """
        start, end = self._span(slot)
        found = self._op_overlaps(slot.operatory_id, start, end, ignore)
        found += self._provider_conflicts(slot.provider_id, start, end, ignore)
        return list(sorted_ids(found))

    def _grid_starts(self) -> list[int]:
        """Every start on the wall-clock grid of the snapshot's days the PMS can hold."""
        if self._grid is None:
            grid: list[int] = []
            day = self.snapshot.first_day
            step = timedelta(minutes=self.step_minutes)
            while day <= self.snapshot.last_day:
                midnight = _ts(local_midnight(day, self.tz))
                if self._steady(midnight):  # no clock change: plain arithmetic
                    grid.extend(range(midnight, midnight + 86_400, self.step_minutes * 60))
                else:
                    wall = datetime.combine(day, time())
                    next_day = wall + timedelta(days=1)
                    while wall < next_day:
                        aware = localize(wall, self.tz)
                        if aware.replace(tzinfo=None) == wall:  # skipped in spring otherwise
                            grid.append(_ts(aware))
                        wall += step
                day += timedelta(days=1)
            self._grid = sorted(set(grid))
        return self._grid

    def _steady(self, midnight: int) -> bool:
        """Whether the zone's offset is the same all through the day from ``midnight``
        (sampled hourly, and at the next midnight: the day is then 24 hours long)."""
        offsets = {
            datetime.fromtimestamp(midnight + hour * 3600, self.tz).utcoffset()
            for hour in range(25)
        }
        return len(offsets) == 1

    def _pairs(
        self, provider_id: str | None, operatory_ids: Collection[str] | None
    ) -> list[tuple[str, str]]:
        """(provider, operatory) pairs with working hours, filtered."""
        return [
            (p, o)
            for p, o in self._work
            if (provider_id is None or p == provider_id)
            and (operatory_ids is None or o in operatory_ids)
            and o in self.operatories
            and p in self.providers
        ]

    def _preference(
        self, provider_id: str, operatory_id: str, prefer: str | None = None
    ) -> _PreferenceKey:
        """Sort key: the preferred operatory, Web Sched operatories, diary order, ids."""
        op = self.operatories[operatory_id]
        return (
            operatory_id != prefer,
            not op.web_sched,
            op.order,
            _id_key(operatory_id),
            _id_key(provider_id),
        )

    def _free_spans(self, provider_id: str, operatory_id: str, ignore: str | None) -> list[Span]:
        pad = self.buffer
        holes = merge(
            [
                *self._closed.get(operatory_id, ()),
                *self._blocked.get(operatory_id, ()),
                *(
                    (b.start - pad, b.end + pad)
                    for b in self._by_op.get(operatory_id, ())
                    if b.id != ignore
                ),
                *(
                    (b.start, b.end)
                    for b in self._by_provider.get(provider_id, ())
                    if b.id != ignore
                ),
            ]
        )
        low, high = self.cover
        working = [
            (max(a, low), min(b, high))
            for a, b in self._work.get((provider_id, operatory_id), [])
            if a < high and b > low
        ]
        return subtract(working, holes)

    def free_slots(
        self,
        start: datetime,
        end: datetime,
        minutes: int,
        *,
        provider_id: str | None = None,
        operatory_ids: Collection[str] | None = None,
        ignore: str | None = None,
        prefer_operatory: str | None = None,
    ) -> list[Slot]:
        """Every free slot of ``minutes`` starting on the grid in ``[start, end)``.

        One slot per free (start, provider, operatory), for ``provider_id``
        (None: any) in ``operatory_ids`` (None: any), within the bounds and
        the snapshot's days. Ordered by start, then by preference: the
        ``prefer_operatory``, Web Sched operatories, the diary's column
        order, operatory id, provider id. Exactly the grid starts for which
        :meth:`check` says free (a property test holds it to that).
        """
        if minutes < 1:
            raise ValueError("a slot must last at least one minute")
        lo, hi = max(_ts(start), self.cover[0]), min(_ts(end), self.cover[1])
        if self.earliest is not None:
            lo = max(lo, self.earliest)
        if self.latest is not None:
            hi = min(hi, self.latest + 1)
        grid = self._grid_starts()
        ends: dict[int, int] = {}
        found: list[tuple[int, _PreferenceKey, Slot]] = []
        for provider, op in self._pairs(provider_id, operatory_ids):
            for span_start, span_end in self._free_spans(provider, op, ignore):
                i = bisect.bisect_left(grid, max(span_start, lo))
                while i < len(grid) and grid[i] < min(span_end, hi):
                    at = grid[i]
                    i += 1
                    slot_end = ends.get(at)
                    if slot_end is None:
                        moment = datetime.fromtimestamp(at, self.tz)
                        slot_end = ends[at] = _ts(diary_end(moment, minutes, self.tz))
                    if slot_end > span_end:
                        break  # diary_end never decreases along the grid
                    if not self._provider_bookable(provider, at):
                        continue
                    found.append(
                        (
                            at,
                            self._preference(provider, op, prefer_operatory),
                            Slot(
                                datetime.fromtimestamp(at, self.tz),
                                datetime.fromtimestamp(slot_end, self.tz),
                                provider,
                                op,
                            ),
                        )
                    )
        found.sort(key=lambda item: (item[0], item[1]))
        return [slot for _at, _key, slot in found]

    def nearest_free(
        self,
        at: datetime,
        minutes: int,
        *,
        provider_id: str | None = None,
        operatory_ids: Collection[str] | None = None,
        n: int = 3,
        ignore: str | None = None,
        prefer_operatory: str | None = None,
    ) -> tuple[list[Slot], list[Slot]]:
        """The nearest ``n`` free start times before ``at`` and ``n`` at or after it.

        One slot per start time (the preferred provider and operatory, as
        :meth:`free_slots` orders them), searched within the snapshot's days
        and the bounds; each list in time order.
        """
        if n < 1:
            return [], []
        first, last = self.cover
        slots = self.free_slots(
            datetime.fromtimestamp(first, self.tz),
            datetime.fromtimestamp(last, self.tz),
            minutes,
            provider_id=provider_id,
            operatory_ids=operatory_ids,
            ignore=ignore,
            prefer_operatory=prefer_operatory,
        )
        distinct: list[Slot] = []
        for slot in slots:
            if not distinct or distinct[-1].start != slot.start:
                distinct.append(slot)
        pivot = _ts(at)
        split = bisect.bisect_left([_ts(s.start) for s in distinct], pivot)
        return distinct[max(0, split - n) : split], distinct[split : split + n]

    def place(
        self,
        start: datetime,
        minutes: int,
        provider_id: str | None = None,
        operatory_id: str | None = None,
    ) -> Slot | SlotCheck:
        """A free slot at ``start`` for the provider and operatory, choosing what is not given.

        With both given this is :meth:`check`. Otherwise the candidates are
        the (provider, operatory) pairs, matching what was given, whose
        working hours overlap the slot, tried in a fixed order: Web Sched
        operatories first, then the diary's column order (``ItemOrder``),
        operatory id, provider id. The first free one wins. When none is
        free the answer is the check of the first candidate that failed for
        something other than its hours (else the first candidate); with no
        candidate at all, ``holiday`` if every operatory concerned is closed
        then, else ``outside_hours`` (or ``unknown_operatory`` /
        ``unknown_provider`` for ids the diary does not know).
        """
        if provider_id is not None and operatory_id is not None:
            slot = self.slot(start, minutes, provider_id, operatory_id)
            check = self.check(slot)
            return slot if check.free else check
        probe = self.slot(start, minutes, provider_id or "", operatory_id or "")
        begin, finish = self._span(probe)
        if self.earliest is not None and begin < self.earliest:
            return SlotCheck(free=False, reason_code="too_soon")
        if self.latest is not None and begin > self.latest:
            return SlotCheck(free=False, reason_code="outside_window")
        if operatory_id is not None and operatory_id not in self.operatories:
            return SlotCheck(free=False, reason_code="unknown_operatory")
        if provider_id is not None and not self._provider_bookable(provider_id, begin):
            return SlotCheck(free=False, reason_code="unknown_provider")
        ops = None if operatory_id is None else {operatory_id}
        pairs = [
            (p, o)
            for p, o in self._pairs(provider_id, ops)
            if any(_overlaps(a, b, begin, finish) for a, b in self._work[(p, o)])
        ]
        pairs.sort(key=lambda pair: self._preference(*pair))
        failures: list[SlotCheck] = []
        for provider, op in pairs:
            slot = Slot(probe.start, probe.end, provider, op)
            check = self.check(slot)
            if check.free:
                return slot
            failures.append(check)
        for failure in failures:
            if failure.reason_code != "outside_hours":
                return failure
        if failures:
            return failures[0]
        concerned = [operatory_id] if operatory_id is not None else list(self.operatories)
        if concerned and all(
            any(_overlaps(a, b, begin, finish) for a, b in self._closed.get(op, ()))
            for op in concerned
        ):
            return SlotCheck(free=False, reason_code="holiday")
        return SlotCheck(free=False, reason_code="outside_hours")


__all__ = [
    "LONGEST_APPOINTMENT_MINUTES",
    "OCCUPYING_STATUSES",
    "PATTERN_UNIT_MINUTES",
    "REASON_CODES",
    "Appointment",
    "Blockout",
    "DiarySnapshot",
    "Holiday",
    "Operatory",
    "Provider",
    "ReasonCode",
    "Slot",
    "SlotCheck",
    "SlotFinder",
    "Span",
    "WorkBlock",
    "diary_end",
    "is_representable",
    "local_midnight",
    "merge",
    "sorted_ids",
    "subtract",
    "wall_clock",
]
