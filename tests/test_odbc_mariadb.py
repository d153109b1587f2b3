"""The ODBC layer against a real MariaDB server through MariaDB Connector/ODBC.

Every error is provoked for real: wrong password for a real login, closed
port, unknown host and database, missing table and column, a write on the
read-only session, a query past its timeout, a connection killed mid-stream.
Bad values are put in with ``sql_mode`` relaxed (zero and impossible dates,
out-of-range times) and, for bytes that are not UTF-8, by patching the
MyISAM data file, since the server validates text on every other way in.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path

import pyodbc
import pytest
from conftest import (
    MARIADB_DRIVER,
    MARIADB_HOST,
    MARIADB_PASSWORD,
    MARIADB_PORT,
    mariadb_connection_string,
)
from test_odbc_helpers import assert_missing_table_and_column_name_the_entity, peak_rss_growth

from bridge.errors import (
    BadValueError,
    LoginFailedError,
    QueryTimeoutError,
    ReadOnlyViolationError,
    SchemaMismatchError,
    ServerUnreachableError,
)
from bridge.pms.odbc import DriverFamily, OdbcSettings, PmsConnection, connect
from bridge.secrets import Secret

pytestmark = pytest.mark.mariadb

WEIRD_PASSWORD = "Pw;}{x=1 }}{{ ;PWD=leak"


def _settings(database: str, **kw: object) -> OdbcSettings:
    password = Secret(MARIADB_PASSWORD, "test-root") if MARIADB_PASSWORD else None
    args: dict[str, object] = {
        "connection_string": mariadb_connection_string(database),
        "password": password,
    }
    args.update(kw)
    return OdbcSettings(**args)  # type: ignore[arg-type]


@pytest.fixture
def conn(mariadb_database: str) -> Iterator[PmsConnection]:
    with connect(_settings(mariadb_database)) as c:
        yield c


@pytest.fixture
def make_user(
    mariadb_admin: pyodbc.Connection,
) -> Iterator[Callable[[str, list[str]], str]]:
    """Create a login with the given grants (``{user}`` is replaced); drop it after."""
    made: list[str] = []

    def make(password: str, grants: list[str]) -> str:
        name = f"bridge_t_{secrets.token_hex(4)}"
        made.append(name)
        escaped = password.replace("\\", "\\\\").replace("'", "\\'")
        mariadb_admin.execute(f"CREATE USER '{name}'@'%' IDENTIFIED BY '{escaped}'")
        for grant in grants:
            mariadb_admin.execute(grant.format(user=f"'{name}'@'%'"))
        return name

    yield make
    for name in made:
        mariadb_admin.execute(f"DROP USER IF EXISTS '{name}'@'%'")


def _admin_run(admin: pyodbc.Connection, database: str, *statements: str) -> None:
    admin.execute(f"USE `{database}`")
    for statement in statements:
        admin.execute(statement)


def test_session_is_read_only_with_server_side_timeouts(conn: PmsConnection) -> None:
    assert conn.family is DriverFamily.MARIADB
    assert conn.read_only_enforced
    assert "READ ONLY" in conn.read_only_method
    assert conn.timeout_method == "server-side max_statement_time = 30 s"
    assert "CONN_TIMEOUT=10" in conn.description
    assert conn.execute("SELECT @@session.tx_read_only AS ro")[0]["ro"] == 1


def test_a_write_fails_with_25006(
    conn: PmsConnection, mariadb_admin: pyodbc.Connection, mariadb_database: str
) -> None:
    _admin_run(mariadb_admin, mariadb_database, "CREATE TABLE t (i INT) ENGINE=MyISAM")
    with pytest.raises(ReadOnlyViolationError, match="25006"):
        conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(ReadOnlyViolationError):
        conn.execute("CREATE TEMPORARY TABLE tt (i INT)")


def test_query_timeout_is_enforced_by_the_server(mariadb_database: str) -> None:
    with connect(_settings(mariadb_database, query_timeout_seconds=1)) as conn:
        started = time.monotonic()
        with pytest.raises(QueryTimeoutError, match="1969"):
            conn.execute("SELECT SLEEP(3)")
        assert time.monotonic() - started < 2.5
        assert conn.execute("SELECT 1 AS one")[0]["one"] == 1


def test_login_with_special_characters_and_wrong_password_never_leak(
    mariadb_database: str,
    make_user: Callable[[str, list[str]], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    user = make_user(WEIRD_PASSWORD, [f"GRANT SELECT ON `{mariadb_database}`.* TO {{user}}"])
    caplog.set_level(logging.DEBUG)
    good = _settings(mariadb_database, user=user, password=Secret(WEIRD_PASSWORD, "pms"))
    with connect(good) as conn:  # braces and }} doubling got the password through
        assert conn.execute("SELECT CURRENT_USER() AS u")[0]["u"].startswith(user)
        shown = [conn.description, repr(conn)]
    wrong = "Wr0ng;}{pass=word"
    with pytest.raises(LoginFailedError) as info:
        connect(_settings(mariadb_database, user=user, password=Secret(wrong, "pms")))
    error = info.value
    assert "28000" in str(error) and "1045" in str(error) and user in str(error)
    shown += [str(error), repr(error), error.fix, caplog.text]
    shown += [str(vars(record)) for record in caplog.records]  # extras too
    for text in shown:
        for secret in (WEIRD_PASSWORD, wrong, "leak"):
            assert secret not in text
    # Nothing is chained: the driver's own exception cannot leak through a traceback.
    assert error.__cause__ is None and error.__context__ is None


def test_unreachable_servers_and_databases(
    mariadb_database: str, make_user: Callable[[str, list[str]], str]
) -> None:
    closed = f"Driver={{{MARIADB_DRIVER}}};Server={MARIADB_HOST};Port=1;Database={mariadb_database}"
    with pytest.raises(ServerUnreachableError, match="2002"):
        connect(OdbcSettings(connection_string=closed, user="root"))
    unknown_host = closed.replace(f"Server={MARIADB_HOST};Port=1", "Server=nosuchhost.invalid")
    with pytest.raises(ServerUnreachableError, match="2005"):
        connect(OdbcSettings(connection_string=unknown_host, user="root"))
    with pytest.raises(ServerUnreachableError, match="no database 'bridge_nope'"):
        connect(_settings("bridge_nope"))
    user = make_user("pw-1234", [])
    with pytest.raises(LoginFailedError, match="no access to database"):
        connect(_settings(mariadb_database, user=user, password=Secret("pw-1234", "pms")))


def test_missing_table_and_column_name_the_entity(
    conn: PmsConnection, mariadb_admin: pyodbc.Connection, mariadb_database: str
) -> None:
    _admin_run(
        mariadb_admin,
        mariadb_database,
        "CREATE TABLE patient (PatNum BIGINT PRIMARY KEY, LName VARCHAR(100)) ENGINE=MyISAM",
    )
    assert_missing_table_and_column_name_the_entity(conn)
    with pytest.raises(SchemaMismatchError) as direct:
        conn.execute("SELECT p.Email FROM patient p", entity="patient")
    assert (direct.value.table, direct.value.column) == ("p", "Email")


def test_catalog_answers_for_the_connection_database_only(
    conn: PmsConnection, mariadb_admin: pyodbc.Connection, mariadb_database: str
) -> None:
    _admin_run(
        mariadb_admin,
        mariadb_database,
        "CREATE TABLE patient (PatNum BIGINT NOT NULL PRIMARY KEY, LName VARCHAR(100), "
        "Birthdate DATE NOT NULL DEFAULT '0001-01-01') ENGINE=MyISAM",
        "CREATE TABLE t_x (Id INT)",
        "CREATE TABLE tax (Id INT)",
    )
    assert conn.has_table("patient") and conn.has_table("PATIENT")
    assert not conn.has_table("user")  # exists as mysql.user: not ours
    assert conn.has_table("t_x") and not conn.has_table("t_y")
    columns = conn.columns("patient")
    assert [(c.name, c.type_name, c.nullable) for c in columns] == [
        ("PatNum", "BIGINT", False),
        ("LName", "VARCHAR", True),
        ("Birthdate", "DATE", False),
    ]
    assert conn.columns("user") == []
    problems = conn.check_entity("patient", "patient", ["PatNum", "SSN"])
    assert [(p.entity, p.table, p.column) for p in problems] == [("patient", "patient", "SSN")]
    assert [p.table for p in conn.check_entity("appointment", "appointment", ["AptNum"])] == [
        "appointment"
    ]


BAD_ROWS = {
    # key: (d, dt, tm) inserted with sql_mode relaxed
    3: ("0000-00-00", "0000-00-00 00:00:00", "10:00:00"),  # zero dates: null, no report
    4: ("0001-01-01", "0001-01-01 00:00:00", "10:00:00"),  # Open Dental's "no date": kept
    150: ("2024-02-30", "2024-02-31 08:00:00", "10:00:00"),  # impossible day
    151: ("2024-02-00", "2024-00-10 08:00:00", "838:59:59"),  # zero parts, long time
    999: ("2024-05-06", "2024-05-06 08:00:00", "-01:00:00"),  # negative time
}


def test_bad_values_are_isolated_and_the_rest_delivered(
    conn: PmsConnection,
    mariadb_admin: pyodbc.Connection,
    mariadb_database: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _admin_run(
        mariadb_admin,
        mariadb_database,
        "CREATE TABLE appt (AptNum BIGINT PRIMARY KEY, AptDate DATE, AptDateTime DATETIME, "
        "Length TIME, Note VARCHAR(50)) ENGINE=MyISAM",
        "INSERT INTO appt SELECT seq, '2024-01-01' + INTERVAL seq DAY, "
        "'2024-01-01 08:00:00' + INTERVAL seq HOUR, '00:30:00', concat('n', seq) "
        "FROM seq_1_to_1200",
        "SET SESSION sql_mode = 'ALLOW_INVALID_DATES'",
    )
    for key, (d, dt, tm) in BAD_ROWS.items():
        mariadb_admin.execute(
            f"UPDATE appt SET AptDate = '{d}', AptDateTime = '{dt}', Length = '{tm}' "
            f"WHERE AptNum = {key}"
        )
    reports: list[BadValueError] = []
    caplog.set_level(logging.WARNING)
    rows = list(
        conn.stream(
            "SELECT * FROM appt",
            table="appt",
            key_columns=["AptNum"],
            page_size=500,
            batch_size=100,
            on_bad_value=reports.append,
        )
    )
    assert [r["AptNum"] for r in rows] == list(range(1, 1201))
    assert {(e.key, e.column, e.problem) for e in reports} == {
        (150, "AptDate", "invalid date"),
        (150, "AptDateTime", "invalid date and time"),
        (151, "AptDate", "invalid date"),
        (151, "AptDateTime", "invalid date and time"),
        (151, "Length", "invalid or out-of-range time of day"),
        (999, "Length", "invalid or out-of-range time of day"),
    }
    assert all(e.table == "appt" for e in reports)
    by_key = {r["AptNum"]: r for r in rows}
    assert (by_key[3]["AptDate"], by_key[3]["AptDateTime"]) == (None, None)
    assert by_key[4]["AptDate"] == date(1, 1, 1)
    assert by_key[4]["AptDateTime"] == datetime(1, 1, 1)
    assert by_key[151]["Note"] == "n151" and by_key[151]["Length"] is None
    assert by_key[152]["AptDate"] == date(2024, 6, 1)
    assert by_key[152]["Length"] == dtime(0, 30)
    logged = [r for r in caplog.records if r.name == "bridge.pms.odbc_stream"]
    assert len(logged) == len(reports)
    assert not any("2024-02-30" in r.getMessage() for r in logged)
    # Single-statement mode converts defensively from the start: same result.
    single: list[BadValueError] = []
    again = list(
        conn.stream(
            "SELECT * FROM appt",
            table="appt",
            key_columns=["AptNum"],
            page_size=None,
            on_bad_value=single.append,
        )
    )
    assert len(again) == 1200
    assert {(e.key, e.column) for e in single} == {(e.key, e.column) for e in reports}


def _patch_myisam(
    admin: pyodbc.Connection, database: str, table: str, old: bytes, new: bytes
) -> None:
    """Replace bytes in a MyISAM data file (the server refuses invalid UTF-8 otherwise)."""
    datadir = Path(str(admin.execute("SELECT @@datadir").fetchone()[0]))
    data = datadir / database / f"{table}.MYD"
    if not data.exists():
        pytest.fail(f"{data} is not on this machine: the server must run locally for this test")
    admin.execute(f"FLUSH TABLES `{database}`.`{table}`")
    content = data.read_bytes()
    assert content.count(old) == 1 and len(old) == len(new)
    data.write_bytes(content.replace(old, new))
    admin.execute(f"FLUSH TABLES `{database}`.`{table}`")


def test_invalid_utf8_reaching_the_driver_is_isolated_by_rereading(
    mariadb_admin: pyodbc.Connection, mariadb_database: str
) -> None:
    _admin_run(
        mariadb_admin,
        mariadb_database,
        "CREATE TABLE patient (PatNum BIGINT PRIMARY KEY, LName VARCHAR(40), "
        "FName VARCHAR(40)) ENGINE=MyISAM CHARSET=utf8mb3",
        "INSERT INTO patient SELECT seq, concat('Last', seq), concat('First', seq) "
        "FROM seq_1_to_300",
        "UPDATE patient SET LName = 'QZQZmark' WHERE PatNum = 77",
    )
    _patch_myisam(mariadb_admin, mariadb_database, "patient", b"QZQZ", b"Q\xffZ\xc3")
    # With the default utf8mb4 connection the server turns the bytes into '?'
    # (a silent change the bridge cannot see); with a utf8mb3 connection the
    # bytes reach the driver, whose conversion fails inside a fetch.
    settings = _settings(
        mariadb_database,
        connection_string=mariadb_connection_string(mariadb_database) + ";CHARSET=utf8mb3",
    )
    reports: list[BadValueError] = []
    with connect(settings) as conn:
        rows = list(
            conn.stream(
                "SELECT * FROM patient",
                table="patient",
                key_columns=["PatNum"],
                page_size=100,
                batch_size=50,
                on_bad_value=reports.append,
            )
        )
    assert [r["PatNum"] for r in rows] == list(range(1, 301))
    assert [(e.table, e.key, e.column) for e in reports] == [("patient", 77, "LName")]
    # Text is read as UTF-8 bytes (the Ø fix), so Python's decoder is what
    # finds the bad bytes now, not the driver.
    assert "character set" in reports[0].problem
    assert rows[76]["LName"] is None and rows[76]["FName"] == "First77"
    assert rows[75]["LName"] == "Last76" and rows[77]["LName"] == "Last78"
    with connect(_settings(mariadb_database)) as conn:
        replaced = conn.execute("SELECT LName FROM patient WHERE PatNum = 77")[0]["LName"]
    assert replaced == "Q?Z?mark"


def test_a_connection_killed_mid_stream_is_unreachable(
    conn: PmsConnection, mariadb_admin: pyodbc.Connection, mariadb_database: str
) -> None:
    _admin_run(
        mariadb_admin,
        mariadb_database,
        "CREATE TABLE t (Id INT PRIMARY KEY) ENGINE=MyISAM",
        "INSERT INTO t SELECT seq FROM seq_1_to_1000",
    )
    connection_id = conn.execute("SELECT CONNECTION_ID() AS id")[0]["id"]
    rows = conn.stream("SELECT * FROM t", table="t", key_columns=["Id"], page_size=100)
    assert next(rows)["Id"] == 1
    mariadb_admin.execute(f"KILL CONNECTION {connection_id}")
    with pytest.raises(ServerUnreachableError, match="08S01"):
        list(rows)


def test_login_can_write_tells_read_only_from_writing_logins(
    mariadb_database: str,
    make_user: Callable[[str, list[str]], str],
    mariadb_admin: pyodbc.Connection,
) -> None:
    db = f"`{mariadb_database}`"
    reader = make_user("pw-reader", [f"GRANT SELECT ON {db}.* TO {{user}}"])
    writer = make_user("pw-writer", [f"GRANT SELECT, INSERT, UPDATE ON {db}.* TO {{user}}"])
    role = f"bridge_role_{secrets.token_hex(4)}"
    mariadb_admin.execute(f"CREATE ROLE {role}")
    try:
        mariadb_admin.execute(f"GRANT DELETE ON {db}.* TO {role}")
        via_role = make_user(
            "pw-role", [f"GRANT SELECT ON {db}.* TO {{user}}", f"GRANT {role} TO {{user}}"]
        )
        results = {}
        for user, password in ((reader, "pw-reader"), (writer, "pw-writer"), (via_role, "pw-role")):
            settings = _settings(mariadb_database, user=user, password=Secret(password, "pms"))
            with connect(settings) as conn:
                results[user] = conn.login_can_write()
    finally:
        mariadb_admin.execute(f"DROP ROLE IF EXISTS {role}")
    assert results[reader].can_write is False
    assert "no INSERT, UPDATE, DELETE or ALL" in results[reader].detail
    assert results[writer].can_write is True
    assert "INSERT" in results[writer].detail and "UPDATE" in results[writer].detail
    assert results[via_role].can_write is True
    assert f"through role {role}" in results[via_role].detail
    for capability in results.values():
        assert "PASSWORD" not in capability.detail and "*" + "E" not in capability.detail


def test_root_login_can_write(conn: PmsConnection) -> None:
    capability = conn.login_can_write()
    assert capability.can_write is True
    assert "ALL PRIVILEGES on *.*" in capability.detail


def test_dsn_connection_with_user_and_password_from_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mariadb_database: str,
    make_user: Callable[[str, list[str]], str],
) -> None:  # fmt: skip
    user = make_user(WEIRD_PASSWORD, [f"GRANT SELECT ON `{mariadb_database}`.* TO {{user}}"])
    ini = tmp_path / "odbc.ini"
    ini.write_text(
        f"[bridge_od]\nDriver={MARIADB_DRIVER}\nServer={MARIADB_HOST}\nPort={MARIADB_PORT}\n"
        f"Database={mariadb_database}\n"
    )
    monkeypatch.setenv("ODBCINI", str(ini))
    settings = OdbcSettings(dsn="bridge_od", user=user, password=Secret(WEIRD_PASSWORD, "pms"))
    with connect(settings) as conn:
        assert conn.family is DriverFamily.MARIADB
        assert conn.read_only_enforced
        assert conn.login_can_write().can_write is False
        assert WEIRD_PASSWORD not in conn.description


def test_streaming_200k_rows_keeps_memory_bounded(
    conn: PmsConnection, mariadb_admin: pyodbc.Connection, mariadb_database: str
) -> None:
    _admin_run(
        mariadb_admin,
        mariadb_database,
        "CREATE TABLE appointment (AptNum BIGINT PRIMARY KEY, PatNum BIGINT, AptStatus TINYINT, "
        "Pattern VARCHAR(255), Confirmed BIGINT, Op BIGINT, Note TEXT, ProvNum BIGINT, "
        "AptDateTime DATETIME, DateTStamp TIMESTAMP, IsNewPatient TINYINT, "
        "ProcDescript VARCHAR(255), ClinicNum BIGINT, SecDateTEntry DATETIME, Fee DECIMAL(10,2)"
        ") ENGINE=MyISAM",
        "INSERT INTO appointment SELECT seq, seq % 5000, seq % 6, 'XXXX//XX', seq % 20, seq % 8, "
        "concat(repeat('a note about the visit ', 8), seq), seq % 12, "
        "'2024-01-01 08:00:00' + INTERVAL seq MINUTE, '2024-06-01 00:00:00', seq % 2, "
        "'PerEx, Pro, 4BW', 0, '2023-06-01 00:00:00' + INTERVAL seq SECOND, seq % 1000 + 0.25 "
        "FROM seq_1_to_200000",
    )
    table_bytes = int(
        mariadb_admin.execute(
            "SELECT data_length FROM information_schema.tables "
            "WHERE table_schema = ? AND table_name = 'appointment'",
            mariadb_database,
        ).fetchone()[0]
    )
    assert table_bytes > 50_000_000
    rows = conn.stream("SELECT * FROM appointment", table="appointment", key_columns=["AptNum"])
    count, growth = peak_rss_growth(rows)
    assert count == 200_000
    # Measured: about 10-14 MB paged, 62 MB with page_size=None (the driver
    # buffers the whole result).
    assert growth < table_bytes / 3, (
        f"RSS grew {growth / 1e6:.1f} MB for a {table_bytes / 1e6:.0f} MB table"
    )


def test_non_ascii_names_survive_the_round_trip(
    conn: PmsConnection, mariadb_admin: pyodbc.Connection, mariadb_database: str
) -> None:
    # Connector/ODBC 3.1's UTF-16 path mangles U+00D8..U+00DB (Ø Ù Ú Û).
    names = ["Ødegaard", "Ø", "Úna Ó Súilleabháin", "Nguyễn", "Siân", "Zoë O'Brien"]
    _admin_run(
        mariadb_admin,
        mariadb_database,
        "CREATE TABLE p (k INT PRIMARY KEY, n VARCHAR(100)) ENGINE=MyISAM CHARSET=utf8mb3",
    )
    insert = pyodbc.connect(
        mariadb_connection_string(mariadb_database) + ";CHARSET=utf8mb4", autocommit=True
    )
    insert.setencoding(encoding="utf-8")
    for k, name in enumerate(names):
        insert.execute("INSERT INTO p VALUES (?, ?)", k, name)
    insert.close()
    rows = conn.execute("SELECT n FROM p ORDER BY k")
    assert [r[0] for r in rows] == names
    found = conn.execute("SELECT k FROM p WHERE n = ?", ("Ødegaard",))
    assert [r[0] for r in found] == [0]
