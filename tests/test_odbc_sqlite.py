"""The ODBC layer against the real SQLite3 ODBC driver (and the real driver
manager for missing drivers and DSNs)."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SQLITE_DRIVER, sqlite_connection_string
from test_odbc_helpers import assert_missing_table_and_column_name_the_entity, peak_rss_growth

from bridge.errors import (
    BadValueError,
    DataSourceNotFoundError,
    DriverNotFoundError,
    PmsError,
    QueryTimeoutError,
    ReadOnlyViolationError,
    ServerUnreachableError,
)
from bridge.pms.odbc import (
    DriverFamily,
    OdbcSettings,
    PmsConnection,
    connect,
    defined_data_sources,
    installed_drivers,
)
from bridge.pms.odbc_catalog import Catalog

SLOW_QUERY = (
    "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 100000000) "
    "SELECT count(*) FROM r"
)


def _make_db(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE patient (PatNum INTEGER PRIMARY KEY, LName VARCHAR(100), Birthdate DATE,
                              DateTStamp DATETIME, Balance NUMERIC, Visits INTEGER,
                              StartTime TIME, IsActive BOOLEAN);
        CREATE TABLE t_x (Id INTEGER PRIMARY KEY);
        CREATE TABLE tax (Id INTEGER PRIMARY KEY, Amount REAL);
        CREATE VIEW patient_names AS SELECT PatNum, LName FROM patient;
        """
    )
    db.executemany(
        "INSERT INTO patient VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (n, f"Name{n}", "1980-05-06", "2024-01-02 03:04:05", 12.5, n, "08:30:00", 1)
            for n in range(1, 51)
        ],
    )
    db.commit()
    db.close()
    return path


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return _make_db(tmp_path / "practice.db")


@pytest.fixture
def conn(db_path: Path) -> Iterator[PmsConnection]:
    with connect(OdbcSettings(connection_string=sqlite_connection_string(db_path))) as c:
        yield c


def test_connects_read_only_with_a_watchdog_for_timeouts(conn: PmsConnection) -> None:
    assert conn.family is DriverFamily.SQLITE
    assert conn.read_only_enforced
    assert "query_only" in conn.read_only_method
    assert "watchdog" in conn.timeout_method
    assert "NoCreat=1" in conn.description
    assert [r["n"] for r in conn.execute("SELECT count(*) AS n FROM patient")] == [50]


def test_a_write_fails_as_a_read_only_violation(conn: PmsConnection) -> None:
    with pytest.raises(ReadOnlyViolationError):
        conn.execute("INSERT INTO patient (PatNum) VALUES (999)")
    with pytest.raises(ReadOnlyViolationError):
        conn.execute("CREATE TABLE sneaky (i INTEGER)")


def test_read_only_off_allows_writes(db_path: Path) -> None:
    settings = OdbcSettings(connection_string=sqlite_connection_string(db_path), read_only=False)
    with connect(settings) as conn:
        assert not conn.read_only_enforced
        assert conn.execute("INSERT INTO t_x (Id) VALUES (1)") == []
    assert sqlite3.connect(db_path).execute("SELECT count(*) FROM t_x").fetchone() == (1,)


def test_missing_database_file_is_unreachable_and_never_created(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.db"
    with pytest.raises(ServerUnreachableError, match="does not exist"):
        connect(OdbcSettings(connection_string=sqlite_connection_string(missing)))
    assert not missing.exists()


def test_a_file_that_is_not_a_database_fails_at_connect(tmp_path: Path) -> None:
    garbage = tmp_path / "notes.txt"
    garbage.write_bytes(b"not a database " * 200)
    with pytest.raises(ServerUnreachableError, match="not a SQLite database"):
        connect(OdbcSettings(connection_string=sqlite_connection_string(garbage)))


def test_missing_file_behind_a_dsn_is_unreachable_and_never_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nowhere.db"
    ini = tmp_path / "odbc.ini"
    ini.write_text(f"[bridge_missing]\nDriver={SQLITE_DRIVER}\nDatabase={missing}\n")
    monkeypatch.setenv("ODBCINI", str(ini))
    # The DSN hides the path from the pre-check: the driver's NoCreat=1 must hold.
    with pytest.raises(ServerUnreachableError, match="could not be opened"):
        connect(OdbcSettings(dsn="bridge_missing"))
    assert not missing.exists()


def test_missing_driver_lists_the_installed_ones() -> None:
    with pytest.raises(DriverNotFoundError) as info:
        connect(OdbcSettings(connection_string="Driver={No Such Driver 9};Database=x"))
    assert info.value.driver == "No Such Driver 9"
    assert SQLITE_DRIVER in info.value.installed
    assert SQLITE_DRIVER in str(info.value)
    assert SQLITE_DRIVER in installed_drivers()


def test_data_sources_missing_defined_and_without_driver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_path: Path
) -> None:
    ini = tmp_path / "odbc.ini"
    ini.write_text(
        f"[bridge_practice]\nDriver={SQLITE_DRIVER}\nDatabase={db_path}\n\n"
        "[bridge_broken]\nDriver=Gone Driver 1.0\n"
    )
    monkeypatch.setenv("ODBCINI", str(ini))
    assert defined_data_sources() == {
        "bridge_practice": SQLITE_DRIVER,
        "bridge_broken": "Gone Driver 1.0",
    }
    with connect(OdbcSettings(dsn="bridge_practice")) as conn:
        assert conn.family is DriverFamily.SQLITE
        assert conn.read_only_enforced
    with pytest.raises(DataSourceNotFoundError) as missing:
        connect(OdbcSettings(dsn="bridge_nope"))
    assert set(missing.value.defined) == {"bridge_practice", "bridge_broken"}
    assert "bridge_practice" in str(missing.value)
    with pytest.raises(DriverNotFoundError) as broken:
        connect(OdbcSettings(dsn="bridge_broken"))
    assert broken.value.driver == "Gone Driver 1.0"


def test_query_timeout_cancels_through_the_watchdog(db_path: Path) -> None:
    settings = OdbcSettings(
        connection_string=sqlite_connection_string(db_path), query_timeout_seconds=1
    )
    with connect(settings) as conn:
        started = time.monotonic()
        with pytest.raises(QueryTimeoutError) as info:
            conn.execute(SLOW_QUERY)
        assert time.monotonic() - started < 3
        assert "1 s" in str(info.value)
        # The connection stays usable, and a fast statement is not cancelled
        # by a stale deadline.
        time.sleep(1.2)
        assert conn.execute("SELECT 1 AS one")[0]["one"] == 1


def test_missing_table_and_column_name_the_entity(conn: PmsConnection) -> None:
    assert_missing_table_and_column_name_the_entity(conn)


def test_catalog_tables_columns_and_entity_checks(conn: PmsConnection) -> None:
    assert conn.has_table("patient")
    assert conn.has_table("PATIENT")
    assert conn.has_table("patient_names")  # views count
    assert not conn.has_table("appointment")
    assert conn.has_table("t_x") and conn.has_table("tax")
    assert not conn.has_table("t_y")  # "_" is not a wildcard
    columns = conn.columns("patient")
    assert [c.name for c in columns][:3] == ["PatNum", "LName", "Birthdate"]
    assert [c.position for c in columns] == list(range(1, 9))
    assert columns[2].sql_type == 91  # SQL_TYPE_DATE
    assert conn.columns("appointment") == []
    assert conn.check_entity("patient", "patient", ["PatNum", "LName"]) == []
    problems = conn.check_entity("patient", "patient", ["PatNum", "SSN", "Email"])
    assert [(p.entity, p.table, p.column) for p in problems] == [
        ("patient", "patient", "SSN"),
        ("patient", "patient", "Email"),
    ]
    missing = conn.check_entity("appointment", "appointment", ["AptNum"])
    assert [(p.table, p.column) for p in missing] == [("appointment", None)]


def test_catalog_falls_back_to_a_probe_when_the_catalog_says_nothing(
    conn: PmsConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Catalog, "_catalog_rows", lambda self, call: None)
    assert conn.has_table("patient")
    assert not conn.has_table("appointment")
    assert [c.name for c in conn.columns("patient")][:2] == ["PatNum", "LName"]
    assert conn.check_entity("patient", "patient", ["LName", "SSN"])[0].column == "SSN"


def test_login_can_write_reports_the_file(conn: PmsConnection, db_path: Path) -> None:
    capability = conn.login_can_write()
    assert capability.can_write is (os.access(db_path, os.W_OK))
    assert str(db_path) in capability.detail


def test_bad_values_are_isolated_and_named(db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = sqlite3.connect(db_path)
    db.execute("UPDATE patient SET Birthdate = '2024-13-45' WHERE PatNum = 3")
    db.execute("UPDATE patient SET Birthdate = 'abc', Balance = 'lots' WHERE PatNum = 17")
    db.execute("UPDATE patient SET LName = CAST(x'ff41' AS TEXT) WHERE PatNum = 18")
    db.execute("UPDATE patient SET Visits = 1e20, StartTime = '25:99' WHERE PatNum = 40")
    db.execute("UPDATE patient SET DateTStamp = 'garbage', IsActive = 'maybe' WHERE PatNum = 41")
    db.execute("UPDATE patient SET Birthdate = '0000-00-00' WHERE PatNum = 42")
    db.execute("UPDATE patient SET Birthdate = '0001-01-01' WHERE PatNum = 43")
    db.commit()
    db.close()
    reports: list[BadValueError] = []
    with (
        connect(OdbcSettings(connection_string=sqlite_connection_string(db_path))) as conn,
        caplog.at_level(logging.WARNING),
    ):
        rows = list(
            conn.stream(
                "SELECT * FROM patient",
                table="patient",
                key_columns=["PatNum"],
                page_size=20,
                batch_size=7,
                on_bad_value=reports.append,
            )
        )
    assert [r["PatNum"] for r in rows] == list(range(1, 51))
    found = {(e.table, e.key, e.column, e.problem) for e in reports}
    assert found == {
        ("patient", 3, "Birthdate", "invalid date"),
        ("patient", 17, "Birthdate", "invalid date"),
        ("patient", 17, "Balance", "invalid number"),
        ("patient", 18, "LName", "text is not valid UTF-8"),
        ("patient", 40, "Visits", "not an integer"),
        ("patient", 40, "StartTime", "invalid or out-of-range time of day"),
        ("patient", 41, "DateTStamp", "invalid date and time"),
        ("patient", 41, "IsActive", "invalid true/false value"),
    }
    by_key = {r["PatNum"]: r for r in rows}
    assert by_key[17]["Birthdate"] is None and by_key[17]["LName"] == "Name17"
    assert by_key[42]["Birthdate"] is None  # zero date: no report
    assert by_key[43]["Birthdate"].isoformat() == "0001-01-01"  # OD's "no date": kept
    assert by_key[1]["Balance"] == 12.5 and by_key[1]["IsActive"] is True
    warnings = [
        r
        for r in caplog.records
        if r.name.startswith("bridge.pms") and r.levelno >= logging.WARNING
    ]
    assert len(warnings) == len(found)
    assert all(r.levelno == logging.WARNING for r in warnings)
    messages = " ".join(r.getMessage() for r in warnings)
    assert "lots" not in messages and "garbage" not in messages and "abc" not in messages


def test_streaming_200k_rows_keeps_memory_bounded(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE appointment (AptNum INTEGER PRIMARY KEY, PatNum INTEGER, "
        "Note TEXT, AptDateTime DATETIME, Fee NUMERIC)"
    )
    note = "x" * 200
    db.executemany(
        "INSERT INTO appointment VALUES (?, ?, ?, ?, ?)",
        ((n, n % 5000, note, "2024-01-01 08:00:00", 10.25) for n in range(1, 200_001)),
    )
    db.commit()
    db.close()
    table_bytes = path.stat().st_size  # about 50 MB
    with connect(OdbcSettings(connection_string=sqlite_connection_string(path))) as conn:
        rows = conn.stream("SELECT * FROM appointment", table="appointment", key_columns=["AptNum"])
        count, growth = peak_rss_growth(rows)
    assert count == 200_000
    assert growth < table_bytes / 3, f"RSS grew {growth / 1e6:.1f} MB while streaming"


def test_composite_keys_page_in_key_order_without_gaps(tmp_path: Path) -> None:
    path = tmp_path / "links.db"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE scheduleop (ScheduleNum INTEGER, OperatoryNum INTEGER, "
        "PRIMARY KEY (ScheduleNum, OperatoryNum))"
    )
    pairs = [(s, o) for s in range(1, 31) for o in (3, 1, 2)]
    db.executemany("INSERT INTO scheduleop VALUES (?, ?)", pairs)
    db.commit()
    db.close()
    with connect(OdbcSettings(connection_string=sqlite_connection_string(path))) as conn:
        rows = conn.stream(
            "SELECT * FROM scheduleop WHERE ScheduleNum > ?",
            (5,),
            table="scheduleop",
            key_columns=["ScheduleNum", "OperatoryNum"],
            page_size=7,
            batch_size=3,
        )
        got = [(r["ScheduleNum"], r["OperatoryNum"]) for r in rows]
    assert got == sorted(p for p in pairs if p[0] > 5)


def test_a_stream_closed_early_releases_the_connection(conn: PmsConnection) -> None:
    rows = conn.stream(
        "SELECT PatNum FROM patient", table="patient", key_columns=["PatNum"], page_size=10
    )
    assert [next(rows)["PatNum"] for _ in range(3)] == [1, 2, 3]
    rows.close()
    assert conn.execute("SELECT count(*) AS n FROM patient")[0]["n"] == 50


def test_a_key_column_missing_from_the_result_is_a_clear_error(conn: PmsConnection) -> None:
    with pytest.raises(PmsError, match="key column 'PatNum' is not in the result"):
        list(
            conn.stream(
                "SELECT LName FROM patient", table="patient", key_columns=["PatNum"], page_size=None
            )
        )
    with pytest.raises(ValueError, match="plain SQL identifier"):
        conn.stream("SELECT * FROM patient", table="patient", key_columns=["PatNum; --"])


def test_a_closed_connection_refuses_statements(conn: PmsConnection) -> None:
    conn.close()
    conn.close()
    assert conn.closed
    with pytest.raises(PmsError, match="closed"):
        conn.execute("SELECT 1")
