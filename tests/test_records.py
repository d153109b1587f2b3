"""Canonical records from the real sample practice through the SQLite3 ODBC driver."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bridge.errors import BadValueError, ConfigError
from bridge.pms.odbc import OdbcSettings, connect
from bridge.pms.profile import load_profile, parse_profile
from bridge.sync.records import RecordReader, content_hash
from sandbox.practice import BuildReport

LA = ZoneInfo("America/Los_Angeles")


def test_select_reads_only_key_stamp_and_allowlisted_columns() -> None:
    reader = RecordReader(load_profile("opendental"), "patient", LA)
    sql = reader.select()
    assert sql.startswith("SELECT PatNum, DateTStamp, LName, FName")
    for never in ("SSN", "Address", "Note", "SecurityHash", "ChartNumber"):
        assert never not in sql
    schedule = RecordReader(load_profile("opendental"), "schedule", LA).select("DateTStamp >= ?")
    assert schedule.endswith("WHERE (SchedType IN (0, 1, 2)) AND (DateTStamp >= ?)")


def test_appointments_become_canonical_records(practice: BuildReport) -> None:
    reader = RecordReader(load_profile("opendental"), "appointment", LA)
    with connect(OdbcSettings(connection_string=practice.connection_string)) as conn:
        records = list(reader.read(conn))
    assert len(records) == practice.counts["appointment"]
    assert [int(r.key) for r in records] == sorted(int(r.key) for r in records)
    scheduled = next(r for r in records if r.data["status"] == "scheduled")
    assert scheduled.data["start"] is not None and str(scheduled.data["start"])[-6:] in (
        "-08:00",
        "-07:00",
    )
    assert isinstance(scheduled.data["duration_minutes"], int)
    assert scheduled.data["duration_minutes"] % 5 == 0
    assert scheduled.hash == content_hash(scheduled.data)
    planned = [r for r in records if r.data["status"] == "planned"]
    assert planned and all(r.data["start"] is None for r in planned)  # zero date -> null


def test_patients_keep_awkward_names_and_null_zero_birthdates(practice: BuildReport) -> None:
    reader = RecordReader(load_profile("opendental"), "patient", LA)
    with connect(OdbcSettings(connection_string=practice.connection_string)) as conn:
        records = list(reader.read(conn))
    last_names = {r.data["last_name"] for r in records}
    assert {"O'Brien", "Nguyễn"} <= last_names
    assert any(r.data["date_of_birth"] is None for r in records)
    assert all(r.data["email"] != "" for r in records)  # empty text becomes null


def test_bad_values_are_reported_and_the_rest_delivered(
    tmp_path: Path, practice: BuildReport
) -> None:
    db = tmp_path / "od.sqlite3"
    shutil.copy(practice.connection_string.split("Database=", 1)[1], db)
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE appointment SET Pattern = 'XX?X' WHERE AptNum = 5")
        raw.execute("UPDATE appointment SET AptStatus = 42 WHERE AptNum = 9")
    reports: list[BadValueError] = []
    reader = RecordReader(load_profile("opendental"), "appointment", LA, reports.append)
    with connect(OdbcSettings(connection_string=f"Driver={{SQLite3}};Database={db}")) as conn:
        records = {r.key: r for r in reader.read(conn)}
    assert len(records) == practice.counts["appointment"]
    assert records["5"].data["duration_minutes"] is None
    assert records["9"].data["status"] is None
    assert {(e.table, str(e.key), e.column) for e in reports} == {
        ("appointment", "5", "Pattern"),
        ("appointment", "9", "AptStatus"),
    }
    assert all("XX?X" not in e.message for e in reports)


def test_profile_refuses_names_that_are_not_plain_identifiers() -> None:
    text = """
[profile]
name = "x"
title = "X"
write_route = "api"
[entities.patient]
table = "patient; DROP TABLE patient"
key = ["PatNum"]
change = { strategy = "snapshot" }
fields.id = { column = "PatNum", type = "id" }
"""
    with pytest.raises(ConfigError, match="not plain SQL identifiers"):
        parse_profile(text)
