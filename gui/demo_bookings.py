"""Online booking requests that end at the front desk, for the panel's tests and screenshots.

Each builder reads the demo practice (through ODBC, as the bridge does) and
returns a ``booking.request`` payload that the real booking pipeline turns
into one kind of front-desk exception:

* :func:`approval_request` - a new patient asks for the appointment type the
  demo world holds for approval (``approval_required``);
* :func:`doubtful_patient_request` - a known patient's name and birth date
  with a phone number the practice does not have (the match is not
  confirmed: ``unconfirmed_match``, with the patient as the candidate);
* :func:`taken_slot_request` - a time an existing appointment already holds
  (``slot_taken``, with free alternatives);
* :func:`exception_requests` - one of each, on slots apart.

:func:`send` puts a payload in the reference cloud's inbox; the engine takes
it from there. Needs ``sandbox/``; the panel never imports this module.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bridge.bookings.diary import OpenDentalDiary
from bridge.bookings.policy import Policy
from bridge.bookings.slot_engine import SlotEngine
from bridge.bookings.slots import Slot
from bridge.config import load_settings
from bridge.pms.odbc import OdbcSettings, PmsConnection, connect
from gui.demo_world import APPROVAL_TYPE, DemoWorld

NEW_PATIENT = {
    "first_name": "Quentin",
    "last_name": "Zylberstein",
    "date_of_birth": "1991-04-17",
    "phone": "+1 503 555 0199",
    "email": "quentin.z@example.com",
}


def _connect(world: DemoWorld) -> PmsConnection:
    return connect(OdbcSettings(connection_string=f"Driver={{SQLite3}};Database={world.db}"))


def _zone(world: DemoWorld) -> ZoneInfo:
    return ZoneInfo(load_settings(world.config_path).practice.timezone)


def free_slots(world: DemoWorld, type_name: str, count: int, days_ahead: int = 4) -> list[Slot]:
    """``count`` free slots for ``type_name``, a few days ahead, on different days if possible."""
    settings = load_settings(world.config_path)
    zone = _zone(world)
    with _connect(world) as conn:
        engine = SlotEngine(OpenDentalDiary(conn, zone), Policy.from_settings(settings.bookings))
        kind = engine.appointment_type(type_name)
        if kind is None:
            raise LookupError(f"the demo practice has no appointment type {type_name!r}")
        start = datetime.now(zone) + timedelta(days=days_ahead)
        slots = engine.free_slots(start, start + timedelta(days=14), kind.minutes)
    by_day: dict[object, Slot] = {}
    for slot in slots:
        by_day.setdefault(slot.start.date(), slot)
    chosen = list(by_day.values())[:count]
    if len(chosen) < count:
        chosen += [s for s in slots if s not in chosen][: count - len(chosen)]
    if len(chosen) < count:
        raise LookupError("the demo practice has too little free time")
    return chosen


def _body(slot: Slot, patient: dict[str, str], type_name: str) -> dict[str, Any]:
    return {
        "patient": patient,
        "start": slot.start.isoformat(),
        "appointment_type": type_name,
        "provider_id": slot.provider_id,
        "operatory_id": slot.operatory_id,
    }


def approval_request(world: DemoWorld, slot: Slot | None = None) -> dict[str, Any]:
    slot = slot or free_slots(world, APPROVAL_TYPE, 1)[0]
    return _body(slot, dict(NEW_PATIENT), APPROVAL_TYPE)


def doubtful_patient_request(world: DemoWorld, slot: Slot | None = None) -> dict[str, Any]:
    """A known patient (unique name and birth date) with an unknown phone number."""
    with _connect(world) as conn:
        rows = conn.execute(
            "SELECT p.FName, p.LName, p.Birthdate FROM patient p"
            " WHERE p.PatStatus = 0 AND p.Birthdate > '1900-01-01'"
            " AND (SELECT COUNT(*) FROM patient q WHERE q.Birthdate = p.Birthdate"
            "      AND q.LName = p.LName) = 1"
            " ORDER BY p.PatNum LIMIT 1"
        )
    first, last, born = rows[0][0], rows[0][1], rows[0][2]
    patient = {
        "first_name": str(first),
        "last_name": str(last),
        "date_of_birth": str(born)[:10],
        "phone": "+1 415 555 0142",
    }
    slot = slot or free_slots(world, "Recall", 1, days_ahead=8)[0]
    return _body(slot, patient, "Recall")


def taken_slot_request(world: DemoWorld) -> dict[str, Any]:
    """The time and chair of a scheduled appointment a few days ahead (on a day
    without blockouts, so that the reason is the appointment, not a blockout)."""
    zone = _zone(world)
    soon = (datetime.now(zone) + timedelta(days=2)).strftime("%Y-%m-%d")
    with _connect(world) as conn:
        rows = conn.execute(
            "SELECT a.AptDateTime, a.ProvNum, a.Op FROM appointment a"
            " JOIN operatory o ON o.OperatoryNum = a.Op AND o.ProvDentist = a.ProvNum"
            " WHERE a.AptStatus = 1 AND a.AptDateTime > ?"
            " AND NOT EXISTS (SELECT 1 FROM schedule s WHERE s.SchedType = 2"
            "                 AND s.SchedDate = date(a.AptDateTime))"
            " ORDER BY a.AptDateTime LIMIT 1",
            (soon,),
        )
    when, provider, operatory = rows[0][0], rows[0][1], rows[0][2]
    start = datetime.fromisoformat(str(when)).replace(tzinfo=zone)
    return {
        "patient": {
            "first_name": "Rosalind",
            "last_name": "Achterberg",
            "date_of_birth": "1979-08-02",
            "phone": "+1 503 555 0163",
            "email": "r.achterberg@example.com",
        },
        "start": start.isoformat(),
        "appointment_type": "Recall",
        "provider_id": str(provider),
        "operatory_id": str(operatory),
    }


def exception_requests(world: DemoWorld) -> list[dict[str, Any]]:
    """One request of each kind above, on slots that do not collide with each
    other, nor with the alternatives the taken slot's conflict offers (those
    are the free slots nearest to it, two days ahead): the approval and the
    doubtful patient are booked weeks later, so choosing an alternative
    still finds it free after the other two were booked."""
    return [
        approval_request(world, free_slots(world, APPROVAL_TYPE, 1, days_ahead=21)[0]),
        doubtful_patient_request(world, free_slots(world, "Recall", 1, days_ahead=28)[0]),
        taken_slot_request(world),
    ]


def send(world: DemoWorld, payload: dict[str, Any], kind: str = "booking.request") -> str:
    """Put the request in the cloud's inbox for the engine; returns the item id."""
    with world.admin() as admin:
        item = admin.enqueue(kind, payload)
    return item.id
