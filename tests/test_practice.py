"""The sample practice on SQLite: API, schema, data, diary, determinism, CLI.

One demo practice is built per module and read back through the SQLite3
ODBC driver with Open Dental's real table and column names; a few tests make
their own builds (determinism, clinics, CLI). MariaDB is covered in
``test_practice_mariadb.py``.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time, timedelta
from hashlib import sha256
from itertools import pairwise
from pathlib import Path

import pyodbc
import pytest
from click.testing import CliRunner
from conftest import sqlite_connection_string

import sandbox.practice
from sandbox.__main__ import main
from sandbox.practice import (
    TIMEZONE,
    BuildReport,
    PracticeError,
    TargetExistsError,
    build_practice,
)
from sandbox.practice.dates import DiarySpan, dst_sundays
from sandbox.practice.generate import generate
from sandbox.practice.profiles import SIZES
from sandbox.practice.rows import Output, Row
from sandbox.practice.schema import load_schema

TODAY = date(2026, 11, 23)
SCHEDULED, COMPLETE, UNSCHED, BROKEN, PLANNED, PT_NOTE = 1, 2, 3, 5, 6, 7


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuildReport:
    path = tmp_path_factory.mktemp("practice") / "opendental.sqlite3"
    return build_practice(path, today=TODAY)


@pytest.fixture
def odbc(built: BuildReport) -> Iterator[pyodbc.Connection]:
    conn = pyodbc.connect(built.connection_string, autocommit=True)
    yield conn
    conn.close()


def db_path(report: BuildReport) -> str:
    return report.connection_string.split("Database=")[1]


def rows(conn: pyodbc.Connection, sql: str) -> list[Sequence[object]]:
    return [tuple(row) for row in conn.execute(sql).fetchall()]


def scalar(conn: pyodbc.Connection, sql: str) -> object:
    return conn.execute(sql).fetchone()[0]


def minutes(value: time | datetime) -> int:
    return value.hour * 60 + value.minute


# -- API and schema -------------------------------------------------------------


def test_public_api_is_exactly_the_intended_names() -> None:
    assert sorted(sandbox.practice.__all__) == sorted(
        ["TIMEZONE", "BuildReport", "PracticeError", "TargetExistsError", "build_practice"]
    )
    assert TIMEZONE == "America/Los_Angeles"


def test_report_describes_the_build(built: BuildReport, tmp_path: Path) -> None:
    assert built.kind == "sqlite"
    path = re.fullmatch(r"Driver=\{SQLite3\};Database=(.+)", built.connection_string)
    assert path and Path(path.group(1)).is_absolute() and Path(path.group(1)).exists()
    assert built.connection_string == sqlite_connection_string(Path(path.group(1)))
    assert built.password == "" and "password" not in repr(built).lower()
    assert built.timezone == TIMEZONE and built.today == TODAY
    assert set(built.counts) == set(load_schema())
    assert 0 < built.seconds < 60
    with pytest.raises(AttributeError):
        built.kind = "mariadb"  # type: ignore[misc]


def test_demo_size(built: BuildReport) -> None:
    counts = built.counts
    assert 500 <= counts["patient"] <= 1000
    assert 3_000 <= counts["appointment"] <= 15_000
    assert counts["procedurelog"] > counts["appointment"]
    assert counts["deletedobject"] == 0
    for table in (
        "definition",
        "provider",
        "operatory",
        "schedule",
        "scheduleop",
        "appointmenttype",
        "procedurecode",
        "insplan",
        "inssub",
        "patplan",
        "claim",
        "claimproc",
        "payment",
        "paysplit",
        "recalltype",
        "recall",
        "commlog",
    ):
        assert counts[table] > 0, table
    assert counts["clinic"] == 0


def test_read_back_through_odbc_with_real_names(
    odbc: pyodbc.Connection, built: BuildReport
) -> None:
    got = rows(
        odbc,
        "SELECT AptNum, PatNum, AptDateTime, Pattern, Op, ProvNum, AptStatus, "
        "DateTStamp FROM appointment ORDER BY AptNum",
    )
    assert len(got) == built.counts["appointment"]
    apt_num, pat_num, when, pattern, op, prov, status, stamp = got[0]
    assert isinstance(apt_num, int) and isinstance(pat_num, int) and isinstance(op, int)
    assert isinstance(when, datetime) and isinstance(stamp, datetime)
    assert isinstance(pattern, str) and re.fullmatch(r"[X/]+", pattern)
    assert isinstance(prov, int) and prov > 0 and status in (1, 2, 3, 5)


def test_sqlite_schema_is_derived_from_the_vendored_ddl(built: BuildReport) -> None:
    schema = load_schema()
    db = sqlite3.connect(db_path(built))
    for table in schema.values():
        columns = [row[1] for row in db.execute(f"PRAGMA table_info({table.name})")]
        assert columns == list(table.column_names), table.name
        indexes = {row[1] for row in db.execute(f"PRAGMA index_list({table.name})")}
        assert {f"{table.name}_{index.name}" for index in table.indexes} <= indexes
    triggers = {
        row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
    }
    assert "appointment_DateTStamp_on_update" in triggers
    assert "claim_SecDateTEdit_on_update" in triggers
    db.close()


def test_odbc_reports_sensible_types(odbc: pyodbc.Connection) -> None:
    cursor = odbc.cursor()

    def type_of(table: str, column: str) -> tuple[str, int]:
        found = [
            (c.type_name, c.data_type)
            for c in cursor.columns(table=table)
            if c.column_name == column
        ]
        assert found, f"{table}.{column}"
        return found[0]

    assert type_of("appointment", "AptNum")[1] == pyodbc.SQL_INTEGER
    assert type_of("appointment", "PatNum") == ("BIGINT", pyodbc.SQL_BIGINT)
    assert type_of("appointment", "AptStatus") == ("TINYINT", pyodbc.SQL_TINYINT)
    assert type_of("appointment", "AptDateTime")[1] == pyodbc.SQL_TYPE_TIMESTAMP
    assert type_of("appointment", "DateTStamp")[0] == "TIMESTAMP"
    assert type_of("appointment", "Note")[1] == pyodbc.SQL_LONGVARCHAR
    assert type_of("patient", "LName") == ("VARCHAR(100)", pyodbc.SQL_VARCHAR)
    assert type_of("patient", "Birthdate") == ("DATE", pyodbc.SQL_TYPE_DATE)
    assert type_of("schedule", "StartTime") == ("TIME", pyodbc.SQL_TYPE_TIME)
    assert type_of("procedurelog", "ProcFee") == ("DOUBLE", pyodbc.SQL_DOUBLE)
    assert type_of("claim", "ClaimStatus")[0] == "CHAR(1)"


def test_stamp_trigger_behaves_like_on_update_current_timestamp(
    built: BuildReport, tmp_path: Path
) -> None:
    copy = tmp_path / "copy.sqlite3"
    shutil.copy(db_path(built), copy)
    conn = pyodbc.connect(sqlite_connection_string(copy), autocommit=True)

    def stamp(apt: int) -> datetime:
        value = scalar(conn, f"SELECT DateTStamp FROM appointment WHERE AptNum = {apt}")
        assert isinstance(value, datetime)
        return value

    before = stamp(1)
    assert before < datetime.combine(TODAY, time())
    conn.execute("UPDATE appointment SET Note = Note WHERE AptNum = 1")  # nothing changed
    assert stamp(1) == before
    started = datetime.now().replace(microsecond=0)  # local time, as MariaDB's stamps
    conn.execute("UPDATE appointment SET Note = 'moved by the front desk' WHERE AptNum = 1")
    assert started <= stamp(1) <= datetime.now() + timedelta(seconds=1)
    conn.execute(
        "UPDATE appointment SET Note = 'x', DateTStamp = '2020-02-02 10:00:00' WHERE AptNum = 2"
    )
    assert stamp(2) == datetime(2020, 2, 2, 10)
    conn.execute("UPDATE patient SET HmPhone = '555-0100' WHERE PatNum = 1")
    assert scalar(conn, "SELECT DateTStamp FROM patient WHERE PatNum = 1") >= started
    conn.execute("INSERT INTO deletedobject (ObjectNum, ObjectType) VALUES (7, 1)")
    assert scalar(conn, "SELECT DateTStamp FROM deletedobject") >= started
    conn.close()


# -- reference data ---------------------------------------------------------------


def test_definitions_and_codes(odbc: pyodbc.Connection) -> None:
    defs = defaultdict(set)
    for category, name in rows(odbc, "SELECT Category, ItemName FROM definition"):
        defs[category].add(name)
    assert {"Unconfirmed", "Not Called", "Confirmed", "Left Message"} <= defs[2]
    for category in (4, 10, 11, 13, 25, 27, 35):
        assert defs[category], category
    codes = dict(rows(odbc, "SELECT ProcCode, ProcTime FROM procedurecode"))
    for code in (
        "D0120",
        "D0150",
        "D0210",
        "D0274",
        "D1110",
        "D1120",
        "D1206",
        "D2391",
        "D2392",
        "D2740",
        "D2950",
        "D3330",
        "D4341",
        "D4910",
        "D7140",
        "D9110",
    ):
        assert re.fullmatch(r"[X/]+", codes[code]), code
    types = rows(odbc, "SELECT AppointmentTypeName, Pattern, CodeStr FROM appointmenttype")
    assert len(types) >= 8
    for _name, pattern, code_str in types:
        assert re.fullmatch(r"/+X+/+", pattern)
        assert all(code in codes for code in code_str.split(","))
    assert {"/XX/", "//XXXXXXXXXX//"} <= {pattern for _n, pattern, _c in types}
    recall_types = dict(rows(odbc, "SELECT Description, DefaultInterval FROM recalltype"))
    assert recall_types["Prophy"] == 393216 and recall_types["Perio"] == 3 << 16


def test_providers_and_operatories(odbc: pyodbc.Connection) -> None:
    provs = rows(
        odbc, "SELECT ProvNum, Abbr, IsSecondary, IsHidden, IsNotPerson, Specialty FROM provider"
    )
    people = [p for p in provs if not p[4]]
    assert any(p[2] == 1 for p in people) and any(p[2] == 0 for p in people)
    assert len({p[1] for p in provs}) == len(provs) and all(p[1] for p in provs)
    specialties = {r[0] for r in rows(odbc, "SELECT DefNum FROM definition WHERE Category=35")}
    assert all(p[5] in specialties for p in provs)
    hygienists = {p[0] for p in provs if p[2] == 1}
    ops = rows(
        odbc,
        "SELECT OperatoryNum, IsHygiene, IsWebSched, ProvDentist, ProvHygienist, "
        "IsHidden FROM operatory",
    )
    visible = [op for op in ops if not op[5]]
    assert any(op[1] for op in visible) and any(not op[1] for op in visible)
    assert any(op[2] == 1 for op in visible) and any(op[2] == 0 for op in visible)
    for _num, hygiene, _web, dentist, hygienist, _hidden in visible:
        assert (hygienist in hygienists) if hygiene else (dentist and dentist not in hygienists)


# -- patients and references ----------------------------------------------------


def test_families_and_referential_sanity(odbc: pyodbc.Connection) -> None:
    patients = {
        r[0]: r
        for r in rows(odbc, "SELECT PatNum, Guarantor, PriProv, BillingType, SecProv FROM patient")
    }
    providers = {r[0] for r in rows(odbc, "SELECT ProvNum FROM provider")}
    billing = {r[0] for r in rows(odbc, "SELECT DefNum FROM definition WHERE Category = 4")}
    for pat, guarantor, pri_prov, billing_type, sec_prov in patients.values():
        assert patients[guarantor][1] == guarantor, pat
        assert pri_prov != 0 and pri_prov in providers
        assert sec_prov == 0 or sec_prov in providers
        assert billing_type in billing
    assert sum(1 for p in patients.values() if p[0] != p[1]) > 100  # real families

    def orphans(sql: str) -> int:
        value = scalar(odbc, sql)
        assert isinstance(value, int)
        return value

    assert (
        orphans(
            "SELECT COUNT(*) FROM scheduleop so LEFT JOIN schedule s ON "
            "s.ScheduleNum = so.ScheduleNum WHERE s.ScheduleNum IS NULL"
        )
        == 0
    )
    assert (
        orphans(
            "SELECT COUNT(*) FROM scheduleop so LEFT JOIN operatory o ON "
            "o.OperatoryNum = so.OperatoryNum WHERE o.OperatoryNum IS NULL"
        )
        == 0
    )
    for child, key, parent, parent_key in (
        ("procedurelog", "AptNum", "appointment", "AptNum"),
        ("procedurelog", "PlannedAptNum", "appointment", "AptNum"),
        ("procedurelog", "CodeNum", "procedurecode", "CodeNum"),
        ("procedurelog", "PatNum", "patient", "PatNum"),
        ("appointment", "PatNum", "patient", "PatNum"),
        ("appointment", "Op", "operatory", "OperatoryNum"),
        ("appointment", "AppointmentTypeNum", "appointmenttype", "AppointmentTypeNum"),
        ("appointment", "Confirmed", "definition", "DefNum"),
        ("claimproc", "ClaimNum", "claim", "ClaimNum"),
        ("claimproc", "ProcNum", "procedurelog", "ProcNum"),
        ("paysplit", "PayNum", "payment", "PayNum"),
        ("paysplit", "ProcNum", "procedurelog", "ProcNum"),
        ("patplan", "InsSubNum", "inssub", "InsSubNum"),
        ("inssub", "PlanNum", "insplan", "PlanNum"),
        ("inssub", "Subscriber", "patient", "PatNum"),
        ("recall", "RecallTypeNum", "recalltype", "RecallTypeNum"),
        ("commlog", "PatNum", "patient", "PatNum"),
    ):
        assert (
            orphans(
                f"SELECT COUNT(*) FROM {child} c LEFT JOIN {parent} p ON p.{parent_key} = c.{key} "
                f"WHERE c.{key} <> 0 AND p.{parent_key} IS NULL"
            )
            == 0
        ), f"{child}.{key}"
    assert (
        orphans(
            "SELECT COUNT(*) FROM procedurelog p JOIN appointment a ON "
            "a.AptNum = p.PlannedAptNum WHERE a.AptStatus <> 6"
        )
        == 0
    )


def test_awkward_data_is_present(odbc: pyodbc.Connection, built: BuildReport) -> None:
    people = rows(
        odbc,
        "SELECT PatNum, FName, LName, Birthdate, Guarantor, Email, HmPhone, "
        "WirelessPhone, WkPhone FROM patient",
    )
    first = {p[1] for p in people}
    last = {p[2] for p in people}
    assert {"Siân", "Zoë", "José"} <= first
    assert {"O'Brien", "Nguyễn", "Ó Súilleabháin", "Müller"} <= last
    assert any(re.fullmatch(r"\w+-\w+", name) for name in last)  # hyphenated
    emails = [p[5] for p in people]
    assert None in emails and "" in emails
    assert all(re.fullmatch(r"[a-z0-9.]+@example\.(com|org)", e) for e in emails if e)
    phones = [v for p in people for v in p[6:9]]
    assert None in phones and "" in phones
    real = [v for v in phones if v]
    assert all(re.search(r"555[-. ]?01\d\d$", v) for v in real)
    formats = {re.sub(r"\d", "9", v) for v in real}
    assert len(formats) >= 5
    assert any(p[3] == date(1, 1, 1) for p in people)
    by_family = defaultdict(list)
    for p in people:
        by_family[(p[4], p[2], p[3])].append(p[1])
    assert any(
        len(set(names)) >= 2 for (_g, _l, born), names in by_family.items() if born != date(1, 1, 1)
    )  # twins
    db = sqlite3.connect(db_path(built))  # zero dates are MariaDB-only
    for table, column in (
        ("payment", "PayDate"),
        ("paysplit", "ProcDate"),
        ("commlog", "CommDateTime"),
    ):
        assert db.execute(
            f"SELECT COUNT(*) FROM {table} WHERE {column} LIKE '0000%'"
        ).fetchone() == (0,)
        assert (
            db.execute(
                f"SELECT COUNT(*) FROM {table} WHERE {column} LIKE '0001-01-01%'"
            ).fetchone()[0]
            > 0
        )
    db.close()
    namesakes = defaultdict(set)
    for p in people:
        namesakes[(p[1], p[2])].add((p[4], p[3]))
    assert any(
        len({g for g, _b in fam}) >= 2 and len({b for _g, b in fam}) >= 2
        for fam in namesakes.values()
    )


def test_insurance_claims_and_payments(odbc: pyodbc.Connection) -> None:
    statuses = {r[0] for r in rows(odbc, "SELECT DISTINCT ClaimStatus FROM claim")}
    assert statuses <= set("UHWSRI") and {"R", "S"} <= statuses and statuses & {"U", "W"}
    bad = scalar(
        odbc,
        "SELECT COUNT(*) FROM claim c JOIN claimproc cp ON "
        "cp.ClaimNum = c.ClaimNum WHERE cp.PatNum <> c.PatNum",
    )
    assert bad == 0
    unpaid = scalar(
        odbc,
        "SELECT COUNT(*) FROM claimproc cp JOIN procedurelog p ON "
        "p.ProcNum = cp.ProcNum WHERE cp.ClaimNum <> 0 AND p.ProcStatus <> 2",
    )
    assert unpaid == 0
    mismatched = scalar(
        odbc,
        "SELECT COUNT(*) FROM payment p WHERE ABS(p.PayAmt - (SELECT "
        "SUM(SplitAmt) FROM paysplit s WHERE s.PayNum = p.PayNum)) > 0.01",
    )
    assert mismatched == 0
    assert scalar(odbc, "SELECT COUNT(*) FROM patplan WHERE Ordinal = 2") > 0


# -- the diary --------------------------------------------------------------------


def diary_problems(conn: pyodbc.Connection) -> list[str]:
    """Every breach of the diary contract (see sandbox.practice.diary)."""
    problems: list[str] = []
    blocks: dict[tuple[date, int], list[tuple[int, int, int]]] = defaultdict(list)
    blockouts: dict[tuple[date, int], list[tuple[int, int]]] = defaultdict(list)
    for day, start, stop, kind, prov, op in rows(
        conn,
        "SELECT s.SchedDate, s.StartTime, s.StopTime, s.SchedType, s.ProvNum, "
        "so.OperatoryNum FROM schedule s JOIN scheduleop so "
        "ON so.ScheduleNum = s.ScheduleNum",
    ):
        assert isinstance(day, date) and isinstance(start, time) and isinstance(stop, time)
        assert isinstance(op, int) and isinstance(prov, int)
        if kind == 1:
            blocks[(day, op)].append((minutes(start), minutes(stop), prov))
        elif kind == 2:
            blockouts[(day, op)].append((minutes(start), minutes(stop)))
        else:
            problems.append(f"schedule type {kind} linked to an operatory on {day}")
    for key, spans in blocks.items():
        spans.sort()
        problems += [f"provider blocks overlap in {key}" for a, b in pairwise(spans) if b[0] < a[1]]
    for key, spans in blockouts.items():
        spans.sort()
        problems += [f"blockouts overlap in {key}" for a, b in pairwise(spans) if b[0] < a[1]]
        for start, stop in spans:
            if not any(s <= start and stop <= e for s, e, _p in blocks[key]):
                problems.append(f"blockout outside provider hours in {key}")
    holidays = {
        r[0]
        for r in rows(conn, "SELECT SchedDate FROM schedule WHERE SchedType = 0 AND Status = 2")
    }
    busy: dict[tuple[date, int], list[tuple[int, int, int]]] = defaultdict(list)
    seen: set[tuple[date, int]] = set()
    for apt, pat, when, pattern, op, prov, hyg, is_hyg, status in rows(
        conn,
        "SELECT AptNum, PatNum, AptDateTime, Pattern, Op, ProvNum, ProvHyg, "
        "IsHygiene, AptStatus FROM appointment",
    ):
        assert isinstance(when, datetime) and isinstance(pattern, str)
        if when.date() in holidays:
            problems.append(f"appointment {apt} on holiday {when.date()}")
        if status not in (SCHEDULED, COMPLETE):
            continue
        assert isinstance(op, int) and isinstance(pat, int) and isinstance(apt, int)
        key = (when.date(), op)
        start = minutes(when)
        end = start + 5 * len(pattern)
        owner = hyg if is_hyg else prov
        if not any(s <= start and end <= e and p == owner for s, e, p in blocks[key]):
            problems.append(f"appointment {apt} outside its provider's hours")
        if any(start < e and s < end for s, e in blockouts[key]):
            problems.append(f"appointment {apt} overlaps a blockout")
        busy[key].append((start, end, apt))
        if (when.date(), pat) in seen:
            problems.append(f"patient {pat} booked twice on {when.date()}")
        seen.add((when.date(), pat))
    for key, spans in busy.items():
        spans.sort()
        problems += [
            f"appointments {a[2]} and {b[2]} overlap in op {key[1]} on {key[0]}"
            for a, b in pairwise(spans)
            if b[0] < a[1]
        ]
    return problems


def test_diary_is_consistent(odbc: pyodbc.Connection) -> None:
    assert diary_problems(odbc) == []


def test_holidays_are_practice_rows_without_operatories(odbc: pyodbc.Connection) -> None:
    holidays = rows(odbc, "SELECT ScheduleNum, SchedDate FROM schedule WHERE SchedType = 0")
    assert len(holidays) >= 10
    assert (
        scalar(
            odbc,
            "SELECT COUNT(*) FROM schedule s JOIN scheduleop so ON "
            "so.ScheduleNum = s.ScheduleNum WHERE s.SchedType = 0",
        )
        == 0
    )
    days = ", ".join(f"'{day.isoformat()}'" for _num, day in holidays)
    assert (
        scalar(
            odbc, f"SELECT COUNT(*) FROM schedule WHERE SchedType <> 0 AND SchedDate IN ({days})"
        )
        == 0
    )
    assert scalar(odbc, "SELECT COUNT(*) FROM schedule WHERE SchedType = 0 AND Status <> 2") == 0


def test_provider_hours_have_a_lunch_gap_and_blockouts_are_linked(odbc: pyodbc.Connection) -> None:
    days: dict[tuple[date, int], list[tuple[time, time]]] = defaultdict(list)
    for day, prov, start, stop in rows(
        odbc, "SELECT SchedDate, ProvNum, StartTime, StopTime FROM schedule WHERE SchedType = 1"
    ):
        assert isinstance(day, date) and isinstance(prov, int)
        assert isinstance(start, time) and isinstance(stop, time) and start < stop
        days[(day, prov)].append((start, stop))
    weekdays = [sorted(b) for (day, _p), b in days.items() if day.weekday() < 4]
    assert weekdays and all(len(b) == 2 and b[0][1] < b[1][0] for b in weekdays)
    assert len({day for day, _p in days}) > 300
    kinds = {r[0] for r in rows(odbc, "SELECT DefNum FROM definition WHERE Category = 25")}
    blockouts = rows(
        odbc,
        "SELECT s.BlockoutType, COUNT(so.ScheduleOpNum) FROM schedule s "
        "LEFT JOIN scheduleop so ON so.ScheduleNum = s.ScheduleNum "
        "WHERE s.SchedType = 2 GROUP BY s.ScheduleNum, s.BlockoutType",
    )
    assert len(blockouts) > 50
    assert all(kind in kinds and links > 0 for kind, links in blockouts)
    assert len({kind for kind, _n in blockouts}) >= 3


def test_appointment_statuses_and_span(odbc: pyodbc.Connection) -> None:
    got = rows(odbc, "SELECT AptStatus, AptDateTime, Confirmed, Op FROM appointment")
    midnight = datetime.combine(TODAY, time())
    past = [g for g in got if g[0] in (1, 2, 5) and g[1] < midnight]
    future = [g for g in got if g[0] in (1, 2, 5) and g[1] >= midnight]
    assert sum(g[0] == COMPLETE for g in past) > 0.8 * len(past)
    assert any(g[0] == BROKEN for g in past) and not any(g[0] == SCHEDULED for g in past)
    assert future and all(g[0] == SCHEDULED for g in future)
    assert len({g[2] for g in future}) >= 4
    planned = [g for g in got if g[0] == PLANNED]
    assert planned and all(g[1] == datetime(1, 1, 1) and g[3] == 0 for g in planned)
    assert any(g[0] == UNSCHED for g in got) and any(g[0] == PT_NOTE for g in got)
    dated = [g[1] for g in got if g[0] != PLANNED]
    assert min(dated) < midnight - timedelta(days=500)
    assert max(dated) > midnight + timedelta(days=150)
    lengths = {len(p) for (p,) in rows(odbc, "SELECT Pattern FROM appointment")}
    assert len(lengths) >= 8 and min(lengths) >= 2 and max(lengths) <= 20


def test_procedures_follow_their_appointments(odbc: pyodbc.Connection) -> None:
    pairs = rows(
        odbc,
        "SELECT a.AptStatus, p.ProcStatus, COUNT(*) FROM procedurelog p "
        "JOIN appointment a ON a.AptNum = p.AptNum GROUP BY 1, 2",
    )
    by_status = {(apt, proc): n for apt, proc, n in pairs}
    assert by_status.get((COMPLETE, 2), 0) > 0 and by_status.get((SCHEDULED, 1), 0) > 0
    assert set(by_status) <= {(COMPLETE, 2), (SCHEDULED, 1), (BROKEN, 1), (UNSCHED, 1)}
    assert scalar(odbc, "SELECT COUNT(*) FROM procedurelog WHERE ProcFee < 0") == 0
    assert (
        scalar(
            odbc,
            "SELECT COUNT(*) FROM procedurelog p JOIN appointment a ON "
            "a.AptNum = p.AptNum WHERE p.ProcDate <> DATE(a.AptDateTime)",
        )
        == 0
    )


def test_dst_sundays_have_an_emergency_clinic(odbc: pyodbc.Connection) -> None:
    span = DiarySpan.around(TODAY)
    days = dst_sundays(span.start, span.end)
    assert len(days) == 4
    for day in days:
        assert day.weekday() == 6
        hours = {
            when.hour
            for (when,) in rows(
                odbc,
                f"SELECT AptDateTime FROM appointment WHERE AptStatus IN (1, 2, 5) "
                f"AND DATE(AptDateTime) = '{day.isoformat()}'",
            )
        }
        assert {1, 2} <= hours, day  # the repeated (Nov) / skipped (Mar) hour
        assert (
            scalar(
                odbc,
                f"SELECT COUNT(*) FROM schedule WHERE SchedType = 1 "
                f"AND SchedDate = '{day.isoformat()}'",
            )
            >= 2
        )


def test_every_stamp_is_before_today(odbc: pyodbc.Connection) -> None:
    midnight = datetime.combine(TODAY, time())
    for table in load_schema().values():
        for column in table.stamp_columns + tuple(
            c for c in table.column_names if c in ("SecDateTEntry", "DateTEntry")
        ):
            found = odbc.execute(
                f"SELECT {column} FROM {table.name} ORDER BY {column} DESC LIMIT 1"
            ).fetchone()
            assert found is None or found[0] < midnight, f"{table.name}.{column}"


def test_recalls(odbc: pyodbc.Connection) -> None:
    got = rows(
        odbc,
        "SELECT r.RecallInterval, t.DefaultInterval, r.DatePrevious, r.DateDue "
        "FROM recall r JOIN recalltype t ON t.RecallTypeNum = r.RecallTypeNum",
    )
    assert got and all(interval == default for interval, default, _p, _d in got)
    assert all(due > previous for _i, _d, previous, due in got if previous != date(1, 1, 1))


# -- determinism, options, targets and the CLI -----------------------------------


def dump(path: str) -> dict[str, list[tuple[object, ...]]]:
    db = sqlite3.connect(path)
    content = {
        table.name: db.execute(
            f"SELECT * FROM {table.name} ORDER BY {table.primary_key[0]}"
        ).fetchall()
        for table in load_schema().values()
    }
    db.close()
    return content


def test_same_seed_and_today_give_identical_tables(built: BuildReport, tmp_path: Path) -> None:
    again = build_practice(tmp_path / "again.sqlite3", today=TODAY)
    assert again.counts == built.counts
    first, second = dump(db_path(built)), dump(db_path(again))
    for table in first:
        assert first[table] == second[table], table


class _Digest:
    def __init__(self) -> None:
        self.hash = sha256()

    def write(self, table: str, columns: tuple[str, ...], chunk: Sequence[Row]) -> None:
        self.hash.update(repr((table, columns, list(chunk))).encode())


def _fingerprint(seed: int, today: date) -> str:
    digest = _Digest()
    generate(
        Output(digest, load_schema(), 5_000),
        size=SIZES["demo"],
        seed=seed,
        today=today,
        clinics=False,
        legacy_zero_dates=False,
    )
    return digest.hash.hexdigest()


def test_seed_and_today_change_the_data() -> None:
    reference = _fingerprint(42, TODAY)
    assert _fingerprint(42, TODAY) == reference
    assert _fingerprint(43, TODAY) != reference
    assert _fingerprint(42, TODAY + timedelta(days=1)) != reference


def test_clinics_option(tmp_path: Path) -> None:
    report = build_practice(tmp_path / "clinics.db", today=TODAY, clinics=True)
    assert report.counts["clinic"] == 2
    conn = pyodbc.connect(report.connection_string, autocommit=True)
    assert {
        r[0] for r in rows(conn, "SELECT DISTINCT ClinicNum FROM appointment WHERE AptStatus = 2")
    } == {1, 2}
    assert {r[0] for r in rows(conn, "SELECT DISTINCT ClinicNum FROM patient")} == {1, 2}
    assert (
        scalar(
            conn,
            "SELECT COUNT(*) FROM appointment a JOIN operatory o ON "
            "o.OperatoryNum = a.Op WHERE a.ClinicNum <> o.ClinicNum",
        )
        == 0
    )
    assert diary_problems(conn) == []
    conn.close()


def test_bad_targets_and_options_are_refused(tmp_path: Path) -> None:
    for target in (
        "practice.txt",
        "http://example.org/x",
        "mariadb://root@127.0.0.1/bad-name",
        "mariadb:///nohost",
    ):
        with pytest.raises(PracticeError):
            build_practice(target, today=TODAY)
    with pytest.raises(PracticeError, match="size"):
        build_practice(tmp_path / "x.db", size="huge")
    existing = tmp_path / "existing.sqlite3"
    existing.write_bytes(b"keep me")
    with pytest.raises(TargetExistsError):
        build_practice(existing, today=TODAY)
    assert existing.read_bytes() == b"keep me"


def test_cli_builds_default_target_and_refuses_to_overwrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["practice", "--today", "2026-11-23", "--seed", "7"])
    assert result.exit_code == 0, result.output
    target = tmp_path / "var" / "demo" / "opendental.sqlite3"
    assert target.exists()
    assert f"Driver={{SQLite3}};Database={target}" in result.output
    assert re.search(r"appointment\s+[\d,]+", result.output)
    stamp = target.stat().st_mtime_ns
    refused = runner.invoke(main, ["practice", "--today", "2026-11-23"])
    assert refused.exit_code != 0
    assert "already exists" in refused.output and "--replace" in refused.output
    assert target.stat().st_mtime_ns == stamp
    replaced = runner.invoke(main, ["practice", "--today", "2026-11-23", "--replace"])
    assert replaced.exit_code == 0, replaced.output
    assert not list(target.parent.glob(".*partial*"))


def test_cli_help_lists_the_options() -> None:
    result = CliRunner().invoke(main, ["practice", "--help"])
    assert result.exit_code == 0
    for option in ("--target", "--size", "--seed", "--today", "--clinics", "--replace"):
        assert option in result.output
