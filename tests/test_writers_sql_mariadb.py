"""The SQL writer on MariaDB (MyISAM, as Open Dental), through MariaDB Connector/ODBC.

The demo practice is built into a throw-away MariaDB database; the writer
connects with its own write-scoped login (SELECT, INSERT, UPDATE) and a
password from a secret; every value is read back through a separate,
read-only ODBC connection. Logins with too few rights show the refusals,
including the MyISAM partial write (a patient inserted, its guarantor
update refused) that cannot be rolled back.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pyodbc
import pytest
from conftest import MARIADB_DRIVER, MARIADB_HOST, MARIADB_PORT

from bridge.config.load import validate_settings
from bridge.errors import ErrorKind
from bridge.pms.odbc import OdbcSettings, PmsConnection, connect
from bridge.pms.writers import (
    NewAppointment,
    NewPatient,
    SqlDiaryWriter,
    WriterAuthError,
    WriterNotFoundError,
    WriterRefusedError,
    WriterUnavailableError,
    writer_for,
)
from bridge.secrets import MemorySecretStore, Secret
from sandbox.practice import TIMEZONE, BuildReport, build_practice

pytestmark = [pytest.mark.mariadb, pytest.mark.timeout(120)]

TZ = ZoneInfo(TIMEZONE)
PASSWORD = "Writer;Pw-1}x"
UNCONFIRMED, CONFIRMED = 2, 4
SLACK = timedelta(seconds=5)
START = datetime(2027, 3, 2, 17, 30, tzinfo=UTC)  # 09:30 in Los Angeles


@pytest.fixture(scope="module")
def practice() -> Iterator[tuple[BuildReport, str]]:
    name = f"sqlwriter_{secrets.token_hex(4)}"
    report = build_practice(f"mariadb://root@{MARIADB_HOST}:{MARIADB_PORT}/{name}", size="demo")
    yield report, name
    admin = pyodbc.connect(report.connection_string, autocommit=True)
    admin.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


@pytest.fixture
def login(practice: tuple[BuildReport, str], mariadb_admin: pyodbc.Connection) -> Iterator[Any]:
    """make(grants) -> a new login with those grants on the practice; dropped afterwards."""
    made: list[str] = []
    database = practice[1]

    def make(*grants: str) -> str:
        user = f"bw_{secrets.token_hex(4)}"
        mariadb_admin.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{PASSWORD}'")
        for grant in grants:
            mariadb_admin.execute(f"GRANT {grant.format(db=database)} TO '{user}'@'%'")
        made.append(user)
        return user

    yield make
    for user in made:
        mariadb_admin.execute(f"DROP USER IF EXISTS '{user}'@'%'")


def base_string(database: str, port: int = MARIADB_PORT) -> str:
    return f"Driver={{{MARIADB_DRIVER}}};Server={MARIADB_HOST};Port={port};Database={database}"


def make_writer(database: str, user: str, password: str = PASSWORD, **kw: Any) -> SqlDiaryWriter:
    settings = OdbcSettings(
        connection_string=base_string(database, kw.pop("port", MARIADB_PORT)),
        user=user,
        password=Secret(password, "pms-writer-password"),
        connect_timeout_seconds=5,
        read_only=False,
    )
    return SqlDiaryWriter(settings, timezone=TZ)


@pytest.fixture
def writer(practice: tuple[BuildReport, str], login: Any) -> Iterator[SqlDiaryWriter]:
    user = login("SELECT, INSERT, UPDATE ON `{db}`.*")
    w = make_writer(practice[1], user)
    yield w
    w.close()


@pytest.fixture
def reader(practice: tuple[BuildReport, str]) -> Iterator[PmsConnection]:
    with connect(OdbcSettings(connection_string=practice[0].connection_string)) as conn:
        yield conn


def patient(**changes: Any) -> NewPatient:
    values: dict[str, Any] = {
        "first_name": "Siân",
        "last_name": f"Ødegaard-{secrets.token_hex(2)}",
        "date_of_birth": date(1979, 2, 28),
        "phone": "+14155550177",
        "email": "sian@example.org",
        "postcode": "SW1A 1AA",
        "provider_id": "1",
        "billing_type_id": "10",
        "clinic_id": None,
    }
    values.update(changes)
    return NewPatient(**values)


def hold(patient_id: str, **changes: Any) -> NewAppointment:
    values: dict[str, Any] = {
        "patient_id": patient_id,
        "operatory_id": "2",
        "provider_id": "2",
        "hygienist_id": None,
        "start": START,
        "pattern": "/XXXX/",
        "appointment_type_id": "6",
        "is_new_patient": True,
        "confirmed_def_id": str(UNCONFIRMED),
        "note": "[bridge ref feedfacecafe] Booked online through the bridge",
        "clinic_id": None,
    }
    values.update(changes)
    return NewAppointment(**values)


def row(reader: PmsConnection, table: str, key: str, value: str) -> dict[str, Any]:
    rows = reader.execute(f"SELECT * FROM {table} WHERE {key} = ?", (int(value),))
    assert len(rows) == 1
    return dict(rows[0])


def test_every_call_reads_back_through_odbc(writer: SqlDiaryWriter, reader: PmsConnection) -> None:
    new = patient()
    patient_id = writer.create_patient(new)
    stored = row(reader, "patient", "PatNum", patient_id)
    assert stored["LName"] == new.last_name and stored["FName"] == "Siân"
    assert stored["Guarantor"] == int(patient_id)
    assert stored["Birthdate"] == date(1979, 2, 28) and stored["BillingType"] == 10
    assert stored["WirelessPhone"] == "(415)555-0177" and stored["Zip"] == "SW1A 1AA"
    assert stored["PriProv"] == 1 and stored["Gender"] == 2 and stored["PatStatus"] == 0
    assert stored["DateTStamp"] >= datetime.now() - SLACK

    appointment_id = writer.create_appointment(hold(patient_id))
    apt = row(reader, "appointment", "AptNum", appointment_id)
    assert apt["AptDateTime"] == datetime(2027, 3, 2, 9, 30)
    assert (apt["AptStatus"], apt["Confirmed"], apt["Op"], apt["ProvNum"]) == (
        1,
        UNCONFIRMED,
        2,
        2,
    )
    assert apt["Pattern"] == "/XXXX/" and apt["PatternSecondary"] == "//////"
    assert apt["IsNewPatient"] == 1 and apt["AppointmentTypeNum"] == 6
    assert apt["SecDateTEntry"] >= datetime.now() - SLACK
    first_visit = row(reader, "patient", "PatNum", patient_id)["DateFirstVisit"]
    assert first_visit == date(2027, 3, 2)

    writer.set_confirmation(appointment_id, str(CONFIRMED))
    assert row(reader, "appointment", "AptNum", appointment_id)["Confirmed"] == CONFIRMED

    writer.move_appointment(appointment_id, datetime(2027, 3, 4, 8, 0, tzinfo=TZ), "1", "1", "/XX/")
    moved = row(reader, "appointment", "AptNum", appointment_id)
    assert moved["AptDateTime"] == datetime(2027, 3, 4, 8, 0)
    assert (moved["Op"], moved["ProvNum"], moved["Pattern"], moved["PatternSecondary"]) == (
        1,
        1,
        "/XX/",
        "////",
    )

    writer.release_appointment(appointment_id, "cancelled")
    writer.release_appointment(appointment_id, "cancelled")
    released = row(reader, "appointment", "AptNum", appointment_id)
    assert released["AptStatus"] == 3
    assert released["Note"] == (
        "[bridge ref feedfacecafe] Booked online through the bridge\r\n"
        "[bridge] released from the diary (reason: cancelled)"
    )


def test_an_update_bumps_the_change_stamp(writer: SqlDiaryWriter, reader: PmsConnection) -> None:
    old = reader.execute(
        "SELECT AptNum, DateTStamp, Confirmed FROM appointment WHERE AptStatus = 1"
        " AND Confirmed <> ? ORDER BY AptNum LIMIT 1",
        (CONFIRMED,),
    )[0]
    assert old["DateTStamp"] < datetime.now() - SLACK  # the build stamps rows before today
    writer.set_confirmation(str(old["AptNum"]), str(CONFIRMED))
    assert (
        row(reader, "appointment", "AptNum", str(old["AptNum"]))["DateTStamp"] > old["DateTStamp"]
    )


def test_the_first_visit_is_kept_for_a_patient_with_completed_work(
    writer: SqlDiaryWriter, reader: PmsConnection
) -> None:
    seen = reader.execute(
        "SELECT p.PatNum, p.DateFirstVisit FROM patient p WHERE EXISTS (SELECT 1 FROM"
        " procedurelog l WHERE l.PatNum = p.PatNum AND l.ProcStatus = 2) ORDER BY p.PatNum LIMIT 1"
    )[0]
    writer.create_appointment(hold(str(seen["PatNum"])))
    after = row(reader, "patient", "PatNum", str(seen["PatNum"]))["DateFirstVisit"]
    assert after == seen["DateFirstVisit"]


def test_missing_rows_are_refused_before_anything_is_written(
    writer: SqlDiaryWriter, reader: PmsConnection
) -> None:
    count = int(reader.execute("SELECT COUNT(*) FROM appointment")[0][0])
    patient_id = writer.create_patient(patient())
    for changes, error, text in (
        ({"patient_id": "99999999"}, WriterNotFoundError, "patient 99999999"),
        ({"operatory_id": "99"}, WriterRefusedError, "operatory 99"),
        ({"confirmed_def_id": "9"}, WriterRefusedError, "confirmation status"),
        ({"appointment_type_id": "999"}, WriterRefusedError, "appointment type 999"),
    ):
        with pytest.raises(error, match=text):
            writer.create_appointment(hold(**{"patient_id": patient_id, **changes}))
    assert int(reader.execute("SELECT COUNT(*) FROM appointment")[0][0]) == count
    with pytest.raises(WriterNotFoundError):
        writer.set_confirmation("99999999", str(CONFIRMED))
    with pytest.raises(WriterNotFoundError):
        writer.release_appointment("99999999", "cancelled")
    with pytest.raises(WriterRefusedError, match="billing type"):
        writer.create_patient(patient(billing_type_id=str(CONFIRMED)))


def test_a_wrong_password_is_an_auth_error(practice: tuple[BuildReport, str], login: Any) -> None:
    user = login("SELECT, INSERT, UPDATE ON `{db}`.*")
    wrong = make_writer(practice[1], user, password="not-the-password")
    with pytest.raises(WriterAuthError) as caught:
        wrong.create_patient(patient())
    assert caught.value.kind is ErrorKind.LOGIN_FAILED and not caught.value.retryable
    assert "not-the-password" not in str(caught.value) and PASSWORD not in str(caught.value)
    assert "writer.password_secret" in caught.value.fix


def test_a_read_only_login_is_refused_and_doctor_says_so(
    practice: tuple[BuildReport, str], login: Any, reader: PmsConnection
) -> None:
    user = login("SELECT ON `{db}`.*")
    read_only = make_writer(practice[1], user)
    with pytest.raises(WriterAuthError, match="cannot write"):
        read_only.check()
    count = int(reader.execute("SELECT COUNT(*) FROM patient")[0][0])
    with pytest.raises(WriterRefusedError, match="INSERT patient"):
        read_only.create_patient(patient())
    assert int(reader.execute("SELECT COUNT(*) FROM patient")[0][0]) == count
    read_only.close()


def test_a_partial_write_names_the_row_it_left(
    practice: tuple[BuildReport, str], login: Any, reader: PmsConnection
) -> None:
    """MyISAM cannot roll back: the INSERT stands when the UPDATE is refused."""
    user = login("SELECT ON `{db}`.*", "INSERT ON `{db}`.`patient`")
    half = make_writer(practice[1], user)
    with pytest.raises(WriterRefusedError) as caught:
        half.create_patient(patient())
    left = caught.value.partial["patient"]
    assert "not yet its own guarantor" in str(caught.value)
    assert row(reader, "patient", "PatNum", left)["Guarantor"] == 0
    half.close()


def test_an_unreachable_server_has_certainly_not_applied(practice: tuple[BuildReport, str]) -> None:
    nowhere = make_writer(practice[1], "nobody", port=1)
    with pytest.raises(WriterUnavailableError) as caught:
        nowhere.set_confirmation("1", str(CONFIRMED))
    assert caught.value.retryable and not caught.value.may_have_applied


def test_check_and_the_factory(
    practice: tuple[BuildReport, str], login: Any, reader: PmsConnection
) -> None:
    user = login("SELECT, INSERT, UPDATE ON `{db}`.*")
    data = {
        "practice": {"name": "Test Dental", "timezone": TIMEZONE},
        "pms": {"profile": "opendental", "connection_string": practice[0].connection_string},
        "cloud": {"url": "https://127.0.0.1:8443", "agent_id": "agent-1"},
        "writer": {
            "kind": "sql",
            "connection_string": base_string(practice[1]),
            "user": user,
            "password_secret": "pms-writer-password",
        },
    }
    settings, problems = validate_settings(data)
    assert settings is not None, problems
    writer = writer_for(settings, MemorySecretStore({"pms-writer-password": PASSWORD}))
    try:
        assert isinstance(writer, SqlDiaryWriter)
        assert "SQL writer connected (mariadb)" in writer.check()
        patient_id = writer.create_patient(patient(first_name="Þóra"))
        assert row(reader, "patient", "PatNum", patient_id)["FName"] == "Þóra"
    finally:
        writer.close()
