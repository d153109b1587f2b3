"""The practice's booking policy: which types book themselves, and when.

Per appointment type (by its PMS name, case-insensitive): ``auto`` writes
and confirms, ``approve`` writes a tentative hold and asks the front desk,
``never`` refuses (``not_bookable_online``). Per practice: the booking
window, the minimum notice and the buffer kept around appointments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bridge.config.model import BookingPolicy, Bookings


@dataclass(frozen=True)
class Policy:
    default: BookingPolicy
    by_type: dict[str, BookingPolicy]
    window: timedelta
    min_notice: timedelta
    buffer_minutes: int
    alternatives: int

    @classmethod
    def from_settings(cls, bookings: Bookings) -> Policy:
        return cls(
            default=bookings.default_policy,
            by_type={name.strip().casefold(): p for name, p in bookings.type_policies.items()},
            window=timedelta(days=bookings.window_days),
            min_notice=timedelta(minutes=bookings.min_notice_minutes),
            buffer_minutes=bookings.buffer_minutes,
            alternatives=bookings.alternatives,
        )

    def for_type(self, type_name: str) -> BookingPolicy:
        return self.by_type.get(type_name.strip().casefold(), self.default)

    def earliest(self, now: datetime) -> datetime:
        """The first start a booking may have."""
        return now + self.min_notice

    def latest(self, now: datetime) -> datetime:
        """The last start a booking may have."""
        return now + self.window

    def is_late(self, start: datetime, now: datetime) -> bool:
        """Whether changing an appointment at ``start`` is inside the minimum notice."""
        return start < self.earliest(now)
