"""The booking pipeline end to end on real parts, in process.

The demo practice (SQLite, read through the SQLite3 ODBC driver), the Open
Dental API Service stand-in writing into it over real HTTP, the real slot
engine, matcher, audit trail and state store. Items are stored in the inbox
table first, as the inbox loop does, and handed to the pipeline's handlers.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from booking_world import TZ, World, booking, build, make_settings

from bridge import audit
from bridge.bookings import exceptions as desk
from bridge.bookings.lookups import marker
from bridge.bookings.policy import Policy
from bridge.bookings.slots import Slot
from bridge.inbox import records
from bridge.inbox.handlers import ReceivedItem
from bridge.pms.odbc import PmsConnection
from bridge.state import StateStore
from sandbox.odapi import OdApiServer
from sandbox.odapi.testing import CUSTOMER_KEY, DEVELOPER_KEY

# World, build, make_settings, booking and TZ moved to tests/booking_world.py;
# re-exported so `from test_booking_pipeline import ...` keeps working.
__all__ = ["TZ", "World", "booking", "build", "make_settings"]

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def world(db: Path, store: StateStore, conn: PmsConnection) -> Iterator[World]:
    with OdApiServer(db, keys=[(DEVELOPER_KEY, CUSTOMER_KEY)]) as api:
        pipeline = build(db, store, api)
        yield World(db, api, store, pipeline, conn)
        pipeline.shutdown()


def free_slot(world: World, minutes: int, *, days_ahead: int = 3, skip: int = 0) -> Slot:
    """A free slot of a working day a few days ahead (data-independent)."""
    start = datetime.now(TZ) + timedelta(days=days_ahead)
    slots = world.engine().free_slots(start, start + timedelta(days=10), minutes)
    assert len(slots) > skip, "the demo practice should have free time"
    return slots[skip]


def known_patient(world: World) -> dict[str, Any]:
    """A patient with a unique name + birth date and a mobile phone."""
    rows = world.conn.execute(
        "SELECT p.PatNum, p.FName, p.LName, p.Birthdate, p.WirelessPhone FROM patient p"
        " WHERE p.PatStatus = 0 AND p.WirelessPhone <> '' AND p.Birthdate > '1900-01-01'"
        " AND (SELECT COUNT(*) FROM patient q WHERE q.Birthdate = p.Birthdate"
        "      AND q.LName = p.LName) = 1"
        " ORDER BY p.PatNum LIMIT 1"
    )
    return dict(rows[0])


def as_request(row: dict[str, Any]) -> dict[str, Any]:
    born = row["Birthdate"]
    return {
        "first_name": row["FName"],
        "last_name": row["LName"],
        "date_of_birth": (
            born if isinstance(born, date) else date.fromisoformat(str(born))
        ).isoformat()[:10],
        "phone": row["WirelessPhone"],
    }


def recall_minutes(world: World) -> int:
    kind = world.engine().appointment_type("Recall")
    assert kind is not None
    return kind.minutes


# -- the clean paths ---------------------------------------------------------------


def test_a_known_patient_is_booked_held_verified_and_confirmed(world: World) -> None:
    minutes = recall_minutes(world)
    slot = free_slot(world, minutes)
    patient = known_patient(world)
    patients_before = world.count("patient")
    result = world.send("booking.request", booking(slot, as_request(patient)))
    assert result.status == "confirmed", result
    assert result.pms_ids["patient"] == str(patient["PatNum"])
    row = world.appointment(result.pms_ids["appointment"])
    assert row["AptDateTime"] == slot.start.replace(tzinfo=None)
    assert str(row["Op"]) == slot.operatory_id and str(row["ProvNum"]) == slot.provider_id
    assert len(row["Pattern"]) * 5 == minutes
    assert str(row["Note"]).startswith(marker("item-1"))
    confirmed = world.conn.execute(
        "SELECT ItemName FROM definition WHERE DefNum = ?", (row["Confirmed"],)
    )[0][0]
    assert confirmed == "Confirmed"
    assert world.count("patient") == patients_before
    kinds = [e.kind for e in audit.recent(world.store, limit=20)]
    assert "pms.hold_written" in kinds and "pms.appointment_confirmed" in kinds
    assert audit.verify(world.store).ok
    # a retried item (crash after the answer, before the inbox stored it) answers the same
    again = world.pipeline.handle_request(
        ReceivedItem("item-1", "booking.request", "", world.last_item.payload, 2)
    )
    assert again == result
    assert world.count() == world.count()  # no second appointment
    assert (
        world.conn.execute(
            "SELECT COUNT(*) FROM appointment WHERE Note LIKE ?", (marker("item-1") + "%",)
        )[0][0]
        == 1
    )


def test_a_new_patient_is_created_as_head_of_a_family(world: World) -> None:
    slot = free_slot(world, recall_minutes(world))
    result = world.send("booking.request", booking(slot, appointment_type="recall"))
    assert result.status == "confirmed", result
    [row] = world.conn.execute(
        "SELECT * FROM patient WHERE PatNum = ?", (int(result.pms_ids["patient"]),)
    )
    assert (row["FName"], row["LName"]) == ("Quentin", "Zylberstein")
    assert row["Guarantor"] == row["PatNum"]
    assert str(row["PriProv"]) == slot.provider_id
    assert row["BillingType"] != 0
    appointment = world.appointment(result.pms_ids["appointment"])
    assert appointment["IsNewPatient"] in (1, True)


def test_a_taken_slot_is_a_conflict_with_alternatives_and_writes_nothing(world: World) -> None:
    busy = world.conn.execute(
        "SELECT AptDateTime, Op, ProvNum FROM appointment WHERE AptStatus = 1"
        " AND AptDateTime > ? ORDER BY AptDateTime LIMIT 1",
        (datetime.now() + timedelta(days=3),),
    )[0]
    slot = Slot(
        busy["AptDateTime"].replace(tzinfo=TZ),
        busy["AptDateTime"].replace(tzinfo=TZ) + timedelta(minutes=30),
        str(busy["ProvNum"]),
        str(busy["Op"]),
    )
    before = world.count()
    result = world.send("booking.request", booking(slot))
    assert result.status == "conflict"
    assert result.reason is not None
    assert result.reason.code in ("slot_taken", "provider_busy", "blockout", "outside_hours")
    assert result.alternatives, "a conflict offers the nearest free slots"
    for alternative in result.alternatives:
        check = world.engine().check(
            alternative.start,
            int((alternative.end - alternative.start).total_seconds() // 60),
            alternative.provider_id,
            alternative.operatory_id,
        )
        assert check.free, alternative
    assert world.count() == before
    [open_one] = desk.list_exceptions(world.store)
    assert open_one.reason_code == result.reason.code
    assert len(open_one.alternatives) == len(result.alternatives)


def test_unknown_type_and_never_policy_are_rejected(world: World, db: Path) -> None:
    slot = free_slot(world, 30)
    result = world.send("booking.request", booking(slot, appointment_type="Teleportation"))
    assert (result.status, result.reason and result.reason.code) == (
        "rejected",
        "unknown_appointment_type",
    )
    world.pipeline.policy = Policy.from_settings(
        make_settings(db, type_policies={"Recall": "never"}).bookings
    )
    result = world.send("booking.request", booking(slot))
    assert (result.status, result.reason and result.reason.code) == (
        "rejected",
        "not_bookable_online",
    )


def test_a_receptionists_click_between_check_and_hold_is_caught_and_undone(
    world: World, db: Path
) -> None:
    """The verify step: an overlapping appointment appears while the hold is written."""
    slot = free_slot(world, recall_minutes(world))
    original = world.pipeline.writer.create_appointment

    def receptionist_first(appointment: Any) -> str:
        with sqlite3.connect(db) as raw:
            raw.execute(
                "INSERT INTO appointment (PatNum, AptStatus, Pattern, Op, ProvNum, AptDateTime,"
                " Note, Confirmed) VALUES (1, 1, 'XXXXXX', ?, ?, ?, 'walk-in', 0)",
                (
                    int(slot.operatory_id),
                    int(slot.provider_id),
                    slot.start.replace(tzinfo=None).isoformat(" "),
                ),
            )
        return original(appointment)

    world.pipeline.writer.create_appointment = receptionist_first  # type: ignore[method-assign]
    result = world.send("booking.request", booking(slot))
    assert result.status == "conflict", result
    assert result.alternatives
    [hold] = world.conn.execute(
        "SELECT AptStatus FROM appointment WHERE Note LIKE ?", (marker("item-1") + "%",)
    )
    assert hold["AptStatus"] not in (1, 2, 4, 5, 7, 8), "the hold no longer occupies the chair"
    kinds = [e.kind for e in audit.recent(world.store, limit=20)]
    assert "pms.hold_released" in kinds
    assert desk.list_exceptions(world.store)[0].reason_code == "slot_taken"


# -- the front desk ----------------------------------------------------------------


def test_an_ambiguous_patient_waits_for_the_front_desk_then_books(world: World) -> None:
    patient = known_patient(world)
    request = as_request(patient)
    request["phone"] = "+1 212 555 0142"  # name + birth date agree, the phone does not
    slot = free_slot(world, recall_minutes(world))
    before = world.count()
    result = world.send("booking.request", booking(slot, request))
    assert (result.status, result.reason and result.reason.code) == (
        "needs_review",
        "unconfirmed_match",
    )
    assert world.count() == before
    [waiting] = desk.list_exceptions(world.store)
    assert [c["patient_id"] for c in waiting.candidates] == [str(patient["PatNum"])]
    assert waiting.actions == ("choose_patient", "new_patient", "reject")
    with pytest.raises(desk.InvalidResolution):
        world.pipeline.resolve(waiting.id, desk.Resolution("choose_patient", choice="999999"))
    outcome = world.pipeline.resolve(
        waiting.id, desk.Resolution("choose_patient", choice=str(patient["PatNum"]), by="amy")
    )
    assert outcome.status == "confirmed"
    assert outcome.pms_ids["patient"] == str(patient["PatNum"])
    assert world.count() == before + 1
    assert desk.list_exceptions(world.store) == []
    [(item_id, posted)] = records.unposted(world.store)
    assert (item_id, posted.status) == ("item-1", "confirmed")
    with pytest.raises(desk.ExceptionNotOpen):
        world.pipeline.resolve(waiting.id, desk.Resolution("reject"))
    resolved = [e for e in audit.recent(world.store, limit=30) if e.kind == "exception.resolved"]
    assert resolved and resolved[0].actor == "frontdesk:amy"


def test_a_held_type_is_approved_or_declined_by_the_front_desk(world: World, db: Path) -> None:
    world.pipeline.policy = Policy.from_settings(
        make_settings(db, type_policies={"recall": "approve"}).bookings
    )
    first = free_slot(world, recall_minutes(world))
    second = free_slot(world, recall_minutes(world), days_ahead=12)
    held = world.send("booking.request", booking(first))
    assert held.status == "held"
    unconfirmed = world.appointment(held.pms_ids["appointment"])["Confirmed"]
    declined = world.send("booking.request", booking(second))
    assert declined.status == "held"
    one, two = desk.list_exceptions(world.store)
    assert one.actions == ("approve", "reject")
    assert world.pipeline.resolve(one.id, desk.Resolution("approve")).status == "confirmed"
    assert world.appointment(held.pms_ids["appointment"])["Confirmed"] != unconfirmed
    out = world.pipeline.resolve(two.id, desk.Resolution("reject", message="call us please"))
    assert (out.status, out.reason_code, out.message) == (
        "rejected",
        "declined_by_practice",
        "call us please",
    )
    assert world.appointment(declined.pms_ids["appointment"])["AptStatus"] not in (1, 2, 4, 5)


def test_a_conflict_is_rebooked_on_an_alternative_by_the_front_desk(world: World) -> None:
    busy = world.conn.execute(
        "SELECT AptDateTime, Op, ProvNum FROM appointment WHERE AptStatus = 1"
        " AND AptDateTime > ? ORDER BY AptDateTime LIMIT 1",
        (datetime.now() + timedelta(days=4),),
    )[0]
    start = busy["AptDateTime"].replace(tzinfo=TZ)
    slot = Slot(start, start + timedelta(minutes=30), str(busy["ProvNum"]), str(busy["Op"]))
    result = world.send("booking.request", booking(slot))
    assert result.status == "conflict"
    [waiting] = desk.list_exceptions(world.store)
    outcome = world.pipeline.resolve(waiting.id, desk.Resolution("choose_alternative", "0"))
    assert outcome.status == "confirmed", outcome
    row = world.appointment(outcome.pms_ids["appointment"])
    assert row["AptDateTime"] == result.alternatives[0].start.astimezone(TZ).replace(tzinfo=None)


# -- cancel and reschedule -----------------------------------------------------------


def test_cancel_and_reschedule(world: World) -> None:
    minutes = recall_minutes(world)
    slot = free_slot(world, minutes, days_ahead=5)
    booked = world.send("booking.request", booking(slot))
    assert booked.status == "confirmed"
    apt = booked.pms_ids["appointment"]
    target = free_slot(world, minutes, days_ahead=7)
    moved = world.send(
        "booking.reschedule",
        {
            "pms_appointment_id": apt,
            "start": target.start.isoformat(),
            "provider_id": target.provider_id,
            "operatory_id": target.operatory_id,
        },
    )
    assert moved.status == "confirmed", moved
    assert world.appointment(apt)["AptDateTime"] == target.start.replace(tzinfo=None)
    cancelled = world.send("booking.cancel", {"pms_appointment_id": apt})
    assert cancelled.status == "confirmed"
    assert world.appointment(apt)["AptStatus"] not in (1, 2, 4, 5)
    again = world.send("booking.cancel", {"pms_appointment_id": apt})
    assert (again.status, again.reason and again.reason.code) == ("rejected", "not_changeable")
    missing = world.send("booking.cancel", {"pms_appointment_id": "98765432"})
    assert (missing.status, missing.reason and missing.reason.code) == (
        "rejected",
        "unknown_appointment",
    )


def test_a_late_cancel_goes_to_the_front_desk(world: World, db: Path) -> None:
    minutes = recall_minutes(world)
    slot = free_slot(world, minutes, days_ahead=3)
    booked = world.send("booking.request", booking(slot))
    world.pipeline.policy = Policy.from_settings(
        make_settings(db, min_notice_minutes=20_000).bookings
    )
    late = world.send("booking.cancel", {"pms_appointment_id": booked.pms_ids["appointment"]})
    assert (late.status, late.reason and late.reason.code) == ("needs_review", "late_change")
    [waiting] = desk.list_exceptions(world.store)
    assert world.pipeline.resolve(waiting.id, desk.Resolution("approve")).status == "confirmed"
    assert world.appointment(booked.pms_ids["appointment"])["AptStatus"] not in (1, 2, 4, 5)


def test_results_and_exceptions_hold_no_personal_data_in_messages(world: World) -> None:
    slot = free_slot(world, recall_minutes(world))
    result = world.send("booking.request", booking(slot))
    text = json.dumps(result.to_json())
    for value in ("Quentin", "Zylberstein", "1991", "555", "example.com"):
        assert value not in text
    for entry in audit.recent(world.store, limit=50):
        assert "Zylberstein" not in entry.data and "555" not in entry.data


def test_an_answered_item_is_never_written_twice(world: World) -> None:
    slot = free_slot(world, recall_minutes(world))
    result = world.send("booking.request", booking(slot))
    before = world.count()
    item = ReceivedItem("item-1", "booking.request", "", world.last_item.payload, 3)
    assert world.pipeline.handle_request(item) == result
    assert world.count() == before
    assert datetime.now(UTC)  # clock sanity


@pytest.mark.parametrize("day", ["2027-03-14", "2027-11-07"])
def test_bookings_on_the_days_clocks_change_land_at_the_local_time_asked(
    world: World, db: Path, day: str
) -> None:
    """Spring forward and fall back: the diary gets the wall-clock time the patient chose."""
    world.pipeline.policy = Policy.from_settings(make_settings(db, window_days=500).bookings)
    with sqlite3.connect(db) as raw:
        raw.execute("DELETE FROM schedule WHERE SchedDate = ?", (day,))
        raw.execute("DELETE FROM appointment WHERE AptDateTime LIKE ?", (day + "%",))
        cursor = raw.execute(
            "INSERT INTO schedule (SchedDate, StartTime, StopTime, SchedType, ProvNum,"
            " BlockoutType, Note, Status, EmployeeNum, ClinicNum)"
            " VALUES (?, '00:00:00', '18:00:00', 1, 1, 0, '', 0, 0, 0)",
            (day,),
        )
        raw.execute(
            "INSERT INTO scheduleop (ScheduleNum, OperatoryNum) VALUES (?, 1)", (cursor.lastrowid,)
        )
    for hour in (3, 10):  # right after the hour that changes, and a normal morning time
        wall = datetime.fromisoformat(f"{day}T{hour:02d}:00:00")
        start = wall.replace(tzinfo=TZ)
        result = world.send(
            "booking.request",
            booking(Slot(start, start + timedelta(minutes=30), "1", "1"), duration_minutes=30),
        )
        assert result.status == "confirmed", (hour, result)
        row = world.appointment(result.pms_ids["appointment"])
        assert row["AptDateTime"] == wall, (hour, row["AptDateTime"])
        assert len(row["Pattern"]) == 6


def test_an_unknown_location_is_rejected_without_a_write(world: World) -> None:
    slot = free_slot(world, 30)
    before = world.count()
    result = world.send("booking.request", booking(slot, location_id="77", duration_minutes=30))
    assert (result.status, result.reason and result.reason.code) == ("rejected", "unknown_location")
    assert world.count() == before
