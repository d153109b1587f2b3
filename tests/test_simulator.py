"""The receptionist simulator: realistic, committed, Open Dental-shaped edits."""

from __future__ import annotations

import itertools
import secrets
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pyodbc
import pytest
from click.testing import CliRunner
from conftest import (
    MARIADB_HOST,
    MARIADB_PASSWORD,
    MARIADB_PORT,
    MARIADB_USER,
    mariadb_connection_string,
    sqlite_connection_string,
)

from sandbox.__main__ import main
from sandbox.practice import BuildReport, build_practice
from sandbox.practice.simulator import ACTIONS, Edit, Receptionist, summarize

TODAY = date(2026, 11, 23)


@pytest.fixture(scope="module")
def practice(tmp_path_factory: pytest.TempPathFactory) -> BuildReport:
    return build_practice(tmp_path_factory.mktemp("sim") / "od.sqlite3", size="demo", today=TODAY)


def copy_of(practice: BuildReport, folder: Path) -> Path:
    db = folder / "od.sqlite3"
    shutil.copy(practice.connection_string.split("Database=", 1)[1], db)
    return db


def run_edits(db: Path, count: int, seed: int = 7) -> list[Edit]:
    with Receptionist(sqlite_connection_string(db), seed=seed, today=TODAY) as receptionist:
        return receptionist.run(count, per_minute=0)


def test_the_same_seed_gives_the_same_edits(practice: BuildReport, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = run_edits(copy_of(practice, tmp_path / "a"), 300)
    second = run_edits(copy_of(practice, tmp_path / "b"), 300)

    def shape(edits: list[Edit]) -> list[tuple[str, str, str, str]]:
        return [(e.entity, e.key, e.op, e.action) for e in edits]

    assert shape(first) == shape(second)
    assert set(summarize(first)) == {action for action, _ in ACTIONS}


def test_edits_follow_open_dental_conventions(practice: BuildReport, tmp_path: Path) -> None:
    db = copy_of(practice, tmp_path)
    with sqlite3.connect(db) as raw:
        top = {
            table: raw.execute(f"SELECT MAX({key}) FROM {table}").fetchone()[0]
            for table, key in (("patient", "PatNum"), ("appointment", "AptNum"))
        }
    started = (datetime.now() - timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S")
    edits = run_edits(db, 400)
    with sqlite3.connect(db) as raw:

        def one(sql: str, *args: object) -> tuple[object, ...]:
            row = raw.execute(sql, args).fetchone()
            assert row is not None, sql
            return tuple(row)

        tombstones = dict(
            raw.execute("SELECT ObjectType, COUNT(*) FROM deletedobject GROUP BY ObjectType")
        )
        deleted = [e for e in edits if e.action == "delete_appointment"]
        assert deleted and tombstones[0] == len(deleted)
        for edit in deleted:
            assert edit.op == "delete" and edit.entity == "appointment"
            assert one("SELECT COUNT(*) FROM appointment WHERE AptNum = ?", int(edit.key)) == (0,)
            assert one(
                "SELECT COUNT(*) FROM deletedobject WHERE ObjectNum = ? AND ObjectType = 0",
                int(edit.key),
            ) == (1,)
            assert one("SELECT COUNT(*) FROM procedurelog WHERE AptNum = ?", int(edit.key)) == (0,)
        # Provider schedules replaced: old rows tombstoned as ScheduleProv (1), the
        # new rows linked to operatories.
        days = [e for e in edits if e.action == "schedule_day"]
        assert days and tombstones[1] >= len(days)
        for edit in days:
            assert one("SELECT SchedType FROM schedule WHERE ScheduleNum = ?", int(edit.key)) == (
                1,
            )
            assert one("SELECT COUNT(*) FROM scheduleop WHERE ScheduleNum = ?", int(edit.key))[0]
        assert one(
            "SELECT COUNT(*) FROM scheduleop WHERE ScheduleNum NOT IN (SELECT ScheduleNum FROM"
            " schedule)"
        ) == (0,)
        for edit in (e for e in edits if e.action == "new_patient"):
            patnum, guarantor, prov, billing = one(
                "SELECT PatNum, Guarantor, PriProv, BillingType FROM patient WHERE PatNum = ?",
                int(edit.key),
            )
            assert guarantor == patnum and prov and billing
            assert int(edit.key) > top["patient"]
        for edit in (e for e in edits if e.entity == "patient"):
            assert one("SELECT COUNT(*) FROM securitylog WHERE PatNum = ?", int(edit.key))[0]
        for edit in (e for e in edits if e.action == "book"):
            assert int(edit.key) > top["appointment"]
            status, stamp = one(
                "SELECT AptStatus, DateTStamp FROM appointment WHERE AptNum = ?", int(edit.key)
            )
            assert status in (1, 2, 5) and str(stamp) >= started
        for edit in (e for e in edits if e.action == "payment"):
            amount, splits = one(
                "SELECT p.PayAmt, SUM(s.SplitAmt) FROM payment p JOIN paysplit s"
                " ON s.PayNum = p.PayNum WHERE p.PayNum = ? GROUP BY p.PayAmt",
                int(edit.key),
            )
            assert abs(float(str(amount)) - float(str(splits))) < 0.011
        # A claimproc edit changes the child's stamp only: the parent claim is
        # the entity the cloud sees change.
        for edit in (e for e in edits if e.action == "claim_estimate"):
            child, parent = one(
                "SELECT MAX(cp.SecDateTEdit), c.SecDateTEdit FROM claimproc cp JOIN claim c"
                " ON c.ClaimNum = cp.ClaimNum WHERE c.ClaimNum = ? GROUP BY c.SecDateTEdit",
                int(edit.key),
            )
            assert str(child) > str(parent)
        # Stamps are set by the database (triggers here), never by the simulator.
        moved = [e for e in edits if e.action in ("move", "confirm", "break")]
        for edit in moved:
            (stamp,) = one("SELECT DateTStamp FROM appointment WHERE AptNum = ?", int(edit.key))
            assert str(stamp) >= started
        log_text = {r[0] for r in raw.execute("SELECT DISTINCT LogText FROM securitylog")}
        assert all("@" not in t and not any(c.isdigit() for c in t) for t in log_text)


def test_some_edits_come_in_same_second_bursts(practice: BuildReport, tmp_path: Path) -> None:
    edits = run_edits(copy_of(practice, tmp_path), 400)
    bursts = [
        (a, b)
        for a, b in itertools.pairwise(edits)
        if (a.entity, a.key) == (b.entity, b.key) and b.committed_at - a.committed_at < 1.0
    ]
    assert 0.03 * len(edits) < len(bursts) < 0.3 * len(edits)


def test_run_paces_and_stops(practice: BuildReport, tmp_path: Path) -> None:
    db = copy_of(practice, tmp_path)
    seen: list[Edit] = []
    with Receptionist(sqlite_connection_string(db), seed=2, today=TODAY) as receptionist:
        edits = receptionist.run(6, per_minute=600, on_edit=seen.append)
    assert edits == seen and len(edits) == 6
    span = edits[-1].committed_at - edits[0].committed_at
    assert 0.2 < span < 3.0  # about 0.1 s apart, except bursts


def test_simulate_command(practice: BuildReport, tmp_path: Path) -> None:
    db = copy_of(practice, tmp_path)
    result = CliRunner().invoke(
        main, ["simulate", "--target", str(db), "--count", "4", "--per-minute", "6000"]
    )
    assert result.exit_code == 0, result.output
    assert len(result.output.strip().splitlines()) == 4


@pytest.fixture
def mariadb_practice() -> Iterator[BuildReport]:
    name = f"sim_test_{secrets.token_hex(4)}"
    url = (
        f"mariadb://{quote(MARIADB_USER)}:{quote(MARIADB_PASSWORD)}@{MARIADB_HOST}:"
        f"{MARIADB_PORT}/{name}"
    )
    try:
        yield build_practice(url, today=TODAY)
    finally:
        admin = pyodbc.connect(
            f"{mariadb_connection_string()};Password={MARIADB_PASSWORD}", autocommit=True
        )
        admin.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.mark.mariadb
def test_simulator_on_mariadb(mariadb_practice: BuildReport) -> None:
    report = mariadb_practice
    started = datetime.now() - timedelta(seconds=2)
    with Receptionist(
        report.connection_string, seed=5, password=report.password, today=TODAY
    ) as receptionist:
        edits = receptionist.run(250, per_minute=0)
        conn = receptionist.conn
        deleted = [e for e in edits if e.action == "delete_appointment"]
        assert deleted
        for edit in deleted:
            assert (
                conn.execute(
                    "SELECT COUNT(*) FROM deletedobject WHERE ObjectNum = ? AND ObjectType = 0",
                    int(edit.key),
                ).fetchone()[0]
                == 1
            )
        for edit in (e for e in edits if e.action == "new_patient"):
            row = conn.execute(
                "SELECT Guarantor, DateTStamp FROM patient WHERE PatNum = ?", int(edit.key)
            ).fetchone()
            assert row[0] == int(edit.key) and row[1] >= started
        # ON UPDATE CURRENT_TIMESTAMP moved the stamp of every edited appointment.
        for edit in (e for e in edits if e.action in ("confirm", "break", "move")):
            (stamp,) = conn.execute(
                "SELECT DateTStamp FROM appointment WHERE AptNum = ?", int(edit.key)
            ).fetchone()
            assert stamp >= started
