"""The practice calendar: the diary's date range, holidays, DST Sundays.

All times in the database are naive local times of the practice's time zone
(:data:`TIMEZONE`), as Open Dental stores them. Helpers here format them the
way both targets accept (``YYYY-MM-DD`` and ``YYYY-MM-DD HH:MM:SS``).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

TIMEZONE = "America/Los_Angeles"

NO_DATE = "0001-01-01"
NO_DATETIME = "0001-01-01 00:00:00"
LEGACY_ZERO_DATE = "0000-00-00"
LEGACY_ZERO_DATETIME = "0000-00-00 00:00:00"

SATURDAY, SUNDAY = 5, 6


def add_months(day: date, months: int) -> date:
    """The same day of the month ``months`` later (clamped to the month's end)."""
    year, month0 = divmod(day.year * 12 + day.month - 1 + months, 12)
    last_day = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(day.day, last_day))


@dataclass(frozen=True)
class DiarySpan:
    """The diary covers ``start`` (inclusive) to ``end`` (exclusive)."""

    start: date
    end: date
    today: date

    @classmethod
    def around(cls, today: date) -> DiarySpan:
        """About 18 months of history and 6 months of future around ``today``."""
        return cls(add_months(today, -18), add_months(today, 6), today)

    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days)]


def _observed(day: date) -> date:
    if day.weekday() == SATURDAY:
        return day - timedelta(days=1)
    if day.weekday() == SUNDAY:
        return day + timedelta(days=1)
    return day


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    last = add_months(date(year, month, 1), 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def practice_holidays(start: date, end: date) -> dict[date, str]:
    """Weekday holidays the practice is closed on, between start and end."""
    holidays: dict[date, str] = {}
    for year in range(start.year, end.year + 2):
        thanksgiving = _nth_weekday(year, 11, 3, 4)
        for day, name in (
            (_observed(date(year, 1, 1)), "New Year's Day"),
            (_last_weekday(year, 5, 0), "Memorial Day"),
            (_observed(date(year, 7, 4)), "Independence Day"),
            (_nth_weekday(year, 9, 0, 1), "Labor Day"),
            (thanksgiving, "Thanksgiving"),
            (thanksgiving + timedelta(days=1), "Day after Thanksgiving"),
            (_observed(date(year, 12, 25)), "Christmas Day"),
        ):
            if start <= day < end:
                holidays[day] = name
    return dict(sorted(holidays.items()))


def dst_sundays(start: date, end: date, timezone: str = TIMEZONE) -> list[date]:
    """Days in [start, end) on which the zone's UTC offset changes."""
    zone = ZoneInfo(timezone)
    found = []
    day = start
    while day < end:
        midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
        next_midnight = midnight + timedelta(days=1)
        if midnight.utcoffset() != next_midnight.utcoffset():
            found.append(day)
        day += timedelta(days=1)
    return found


_CLOCK = tuple(f"{minute // 60:02d}:{minute % 60:02d}:00" for minute in range(24 * 60))


def clock(minute: int) -> str:
    """``HH:MM:SS`` for ``minute`` minutes after midnight (0 <= minute < 1440)."""
    return _CLOCK[minute]


def at(day: str, minute: int) -> str:
    """``YYYY-MM-DD HH:MM:SS`` for ``minute`` minutes after midnight of ``day``."""
    return f"{day} {_CLOCK[minute]}"


def stamp(day: date, minute: int) -> str:
    """A change stamp: ``minute`` clamped into 06:00-22:00.

    Stamps are MariaDB TIMESTAMPs, converted through the server's time zone;
    keeping them out of the small hours keeps them clear of DST gaps and
    repeats, so the value read back is the value written on every server.
    """
    return at(day.isoformat(), min(max(minute, 6 * 60), 22 * 60))
