"""The live read side of the slot engine: the PMS diary through ODBC.

A :class:`Diary` turns the PMS's rows for some local days into a
:class:`~bridge.bookings.slots.DiarySnapshot` (the pure part's input) and
lists the appointment types. :class:`OpenDentalDiary` is the Open Dental
one; a Dentrix or Eaglesoft diary implements the same Protocol.

Open Dental, one :meth:`OpenDentalDiary.read` = four statements, each on an
index or a small set-up table:

1. ``operatory`` (a few dozen rows): visible operatories, their clinic,
   ``IsWebSched``, ``ItemOrder``, default dentist and hygienist;
2. ``provider``: visible, not deleted (``ProvStatus`` 1), with ``DateTerm``;
3. ``schedule`` ``LEFT JOIN scheduleop`` for ``SchedDate`` in the days
   (index ``SchedDate``, then ``scheduleop.ScheduleNum``), ``SchedType``
   0/1/2 only;
4. ``appointment`` for ``AptDateTime`` from the longest possible appointment
   (255 pattern units) before the first day to the margin after the last,
   ``AptStatus`` in the occupying statuses (index ``StatusDate`` or
   ``indexAptDateTime``).

How rows become the snapshot (decisions; Open Dental facts in
``pms/schemas.md`` §1.3-1.4):

* **Provider hours**: ``SchedType=1`` rows with ``Status`` 0 (Open) and a
  provider, ``StartTime`` to ``StopTime`` on ``SchedDate``, in each
  operatory ``scheduleop`` links. A provider row with *no* ``scheduleop``
  row applies to the visible operatories whose ``ProvDentist`` or
  ``ProvHygienist`` is that provider. A ``StopTime`` of 00:00 after a
  later start means midnight at the end of the day.
* **Blockouts**: ``SchedType=2`` rows in each linked operatory; one with no
  ``scheduleop`` row blocks every operatory, and one whose times cannot be
  read blocks its whole day (an unreadable blockout must not free time).
* **Holidays**: ``SchedType=0`` with ``Status=2``, the whole local day, for
  the operatories of its ``ClinicNum`` (0: all). Other practice rows are
  notes and are ignored.
* **Appointments**: ``AptDateTime`` plus ``5 * len(Pattern)`` minutes (an
  empty pattern counts as one unit, so a damaged row still holds its
  start), in ``Op`` (0: no operatory). Busy providers: the hygienist alone
  for a hygiene appointment (``IsHygiene=1`` with a ``ProvHyg``), whose
  ``ProvNum`` is the patient's dentist of record doing a short exam;
  otherwise ``ProvNum``, and ``ProvHyg`` too when one is set. Statuses:
  :data:`~bridge.bookings.slots.OCCUPYING_STATUSES`.
* **Zero dates**: the ODBC layer turns ``0000-00-00`` into None; rows
  without a usable date or time are skipped (logged with their key only),
  except blockouts as above.
* **Time**: wall-clock values become aware times in the practice zone with
  :func:`bridge.pms.convert.localize`; appointment ends with
  :func:`~bridge.bookings.slots.diary_end`.

Date and time parameters are bound as ISO text (``YYYY-MM-DD HH:MM:SS``):
the SQLite ODBC driver binds a ``datetime`` with a ``.000`` fraction, so a
stored ``10:00:00`` would not equal, nor be ``>=``, a bound ``10:00``;
MariaDB compares the text as a DATETIME, still on the index.

A diary is used by one thread at a time (its connection is).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from bridge.bookings.slots import (
    LONGEST_APPOINTMENT_MINUTES,
    OCCUPYING_STATUSES,
    PATTERN_UNIT_MINUTES,
    Appointment,
    Blockout,
    DiarySnapshot,
    Holiday,
    Operatory,
    Provider,
    WorkBlock,
    diary_end,
    local_midnight,
)
from bridge.pms.convert import ZERO_YEAR_CUTOFF, localize
from bridge.pms.odbc import PmsConnection, Row

log = logging.getLogger(__name__)

PRACTICE, PROVIDER, BLOCKOUT = 0, 1, 2
OPEN, HOLIDAY = 0, 2
DELETED_PROVIDER = 1
_SLACK = timedelta(hours=1)  # read bounds are wall-clock; an hour covers a clock change


@dataclass(frozen=True)
class AppointmentType:
    """An appointment type the practice books.

    ``minutes`` is the default length (``5 * len(pattern)``); 0 when the
    type has no default pattern, so the request must give a duration.
    """

    id: str
    name: str
    minutes: int
    pattern: str


class Diary(Protocol):
    """What the slot engine reads from a PMS (one implementation per PMS)."""

    @property
    def tz(self) -> ZoneInfo:
        """The practice's zone: the PMS's wall-clock times are in it."""
        ...

    def appointment_types(self) -> list[AppointmentType]:
        """The visible appointment types, in the PMS's display order."""
        ...

    def read(
        self, first_day: date, last_day: date, *, margin: timedelta = timedelta(0)
    ) -> DiarySnapshot:
        """The diary for the local days ``first_day`` to ``last_day`` (inclusive).

        Appointments starting up to ``margin`` after the last day are
        included (see :class:`~bridge.bookings.slots.DiarySnapshot`).
        Raises :class:`~bridge.errors.PmsError` when the PMS cannot be read.
        """
        ...


def _text_datetime(wall: datetime) -> str:
    return wall.strftime("%Y-%m-%d %H:%M:%S")


def _key(value: object) -> str | None:
    """A row key or foreign key as a string; None for Open Dental's 0 ("none")."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return str(number) if number > 0 else None


def _int(value: object, default: int = 0) -> int:
    try:
        return int(str(value).strip()) if value is not None else default
    except ValueError:
        return default


def _day(value: object) -> date | None:
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date) and value.year >= ZERO_YEAR_CUTOFF:
        return value
    return None


def _clock(value: object) -> timedelta | None:
    """A TIME value as the time since midnight (None if unreadable)."""
    if isinstance(value, time):
        return timedelta(hours=value.hour, minutes=value.minute, seconds=value.second)
    if isinstance(value, timedelta) and timedelta(0) <= value <= timedelta(days=1):
        return value
    if isinstance(value, str):
        try:
            return _clock(time.fromisoformat(value.strip()))
        except ValueError:
            return None
    return None


def pattern_minutes(pattern: str) -> int:
    """An Open Dental ``Pattern``'s length in minutes (at least one unit)."""
    return max(1, len(pattern)) * PATTERN_UNIT_MINUTES


@dataclass(frozen=True)
class _Chair:
    operatory: Operatory
    dentist: str | None
    hygienist: str | None


class OpenDentalDiary:
    """Open Dental's diary, read live through one :class:`PmsConnection` (see module doc)."""

    def __init__(self, conn: PmsConnection, tz: ZoneInfo) -> None:
        self.conn = conn
        self.tz = tz

    # -- appointment types -------------------------------------------------------

    def appointment_types(self) -> list[AppointmentType]:
        rows = self.conn.execute(
            "SELECT AppointmentTypeNum, AppointmentTypeName, Pattern, IsHidden, ItemOrder"
            " FROM appointmenttype",
            entity="appointment_type",
        )
        visible = [r for r in rows if _int(r["IsHidden"]) == 0 and _key(r["AppointmentTypeNum"])]
        visible.sort(key=lambda r: (_int(r["ItemOrder"]), _int(r["AppointmentTypeNum"])))
        types = []
        for row in visible:
            pattern = "".join(str(row["Pattern"] or "").split()).upper()
            types.append(
                AppointmentType(
                    id=_key(row["AppointmentTypeNum"]) or "",
                    name=str(row["AppointmentTypeName"] or "").strip(),
                    minutes=len(pattern) * PATTERN_UNIT_MINUTES,
                    pattern=pattern,
                )
            )
        return types

    # -- the diary ---------------------------------------------------------------

    def read(
        self, first_day: date, last_day: date, *, margin: timedelta = timedelta(0)
    ) -> DiarySnapshot:
        if last_day < first_day:
            raise ValueError("last_day is before first_day")
        chairs = self._chairs()
        providers = self._providers()
        work, blockouts, holidays = self._schedules(first_day, last_day, chairs)
        appointments = self._appointments(first_day, last_day, margin)
        return DiarySnapshot(
            tz=self.tz,
            first_day=first_day,
            last_day=last_day,
            operatories=tuple(c.operatory for c in chairs.values()),
            providers=providers,
            appointments=appointments,
            work=work,
            blockouts=blockouts,
            holidays=holidays,
            appointment_margin=margin,
        )

    def _chairs(self) -> dict[str, _Chair]:
        rows = self.conn.execute(
            "SELECT OperatoryNum, IsHidden, IsWebSched, ItemOrder, ClinicNum, ProvDentist,"
            " ProvHygienist FROM operatory",
            entity="operatory",
        )
        chairs: dict[str, _Chair] = {}
        for row in rows:
            op = _key(row["OperatoryNum"])
            if op is None or _int(row["IsHidden"]) != 0:
                continue
            chairs[op] = _Chair(
                Operatory(
                    id=op,
                    clinic_id=_key(row["ClinicNum"]),
                    web_sched=_int(row["IsWebSched"]) == 1,
                    order=_int(row["ItemOrder"]),
                ),
                dentist=_key(row["ProvDentist"]),
                hygienist=_key(row["ProvHygienist"]),
            )
        return chairs

    def _providers(self) -> tuple[Provider, ...]:
        rows = self.conn.execute(
            "SELECT ProvNum, IsHidden, ProvStatus, DateTerm FROM provider", entity="provider"
        )
        return tuple(
            Provider(id=key, last_day=_day(row["DateTerm"]))
            for row in rows
            if (key := _key(row["ProvNum"])) is not None
            and _int(row["IsHidden"]) == 0
            and _int(row["ProvStatus"]) != DELETED_PROVIDER
        )

    def _schedules(
        self, first_day: date, last_day: date, chairs: dict[str, _Chair]
    ) -> tuple[tuple[WorkBlock, ...], tuple[Blockout, ...], tuple[Holiday, ...]]:
        rows = self.conn.execute(
            "SELECT s.ScheduleNum, s.SchedDate, s.StartTime, s.StopTime, s.SchedType,"
            " s.ProvNum, s.Status, s.ClinicNum, so.OperatoryNum"
            " FROM schedule s LEFT JOIN scheduleop so ON so.ScheduleNum = s.ScheduleNum"
            " WHERE s.SchedDate >= ? AND s.SchedDate <= ? AND s.SchedType IN (0, 1, 2)"
            " ORDER BY s.ScheduleNum",
            (first_day.isoformat(), last_day.isoformat()),
            entity="schedule",
        )
        linked: dict[str, list[str]] = {}
        first_rows: dict[str, Row] = {}
        for row in rows:
            num = _key(row["ScheduleNum"])
            if num is None:
                continue
            first_rows.setdefault(num, row)
            ops = linked.setdefault(num, [])
            op = _key(row["OperatoryNum"])
            if op is not None and op not in ops:
                ops.append(op)
        work: list[WorkBlock] = []
        blockouts: list[Blockout] = []
        holidays: list[Holiday] = []
        for num, row in first_rows.items():
            day = _day(row["SchedDate"])
            kind, status = _int(row["SchedType"], -1), _int(row["Status"])
            if day is None:
                log.warning(
                    "schedule row skipped: no usable SchedDate",
                    extra={"table": "schedule", "key": num},
                )
            elif kind == PRACTICE and status == HOLIDAY:
                holidays.append(Holiday(day, _key(row["ClinicNum"])))
            elif kind == PROVIDER and status == OPEN:
                work.extend(self._work(num, row, day, linked[num], chairs))
            elif kind == BLOCKOUT:
                blockouts.extend(self._blockouts(num, row, day, linked[num] or list(chairs)))
        return tuple(work), tuple(blockouts), tuple(holidays)

    def _work(
        self, num: str, row: Row, day: date, ops: list[str], chairs: dict[str, _Chair]
    ) -> list[WorkBlock]:
        provider = _key(row["ProvNum"])
        span = self._span(day, row["StartTime"], row["StopTime"])
        if span is None:
            log.warning(
                "provider schedule skipped: unreadable times",
                extra={"table": "schedule", "key": num},
            )
        if provider is None or span is None:
            return []
        if not ops:  # no scheduleop row: the operatories the provider is the default of
            ops = [op for op, c in chairs.items() if provider in (c.dentist, c.hygienist)]
        return [WorkBlock(provider, op, *span) for op in ops]

    def _blockouts(self, num: str, row: Row, day: date, ops: list[str]) -> list[Blockout]:
        span = self._span(day, row["StartTime"], row["StopTime"])
        if span is None:
            log.warning(
                "blockout with unreadable times blocks its whole day",
                extra={"table": "schedule", "key": num},
            )
            span = (local_midnight(day, self.tz), local_midnight(day + timedelta(days=1), self.tz))
        return [Blockout(op, *span) for op in ops]

    def _span(self, day: date, start: object, stop: object) -> tuple[datetime, datetime] | None:
        begin, end = _clock(start), _clock(stop)
        if begin is None or end is None:
            return None
        if end == timedelta(0) and begin > timedelta(0):
            end = timedelta(days=1)
        if end <= begin:
            return (localize(datetime.combine(day, time()) + begin, self.tz),) * 2
        midnight = datetime.combine(day, time())
        return localize(midnight + begin, self.tz), localize(midnight + end, self.tz)

    def _appointments(
        self, first_day: date, last_day: date, margin: timedelta
    ) -> tuple[Appointment, ...]:
        low = (
            datetime.combine(first_day, time())
            - timedelta(minutes=LONGEST_APPOINTMENT_MINUTES)
            - _SLACK
        )
        high = datetime.combine(last_day + timedelta(days=1), time()) + margin + _SLACK
        statuses = ", ".join(str(s) for s in sorted(OCCUPYING_STATUSES))
        rows = self.conn.execute(
            "SELECT AptNum, AptStatus, AptDateTime, Pattern, Op, ProvNum, ProvHyg, IsHygiene"
            " FROM appointment"
            f" WHERE AptStatus IN ({statuses}) AND AptDateTime >= ? AND AptDateTime < ?",
            (_text_datetime(low), _text_datetime(high)),
            entity="appointment",
        )
        return tuple(self._appointment(row) for row in rows if self._usable(row))

    @staticmethod
    def _usable(row: Row) -> bool:
        wall = row["AptDateTime"]
        if _key(row["AptNum"]) is None:
            return False
        if not isinstance(wall, datetime) or wall.year < ZERO_YEAR_CUTOFF:
            log.warning(
                "appointment skipped: no usable AptDateTime",
                extra={"table": "appointment", "key": _key(row["AptNum"])},
            )
            return False
        return True

    def _appointment(self, row: Row) -> Appointment:
        wall = row["AptDateTime"]
        assert isinstance(wall, datetime)
        start = localize(wall.replace(microsecond=0), self.tz)
        pattern = str(row["Pattern"] or "").strip()
        dentist, hygienist = _key(row["ProvNum"]), _key(row["ProvHyg"])
        busy: Iterable[str | None]
        if _int(row["IsHygiene"]) == 1 and hygienist is not None:
            busy = (hygienist,)
        else:
            busy = (dentist, hygienist)
        return Appointment(
            id=_key(row["AptNum"]) or "",
            status=_int(row["AptStatus"]),
            operatory_id=_key(row["Op"]),
            provider_ids=frozenset(p for p in busy if p is not None),
            start=start,
            end=diary_end(start, pattern_minutes(pattern), self.tz),
        )


__all__ = ["AppointmentType", "Diary", "OpenDentalDiary", "pattern_minutes"]
