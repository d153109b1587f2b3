"""Collisions after the fact: every overlap with a bridge booking is reported.

The pipeline verifies its hold right after writing it, but the PMS's own
client takes no locks: a receptionist can still put an appointment on top
of a booking a second (or a week) later. :class:`CollisionWatch` finds
those so none stays silent: each overlap opens a ``double_booked``
exception for the front desk (keep both, or take the bridge's booking out
of the diary) and an audit entry.

Two ways in:

* :meth:`CollisionWatch.appointments_changed` takes the keys of
  appointments the read path saw change (a hint; no PMS query when none
  changed) and checks each against the bridge's live bookings, which are
  kept in local state;
* :meth:`CollisionWatch.sweep` checks every future bridge booking against
  the live diary (a safety net, run rarely, and by tests).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from bridge import audit
from bridge.bookings import exceptions as desk
from bridge.bookings.lookups import AppointmentRow
from bridge.bookings.pipeline import ACTOR, BookingPipeline
from bridge.state.models import Booking, BookingException

log = logging.getLogger(__name__)

LIVE_STAGES = ("confirmed", "awaiting_approval")
REASON = "double_booked"


@dataclass(frozen=True)
class _Live:
    item_id: str
    appointment_id: str
    start: datetime
    end: datetime
    operatory_id: str
    provider_id: str


class CollisionWatch:
    """Finds appointments overlapping bookings the bridge wrote (module docstring)."""

    def __init__(self, pipeline: BookingPipeline) -> None:
        self.pipeline = pipeline

    def _live(self, *, future_only: bool = True) -> list[_Live]:
        now = self.pipeline.now()
        with self.pipeline.store.read() as session:
            rows = session.scalars(
                select(Booking).where(
                    Booking.stage.in_(LIVE_STAGES), Booking.appointment_id.is_not(None)
                )
            ).all()
            found = []
            for row in rows:
                slot = json.loads(row.detail).get("slot")
                if not slot or row.appointment_id is None:
                    continue
                start = datetime.fromisoformat(slot["start"])
                end = datetime.fromisoformat(slot["end"])
                if future_only and end < now:
                    continue
                found.append(
                    _Live(
                        row.item_id,
                        row.appointment_id,
                        start,
                        end,
                        str(slot["operatory_id"]),
                        str(slot["provider_id"]),
                    )
                )
        return found

    def appointments_changed(self, keys: Iterable[str]) -> int:
        """Check changed appointments against live bridge bookings; returns collisions opened."""
        live = self._live()
        if not live:
            return 0
        ours = {b.appointment_id for b in live}
        changed = [k for k in dict.fromkeys(keys) if k not in ours]
        if not changed:
            return 0

        def work(pms: Any) -> int:
            opened = 0
            lookups = pms.lookups
            for key in changed:
                if not key.isdigit():
                    continue
                other = lookups.appointment(key)
                if other is None or not other.occupies_chair:
                    continue
                for booking in live:
                    if _collides(booking, other) and _stands(
                        lookups.appointment(booking.appointment_id), booking
                    ):
                        opened += self._report(booking, [other.id])
            return opened

        return self.pipeline.with_pms(work)

    def sweep(self) -> int:
        """Check every future bridge booking against the live diary; returns collisions opened."""
        live = self._live()

        def work(pms: Any) -> int:
            opened = 0
            for booking in live:
                if not _stands(pms.lookups.appointment(booking.appointment_id), booking):
                    continue
                minutes = int((booking.end - booking.start).total_seconds() // 60)
                others = pms.slots.overlapping(
                    booking.start,
                    minutes,
                    booking.operatory_id,
                    booking.provider_id,
                    booking.appointment_id,
                )
                if others:
                    opened += self._report(booking, list(others))
            return opened

        return self.pipeline.with_pms(work)

    def _report(self, booking: _Live, others: list[str]) -> int:
        """Open one double_booked exception per booking (idempotent)."""
        store = self.pipeline.store
        with store.write() as session:
            already = session.scalars(
                select(BookingException.id).where(
                    BookingException.item_id == booking.item_id,
                    BookingException.reason_code == REASON,
                    BookingException.state == desk.OPEN,
                )
            ).first()
            if already is not None:
                return 0
            context = {
                "type": "booking.request",
                "pms_ids": {"appointment": booking.appointment_id},
                "slot": {
                    "start": booking.start.isoformat(),
                    "end": booking.end.isoformat(),
                    "provider_id": booking.provider_id,
                    "operatory_id": booking.operatory_id,
                },
                "overlapping": others,
                "alternatives": [],
            }
            exception_id = desk.open_exception(session, booking.item_id, REASON, context)
            audit.append(
                session,
                "decision.double_booked",
                actor=ACTOR,
                subject=f"inbox:{booking.item_id}",
                data={
                    "exception": exception_id,
                    "appointment": booking.appointment_id,
                    "overlapping": others,
                },
            )
        log.warning(
            "an appointment overlaps a bridge booking; the front desk is asked",
            extra={"appointment": booking.appointment_id, "overlapping": len(others)},
        )
        return 1


def _stands(mine: AppointmentRow | None, booking: _Live) -> bool:
    """Whether the bridge's appointment still occupies the slot it was booked in."""
    return (
        mine is not None
        and mine.occupies_chair
        and mine.start == booking.start
        and mine.operatory_id == booking.operatory_id
    )


def _collides(booking: _Live, other: AppointmentRow) -> bool:
    other_end = other.start + timedelta(minutes=other.minutes)
    if not (other.start < booking.end and booking.start < other_end):
        return False
    return other.operatory_id == booking.operatory_id or booking.provider_id in (
        other.provider_id,
        other.hygienist_id,
    )
