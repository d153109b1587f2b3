"""Patient matching on MariaDB through MariaDB Connector/ODBC.

Open Dental's tables are ``utf8mb3_general_ci``: comparisons ignore case
and most accents, and the driver's UTF-16 path mangles some letters (Ø,
Ú). The matcher decides in Python on folded names, so the collation only
widens what a lookup returns: the rules give the same answers as on
SQLite (tests/test_matching.py), Ø and Ú survive the round trip, and the
accent-insensitive name lookup finds a patient with no recorded birth date
whose phone is stored in a form the phone lookup does not try (SQLite's
binary/NOCASE name lookup would miss him; that case is then a new patient
there). Every lookup uses an index.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import date
from urllib.parse import quote

import pyodbc
import pytest
from conftest import MARIADB_HOST, MARIADB_PASSWORD, MARIADB_PORT, MARIADB_USER, _admin_connect

from bridge.bookings import normalize as norm
from bridge.bookings.matching import PatientMatcher, candidate_queries
from bridge.bookings.requests import PatientDetails
from bridge.pms.odbc import OdbcSettings, PmsConnection, connect
from bridge.secrets import Secret
from sandbox.practice import BuildReport, build_practice

pytestmark = pytest.mark.mariadb

DOB = date(1932, 3, 7)


@pytest.fixture(scope="module")
def practice() -> Iterator[BuildReport]:
    name = f"matching_test_{secrets.token_hex(4)}"
    target = (
        f"mariadb://{quote(MARIADB_USER)}:{quote(MARIADB_PASSWORD)}@{MARIADB_HOST}:"
        f"{MARIADB_PORT}/{name}"
    )
    yield build_practice(target, size="demo")
    admin = _admin_connect()
    admin.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


@pytest.fixture(scope="module")
def writer(practice: BuildReport) -> Iterator[pyodbc.Connection]:
    """The PMS's side: writes crafted patients as UTF-8 (the exact path)."""
    raw = pyodbc.connect(
        f"{practice.connection_string};Password={practice.password};Charset=utf8mb4",
        autocommit=True,
    )
    raw.setencoding(encoding="utf-8")
    for sql_type in (pyodbc.SQL_CHAR, pyodbc.SQL_WCHAR):
        raw.setdecoding(sql_type, encoding="utf-8", ctype=pyodbc.SQL_CHAR)
    yield raw
    raw.close()


@pytest.fixture(scope="module")
def conn(practice: BuildReport) -> Iterator[PmsConnection]:
    password = Secret(practice.password) if practice.password else None
    with connect(
        OdbcSettings(connection_string=practice.connection_string, password=password)
    ) as c:
        yield c


def add(raw: pyodbc.Connection, first: str, last: str, born: str, **cols: object) -> str:
    values: dict[str, object] = {
        "FName": first,
        "LName": last,
        "Birthdate": born,
        "PatStatus": 0,
        "PriProv": 1,
        "BillingType": 1,
        **cols,
    }
    raw.execute(
        f"INSERT INTO patient ({', '.join(values)}) VALUES ({', '.join('?' for _ in values)})",
        tuple(values.values()),
    )
    pat = int(raw.execute("SELECT LAST_INSERT_ID()").fetchone()[0])
    raw.execute("UPDATE patient SET Guarantor = ? WHERE PatNum = ?", (pat, pat))
    return str(pat)


def ask(first: str, last: str, born: date = DOB, phone: str = "503-555-0101") -> PatientDetails:
    return PatientDetails(first, last, born, norm.normalize_phone(phone, "US"), None, None)


def test_matching_on_mariadb(writer: pyodbc.Connection, conn: PmsConnection) -> None:
    odegaard = add(writer, "Øyvind", "Ødegaard-Úlfsson", "1932-03-07", HmPhone="(503) 555-0101")
    muller = add(writer, "Jürgen", "Müller", "1932-03-07", WirelessPhone="+1 503 555 0101")
    mullers = add(writer, "Jurgen", "Muller", "1932-03-07", WkPhone="971.555.0199")
    kasia = add(writer, "Katarzyna", "Wiśniewska", "1932-07-03", HmPhone="503.555.0101")
    deleted = add(writer, "Zoë", "Brûlé", "1932-03-07", PatStatus=4, HmPhone="503-555-0101")
    # stored in a form the phone lookup does not try, birth date not recorded:
    # only MariaDB's accent-insensitive name lookup finds him
    padraig = add(writer, "Pádraig", "Ó Súilleabháinn", "0001-01-01", HmPhone="503 / 555 0101")
    matcher = PatientMatcher(conn, "US")

    outcome = matcher.match(ask("OYVIND", "odegaard ulfsson"))
    assert (outcome.kind, outcome.patient_id) == ("matched", odegaard)
    assert outcome.candidates[0].display["name"] == "Øyvind Ødegaard-Úlfsson"  # read back intact

    outcome = matcher.match(ask("Jurgen", "Muller"))  # accents folded: two exact namesakes
    assert (outcome.kind, outcome.patient_id) == ("matched", muller)  # one is confirmed
    assert sorted(c.patient_id for c in outcome.candidates) == sorted([muller, mullers])

    outcome = matcher.match(ask("Katarzyna", "Wisniewska"))  # birth date day/month swapped
    assert (outcome.kind, outcome.reason_code) == ("review", "near_match")
    assert outcome.candidates[0].patient_id == kasia
    assert outcome.candidates[0].reasons == ("name_exact", "dob_typo", "phone")

    outcome = matcher.match(ask("Zoe", "Brule"))
    assert (outcome.kind, outcome.reason_code) == ("new", "no_candidate")
    assert deleted not in [c.patient_id for c in outcome.candidates]

    outcome = matcher.match(ask("Padraig", "O Suilleabhainn", date(1950, 1, 1)))
    assert (outcome.kind, outcome.reason_code) == ("review", "near_match")
    assert outcome.candidates[0].patient_id == padraig
    assert outcome.candidates[0].reasons == ("name_exact", "dob_missing", "phone")


def test_every_lookup_uses_an_index_on_mariadb(conn: PmsConnection) -> None:
    details = PatientDetails(
        "José", "García-López", DOB, "+15035550101", "jose@example.com", "97201"
    )
    for query in candidate_queries(details, "US"):
        for step in conn.execute("EXPLAIN " + query.sql, query.params):
            assert step["type"] != "ALL" and step["key"], (query.purpose, dict(step))
