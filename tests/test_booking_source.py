"""Source tagging and the bridge's mark, through both diary writers.

A ``booking.request`` may carry ``source``; a patient created for it gets
that referral source in Open Dental (``referral`` + ``refattach``, RefType
RefFrom). Every appointment the bridge writes carries the marker
``[bridge ref <12 hex>]`` in its note: created, rescheduled (and moved back),
and it stays when the appointment is released (cancelled).

The writers run against the demo practice: the API writer through the Open
Dental API Service stand-in (SQLite), the SQL writer straight into SQLite
and into MariaDB (MyISAM, through MariaDB Connector/ODBC). The pipeline
tests use the real pipeline (:mod:`booking_world`).
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyodbc
import pytest
from booking_world import TZ, World, booking, build, make_settings
from conftest import MARIADB_DRIVER, MARIADB_HOST, MARIADB_PORT

from bridge.bookings.diary import OpenDentalDiary
from bridge.bookings.lookups import MARKER_PREFIX, marker
from bridge.bookings.matching import PatientMatcher
from bridge.bookings.pipeline import BookingPipeline
from bridge.bookings.requests import parse_booking_request
from bridge.bookings.slot_engine import SlotEngine
from bridge.inbox.handlers import InvalidRequest
from bridge.pms.odbc import OdbcSettings, PmsConnection, connect
from bridge.pms.writers import (
    DiaryWriter,
    NewAppointment,
    NewPatient,
    OpenDentalApiWriter,
    SqlDiaryWriter,
    WriteRequestError,
)
from bridge.secrets import Secret
from bridge.state import StateStore
from sandbox.odapi import OdApiServer
from sandbox.odapi.testing import CUSTOMER_KEY, DEVELOPER_KEY
from sandbox.practice import build_practice

pytestmark = pytest.mark.timeout(180)

START = datetime(2027, 3, 2, 17, 30, tzinfo=UTC)  # 09:30 in Los Angeles
UNCONFIRMED = "2"
MARK = "[bridge ref 0123456789ab]"


def new_patient(**changes: Any) -> NewPatient:
    values: dict[str, Any] = {
        "first_name": "Ottilie",
        "last_name": f"Brandvold-{secrets.token_hex(3)}",
        "date_of_birth": date(1990, 5, 6),
        "phone": "+14155550142",
        "email": None,
        "postcode": None,
        "provider_id": "1",
        "billing_type_id": "9",
        "clinic_id": None,
    }
    values.update(changes)
    return NewPatient(**values)


def hold(patient_id: str) -> NewAppointment:
    return NewAppointment(
        patient_id=patient_id,
        operatory_id="1",
        provider_id="1",
        hygienist_id=None,
        start=START,
        pattern="/XXXX/",
        appointment_type_id=None,
        is_new_patient=True,
        confirmed_def_id=UNCONFIRMED,
        note=f"{MARK} Booked online through the bridge",
    )


def referrals_of(conn: PmsConnection, patient_id: str) -> list[tuple[str, int, int, int]]:
    rows = conn.execute(
        "SELECT r.LName, r.NotPerson, a.RefType, a.ItemOrder FROM refattach a"
        " JOIN referral r ON r.ReferralNum = a.ReferralNum WHERE a.PatNum = ?"
        " ORDER BY a.ItemOrder",
        (int(patient_id),),
    )
    return [(str(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in rows]


def note_of(conn: PmsConnection, appointment_id: str) -> str:
    return str(
        conn.execute("SELECT Note FROM appointment WHERE AptNum = ?", (int(appointment_id),))[0][0]
    )


def exercise(writer: DiaryWriter, conn: PmsConnection, add_referral: Any) -> None:
    """The same contract for every writer (see the module docstring)."""
    patient = writer.create_patient(new_patient())
    first = writer.attach_referral(patient, "phone-ai")
    assert writer.attach_referral(patient, "phone-ai") == first  # once is enough
    add_referral("Google")  # the practice already keeps "Google" as a source
    writer.attach_referral(patient, "google")  # matched whatever the letter case
    assert referrals_of(conn, patient) == [("phone-ai", 1, 1, 1), ("Google", 0, 1, 2)]
    assert int(conn.execute("SELECT COUNT(*) FROM referral WHERE LName = 'Google'")[0][0]) == 1

    appointment = writer.create_appointment(hold(patient))
    moved = f"{marker('item-9')} rescheduled through the bridge"
    later = START + timedelta(days=1)
    writer.move_appointment(appointment, later, "1", "1", "/XXXX/", note_line=moved)
    writer.move_appointment(appointment, START, "1", "1", "/XXXX/", note_line=moved)  # back
    note = note_of(conn, appointment)
    assert note.startswith(MARK) and note.count(moved) == 1
    writer.release_appointment(appointment, "cancelled")
    released = note_of(conn, appointment)
    assert released.startswith(MARK) and moved in released
    assert released.rstrip().endswith("(reason: cancelled)")

    with pytest.raises(WriteRequestError, match="source must be"):
        writer.attach_referral(patient, "drop table;--")
    with pytest.raises(WriteRequestError, match="note_line must be one line"):
        writer.move_appointment(appointment, START, "1", "1", "/XXXX/", note_line="a\nb")


# -- the writers ------------------------------------------------------------------------


def sqlite_referral(db: Path) -> Any:
    def add(name: str) -> None:
        with sqlite3.connect(db) as raw:
            raw.execute("INSERT INTO referral (LName, NotPerson) VALUES (?, 0)", (name,))

    return add


def test_the_api_writer_tags_the_source_and_marks_every_write(
    db: Path, conn: PmsConnection
) -> None:
    with OdApiServer(db, keys=[(DEVELOPER_KEY, CUSTOMER_KEY)]) as api:
        writer = OpenDentalApiWriter(
            api.api_url,
            Secret(DEVELOPER_KEY, "od-developer-key"),
            Secret(CUSTOMER_KEY, "od-customer-key"),
            timezone=TZ,
        )
        try:
            exercise(writer, conn, sqlite_referral(db))
        finally:
            writer.close()


def test_the_sql_writer_tags_the_source_and_marks_every_write_in_sqlite(
    db: Path, conn: PmsConnection
) -> None:
    settings = OdbcSettings(connection_string=f"Driver={{SQLite3}};Database={db}", read_only=False)
    writer = SqlDiaryWriter(settings, timezone=TZ)
    try:
        exercise(writer, conn, sqlite_referral(db))
    finally:
        writer.close()


@pytest.fixture(scope="module")
def mariadb_practice() -> Iterator[str]:
    name = f"source_{secrets.token_hex(4)}"
    report = build_practice(f"mariadb://root@{MARIADB_HOST}:{MARIADB_PORT}/{name}", size="demo")
    yield name
    admin = pyodbc.connect(report.connection_string, autocommit=True)
    admin.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


@pytest.mark.mariadb
def test_the_sql_writer_tags_the_source_and_marks_every_write_in_mariadb(
    mariadb_practice: str,
) -> None:
    string = (
        f"Driver={{{MARIADB_DRIVER}}};Server={MARIADB_HOST};Port={MARIADB_PORT};"
        f"Database={mariadb_practice};User=root"
    )
    writer = SqlDiaryWriter(OdbcSettings(connection_string=string, read_only=False), timezone=TZ)

    def add(name: str) -> None:
        raw = pyodbc.connect(string, autocommit=True)
        raw.execute("INSERT INTO referral (LName, NotPerson) VALUES (?, 0)", name)
        raw.close()

    with connect(OdbcSettings(connection_string=string)) as conn:
        try:
            exercise(writer, conn, add)
        finally:
            writer.close()


# -- the pipeline -------------------------------------------------------------------------


@pytest.fixture(params=["api", "sql"])
def world(request: Any, db: Path, store: StateStore, conn: PmsConnection) -> Iterator[World]:
    with OdApiServer(db, keys=[(DEVELOPER_KEY, CUSTOMER_KEY)]) as api:
        if request.param == "api":
            pipeline = build(db, store, api)
        else:
            settings = make_settings(db)
            odbc = OdbcSettings(connection_string=settings.pms.connection_string, read_only=False)
            pipeline = BookingPipeline(
                settings,
                store,
                SqlDiaryWriter(odbc, timezone=TZ),
                open_pms=lambda: connect(
                    OdbcSettings(connection_string=str(odbc.connection_string))
                ),
                slots_for=lambda c, policy: SlotEngine(OpenDentalDiary(c, TZ), policy),
                matcher_for=lambda c: PatientMatcher(c, "US"),
            )
        yield World(db, api, store, pipeline, conn)
        pipeline.shutdown()


def test_a_new_patient_gets_the_requests_source_and_every_write_carries_the_mark(
    world: World,
) -> None:
    engine = world.engine()
    start = datetime.now(TZ) + timedelta(days=3)
    slots = engine.free_slots(start, start + timedelta(days=14), 30)
    days: dict[date, Any] = {}
    for slot in slots:  # one slot per day: the three bookings never touch
        days.setdefault(slot.start.date(), slot)
    assert len(days) >= 3
    slots = list(days.values())
    first = world.send("booking.request", booking(slots[0], source="phone-ai", extra="ignored"))
    assert first.status == "confirmed", first
    patient, appointment = first.pms_ids["patient"], first.pms_ids["appointment"]
    assert referrals_of(world.conn, patient) == [("phone-ai", 1, 1, 1)]
    assert note_of(world.conn, appointment).startswith(marker("item-1"))

    # an existing patient (matched) keeps its referrals: the source only tags new patients
    again = world.send("booking.request", booking(slots[1], source="google"))
    assert again.status == "confirmed" and again.pms_ids["patient"] == patient
    assert referrals_of(world.conn, patient) == [("phone-ai", 1, 1, 1)]

    target = slots[2]
    moved = world.send(
        "booking.reschedule",
        {
            "pms_appointment_id": appointment,
            "start": target.start.isoformat(),
            "provider_id": target.provider_id,
            "operatory_id": target.operatory_id,
        },
    )
    assert moved.status == "confirmed", moved
    note = note_of(world.conn, appointment)
    assert note.startswith(marker("item-1"))
    assert f"{marker('item-3')} rescheduled through the bridge" in note
    cancelled = world.send("booking.cancel", {"pms_appointment_id": appointment})
    assert cancelled.status == "confirmed", cancelled
    assert note_of(world.conn, appointment).startswith(marker("item-1"))
    assert MARKER_PREFIX in note_of(world.conn, again.pms_ids["appointment"])


def test_a_source_must_be_a_short_tag() -> None:
    tz = TZ
    now = datetime.now(tz)
    slot_start = (now + timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)
    payload = {
        "patient": {
            "first_name": "A",
            "last_name": "B",
            "date_of_birth": "1990-01-01",
            "phone": "+14155550100",
        },
        "start": slot_start.isoformat(),
        "appointment_type": "Recall",
    }
    for bad in ("Phone AI", "x" * 41, "-lead", 7, "ph/one", "jane.doe@example.com ", ""):
        with pytest.raises(InvalidRequest, match="source must be a short lower-case tag"):
            parse_booking_request({**payload, "source": bad}, tz=tz, country="US", now=now)
    good = parse_booking_request({**payload, "source": "phone-ai"}, tz=tz, country="US", now=now)
    assert good.source == "phone-ai"
