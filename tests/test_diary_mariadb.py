"""The live diary and the slot engine on MariaDB through MariaDB Connector/ODBC: the
demo practice loaded as Open Dental has it (MyISAM, legacy zero dates), conflicts
written by a second connection, TIME values no clock can show."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote

import pyodbc
import pytest
from conftest import (
    MARIADB_HOST,
    MARIADB_PASSWORD,
    MARIADB_PORT,
    MARIADB_USER,
    _admin_connect,
    mariadb_connection_string,
)
from test_diary import (
    CountingConnection,
    add_appointment,
    add_schedule,
    check_clock_change_days,
    check_snapshot_against_rows,
    clear_chair,
    engine_at,
    first_appointment,
    format_figures,
    hours,
    measure,
    wall,
    working_day,
)

from bridge.bookings.slots import SlotCheck
from bridge.pms.odbc import OdbcSettings, PmsConnection, connect
from bridge.secrets import Secret
from sandbox.practice import BuildReport, build_practice

pytestmark = pytest.mark.mariadb


class MariaDbWriter:
    """A second connection, as the PMS's own client would write (no strict mode)."""

    def __init__(self, database: str) -> None:
        conn_str = mariadb_connection_string(database) + f";Password={MARIADB_PASSWORD}"
        self.db = pyodbc.connect(conn_str, autocommit=True, timeout=5)
        self.db.execute("SET SESSION sql_mode = ''")

    def run(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        cursor = self.db.execute(sql, *params)
        rows = [tuple(r) for r in cursor.fetchall()] if cursor.description else []
        cursor.close()
        return rows

    def insert(self, sql: str, params: Sequence[object]) -> int:
        self.db.execute(sql, *params).close()
        return int(self.db.execute("SELECT LAST_INSERT_ID()").fetchone()[0])


@pytest.fixture(scope="module")
def admin() -> Iterator[pyodbc.Connection]:
    conn = _admin_connect()
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def database(admin: pyodbc.Connection) -> Iterator[str]:
    name = f"diary_test_{secrets.token_hex(4)}"
    yield name
    admin.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(scope="module")
def practice(database: str) -> BuildReport:
    target = (
        f"mariadb://{quote(MARIADB_USER)}:{quote(MARIADB_PASSWORD)}@{MARIADB_HOST}:"
        f"{MARIADB_PORT}/{database}"
    )
    return build_practice(target, size="demo")


@pytest.fixture
def conn(practice: BuildReport) -> Iterator[PmsConnection]:
    password = Secret(practice.password) if practice.password else None
    settings = OdbcSettings(connection_string=practice.connection_string, password=password)
    with connect(settings) as c:
        yield c


@pytest.fixture
def writer(practice: BuildReport, database: str) -> Iterator[MariaDbWriter]:
    w = MariaDbWriter(database)
    yield w
    w.db.close()


def test_snapshot_holds_the_days_rows(
    conn: PmsConnection, writer: MariaDbWriter, practice: BuildReport
) -> None:
    check_snapshot_against_rows(conn, writer, working_day(writer, practice.today))


def test_rows_written_by_another_connection_are_seen_at_once(
    conn: PmsConnection, writer: MariaDbWriter, practice: BuildReport
) -> None:
    day = working_day(writer, practice.today + timedelta(days=7))
    engine = engine_at(conn, wall(day - timedelta(days=1), "06:00"))
    num, start, minutes, prov = first_appointment(writer, day, 1)
    taken = engine.check(start, minutes, str(prov), "1")
    assert (taken.reason_code, str(num) in taken.conflicts) == ("slot_taken", True)
    assert engine.check(start, minutes, str(prov), "1", ignore_appointment=str(num)).free
    clear_chair(writer, day, 1)
    start = wall(day, hours(writer, day, 1)[0][0]) + timedelta(minutes=30)
    assert engine.check(start, 30, "1", "1") == SlotCheck(free=True)
    new = add_appointment(writer, start + timedelta(minutes=20), 30, op=1, prov=1)
    result = engine.check(start, 30, "1", "1")
    assert (result.reason_code, result.conflicts) == ("slot_taken", (str(new),))
    assert engine.overlapping(start, 30, "1", "1") == [str(new)]
    writer.run("UPDATE appointment SET AptStatus = 3 WHERE AptNum = ?", (new,))
    assert engine.check(start, 30, "1", "1").free
    writer.run("UPDATE appointment SET AptStatus = 1, Op = 2 WHERE AptNum = ?", (new,))
    assert engine.check(start, 30, "1", "1").reason_code == "provider_busy"
    blockout = add_schedule(writer, day, start.strftime("%H:%M:%S"), "23:00:00", 2, ops=[1])
    assert engine.check(start, 30, "1", "1").reason_code == "blockout"
    writer.run("DELETE FROM schedule WHERE ScheduleNum = ?", (blockout,))


def test_zero_dates_and_impossible_times_do_not_break_reads(
    conn: PmsConnection,
    writer: MariaDbWriter,
    practice: BuildReport,
    caplog: pytest.LogCaptureFixture,
) -> None:
    day = working_day(writer, practice.today + timedelta(days=14))
    engine = engine_at(conn, wall(day - timedelta(days=1), "06:00"))
    clear_chair(writer, day, 1)
    start = wall(day, hours(writer, day, 1)[0][0]) + timedelta(minutes=30)
    assert engine.check(start, 30, "1", "1").free
    # legacy zero dates, as old Open Dental rows hold them
    add_schedule(writer, "0000-00-00", "09:00:00", "10:00:00", 2, ops=[1])
    zero = add_appointment(writer, wall(day, "09:00"), 30, op=1, prov=1)
    writer.run(
        "UPDATE appointment SET AptDateTime = '0000-00-00 00:00:00' WHERE AptNum = ?", (zero,)
    )
    assert engine.check(start, 30, "1", "1").free
    # TIME holds up to 838:59:59: a provider block no clock can show is skipped,
    # a blockout no clock can show blocks its whole day
    add_schedule(writer, day, "07:00:00", "30:00:00", 1, prov=1, ops=[1])
    assert engine.check(start, 30, "1", "1").free
    assert engine.check(wall(day, "22:00"), 30, "1", "1").reason_code == "outside_hours"
    add_schedule(writer, day, "838:59:59", "10:00:00", 2, ops=[1])
    with caplog.at_level(logging.WARNING):
        assert engine.check(start, 30, "1", "1").reason_code == "blockout"
    assert "blockout with unreadable times" in caplog.text
    assert engine.check(start, 30, "2", "2").reason_code != "blockout"  # only op 1


def test_clock_change_days(conn: PmsConnection, writer: MariaDbWriter) -> None:
    check_clock_change_days(conn, writer)


def test_cost_of_one_check_and_one_alternatives(
    conn: PmsConnection,
    writer: MariaDbWriter,
    practice: BuildReport,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    day: date = working_day(writer, practice.today + timedelta(days=21))
    counter = CountingConnection(conn)
    counter.install(conn, monkeypatch)
    engine = engine_at(conn, wall(day - timedelta(days=1), "06:00"))
    figures = measure(engine, counter, wall(day, "10:00"))
    assert figures["check"][0] == 4
    assert figures["alternatives"][0] in (4, 8)
    with capsys.disabled():
        print(f"\nslot engine on MariaDB (demo practice): {format_figures(figures)}")
