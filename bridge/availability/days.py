"""Which local days a diary change touches, and which days each row touched before.

A change to an appointment or a schedule row changes the free slots of the
local days it lies on *now* and of the days it lay on *before* (an
appointment moved from Monday to Friday frees Monday). The records the sync
loop observes carry only the new state, and a deleted row carries nothing,
so :class:`DayIndex` remembers, per row, the days it last touched:

* from every live diary read the availability upkeep makes (all occupying
  appointments of the days read, with their ids; the schedule rows of the
  days read, by key and date), and
* from every record the sync loop observes (its days, and its content hash,
  so a row re-read unchanged inside an overlap window costs nothing).

The index covers the published window: every row that touches a published
day was either read with that day or observed since. A row not in the
index touched no published day before, so only its new days matter. A
deleted row (a key the sync loop saw go) frees the days the index has for
it; one the index does not know touched no published day.

Days an appointment touches: from its start minus the buffer to its end
plus the buffer (the buffer is kept around it in its operatory), in the
practice's zone. A schedule row (provider hours, a blockout, a holiday)
touches its ``SchedDate``. Pure and thread-safe (one lock).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from bridge.bookings.slots import PATTERN_UNIT_MINUTES, diary_end, wall_clock
from bridge.sync.records import Record

APPOINTMENT = "appointment"
SCHEDULE = "schedule"
TRACKED = (APPOINTMENT, SCHEDULE)

Days = frozenset[date]


def span_days(start: datetime, end: datetime, tz: ZoneInfo) -> Days:
    """The local days from ``start`` up to just before ``end`` (at least ``start``'s day)."""
    first = wall_clock(start, tz).date()
    last = wall_clock(end.astimezone(UTC) - timedelta(microseconds=1), tz).date()
    return frozenset(first + timedelta(days=n) for n in range(max(0, (last - first).days) + 1))


def appointment_days(start: datetime, end: datetime, tz: ZoneInfo, buffer_minutes: int) -> Days:
    """The days an appointment ``[start, end)`` touches, its buffer included."""
    pad = timedelta(minutes=buffer_minutes)
    return span_days(start - pad, end + pad, tz)


def record_days(record: Record, tz: ZoneInfo, buffer_minutes: int) -> Days:
    """The days an observed ``appointment`` or ``schedule`` record touches now.

    An appointment without a usable start (``Planned``, the unscheduled list)
    and a schedule row without a date touch none.
    """
    data = record.data
    if record.entity == SCHEDULE:
        text = data.get("date")
        try:
            return frozenset({date.fromisoformat(str(text))}) if text else frozenset()
        except ValueError:
            return frozenset()
    text = data.get("start")
    if not text:
        return frozenset()
    try:
        start = datetime.fromisoformat(str(text))
    except ValueError:
        return frozenset()
    if start.tzinfo is None:
        return frozenset()
    raw = data.get("duration_minutes")
    minutes = raw if isinstance(raw, int) and raw > 0 else PATTERN_UNIT_MINUTES
    return appointment_days(start, diary_end(start, minutes, tz), tz, buffer_minutes)


class DayIndex:
    """Row -> the local days it last touched (see the module docstring)."""

    def __init__(self, tz: ZoneInfo, buffer_minutes: int) -> None:
        self.tz = tz
        self.buffer_minutes = buffer_minutes
        self._lock = threading.Lock()
        self._days: dict[tuple[str, str], Days] = {}
        self._hashes: dict[tuple[str, str], str] = {}
        self._reading: set[tuple[str, str]] | None = None  # rows observed during a read

    def __len__(self) -> int:
        with self._lock:
            return len(self._days)

    def days_of(self, entity: str, key: str) -> Days:
        with self._lock:
            return self._days.get((entity, key), frozenset())

    def observe(self, record: Record) -> Days:
        """A record the sync loop read: the days to recompute (empty if unchanged)."""
        row = (record.entity, record.key)
        with self._lock:
            if self._reading is not None:
                self._reading.add(row)
            if self._hashes.get(row) == record.hash:
                return frozenset()
            new = record_days(record, self.tz, self.buffer_minutes)
            old = self._days.get(row, frozenset())
            self._hashes[row] = record.hash
            if new:
                self._days[row] = new
            else:
                self._days.pop(row, None)
            return old | new

    def gone(self, entity: str, key: str) -> Days:
        """A row the PMS no longer has: the days it touched (empty if unknown)."""
        row = (entity, key)
        with self._lock:
            if self._reading is not None:
                self._reading.add(row)
            self._hashes.pop(row, None)
            return self._days.pop(row, frozenset())

    def begin_read(self) -> None:
        """A live read starts: rows observed from now on are newer than what it returns."""
        with self._lock:
            self._reading = set()

    def learn(self, entity: str, days: Iterable[date], found: Mapping[str, Days]) -> None:
        """What a live read of ``days`` found: every ``entity`` row touching them.

        Rows the index had on those days but the read did not find no longer
        touch them. Rows observed since :meth:`begin_read` keep what was
        observed (it is newer).
        """
        read = frozenset(days)
        with self._lock:
            fresh = self._reading or set()
            for row, had in list(self._days.items()):
                if row[0] != entity or row in fresh or row[1] in found or not had & read:
                    continue
                left = had - read
                if left:
                    self._days[row] = left
                else:
                    del self._days[row]
            for key, touched in found.items():
                row = (entity, key)
                if row in fresh:
                    continue
                self._days[row] = self._days.get(row, frozenset()) - read | touched

    def end_read(self) -> None:
        with self._lock:
            self._reading = None

    def retain(self, first: date, last: date) -> None:
        """Forget days outside ``first`` to ``last`` (they left the window)."""
        with self._lock:
            for row, had in list(self._days.items()):
                kept = frozenset(d for d in had if first <= d <= last)
                if kept != had:
                    if kept:
                        self._days[row] = kept
                    else:
                        del self._days[row]
                        self._hashes.pop(row, None)


__all__ = [
    "APPOINTMENT",
    "SCHEDULE",
    "TRACKED",
    "DayIndex",
    "Days",
    "appointment_days",
    "record_days",
    "span_days",
]
