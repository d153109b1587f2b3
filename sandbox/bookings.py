"""Booking requests the reference cloud can send: clean, clashing and ambiguous.

:func:`booking_requests` reads the sample practice through ODBC (as the
bridge does) and builds ``booking.request`` payloads of three kinds:

* ``clean``: a free slot (found with the bridge's own slot engine) for a
  known patient, confirmed by their mobile number, or for a new patient;
* ``clash``: the time and chair of an appointment already in the diary;
* ``ambiguous``: a known patient's name and birth date with a phone that
  is not theirs, so no match can be confirmed and the front desk decides.

``python -m sandbox bookings --practice <connection string> --cloud-admin
<url>`` queues them in a running reference cloud; the demo queues them in
its own. The payloads name synthetic patients of the sample practice only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import click

from bridge.bookings.diary import OpenDentalDiary
from bridge.bookings.policy import Policy
from bridge.bookings.slot_engine import SlotEngine
from bridge.config.model import Bookings
from bridge.pms.odbc import OdbcSettings, connect
from sandbox.practice import TIMEZONE


@dataclass(frozen=True)
class PlannedBooking:
    kind: str  # clean, clash, ambiguous
    payload: dict[str, Any]


def _known_patients(conn: Any, limit: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT PatNum, FName, LName, Birthdate, WirelessPhone FROM patient p"
        " WHERE PatStatus = 0 AND WirelessPhone <> '' AND Birthdate > '1900-01-01'"
        " AND (SELECT COUNT(*) FROM patient q WHERE q.Birthdate = p.Birthdate"
        " AND q.LName = p.LName) = 1 ORDER BY PatNum LIMIT ?",
        (limit,),
    )
    return [dict(row) for row in rows]


def _person(row: dict[str, Any], phone: str | None = None) -> dict[str, Any]:
    return {
        "first_name": row["FName"],
        "last_name": row["LName"],
        "date_of_birth": str(row["Birthdate"])[:10],
        "phone": phone or row["WirelessPhone"],
    }


def booking_requests(
    connection_string: str,
    *,
    clean: int = 3,
    clash: int = 1,
    ambiguous: int = 1,
    timezone: str = TIMEZONE,
    appointment_type: str = "Recall",
    minutes: int = 30,
) -> list[PlannedBooking]:
    """Payloads for the practice at ``connection_string`` (see the module docstring)."""
    tz = ZoneInfo(timezone)
    planned: list[PlannedBooking] = []
    with connect(OdbcSettings(connection_string=connection_string)) as conn:
        engine = SlotEngine(OpenDentalDiary(conn, tz), Policy.from_settings(Bookings()))
        start = datetime.now(tz) + timedelta(days=3)
        free = engine.free_slots(start, start + timedelta(days=30), minutes)
        taken: list[Any] = []
        for slot in free:
            if all(slot.start >= s.end or s.start >= slot.end for s in taken):
                taken.append(slot)
            if len(taken) == clean + ambiguous:
                break
        patients = _known_patients(conn, clean + ambiguous + 1)
        for number, slot in enumerate(taken[:clean]):
            who = (
                _person(patients[number])
                if number % 2 == 0
                else {
                    "first_name": "Noor",
                    "last_name": f"Okonkwo-{'ABCDEFGH'[number % 8]}llis",
                    "date_of_birth": "1990-06-1" + str(number % 9),
                    "email": f"noor{number}@example.com",
                }
            )
            planned.append(PlannedBooking("clean", _payload(who, slot, appointment_type, minutes)))
        for number, slot in enumerate(taken[clean : clean + ambiguous]):
            who = _person(patients[clean + number], phone="+1 212 555 0142")
            planned.append(
                PlannedBooking("ambiguous", _payload(who, slot, appointment_type, minutes))
            )
        busy = conn.execute(
            "SELECT AptDateTime, Op, ProvNum FROM appointment WHERE AptStatus = 1"
            " AND AptDateTime > ? ORDER BY AptDateTime LIMIT ?",
            (start.replace(tzinfo=None), clash),
        )
        for row in busy:
            at = row["AptDateTime"].replace(tzinfo=tz)
            planned.append(
                PlannedBooking(
                    "clash",
                    {
                        "patient": _person(patients[-1]),
                        "start": at.isoformat(),
                        "duration_minutes": minutes,
                        "appointment_type": appointment_type,
                        "provider_id": str(row["ProvNum"]),
                        "operatory_id": str(row["Op"]),
                    },
                )
            )
    return planned


def _payload(who: dict[str, Any], slot: Any, kind: str, minutes: int) -> dict[str, Any]:
    return {
        "patient": who,
        "start": slot.start.isoformat(),
        "duration_minutes": minutes,
        "appointment_type": kind,
        "provider_id": slot.provider_id,
        "operatory_id": slot.operatory_id,
        "source": "online",
    }


@click.command()
@click.option("--practice", "connection_string", required=True, help="ODBC connection string.")
@click.option("--cloud-admin", default="", help="Admin URL of a running reference cloud.")
@click.option("--agent", default=None, help="Agent id to queue for.")
@click.option("--clean", default=3, show_default=True)
@click.option("--clash", default=1, show_default=True)
@click.option("--ambiguous", default=1, show_default=True)
def bookings(
    connection_string: str, cloud_admin: str, agent: str | None, clean: int, clash: int,
    ambiguous: int,
) -> None:  # fmt: skip
    """Queue booking requests in the reference cloud (or print them)."""
    planned = booking_requests(connection_string, clean=clean, clash=clash, ambiguous=ambiguous)
    if not cloud_admin:
        for item in planned:
            click.echo(json.dumps({"kind": item.kind, "payload": item.payload}))
        return
    from sandbox.cloud.admin_client import AdminClient  # noqa: PLC0415

    with AdminClient(cloud_admin) as admin:
        for item in planned:
            record = admin.enqueue("booking.request", item.payload, agent_id=agent)
            click.echo(f"{item.kind:<10} {record.id}")
