"""The live reads the booking pipeline needs beyond the slot engine (Open Dental).

Every read goes through ODBC with indexed predicates: an appointment by its
key, the bridge's own hold by time and operatory (``indexAptDateTime``), and
definitions by category. Writes never happen here (see
:mod:`bridge.pms.writers`).

The bridge marks every appointment it writes with :func:`marker`, a short
reference derived from the inbox item id and no personal data, at the start
of the appointment's ``Note``. After a crash between writing a hold and
recording it, :meth:`BookingLookups.find_marked` finds that hold again, so
the pipeline never writes a second one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from bridge.pms.odbc import PmsConnection

MARKER_PREFIX = "[bridge ref "
DEFCAT_APPT_CONFIRMED = 2
DEFCAT_BILLING_TYPES = 4
SCHEDULED = 1
UNSCHEDULED = 3  # UnschedList: where a released hold goes
OCCUPYING_STATUSES = (1, 2, 4, 5, 7, 8)
"""Statuses Open Dental draws in the diary (everything but UnschedList 3 and
Planned 6, as its own calendar query does)."""


def marker(item_id: str) -> str:
    """The note marker of the appointment written for one inbox item."""
    digest = hashlib.sha256(item_id.encode("utf-8")).hexdigest()[:12]
    return f"{MARKER_PREFIX}{digest}]"


@dataclass(frozen=True)
class AppointmentRow:
    id: str
    patient_id: str
    status: int
    start: datetime  # aware, practice zone
    minutes: int
    pattern: str
    operatory_id: str
    provider_id: str
    hygienist_id: str | None
    type_id: str | None
    confirmed_id: str

    @property
    def occupies_chair(self) -> bool:
        return self.status in OCCUPYING_STATUSES


def _text(wall: datetime) -> str:
    """A wall-clock time as both drivers compare it with stored values (no fraction)."""
    return wall.strftime("%Y-%m-%d %H:%M:%S")


def _id(value: object) -> str:
    return str(int(value)) if isinstance(value, int | float | str) else "0"


class BookingLookups:
    """Reads for the pipeline on one PMS connection (not thread-safe)."""

    def __init__(self, conn: PmsConnection, tz: ZoneInfo) -> None:
        self.conn = conn
        self.tz = tz

    def _local(self, value: datetime) -> datetime:
        return value.replace(tzinfo=self.tz) if value.tzinfo is None else value.astimezone(self.tz)

    def _wall(self, value: datetime) -> datetime:
        return value.astimezone(self.tz).replace(tzinfo=None)

    def appointment(self, appointment_id: str) -> AppointmentRow | None:
        rows = self.conn.execute(
            "SELECT AptNum, PatNum, AptStatus, AptDateTime, Pattern, Op, ProvNum, ProvHyg,"
            " AppointmentTypeNum, Confirmed FROM appointment WHERE AptNum = ?",
            (int(appointment_id),),
            entity="appointment",
        )
        if not rows:
            return None
        row = rows[0]
        pattern = str(row["Pattern"] or "")
        hygienist = _id(row["ProvHyg"])
        type_id = _id(row["AppointmentTypeNum"])
        start = row["AptDateTime"]
        if not isinstance(start, datetime):
            return None  # a zero date: not a diary appointment
        return AppointmentRow(
            id=_id(row["AptNum"]),
            patient_id=_id(row["PatNum"]),
            status=int(row["AptStatus"] or 0),
            start=self._local(start),
            minutes=len(pattern) * 5,
            pattern=pattern,
            operatory_id=_id(row["Op"]),
            provider_id=_id(row["ProvNum"]),
            hygienist_id=hygienist if hygienist != "0" else None,
            type_id=type_id if type_id != "0" else None,
            confirmed_id=_id(row["Confirmed"]),
        )

    def find_marked(self, item_id: str, start: datetime, operatory_id: str) -> str | None:
        """The live hold the bridge wrote for ``item_id`` at this time and chair, if any
        (a released one, moved to the unscheduled list, does not count)."""
        rows = self.conn.execute(
            "SELECT AptNum FROM appointment WHERE AptDateTime = ? AND Op = ? AND Note LIKE ?"
            " AND AptStatus <> ?",
            (_text(self._wall(start)), int(operatory_id), marker(item_id) + "%", UNSCHEDULED),
            entity="appointment",
        )
        return _id(rows[0]["AptNum"]) if rows else None

    def has_clinic(self, clinic_id: str) -> bool:
        """Whether ``clinic_id`` is a visible clinic (location) of the practice."""
        rows = self.conn.execute(
            "SELECT ClinicNum FROM clinic WHERE ClinicNum = ? AND IsHidden = 0", (int(clinic_id),)
        )
        return bool(rows)

    def definition_id(self, category: int, name: str) -> str | None:
        """The visible definition of ``category`` whose name is ``name`` (case-insensitive)."""
        rows = self.conn.execute(
            "SELECT DefNum, ItemName FROM definition WHERE Category = ? AND IsHidden = 0"
            " ORDER BY ItemOrder, DefNum",
            (category,),
        )
        wanted = name.strip().casefold()
        for row in rows:
            if str(row["ItemName"] or "").strip().casefold() == wanted:
                return _id(row["DefNum"])
        return None

    def first_definition_id(self, category: int) -> str | None:
        rows = self.conn.execute(
            "SELECT DefNum FROM definition WHERE Category = ? AND IsHidden = 0"
            " ORDER BY ItemOrder, DefNum",
            (category,),
        )
        return _id(rows[0]["DefNum"]) if rows else None
