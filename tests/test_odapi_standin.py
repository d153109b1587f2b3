"""The Open Dental API Service stand-in's own contract, over real HTTP.

Each test runs the stand-in (in process, or ``python -m sandbox odapi`` in a
subprocess) over a private copy of the demo practice and reads what it
wrote back through the SQLite3 ODBC driver (MariaDB Connector/ODBC for the
MariaDB test): Open Dental's status codes, JSON shapes (enums as words,
booleans as "true"/"false", dates as text), defaults, validation, and the
rows it leaves behind.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyodbc
import pytest
from conftest import MARIADB_HOST, MARIADB_PORT

from bridge.pms.odbc import PmsConnection
from sandbox.odapi import Fault, OdApiServer
from sandbox.odapi.testing import CUSTOMER_KEY, DEVELOPER_KEY, OdApiProcess, headers
from sandbox.practice import build_practice

pytestmark = pytest.mark.timeout(60)

PATIENT_WITH_HISTORY = 1  # demo practice: has completed procedures
HIDDEN_OP = 5
FIRST_CONFIRMED = 1  # "Not Called", ItemOrder 0 of category 2
UNCONFIRMED = 2
STANDARD_ACCOUNT = 9  # first billing type
FUTURE = "2027-02-02 09:00:00"
SLACK = timedelta(seconds=5)  # stamps are whole seconds, written by the database


@pytest.fixture
def api(db: Path) -> Iterator[OdApiServer]:
    with OdApiServer(db, keys=[(DEVELOPER_KEY, CUSTOMER_KEY)]) as server:
        yield server


@pytest.fixture
def client(api: OdApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.api_url, headers=headers(), timeout=10) as c:
        yield c


def one(conn: PmsConnection, sql: str, *params: object) -> dict[str, Any]:
    rows = conn.execute(sql, params)
    assert len(rows) == 1, sql
    return dict(rows[0])


def new_patient(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"LName": "Quill", "FName": f"Test{secrets.token_hex(3)}", **fields}
    response = client.post("/patients", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


# -- the door: keys and headers ---------------------------------------------------


def test_every_call_needs_the_odfhir_keys(api: OdApiServer) -> None:
    url = api.api_url + "/definitions?Category=2"
    json_only = {"Content-Type": "application/json"}
    for sent in (
        json_only,
        {**json_only, "Authorization": f"Bearer {DEVELOPER_KEY}"},
        {**json_only, "Authorization": f"ODFHIR {DEVELOPER_KEY}"},
        headers(DEVELOPER_KEY, "wrong-customer-key"),
        headers("wrong-developer-key", CUSTOMER_KEY),
    ):
        response = httpx.get(url, headers=sent)
        assert response.status_code == 401, sent
        assert isinstance(response.json(), str) and "key" in response.json().lower()
    assert httpx.get(url, headers=headers()).status_code == 200
    no_type = {"Authorization": headers()["Authorization"]}
    response = httpx.get(url, headers=no_type)
    assert response.status_code == 400 and "Content-Type" in response.json()


def test_unknown_resources_and_methods_are_404(client: httpx.Client) -> None:
    assert client.get("/nothing").status_code == 404
    assert client.delete("/appointments/1").status_code == 404
    assert client.post("/patients", content=b"{not json").status_code == 400


# -- definitions ------------------------------------------------------------------


def test_definitions_of_a_category_in_item_order(client: httpx.Client) -> None:
    rows = client.get("/definitions", params={"Category": "2"}).json()
    assert rows[0] == {
        "DefNum": FIRST_CONFIRMED,
        "ItemName": "Not Called",
        "ItemValue": "",
        "Category": 2,
        "category": "ApptConfirmed",
        "isHidden": "false",
    }
    assert [r["ItemName"] for r in rows][:4] == [
        "Not Called",
        "Unconfirmed",
        "Left Message",
        "Confirmed",
    ]
    assert {r["Category"] for r in rows} == {2}
    everything = client.get("/definitions", params={"Limit": "500"}).json()
    assert 10 < len(everything) <= 100  # at most 100 a request, the API's hard limit
    page = client.get("/definitions", params={"Offset": "10", "Limit": "5"}).json()
    assert page == everything[10:15]
    assert client.get("/definitions", params={"Category": "x"}).status_code == 400


# -- POST /patients -----------------------------------------------------------------


def test_a_new_patient_heads_its_own_family_with_documented_defaults(
    client: httpx.Client, conn: PmsConnection
) -> None:
    response = client.post(
        "/patients",
        json={"LName": "Ødegaard", "FName": "Åse", "Birthdate": "1990-05-01", "Zip": "97301"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    pat_num = body["PatNum"]
    assert response.headers["Location"].endswith(f"/api/v1/patients/{pat_num}")
    assert body["Guarantor"] == pat_num
    assert body["PatStatus"] == "Patient" and body["Gender"] == "Unknown"
    assert body["Position"] == "Single" and body["TxtMsgOk"] == "Unknown"
    assert body["BillingType"] == "Standard Account" and body["PriProv"] == 1
    assert body["Birthdate"] == "1990-05-01" and body["DateFirstVisit"] == "0001-01-01"
    row = one(conn, "SELECT * FROM patient WHERE PatNum = ?", pat_num)
    assert (row["LName"], row["FName"], row["Zip"]) == ("Ødegaard", "Åse", "97301")
    assert row["Guarantor"] == pat_num and row["PriProv"] == 1
    assert row["BillingType"] == STANDARD_ACCOUNT and row["PatStatus"] == 0 and row["Gender"] == 2
    assert row["Birthdate"] == date(1990, 5, 1)
    assert row["SecDateEntry"] == date.today()
    assert row["DateTStamp"] >= datetime.now().replace(microsecond=0) - SLACK
    log = one(conn, "SELECT PatNum, LogText FROM securitylog WHERE PatNum = ?", pat_num)
    assert "Ødegaard" not in log["LogText"] and "created" in log["LogText"]


def test_patient_fields_are_validated_with_a_reason(client: httpx.Client) -> None:
    cases = [
        ({"FName": "A"}, "LName is required"),
        ({"LName": " ", "FName": "A"}, "LName is required"),
        ({"LName": "A", "FName": "B", "Zip": "SW1A 1AA"}, "Zip must be in format"),
        ({"LName": "A", "FName": "B", "BillingType": "Gold"}, "BillingType"),
        ({"LName": "A", "FName": "B", "Gender": "male"}, "Gender must be one of"),
        ({"LName": "A", "FName": "B", "Birthdate": "05/01/1990"}, "yyyy-MM-dd"),
        ({"LName": "A", "FName": "B", "PriProv": 999}, "PriProv is invalid"),
        ({"LName": "A", "FName": "B", "Guarantor": 999999}, "Guarantor is invalid"),
        ({"LName": "A", "FName": "B", "ChartNumber": "x" * 16}, "ChartNumber"),
        ({"LName": "A", "FName": "B", "SSN": "123456789"}, "not supported by this stand-in"),
        ({"LName": "A", "FName": "B", "Nickname": "C"}, "not a field"),
        ({"LName": 5, "FName": "B"}, "must be a string"),
    ]
    for body, reason in cases:
        response = client.post("/patients", json=body)
        assert response.status_code == 400, body
        assert reason in response.json(), (body, response.json())
    assert client.post("/patients", json=["LName"]).status_code == 400


def test_a_duplicate_patient_is_refused(client: httpx.Client) -> None:
    first = new_patient(client, Birthdate="1980-01-02", WirelessPhone="(415)555-0100")
    again = {
        "LName": "quill",
        "FName": first["FName"].upper(),
        "Birthdate": "1980-01-02",
        "HmPhone": "415 555 0100",
    }
    response = client.post("/patients", json=again)
    assert response.status_code == 400
    assert f"PatNum {first['PatNum']}" in response.json()
    other_phone = {**again, "HmPhone": "415 555 0199"}
    assert client.post("/patients", json=other_phone).status_code == 201


# -- POST /appointments ----------------------------------------------------------------


def test_an_appointment_with_only_the_required_fields(
    client: httpx.Client, conn: PmsConnection
) -> None:
    patient = new_patient(client, PriProv=2)
    response = client.post(
        "/appointments", json={"PatNum": patient["PatNum"], "Op": 1, "AptDateTime": FUTURE}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    apt = body["AptNum"]
    assert response.headers["Location"].endswith(f"/api/v1/appointments/{apt}")
    assert body["AptStatus"] == "Scheduled" and body["Pattern"] == "/XX/"
    assert body["Confirmed"] == FIRST_CONFIRMED and body["confirmed"] == "Not Called"
    assert body["ProvNum"] == 2 and body["PatternSecondary"] == "////"
    assert body["IsNewPatient"] == "false" and body["IsHygiene"] == "false"
    assert body["AptDateTime"] == FUTURE and body["Priority"] == "Normal"
    row = one(conn, "SELECT * FROM appointment WHERE AptNum = ?", apt)
    assert row["AptStatus"] == 1 and row["Op"] == 1 and row["ProvNum"] == 2
    assert row["AptDateTime"] == datetime(2027, 2, 2, 9, 0)
    assert row["Confirmed"] == FIRST_CONFIRMED and row["Pattern"] == "/XX/"
    assert row["SecDateTEntry"] >= datetime.now().replace(microsecond=0) - SLACK
    assert row["DateTStamp"] >= datetime.now().replace(microsecond=0) - SLACK
    assert row["SecurityHash"] == ""
    fkey = one(conn, "SELECT FKey FROM securitylog WHERE FKey = ?", apt)
    assert fkey["FKey"] == apt


def test_an_appointment_type_gives_its_pattern_and_long_patterns_are_trimmed(
    client: httpx.Client,
) -> None:
    patient = new_patient(client)["PatNum"]
    typed = client.post(
        "/appointments",
        json={"PatNum": patient, "Op": 2, "AptDateTime": FUTURE, "AppointmentTypeNum": 8},
    ).json()
    assert typed["Pattern"] == "//XXXXXXXXXXXX//" and typed["AppointmentTypeNum"] == 8
    long = client.post(
        "/appointments",
        json={"PatNum": patient, "Op": 2, "AptDateTime": FUTURE, "Pattern": "X" * 200},
    ).json()
    assert long["Pattern"] == "X" * 108


def test_new_patient_appointment_sets_the_first_visit_only_without_completed_work(
    client: httpx.Client, conn: PmsConnection
) -> None:
    patient = new_patient(client)["PatNum"]
    for pat_num in (patient, PATIENT_WITH_HISTORY):
        body = {"PatNum": pat_num, "Op": 1, "AptDateTime": FUTURE, "IsNewPatient": "true"}
        assert client.post("/appointments", json=body).status_code == 201
    first = one(conn, "SELECT DateFirstVisit FROM patient WHERE PatNum = ?", patient)
    assert first["DateFirstVisit"] == date(2027, 2, 2)
    old = one(conn, "SELECT DateFirstVisit FROM patient WHERE PatNum = ?", PATIENT_WITH_HISTORY)
    assert old["DateFirstVisit"] != date(2027, 2, 2)


def test_appointment_fields_are_validated_with_a_reason(client: httpx.Client) -> None:
    patient = new_patient(client)["PatNum"]
    base = {"PatNum": patient, "Op": 1, "AptDateTime": FUTURE}
    cases = [
        ({"Op": 1, "AptDateTime": FUTURE}, 400, "PatNum is required"),
        ({**base, "PatNum": 99999999}, 404, "Patient not found"),
        ({**base, "Op": 999}, 400, "Op is invalid"),
        ({**base, "Op": HIDDEN_OP}, 400, "hidden"),
        ({**base, "AptDateTime": "2027-02-02T09:00:00"}, 400, "yyyy-MM-dd HH:mm:ss"),
        ({**base, "AptStatus": "Broken"}, 400, "AptStatus must be one of"),
        ({**base, "Pattern": "XX-X"}, 400, "'X' and '/'"),
        ({**base, "Pattern": "/XX/", "PatternSecondary": "//"}, 400, "match the length"),
        ({**base, "Confirmed": 9}, 400, "Category=2"),
        ({**base, "IsNewPatient": True}, 400, '"true" or "false"'),
        ({**base, "ProvNum": 999}, 400, "ProvNum is invalid"),
        ({**base, "AppointmentTypeNum": 999}, 400, "AppointmentTypeNum is invalid"),
        ({**base, "colorOverride": "1,2,3"}, 400, "not supported"),
    ]
    for body, status, reason in cases:
        response = client.post("/appointments", json=body)
        assert response.status_code == status, body
        assert reason in response.json(), (body, response.json())


def test_overlapping_appointments_are_not_refused(client: httpx.Client) -> None:
    """Open Dental's API does not check the chair is free: the bridge must verify."""
    patients = [new_patient(client)["PatNum"] for _ in range(2)]
    for pat_num in patients:
        body = {"PatNum": pat_num, "Op": 3, "AptDateTime": FUTURE, "Pattern": "XXXXXX"}
        assert client.post("/appointments", json=body).status_code == 201


# -- PUT, Confirm, Note, GET ----------------------------------------------------------


def test_put_changes_only_the_fields_sent(client: httpx.Client, conn: PmsConnection) -> None:
    apt = 10  # an appointment of the demo practice, stamped before today
    before = one(conn, "SELECT * FROM appointment WHERE AptNum = ?", apt)
    op = 1 if before["Op"] != 1 else 2
    assert before["AptStatus"] != 3
    response = client.put(f"/appointments/{apt}", json={"Op": op, "AptStatus": "UnschedList"})
    assert response.status_code == 200
    assert response.json()["AptStatus"] == "UnschedList" and response.json()["Op"] == op
    after = one(conn, "SELECT * FROM appointment WHERE AptNum = ?", apt)
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {"Op", "AptStatus", "DateTStamp"}
    assert after["DateTStamp"] > before["DateTStamp"]
    note = client.put(f"/appointments/{apt}", json={"Note": "overwritten"}).json()
    assert note["Note"] == "overwritten"
    assert client.put(f"/appointments/{apt}", json={"AptStatus": "Broken"}).status_code == 200
    assert client.put(f"/appointments/{apt}", json={}).status_code == 400
    assert client.put("/appointments/99999999", json={"Op": 1}).status_code == 404


def test_a_new_pattern_length_resets_the_secondary_pattern(
    client: httpx.Client, conn: PmsConnection
) -> None:
    patient = new_patient(client)["PatNum"]
    apt = client.post(
        "/appointments",
        json={"PatNum": patient, "Op": 1, "AptDateTime": FUTURE, "Pattern": "/XX/",
              "PatternSecondary": "//XX"},
    ).json()["AptNum"]  # fmt: skip
    client.put(f"/appointments/{apt}", json={"AptDateTime": "2027-02-03 10:00:00"})
    kept = one(conn, "SELECT PatternSecondary FROM appointment WHERE AptNum = ?", apt)
    assert kept["PatternSecondary"] == "//XX"
    client.put(f"/appointments/{apt}", json={"Pattern": "/XXXX/"})
    reset = one(conn, "SELECT Pattern, PatternSecondary FROM appointment WHERE AptNum = ?", apt)
    assert reset == {"Pattern": "/XXXX/", "PatternSecondary": "//////"}


def test_confirm_takes_exactly_one_of_def_num_or_confirm_val(
    client: httpx.Client, conn: PmsConnection
) -> None:
    apt = 11
    assert client.put(f"/appointments/{apt}/Confirm", json={"defNum": 4}).status_code == 200
    assert one(conn, "SELECT Confirmed FROM appointment WHERE AptNum = ?", apt)["Confirmed"] == 4
    none = client.put(f"/appointments/{apt}/Confirm", json={"confirmVal": "None"})
    assert none.status_code == 200 and none.content == b""
    assert one(conn, "SELECT Confirmed FROM appointment WHERE AptNum = ?", apt)["Confirmed"] == 1
    for body in ({}, {"defNum": 4, "confirmVal": "None"}, {"defNum": 9}, {"confirmVal": "Sent"}):
        assert client.put(f"/appointments/{apt}/Confirm", json=body).status_code == 400, body


def test_note_appends_a_line(client: httpx.Client, conn: PmsConnection) -> None:
    patient = new_patient(client)["PatNum"]
    body = {"PatNum": patient, "Op": 1, "AptDateTime": FUTURE}
    apt = client.post("/appointments", json=body).json()["AptNum"]
    assert client.put(f"/appointments/{apt}/Note", json={"Note": "first"}).status_code == 200
    assert client.put(f"/appointments/{apt}/Note", json={"Note": "second"}).status_code == 200
    row = one(conn, "SELECT Note FROM appointment WHERE AptNum = ?", apt)
    assert row["Note"] == "first\r\nsecond"
    assert client.put(f"/appointments/{apt}/Note", json={"Note": ""}).status_code == 400


def test_get_appointment_shape(client: httpx.Client) -> None:
    body = client.get("/appointments/12").json()
    assert set(body) >= {"serverDateTime", "AptNum", "AptStatus", "Pattern", "Confirmed",
                         "confirmed", "Op", "ProvNum", "provAbbr", "AptDateTime", "IsNewPatient",
                         "IsHygiene", "DateTStamp", "SecDateTEntry", "Priority"}  # fmt: skip
    assert body["AptStatus"] in ("Scheduled", "Complete", "UnschedList", "Broken", "Planned")
    assert body["IsHygiene"] in ("true", "false")
    datetime.strptime(body["AptDateTime"], "%Y-%m-%d %H:%M:%S")
    assert client.get("/appointments/99999999").status_code == 404


def test_a_deleted_patients_appointments_cannot_change(
    api: OdApiServer, client: httpx.Client, db: Path
) -> None:
    patient = new_patient(client)["PatNum"]
    body = {"PatNum": patient, "Op": 1, "AptDateTime": FUTURE}
    apt = client.post("/appointments", json=body).json()["AptNum"]
    with api.db.transaction() as tx:
        tx.run("UPDATE patient SET PatStatus = 4 WHERE PatNum = ?", patient)
    response = client.put(f"/appointments/{apt}/Confirm", json={"defNum": 4})
    assert response.status_code == 400 and "deleted" in response.json()
    assert client.post("/appointments", json=body).status_code == 400


# -- faults ----------------------------------------------------------------------------


def _count(conn: PmsConnection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM appointment")[0][0])


def test_faults_fail_drop_or_delay_requests(
    api: OdApiServer, client: httpx.Client, conn: PmsConnection
) -> None:
    patient = new_patient(client)["PatNum"]
    body = {"PatNum": patient, "Op": 1, "AptDateTime": FUTURE}
    start = _count(conn)
    api.faults.add(Fault("status", status=500, method="POST"))
    failed = client.post("/appointments", json=body)
    assert failed.status_code == 500 and _count(conn) == start
    api.faults.add(Fault("drop", path_prefix="/api/v1/appointments"))
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/appointments", json=body)
    assert _count(conn) == start
    api.faults.add(Fault("drop_after", path_prefix="/api/v1/appointments"))
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/appointments", json=body)
    assert _count(conn) == start + 1  # the answer was lost; the write stands
    api.faults.add(Fault("delay", delay_seconds=0.6))
    began = time.monotonic()
    assert client.post("/appointments", json=body).status_code == 201
    assert time.monotonic() - began >= 0.6
    assert client.post("/appointments", json=body).status_code == 201  # count=1: spent
    assert [f.fired for f in api.faults.rules()] == [1, 1, 1, 1]


# -- the command, and MariaDB -------------------------------------------------------


def test_the_command_serves_and_takes_faults_over_the_admin_api(db: Path, tmp_path: Path) -> None:
    with OdApiProcess(db, tmp_path / "odapi") as process:
        url = process.api_url + "/definitions?Category=4"
        assert httpx.get(url, headers=headers()).status_code == 200
        process.add_fault(kind="status", status=503)
        assert httpx.get(url, headers=headers()).status_code == 503
        assert httpx.get(url, headers=headers()).status_code == 200
        with pytest.raises(httpx.HTTPStatusError):
            process.add_fault(kind="explode")
        process.clear_faults()
        assert process.stop() == 0


@pytest.fixture(scope="module")
def mariadb_practice() -> Iterator[str]:
    name = f"odapi_test_{secrets.token_hex(4)}"
    report = build_practice(f"mariadb://root@{MARIADB_HOST}:{MARIADB_PORT}/{name}", size="demo")
    yield name
    admin = pyodbc.connect(report.connection_string, autocommit=True)
    admin.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


@pytest.mark.mariadb
def test_the_stand_in_writes_a_mariadb_practice(mariadb_practice: str) -> None:
    target = f"mariadb://root@{MARIADB_HOST}:{MARIADB_PORT}/{mariadb_practice}"
    with (
        OdApiServer(target, keys=[(DEVELOPER_KEY, CUSTOMER_KEY)]) as api,
        httpx.Client(base_url=api.api_url, headers=headers()) as client,
    ):
        patient = new_patient(client, LName="Ødegaard", Birthdate="1975-03-04")
        apt = client.post(
            "/appointments",
            json={"PatNum": patient["PatNum"], "Op": 2, "AptDateTime": FUTURE,
                  "Confirmed": UNCONFIRMED, "Note": "[bridge ref 1] hold"},
        ).json()["AptNum"]  # fmt: skip
        assert client.put(f"/appointments/{apt}/Confirm", json={"defNum": 4}).status_code == 200
        assert client.put(f"/appointments/{apt}", json={"AptStatus": "UnschedList"}).is_success
    check = pyodbc.connect(
        f"Driver={{MariaDB Unicode}};Server={MARIADB_HOST};Port={MARIADB_PORT};User=root;"
        f"Database={mariadb_practice}",
        autocommit=True,
    )
    check.setdecoding(pyodbc.SQL_WCHAR, encoding="utf-8", ctype=pyodbc.SQL_CHAR)
    try:
        row = check.execute(
            "SELECT p.LName, p.Guarantor, a.AptStatus, a.Confirmed, a.Note, a.DateTStamp"
            " FROM appointment a JOIN patient p ON p.PatNum = a.PatNum WHERE a.AptNum = ?",
            apt,
        ).fetchone()
    finally:
        check.close()
    assert row[0] == "Ødegaard" and row[1] == patient["PatNum"]
    assert (row[2], row[3], row[4]) == (3, 4, "[bridge ref 1] hold")
    assert row[5] >= datetime.now().replace(microsecond=0) - SLACK
