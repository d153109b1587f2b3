"""The delta probes on MariaDB through MariaDB Connector/ODBC: the server's
clock and ON UPDATE stamps, tombstones, securitylog signals, child rows, and
the statements of an idle poll as the server counts them."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pyodbc
import pytest
from conftest import (
    MARIADB_HOST,
    MARIADB_PASSWORD,
    MARIADB_PORT,
    MARIADB_USER,
    _admin_connect,
)
from test_idle_cost import REALTIME, REALTIME_PASS_STATEMENTS, settings_for, subset

from bridge.pms.odbc import OdbcSettings, PmsConnection, connect
from bridge.pms.profile import load_profile
from bridge.pms.source import PmsClock
from bridge.secrets import MemorySecretStore, Secret
from bridge.state import StateStore
from bridge.sync.detector import EntitySync
from bridge.sync.loops import CLOCK_MAX_AGE_SECONDS, PmsSyncLoop
from bridge.sync.outbox import Outbox
from bridge.sync.records import RecordReader
from sandbox.practice import BuildReport, build_practice

LA = ZoneInfo("America/Los_Angeles")
REALTIME_TABLES = ("patient", "appointment", "provider", "operatory", "schedule")


@pytest.fixture(scope="module")
def practice(mariadb_module_database: str) -> BuildReport:
    target = (
        f"mariadb://{quote(MARIADB_USER)}:{quote(MARIADB_PASSWORD)}@{MARIADB_HOST}:"
        f"{MARIADB_PORT}/{mariadb_module_database}"
    )
    return build_practice(target, size="demo")


@pytest.fixture(scope="module")
def mariadb_module_database(mariadb_admin_module: pyodbc.Connection) -> Iterator[str]:
    name = f"probes_test_{secrets.token_hex(4)}"
    yield name
    mariadb_admin_module.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(scope="module")
def mariadb_admin_module() -> Iterator[pyodbc.Connection]:
    conn = _admin_connect()
    yield conn
    conn.close()


@pytest.fixture
def conn(practice: BuildReport) -> Iterator[PmsConnection]:
    password = Secret(practice.password) if practice.password else None
    settings = OdbcSettings(connection_string=practice.connection_string, password=password)
    with connect(settings) as c:
        yield c


def drain(outbox: Outbox) -> set[tuple[str, str, str]]:
    out: set[tuple[str, str, str]] = set()
    while (batch := outbox.next_batch(max_changes=10_000, max_bytes=64 * 1024**2)) is not None:
        out.update((c.entity, c.op, c.key) for c in batch.changes)
        outbox.acknowledge(batch.batch_id)
    return out


def test_probes_on_mariadb(
    practice: BuildReport,
    mariadb_admin_module: pyodbc.Connection,
    mariadb_module_database: str,
    conn: PmsConnection,
    store: StateStore,
) -> None:
    profile = load_profile("opendental")
    outbox = Outbox(store, "agent-1")
    syncs = {
        name: EntitySync(RecordReader(profile, name, LA), outbox, store, sweep_rows=100)
        for name in ("appointment", "patient", "claim")
    }
    for sync in syncs.values():
        while not sync.step(conn).done:
            pass
    drain(outbox)
    db = mariadb_module_database
    admin = mariadb_admin_module
    top = admin.execute(f"SELECT MAX(PatNum) FROM `{db}`.patient").fetchone()[0]
    claim_proc, claim = admin.execute(
        f"SELECT ClaimProcNum, ClaimNum FROM `{db}`.claimproc WHERE ClaimNum > 0 LIMIT 1"
    ).fetchone()
    apt = admin.execute(f"SELECT MAX(AptNum) FROM `{db}`.appointment").fetchone()[0]
    time.sleep(1.1)  # a new second: the stamps below are later than any before
    for sql in (
        f"UPDATE `{db}`.patient SET Email = 'x@example.org' WHERE PatNum = {top - 5}",
        f"INSERT INTO `{db}`.securitylog (PermType, PatNum) VALUES (1, {top - 5})",
        f"UPDATE `{db}`.claimproc SET InsPayAmt = InsPayAmt + 1 WHERE ClaimProcNum = {claim_proc}",
        f"DELETE FROM `{db}`.appointment WHERE AptNum = {apt}",
        f"INSERT INTO `{db}`.deletedobject (ObjectNum, ObjectType) VALUES ({apt}, 0)",
    ):
        admin.execute(sql)
    results = {name: sync.step(conn) for name, sync in syncs.items()}
    assert drain(outbox) == {
        ("patient", "upsert", str(top - 5)),
        ("claim", "upsert", str(claim)),
        ("appointment", "delete", str(apt)),
    }
    # the patient step examined a slice, not the table: 100 keys of the
    # sweep, the key-range probes (1 + rows found each) and the re-read row
    assert results["patient"].examined <= 100 + 2 + 2 + 1


def test_an_idle_poll_on_mariadb_sends_thirteen_statements(
    tmp_path: Path,
    practice: BuildReport,
    mariadb_admin_module: pyodbc.Connection,
    mariadb_module_database: str,
    conn: PmsConnection,
    store: StateStore,
) -> None:
    """Counted by the server (``Questions`` of the session), the real-time entities."""
    # The passes run on a fake clock, the PMS's on the real one: rows edited
    # seconds ago (by the test above) would stay "recent" for the whole test
    # and be found by every sweep cycle. Age them: this test is about idle.
    for table in REALTIME_TABLES:
        mariadb_admin_module.execute(
            f"UPDATE `{mariadb_module_database}`.{table} SET DateTStamp = "
            "DateTStamp - INTERVAL 1 DAY WHERE DateTStamp > NOW() - INTERVAL 1 HOUR"
        )
    fake = [1_000.0]
    outbox = Outbox(store, "agent-1")
    loop = PmsSyncLoop(
        settings_for(tmp_path, practice.connection_string),
        subset(REALTIME),
        store,
        MemorySecretStore({}),
        outbox,
        threading.Event(),
        monotonic=lambda: fake[0],
    )
    for sync in loop.syncs.values():
        while not sync.step(conn).done:
            drain(outbox)  # the loop's detectors wait for the cloud to take their pages
    drain(outbox)
    clock = PmsClock(conn, max_age=CLOCK_MAX_AGE_SECONDS, monotonic=lambda: fake[0])

    def passes(count: int) -> int:
        """Statements the server received during ``count`` passes."""
        before = questions(conn)
        for _ in range(count):
            fake[0] += 2.0
            loop.run_pass(conn, None, clock)
        return questions(conn) - before - 1  # the status query itself counts once

    passes(10)  # rows at the watermarks settle (the stamps are from yesterday)
    minute = passes(30)
    assert minute <= REALTIME_PASS_STATEMENTS * 30 + 60 / CLOCK_MAX_AGE_SECONDS
    assert clock.reads <= 1 + 80 / CLOCK_MAX_AGE_SECONDS  # 40 passes, 80 s


def questions(conn: PmsConnection) -> int:
    return int(str(conn.execute("SHOW SESSION STATUS LIKE 'Questions'")[0][1]))
