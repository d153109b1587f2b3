"""The slot engine the booking pipeline calls: live reads, then the pure rules.

::

    engine = SlotEngine(OpenDentalDiary(conn, tz), policy, clock=clock)
    kind = engine.appointment_type("Recall")
    placed = engine.place(start, kind.minutes)            # Slot, or SlotCheck why not
    check = engine.check(start, 40, "3", "4", ignore_appointment="812")
    others = engine.alternatives(start, 40, provider_id="3", n=3)
    after_write = engine.overlapping(start, 40, "4", "3", ignore_appointment=hold_id)

Every question reads the diary live (:meth:`~bridge.bookings.diary.Diary.read`,
four statements for Open Dental) for just the local days it concerns, then
asks a :class:`~bridge.bookings.slots.SlotFinder` (rules, reason codes and
clock-change handling are documented there). Nothing is cached between
calls: a receptionist's click a second ago is seen.

Policy (per practice): ``min_notice`` and ``window`` bound a booking's start
(from the clock's now), ``buffer_minutes`` is kept around appointments in an
operatory. Lengths are rounded up to whole 5-minute pattern units, the
PMS's resolution.

:meth:`SlotEngine.alternatives` first looks ``near_days`` either side of the
time asked, then, if either side is short, ``search_days`` either side (a
second read), always inside the notice and window bounds; a time asked
outside those bounds is searched from the nearest bound. It offers one slot
per start time, on the ``step_minutes`` wall-clock grid, keeping the same
provider when one is named (any of the operatories the provider works in,
the named one first), else the named operatory, else every visible
operatory (Web Sched operatories first).

Errors: a naive ``start``, a length below 1 minute or above
:data:`~bridge.bookings.slots.LONGEST_APPOINTMENT_MINUTES` raise
ValueError (the request validation in front must not let them through);
PMS failures raise :class:`~bridge.errors.PmsError` subclasses. Not
thread-safe: one engine per PMS connection, used under the pipeline's lock.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from bridge.bookings.diary import AppointmentType, Diary
from bridge.bookings.slots import (
    LONGEST_APPOINTMENT_MINUTES,
    PATTERN_UNIT_MINUTES,
    DiarySnapshot,
    Slot,
    SlotCheck,
    SlotFinder,
    diary_end,
    wall_clock,
)


class BookingBounds(Protocol):
    """The policy values the engine needs (:class:`bridge.bookings.policy.Policy` has them)."""

    @property
    def window(self) -> timedelta: ...

    @property
    def min_notice(self) -> timedelta: ...

    @property
    def buffer_minutes(self) -> int: ...


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SlotEngine:
    """Slot questions answered from the live diary (see the module docstring)."""

    def __init__(
        self,
        diary: Diary,
        policy: BookingBounds,
        *,
        clock: Callable[[], datetime] = _utc_now,
        step_minutes: int = PATTERN_UNIT_MINUTES,
        near_days: int = 2,
        search_days: int = 14,
    ) -> None:
        if near_days < 0 or search_days < near_days:
            raise ValueError("need 0 <= near_days <= search_days")
        self.diary = diary
        self.policy = policy
        self.clock = clock
        self.step_minutes = step_minutes
        self.near_days = near_days
        self.search_days = search_days

    # -- plumbing -------------------------------------------------------------------

    def _bounds(self) -> tuple[datetime, datetime]:
        """(earliest, latest) start, in UTC: arithmetic on aware times in one zone
        is wall-clock arithmetic in Python, which is wrong across a clock change."""
        now = self.clock()
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("the engine's clock must return an aware datetime")
        now = now.astimezone(UTC)
        return now + self.policy.min_notice, now + self.policy.window

    def _finder(self, snapshot: DiarySnapshot) -> SlotFinder:
        earliest, latest = self._bounds()
        return SlotFinder(
            snapshot,
            buffer_minutes=self.policy.buffer_minutes,
            earliest=earliest,
            latest=latest,
            step_minutes=self.step_minutes,
        )

    def _read(self, first: date, last: date) -> SlotFinder:
        margin = timedelta(minutes=self.policy.buffer_minutes)
        return self._finder(self.diary.read(first, last, margin=margin))

    def finder(self, first_day: date, last_day: date) -> SlotFinder:
        """One live read of the local days ``first_day`` to ``last_day``, for many questions.

        The finder applies the policy's buffer and the notice/window bounds as
        of now; published availability asks it for every appointment type.
        """
        return self._read(first_day, last_day)

    def _normalise(self, start: datetime, minutes: int) -> tuple[datetime, int, datetime]:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("start must be a timezone-aware datetime")
        if not 1 <= minutes <= LONGEST_APPOINTMENT_MINUTES:
            raise ValueError(
                f"minutes must be between 1 and {LONGEST_APPOINTMENT_MINUTES}, got {minutes}"
            )
        units = math.ceil(minutes / PATTERN_UNIT_MINUTES) * PATTERN_UNIT_MINUTES
        tz = self.diary.tz
        start = start.astimezone(tz)
        return start, units, diary_end(start, units, tz)

    def _days(self, start: datetime, end: datetime) -> tuple[date, date]:
        """The local days from ``start`` up to just before ``end``."""
        tz = self.diary.tz
        first = wall_clock(start, tz).date()
        last = wall_clock(end.astimezone(UTC) - timedelta(microseconds=1), tz).date()
        return first, max(first, last)

    def _early_refusal(self, start: datetime) -> SlotCheck | None:
        earliest, latest = self._bounds()
        if start < earliest:
            return SlotCheck(free=False, reason_code="too_soon")
        if start > latest:
            return SlotCheck(free=False, reason_code="outside_window")
        return None

    # -- questions ---------------------------------------------------------------

    def appointment_type(self, name_or_id: str) -> AppointmentType | None:
        """The visible type with this id, else the first (display order) with this name.

        Names match trimmed and case-insensitively. None when nothing matches.
        """
        wanted = name_or_id.strip()
        types = self.diary.appointment_types()
        for kind in types:
            if kind.id == wanted:
                return kind
        folded = wanted.casefold()
        for kind in types:
            if kind.name.casefold() == folded:
                return kind
        return None

    def check(
        self,
        start: datetime,
        minutes: int,
        provider_id: str,
        operatory_id: str,
        ignore_appointment: str | None = None,
    ) -> SlotCheck:
        """Whether the slot is free now; ``ignore_appointment`` is left out (a reschedule's own).

        A start outside the notice/window bounds is refused before any read.
        """
        start, _minutes, end = self._normalise(start, minutes)
        early = self._early_refusal(start)
        if early is not None:
            return early
        finder = self._read(*self._days(start, end))
        slot = Slot(start, end, provider_id, operatory_id)
        return finder.check(slot, ignore=ignore_appointment)

    def place(
        self,
        start: datetime,
        minutes: int,
        provider_id: str | None = None,
        operatory_id: str | None = None,
    ) -> Slot | SlotCheck:
        """A free slot at ``start``, choosing the provider/operatory not given.

        The choice is deterministic: Web Sched operatories first, then the
        diary's column order, operatory id, provider id
        (:meth:`~bridge.bookings.slots.SlotFinder.place`).
        """
        start, minutes, end = self._normalise(start, minutes)
        early = self._early_refusal(start)
        if early is not None:
            return early
        finder = self._read(*self._days(start, end))
        return finder.place(start, minutes, provider_id, operatory_id)

    def alternatives(
        self,
        start: datetime,
        minutes: int,
        provider_id: str | None = None,
        operatory_id: str | None = None,
        n: int = 3,
    ) -> list[Slot]:
        """Up to ``n`` free slots before ``start`` and ``n`` after, in time order."""
        start, minutes, _end = self._normalise(start, minutes)
        if n < 1:
            return []
        earliest, latest = self._bounds()
        if earliest > latest:
            return []
        anchor = min(max(start, earliest), latest)
        tz = self.diary.tz
        bound_days = (wall_clock(earliest, tz).date(), wall_clock(latest, tz).date())
        day = wall_clock(anchor, tz).date()
        before: list[Slot] = []
        after: list[Slot] = []
        for reach in (self.near_days, self.search_days):
            first = max(day - timedelta(days=reach), bound_days[0])
            last = min(day + timedelta(days=reach), bound_days[1])
            finder = self._read(first, last)
            before, after = self._nearest(finder, start, minutes, provider_id, operatory_id, n)
            searched_all = first == bound_days[0] and last == bound_days[1]
            if (len(before) >= n and len(after) >= n) or searched_all:
                break
        return before + after

    @staticmethod
    def _nearest(
        finder: SlotFinder,
        start: datetime,
        minutes: int,
        provider_id: str | None,
        operatory_id: str | None,
        n: int,
    ) -> tuple[list[Slot], list[Slot]]:
        operatories: Collection[str] | None = None
        if provider_id is None and operatory_id is not None:
            operatories = {operatory_id}
        return finder.nearest_free(
            start,
            minutes,
            provider_id=provider_id,
            operatory_ids=operatories,
            n=n,
            prefer_operatory=operatory_id,
        )

    def overlapping(
        self,
        start: datetime,
        minutes: int,
        operatory_id: str,
        provider_id: str,
        ignore_appointment: str | None = None,
    ) -> list[str]:
        """Ids of occupying appointments overlapping the slot in its operatory or provider.

        The verify step after writing a hold (pass the hold as
        ``ignore_appointment``); no buffer, no bounds.
        """
        start, _minutes, end = self._normalise(start, minutes)
        snapshot = self.diary.read(*self._days(start, end))
        finder = SlotFinder(snapshot, step_minutes=self.step_minutes)
        return finder.overlapping(Slot(start, end, provider_id, operatory_id), ignore_appointment)

    def free_slots(
        self,
        start: datetime,
        end: datetime,
        minutes: int,
        *,
        provider_id: str | None = None,
        operatory_ids: Collection[str] | None = None,
    ) -> list[Slot]:
        """Every free slot of ``minutes`` starting in ``[start, end)`` (one read).

        For published availability: one slot per free (start, provider,
        operatory), within the notice and window bounds.
        """
        start, minutes, _end = self._normalise(start, minutes)
        if end.tzinfo is None:
            raise ValueError("end must be a timezone-aware datetime")
        earliest, latest = self._bounds()
        start, end = max(start, earliest), min(end, latest + timedelta(seconds=1))
        if end <= start:
            return []
        finder = self._read(*self._days(start, end))
        return finder.free_slots(
            start, end, minutes, provider_id=provider_id, operatory_ids=operatory_ids
        )


__all__ = ["BookingBounds", "SlotEngine"]
