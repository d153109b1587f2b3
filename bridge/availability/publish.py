"""Published availability, the pure part: free slots -> one record per local day.

The record (entity ``availability``, key the local date ``YYYY-MM-DD``)::

    {"date": "2026-12-01",
     "timezone": "America/Los_Angeles",
     "step_minutes": 15,
     "openings": [
        {"appointment_type_id": "2", "duration_minutes": 40,
         "provider_id": "1", "operatory_id": "3",
         "slots": [{"start": "2026-12-01T08:00:00-08:00",
                    "end": "2026-12-01T08:40:00-08:00"}, ...]},
        ...]}

One opening per bookable appointment type, provider and Web Sched operatory
that has at least one free slot that day; openings in the types' display
order, then operatory and provider id; slots in time order. A day with no
free slot (a holiday, a weekend) is published with ``openings: []``, so the
cloud can tell "fully booked" from "not computed". Nothing in the record
depends on when it was computed (no timestamps), so recomputing an
unchanged day stages nothing (the outbox drops an unchanged hash).

Which slots: :meth:`~bridge.bookings.slots.SlotFinder.free_slots` of the
type's default length, on the ``step_minutes`` wall-clock grid, in the
operatories marked for online booking (Open Dental ``IsWebSched``), with
every rule of the slot engine (provider hours per operatory, blockouts,
holidays, occupying appointments with the buffer, busy providers, the
notice and window bounds as of the computation). Which types: visible, with
a default length (a type without a pattern has no length to offer), and a
policy other than ``never``. No personal data: ids and times only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from bridge.bookings.diary import AppointmentType
from bridge.bookings.slots import Slot, SlotFinder, local_midnight, sorted_ids, wall_clock
from bridge.config.model import BookingPolicy
from bridge.sync.records import Record, content_hash

ENTITY = "availability"


@dataclass(frozen=True)
class Bookable:
    """An appointment type offered online: its id and default length."""

    id: str
    minutes: int


def bookable_types(
    types: Iterable[AppointmentType], policy_for: Callable[[str], BookingPolicy]
) -> list[Bookable]:
    """The types published, in display order (see the module docstring)."""
    return [
        Bookable(kind.id, kind.minutes)
        for kind in types
        if kind.minutes > 0 and policy_for(kind.name) != "never"
    ]


def day_key(day: date) -> str:
    return day.isoformat()


def runs(days: Iterable[date]) -> list[tuple[date, date]]:
    """Consecutive days grouped into (first, last) runs, in order."""
    out: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if out and day == out[-1][1] + timedelta(days=1):
            out[-1] = (out[-1][0], day)
        else:
            out.append((day, day))
    return out


def web_sched_operatories(finder: SlotFinder) -> list[str]:
    return list(sorted_ids(op.id for op in finder.snapshot.operatories if op.web_sched))


def day_records(
    finder: SlotFinder,
    first: date,
    last: date,
    types: Sequence[Bookable],
    *,
    timezone: str,
) -> list[Record]:
    """The availability record of every day from ``first`` to ``last`` (inside the finder's)."""
    tz = finder.tz
    operatories = web_sched_operatories(finder)
    start, end = local_midnight(first, tz), local_midnight(last + timedelta(days=1), tz)
    by_day: dict[date, dict[tuple[str, str, str], list[Slot]]] = {}
    order: dict[str, int] = {kind.id: n for n, kind in enumerate(types)}
    minutes = {kind.id: kind.minutes for kind in types}
    if operatories:
        for kind in types:
            for slot in finder.free_slots(start, end, kind.minutes, operatory_ids=operatories):
                day = wall_clock(slot.start, tz).date()
                opening = (kind.id, slot.operatory_id, slot.provider_id)
                by_day.setdefault(day, {}).setdefault(opening, []).append(slot)
    records = []
    day = first
    while day <= last:
        openings = by_day.get(day, {})
        ranked = sorted(openings, key=lambda o: (order[o[0]], _id(o[1]), _id(o[2])))
        data: dict[str, Any] = {
            "date": day.isoformat(),
            "timezone": timezone,
            "step_minutes": finder.step_minutes,
            "openings": [
                {
                    "appointment_type_id": type_id,
                    "duration_minutes": minutes[type_id],
                    "provider_id": provider_id,
                    "operatory_id": operatory_id,
                    "slots": [
                        {"start": s.start.isoformat(), "end": s.end.isoformat()}
                        for s in sorted(openings[(type_id, operatory_id, provider_id)], key=_at)
                    ],
                }
                for type_id, operatory_id, provider_id in ranked
            ],
        }
        records.append(Record(ENTITY, day_key(day), data, None, content_hash(data)))
        day += timedelta(days=1)
    return records


def _id(value: str) -> tuple[int, int, str]:
    """Ids in numeric order when they are numbers, then the rest."""
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def _at(slot: Slot) -> float:
    return slot.start.timestamp()


__all__ = [
    "ENTITY",
    "Bookable",
    "bookable_types",
    "day_key",
    "day_records",
    "runs",
    "web_sched_operatories",
]
