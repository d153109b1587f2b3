"""The Open Dental API writer against the API Service stand-in, over real HTTP.

The stand-in writes a private copy of the demo practice (SQLite); every
value the writer meant to store is read back through the SQLite3 ODBC
driver, as the booking pipeline's verify step reads it. Failures come from
the stand-in itself: wrong keys (401), refused values (400), missing rows
(404), injected 500s, dropped connections and slow answers.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from bridge.cli import cli
from bridge.config.load import validate_settings
from bridge.errors import ConfigError, ErrorKind, SecretError
from bridge.paths import BridgePaths
from bridge.pms.odbc import PmsConnection
from bridge.pms.writers import (
    NewAppointment,
    NewPatient,
    OpenDentalApiWriter,
    WriterAuthError,
    WriteRequestError,
    WriterNotFoundError,
    WriterRefusedError,
    WriterUnavailableError,
    probe_writer,
    writer_for,
)
from bridge.pms.writers.formats import scrub
from bridge.secrets import MemorySecretStore, Secret
from sandbox.odapi import Fault, OdApiServer
from sandbox.odapi.testing import CUSTOMER_KEY, DEVELOPER_KEY
from sandbox.practice import TIMEZONE

pytestmark = pytest.mark.timeout(60)

TZ = ZoneInfo(TIMEZONE)
UNCONFIRMED = "2"  # demo practice: definition category 2
CONFIRMED = "4"
STANDARD_ACCOUNT = "9"  # category 4
HIDDEN_OP = "5"
SLACK = timedelta(seconds=5)
START = datetime(2027, 3, 2, 17, 30, tzinfo=UTC)  # 09:30 in Los Angeles (PST)
LOCAL_START = datetime(2027, 3, 2, 9, 30)


@pytest.fixture
def api(db: Path) -> Iterator[OdApiServer]:
    with OdApiServer(db, keys=[(DEVELOPER_KEY, CUSTOMER_KEY)]) as server:
        yield server


def make_writer(api: OdApiServer, *, customer: str = CUSTOMER_KEY, timeout: float = 10.0) -> Any:
    return OpenDentalApiWriter(
        api.api_url,
        Secret(DEVELOPER_KEY, "od-developer-key"),
        Secret(customer, "od-customer-key"),
        timezone=TZ,
        timeout_seconds=timeout,
    )


@pytest.fixture
def writer(api: OdApiServer) -> Iterator[OpenDentalApiWriter]:
    w = make_writer(api)
    yield w
    w.close()


def patient(**changes: Any) -> NewPatient:
    values: dict[str, Any] = {
        "first_name": "Zoë",
        "last_name": "Van der Berg-Ødegaard",
        "date_of_birth": date(1988, 7, 14),
        "phone": "+14155550123",
        "email": "zoe.vdb@example.com",
        "postcode": "94110",
        "provider_id": "2",
        "billing_type_id": STANDARD_ACCOUNT,
        "clinic_id": None,
    }
    values.update(changes)
    return NewPatient(**values)


def hold(patient_id: str, **changes: Any) -> NewAppointment:
    values: dict[str, Any] = {
        "patient_id": patient_id,
        "operatory_id": "1",
        "provider_id": "1",
        "hygienist_id": None,
        "start": START,
        "pattern": "/XXXX/",
        "appointment_type_id": "6",
        "is_new_patient": True,
        "confirmed_def_id": UNCONFIRMED,
        "note": "[bridge ref 0123456789ab] Booked online through the bridge",
        "clinic_id": None,
    }
    values.update(changes)
    return NewAppointment(**values)


def row(conn: PmsConnection, table: str, key: str, value: str) -> dict[str, Any]:
    rows = conn.execute(f"SELECT * FROM {table} WHERE {key} = ?", (int(value),))
    assert len(rows) == 1
    return dict(rows[0])


def count(conn: PmsConnection, table: str = "appointment") -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM {table}")[0][0])


# -- every call, read back through ODBC ----------------------------------------------


def test_create_patient_stores_a_family_head(
    writer: OpenDentalApiWriter, conn: PmsConnection
) -> None:
    patient_id = writer.create_patient(patient())
    stored = row(conn, "patient", "PatNum", patient_id)
    assert stored["LName"] == "Van der Berg-Ødegaard" and stored["FName"] == "Zoë"
    assert stored["Birthdate"] == date(1988, 7, 14)
    assert stored["WirelessPhone"] == "(415)555-0123"
    assert stored["Email"] == "zoe.vdb@example.com" and stored["Zip"] == "94110"
    assert stored["Guarantor"] == int(patient_id)
    assert stored["PriProv"] == 2 and stored["BillingType"] == int(STANDARD_ACCOUNT)
    assert stored["PatStatus"] == 0 and stored["ClinicNum"] == 0
    assert stored["DateTStamp"] >= datetime.now() - SLACK


def test_a_postcode_open_dental_would_refuse_is_left_out(
    writer: OpenDentalApiWriter, conn: PmsConnection
) -> None:
    uk = writer.create_patient(patient(postcode="SW1A 1AA", phone="+447700900123"))
    stored = row(conn, "patient", "PatNum", uk)
    assert stored["Zip"] == "" and stored["WirelessPhone"] == "+447700900123"
    canada = writer.create_patient(patient(first_name="Léa", postcode="k1a0b1", phone=None))
    assert row(conn, "patient", "PatNum", canada)["Zip"] == "K1A 0B1"


def test_create_appointment_writes_the_hold_in_local_wall_clock_time(
    writer: OpenDentalApiWriter, conn: PmsConnection
) -> None:
    patient_id = writer.create_patient(patient())
    appointment_id = writer.create_appointment(hold(patient_id))
    stored = row(conn, "appointment", "AptNum", appointment_id)
    assert stored["AptDateTime"] == LOCAL_START
    assert stored["AptStatus"] == 1 and stored["Confirmed"] == int(UNCONFIRMED)
    assert stored["Pattern"] == "/XXXX/" and stored["PatternSecondary"] == "//////"
    assert (stored["Op"], stored["ProvNum"], stored["ProvHyg"]) == (1, 1, 0)
    assert stored["AppointmentTypeNum"] == 6 and stored["IsNewPatient"] == 1
    assert stored["Note"].startswith("[bridge ref 0123456789ab]")
    assert stored["SecDateTEntry"] >= datetime.now() - SLACK
    first_visit = row(conn, "patient", "PatNum", patient_id)["DateFirstVisit"]
    assert first_visit == LOCAL_START.date()


def test_confirm_move_and_release(writer: OpenDentalApiWriter, conn: PmsConnection) -> None:
    appointment_id = writer.create_appointment(hold(writer.create_patient(patient())))
    writer.set_confirmation(appointment_id, CONFIRMED)
    assert row(conn, "appointment", "AptNum", appointment_id)["Confirmed"] == int(CONFIRMED)
    writer.set_confirmation(appointment_id, CONFIRMED)  # repeatable

    later = datetime(2027, 3, 3, 14, 0, tzinfo=TZ)
    writer.move_appointment(appointment_id, later, "2", "2", "/XX/")
    moved = row(conn, "appointment", "AptNum", appointment_id)
    assert moved["AptDateTime"] == datetime(2027, 3, 3, 14, 0)
    assert (moved["Op"], moved["ProvNum"], moved["Pattern"]) == (2, 2, "/XX/")
    assert moved["Confirmed"] == int(CONFIRMED) and moved["AptStatus"] == 1

    writer.release_appointment(appointment_id, "slot_taken")
    writer.release_appointment(appointment_id, "slot_taken")  # a retry changes nothing
    released = row(conn, "appointment", "AptNum", appointment_id)
    assert released["AptStatus"] == 3  # UnschedList: off the appointment book
    assert released["Note"].startswith("[bridge ref 0123456789ab]")
    assert released["Note"].count("reason: slot_taken") == 1
    drawn = conn.execute(  # the rows Open Dental's calendar draws for that day
        "SELECT AptNum FROM appointment WHERE AptStatus NOT IN (3, 6)"
        " AND AptDateTime >= ? AND AptDateTime < ? AND Op = 2",
        (datetime(2027, 3, 3), datetime(2027, 3, 4)),
    )
    assert int(appointment_id) not in [r["AptNum"] for r in drawn]


def test_hygienist_and_clinic_fields_are_sent(
    writer: OpenDentalApiWriter, conn: PmsConnection
) -> None:
    appointment_id = writer.create_appointment(
        hold(
            writer.create_patient(patient()),
            operatory_id="3",
            hygienist_id="3",
            is_hygiene=True,
            is_new_patient=False,
            appointment_type_id=None,
        )
    )
    stored = row(conn, "appointment", "AptNum", appointment_id)
    assert (stored["ProvHyg"], stored["IsHygiene"], stored["IsNewPatient"]) == (3, 1, 0)
    assert stored["AppointmentTypeNum"] == 0


# -- refusals: 401, 400, 404, and requests that are never sent --------------------------


def test_wrong_keys_are_an_auth_error_that_names_no_key(api: OdApiServer) -> None:
    bad = make_writer(api, customer="not-the-customer-key")
    with pytest.raises(WriterAuthError) as caught:
        bad.create_patient(patient())
    error = caught.value
    assert error.status == 401 and not error.retryable and error.kind is ErrorKind.LOGIN_FAILED
    assert "not-the-customer-key" not in str(error) and DEVELOPER_KEY not in str(error)
    assert "writer.customer_key_secret" in error.fix
    bad.close()


def test_a_400_is_refused_with_the_apis_explanation(
    writer: OpenDentalApiWriter, conn: PmsConnection
) -> None:
    patient_id = writer.create_patient(patient())
    before = count(conn)
    with pytest.raises(WriterRefusedError) as caught:
        writer.create_appointment(hold(patient_id, operatory_id=HIDDEN_OP))
    assert caught.value.status == 400 and not caught.value.retryable
    assert "Op is invalid" in str(caught.value) and "POST /appointments" in str(caught.value)
    assert count(conn) == before


def test_a_duplicate_patient_is_refused_without_personal_data_in_the_message(
    writer: OpenDentalApiWriter,
) -> None:
    writer.create_patient(patient())
    with pytest.raises(WriterRefusedError) as caught:
        writer.create_patient(patient())
    message = str(caught.value)
    assert "already exists" in message
    for personal in ("Zoë", "Ødegaard", "1988", "555", "example.com"):
        assert personal not in message


def test_a_missing_appointment_is_not_found(writer: OpenDentalApiWriter) -> None:
    for call in (
        lambda: writer.set_confirmation("99999999", CONFIRMED),
        lambda: writer.move_appointment("99999999", START, "1", "1", "/XX/"),
        lambda: writer.release_appointment("99999999", "cancelled"),
    ):
        with pytest.raises(WriterNotFoundError) as caught:
            call()
        assert caught.value.status == 404


def test_bad_requests_are_refused_before_anything_is_sent(
    api: OdApiServer, writer: OpenDentalApiWriter, conn: PmsConnection
) -> None:
    api.faults.add(Fault("status", status=500, count=None))  # any request would fail
    with pytest.raises(WriteRequestError, match="time zone"):
        hold("1", start=datetime(2027, 3, 2, 9, 30))
    with pytest.raises(WriteRequestError, match="9 hours"):
        hold("1", pattern="X" * 109)
    with pytest.raises(WriteRequestError, match=r"E\.164"):
        patient(phone="415-555-0123")
    with pytest.raises(WriteRequestError, match="patient_id"):
        hold("0")
    with pytest.raises(WriteRequestError, match="reason_code"):
        writer.release_appointment("1", "Patient said: call me")
    with pytest.raises(WriteRequestError, match="start"):
        writer.move_appointment("1", datetime(2027, 3, 2, 9, 30), "1", "1", "/XX/")
    assert api.faults.rules()[0].fired == 0
    assert "Zoë" not in repr(patient()) and "bridge ref" not in repr(hold("1"))


def test_an_unknown_billing_type_is_refused(writer: OpenDentalApiWriter) -> None:
    with pytest.raises(WriterRefusedError, match="billing type"):
        writer.create_patient(patient(billing_type_id="4"))  # a confirmation status


# -- unavailable: 5xx, timeouts, lost connections ---------------------------------------


def test_a_500_is_retryable_and_nothing_is_written(
    api: OdApiServer, writer: OpenDentalApiWriter, conn: PmsConnection
) -> None:
    patient_id = writer.create_patient(patient())
    before = count(conn)
    api.faults.add(Fault("status", status=500, path_prefix="/api/v1/appointments"))
    with pytest.raises(WriterUnavailableError) as caught:
        writer.create_appointment(hold(patient_id))
    assert caught.value.retryable and caught.value.status == 500
    assert caught.value.may_have_applied
    assert count(conn) == before
    writer.create_appointment(hold(patient_id))  # the fault fired once; the retry works
    assert count(conn) == before + 1


def test_a_timeout_is_retryable_and_the_write_may_still_happen(
    api: OdApiServer, conn: PmsConnection
) -> None:
    slow = make_writer(api, timeout=0.3)
    patient_id = slow.create_patient(patient())
    before = count(conn)
    api.faults.add(Fault("delay", delay_seconds=1.0, path_prefix="/api/v1/appointments"))
    began = time.monotonic()
    with pytest.raises(WriterUnavailableError) as caught:
        slow.create_appointment(hold(patient_id))
    assert time.monotonic() - began < 1.0
    assert caught.value.kind is ErrorKind.TIMEOUT and caught.value.may_have_applied
    deadline = time.monotonic() + 5
    while count(conn) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert count(conn) == before + 1  # the server finished after the client gave up
    slow.close()


def test_a_lost_answer_may_have_applied(
    api: OdApiServer, writer: OpenDentalApiWriter, conn: PmsConnection
) -> None:
    patient_id = writer.create_patient(patient())
    before = count(conn)
    api.faults.add(Fault("drop_after", path_prefix="/api/v1/appointments"))
    with pytest.raises(WriterUnavailableError) as caught:
        writer.create_appointment(hold(patient_id))
    assert caught.value.may_have_applied and count(conn) == before + 1


def test_an_unreachable_service_has_certainly_not_applied() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    nobody = OpenDentalApiWriter(
        f"http://127.0.0.1:{port}/api/v1",
        Secret(DEVELOPER_KEY),
        Secret(CUSTOMER_KEY),
        timezone=TZ,
        timeout_seconds=2,
    )
    with pytest.raises(WriterUnavailableError) as caught:
        nobody.set_confirmation("1", CONFIRMED)
    assert not caught.value.may_have_applied and caught.value.retryable
    assert "could not be reached" in str(caught.value) and "30223" in caught.value.fix
    nobody.close()


# -- privacy -------------------------------------------------------------------------------


def test_logs_and_errors_carry_no_personal_data(
    api: OdApiServer, writer: OpenDentalApiWriter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    patient_id = writer.create_patient(patient())
    appointment_id = writer.create_appointment(hold(patient_id, note="[bridge ref x] Zoë's tooth"))
    writer.release_appointment(appointment_id, "cancelled")
    logged = " ".join(
        f"{record.getMessage()} {vars(record)}" for record in caplog.records
    )  # message and every extra field
    assert "POST /appointments" in logged
    for personal in ("Zoë", "Ødegaard", "1988-07-14", "555-0123", "zoe.vdb", "94110"):
        assert personal not in logged
    assert CUSTOMER_KEY not in logged and DEVELOPER_KEY not in logged


def test_scrub_masks_what_was_sent_and_anything_shaped_like_contact_details() -> None:
    said = "Patient Zoë Ødegaard born 1988-07-14 (zoe@example.com, +1 415 555 0123) exists"
    cleaned = scrub(said, ["Zoë", "Ødegaard", date(1988, 7, 14)])
    assert cleaned == "Patient *** *** born *** (***, ***) exists"
    assert len(scrub("x" * 1000)) == 300


# -- settings, factory, doctor -------------------------------------------------------------


def settings_for(api: OdApiServer, **writer: Any) -> Any:
    data = {
        "practice": {"name": "Test Dental", "timezone": TIMEZONE},
        "pms": {"profile": "opendental", "connection_string": "Driver={SQLite3};Database=x"},
        "cloud": {"url": "https://127.0.0.1:8443", "agent_id": "agent-1"},
        "writer": {
            "kind": "opendental-api",
            "url": api.url,  # no path: /api/v1 is added
            "developer_key_secret": "od-developer-key",
            "customer_key_secret": "od-customer-key",
            **writer,
        },
    }
    settings, problems = validate_settings(data)
    assert settings is not None, problems
    return settings


KEYS = {"od-developer-key": DEVELOPER_KEY, "od-customer-key": CUSTOMER_KEY}


def test_writer_for_builds_the_configured_writer(api: OdApiServer, conn: PmsConnection) -> None:
    settings = settings_for(api, timeout_seconds=5)
    assert settings.writer.url == api.api_url
    writer = writer_for(settings, MemorySecretStore(KEYS))
    try:
        assert isinstance(writer, OpenDentalApiWriter)
        patient_id = writer.create_patient(patient())
        assert row(conn, "patient", "PatNum", patient_id)["Guarantor"] == int(patient_id)
    finally:
        writer.close()
    assert "accepted the keys" in probe_writer(settings, MemorySecretStore(KEYS))
    with pytest.raises(SecretError, match=r"writer\.customer_key_secret"):
        writer_for(settings, MemorySecretStore({"od-developer-key": DEVELOPER_KEY}))
    unset, _ = validate_settings({**_base(), "writer": {}})
    assert unset is not None
    with pytest.raises(ConfigError, match=r"writer\.kind"):
        writer_for(unset, MemorySecretStore())


def _base() -> dict[str, Any]:
    return {
        "practice": {"name": "Test Dental", "timezone": TIMEZONE},
        "pms": {"profile": "opendental", "connection_string": "Driver={SQLite3};Database=x"},
        "cloud": {"url": "https://127.0.0.1:8443", "agent_id": "agent-1"},
    }


def test_doctor_checks_the_writer_without_writing(
    api: OdApiServer, db: Path, tmp_path: Path, conn: PmsConnection
) -> None:
    home = tmp_path / "home"
    paths = BridgePaths(home / "config", home / "data", home / "logs").ensure()
    paths.config_file.write_text(
        f"""[practice]
name = "Test Dental"
timezone = "{TIMEZONE}"
[pms]
profile = "opendental"
connection_string = 'Driver={{SQLite3}};Database={db}'
[cloud]
url = "https://127.0.0.1:8443"
agent_id = "agent-1"
[writer]
kind = "opendental-api"
url = "{api.api_url}"
developer_key_secret = "od-developer-key"
customer_key_secret = "od-customer-key"
""",
        encoding="utf-8",
    )
    before = (count(conn), count(conn, "patient"))

    def doctor(customer_key: str) -> str:
        store = MemorySecretStore(
            {"cloud-token": "t" * 12, "od-developer-key": DEVELOPER_KEY,
             "od-customer-key": customer_key}
        )  # fmt: skip
        obj = {"paths": paths, "secret_store": store}
        result = CliRunner().invoke(cli, ["doctor"], obj=obj, catch_exceptions=False)
        return next(line for line in result.output.splitlines() if " writer " in line)

    assert doctor(CUSTOMER_KEY).startswith("OK") and "accepted the keys" in doctor(CUSTOMER_KEY)
    failed = doctor("revoked-key")
    assert failed.startswith("FAIL") and "401" in failed and "revoked-key" not in failed
    assert (count(conn), count(conn, "patient")) == before
