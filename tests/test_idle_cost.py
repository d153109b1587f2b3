"""What watching an idle practice costs: statements per poll and local writes.

The demo practice in SQLite, read through the real SQLite3 ODBC driver by a
real :class:`~bridge.sync.loops.PmsSyncLoop`, first-synced, then driven pass
by pass on a fake monotonic clock (2 s apart, the default poll interval), so
the counts are deterministic and nothing is timed. Every statement the ODBC
layer sends is counted (the one place all statements pass: the connection's
runner), and every local-state write transaction.

The entities: the five real-time ones (patient, appointment, provider,
operatory, schedule), plus claim (a child table with an indexed stamp),
appointment_type and definition (snapshots), recall (hourly) and
procedure_code (nightly). procedure and payment are left out only to keep
the first sync short; their probes are the same kinds as appointment's and
claim's.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import sqlite_connection_string
from sqlalchemy import delete
from sqlalchemy.orm import Session

from bridge.config import Settings, load_settings
from bridge.pms.odbc import OdbcSettings, PmsConnection, connect
from bridge.pms.profile import Profile, load_profile
from bridge.pms.source import PmsClock
from bridge.secrets import MemorySecretStore
from bridge.state import StateStore, open_state
from bridge.state.models import OutboxChange, OutboxPage
from bridge.status import read_status
from bridge.sync.detector import SAVE_SECONDS
from bridge.sync.loops import CLOCK_MAX_AGE_SECONDS, REPORT_SECONDS, PmsSyncLoop
from bridge.sync.outbox import Outbox
from sandbox.practice import BuildReport

ENTITIES = (
    "patient",
    "appointment",
    "provider",
    "operatory",
    "schedule",
    "claim",
    "appointment_type",
    "definition",
    "recall",
    "procedure_code",
)
REALTIME = ("patient", "appointment", "provider", "operatory", "schedule")
POLL = 2.0  # seconds between passes: the default poll interval

# The budget of an idle pass of the real-time entities, by probe:
# patient 3 (sweep slice, new rows, securitylog), appointment 2 (indexed
# stamp, tombstones), provider 2 and operatory 2 (sweep, new rows), schedule
# 4 (sweep, new rows, new scheduleop rows, tombstones). Before 2026-11-23 an
# idle pass cost ~23: a PMS clock read per entity, MAX(key) per finished sweep
# cycle, and a re-read by key of the rows at the appointment watermark (and of
# their patients) on every pass.
REALTIME_PASS_STATEMENTS = 13
# The PMS clock is read once per CLOCK_MAX_AGE_SECONDS at most.
CLOCK_READS_PER_MINUTE = int(60 / CLOCK_MAX_AGE_SECONDS)
# Once a minute: claim 4 (sweep, new rows, new claimproc rows, claimproc
# stamps), appointment_type 1 and definition 1 (whole small tables).
FREQUENT_STATEMENTS = 6


def subset(names: tuple[str, ...]) -> Profile:
    """The Open Dental profile cut down to ``names``."""
    data = load_profile("opendental").model_dump()
    data["entities"] = {k: v for k, v in data["entities"].items() if k in names}
    for spec in data["entities"].values():
        spec["related"] = [r for r in spec.get("related", []) if r["entity"] in names]
    tombstones = data["tombstones"]
    tombstones["types"] = {k: v for k, v in tombstones["types"].items() if v in names}
    return Profile.model_validate(data)


def settings_for(tmp: Path, connection_string: str) -> Settings:
    config = tmp / "bridge.toml"
    config.write_text(
        f"""
[practice]
name = "Test"
timezone = "America/Los_Angeles"
[pms]
profile = "opendental"
connection_string = '{connection_string}'
[cloud]
url = "https://cloud.invalid"
agent_id = "agent-1"
""",
        encoding="utf-8",
    )
    return load_settings(config)


class FakeTime:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Watched:
    """A first-synced loop on a private copy of the practice, and its counters."""

    loop: PmsSyncLoop
    conn: PmsConnection
    store: StateStore
    time: FakeTime
    clock: PmsClock
    statements: Counter[str]
    writes: list[int]

    def passes(self, count: int) -> None:
        for _ in range(count):
            self.time.now += POLL
            self.loop.run_pass(self.conn, None, self.clock)

    def counted(self, count: int) -> tuple[Counter[str], int]:
        """Statements (by shape) and write transactions of ``count`` passes."""
        self.statements.clear()
        self.writes[0] = 0
        self.passes(count)
        return Counter(self.statements), self.writes[0]


@pytest.fixture(scope="module")
def synced_files(tmp_path_factory: pytest.TempPathFactory, practice: BuildReport) -> Path:
    """The practice and a state store after the first sync, built once per module."""
    folder = tmp_path_factory.mktemp("synced")
    shutil.copy(practice.connection_string.split("Database=", 1)[1], folder / "od.sqlite3")
    store = open_state(folder / "state.sqlite3")
    loop = PmsSyncLoop(
        settings_for(folder, sqlite_connection_string(folder / "od.sqlite3")),
        subset(ENTITIES),
        store,
        MemorySecretStore({}),
        Outbox(store, "agent-1"),
        threading.Event(),
    )
    with connect(
        OdbcSettings(connection_string=sqlite_connection_string(folder / "od.sqlite3"))
    ) as conn:
        for sync in loop.syncs.values():
            while not sync.step(conn).done:
                with store.write() as session:  # the cloud takes each first-sync page
                    session.execute(delete(OutboxPage))
    with store.write() as session:  # as if the cloud had taken everything
        session.execute(delete(OutboxChange))
        session.execute(delete(OutboxPage))
    store.close()
    return folder


@pytest.fixture
def watched(
    tmp_path: Path, synced_files: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Watched]:
    for name in ("od.sqlite3", "state.sqlite3"):
        shutil.copy(synced_files / name, tmp_path / name)
    store = open_state(tmp_path / "state.sqlite3")
    outbox = Outbox(store, "agent-1")
    fake = FakeTime()
    loop = PmsSyncLoop(
        settings_for(tmp_path, sqlite_connection_string(tmp_path / "od.sqlite3")),
        subset(ENTITIES),
        store,
        MemorySecretStore({}),
        outbox,
        threading.Event(),
        monotonic=fake,
    )
    writes = [0]
    write = store.write

    def counting_write() -> AbstractContextManager[Session]:
        writes[0] += 1
        return write()

    monkeypatch.setattr(store, "write", counting_write)
    statements: Counter[str] = Counter()
    with connect(
        OdbcSettings(connection_string=sqlite_connection_string(tmp_path / "od.sqlite3"))
    ) as conn:
        count_statements(conn, statements)
        clock = PmsClock(conn, max_age=CLOCK_MAX_AGE_SECONDS, monotonic=fake)
        yield Watched(loop, conn, store, fake, clock, statements, writes)
    store.close()


def count_statements(conn: PmsConnection, into: Counter[str]) -> None:
    """Count every statement ``conn`` sends, by shape (literals and lists folded)."""
    runner = conn._runner  # every statement, paged or not, passes through here
    execute: Callable[..., Any] = runner.execute

    def counting(sql: str, params: Any = (), **kwargs: Any) -> Any:
        into[re.sub(r"\?(, \?)+", "?, ...", sql)] += 1
        return execute(sql, params, **kwargs)

    runner.execute = counting  # type: ignore[method-assign]


def test_an_idle_minute_costs_thirteen_statements_a_poll_and_few_local_writes(
    watched: Watched,
) -> None:
    # settle: every cadence polls once and the rows at each watermark are read
    # one last time after they settled (the PMS clock is real: stamps are old)
    watched.passes(31)
    minute = int(60 / POLL)
    statements, writes = watched.counted(minute)
    total = sum(statements.values())
    clock_reads = sum(n for sql, n in statements.items() if "datetime('now'" in sql)
    maxima = sum(n for sql, n in statements.items() if "MAX(" in sql)
    rereads = sum(n for sql, n in statements.items() if " IN (" in sql)
    shapes = "\n".join(f"{n:4} {sql}" for sql, n in statements.most_common())
    assert maxima == 0, shapes  # sweep cycles end at the key the new-row probe saw
    assert rereads == 0, shapes  # settled rows at a watermark are not re-read
    assert clock_reads <= CLOCK_READS_PER_MINUTE, shapes
    budget = REALTIME_PASS_STATEMENTS * minute + CLOCK_READS_PER_MINUTE + FREQUENT_STATEMENTS
    assert total <= budget, shapes
    assert total / minute < 14  # statements per idle poll (was ~23)
    # local state: health every REPORT_SECONDS, bookkeeping every SAVE_SECONDS,
    # and the two snapshot entities' steps (they compare hashes in a write
    # session); before, every step of every entity committed (~160 a minute)
    assert writes <= 60 / REPORT_SECONDS + 60 / SAVE_SECONDS + 2


def test_a_pass_of_only_realtime_entities_sends_exactly_the_budget(watched: Watched) -> None:
    watched.passes(31)
    watched.clock()  # a fresh reading: no clock read falls in the counted pass
    statements, writes = watched.counted(1)
    tables = Counter(re.search(r"FROM (\w+)", sql).group(1) for sql in statements.elements())  # type: ignore[union-attr]
    assert sum(statements.values()) == REALTIME_PASS_STATEMENTS, statements
    assert tables == {
        "patient": 2,
        "securitylog": 1,
        "appointment": 1,
        "deletedobject": 2,
        "provider": 2,
        "operatory": 2,
        "schedule": 2,
        "scheduleop": 1,
    }
    assert writes == 0


def test_status_shows_every_row_examined_while_idle(watched: Watched) -> None:
    watched.passes(31)
    watched.loop.flush()
    before = {e.entity: e.rows_examined for e in read_status(watched.store).entities}
    watched.passes(7)  # 14 s: the loop saves its bookkeeping once on the way
    views = {name: sync.view() for name, sync in watched.loop.syncs.items()}
    saved = {e.entity: e for e in read_status(watched.store).entities}
    assert any(saved[n].rows_examined > before[n] for n in REALTIME)  # saved within 10 s
    watched.loop.flush()  # what the loop does when it stops
    status = {e.entity: e for e in read_status(watched.store).entities}
    for name, view in views.items():
        assert view is not None
        assert status[name].rows_examined == view.rows_examined
        assert status[name].last_success_at == view.last_success_at
    assert all(status[n].rows_examined > before[n] for n in REALTIME)


def test_sync_now_is_saved_at_once_even_when_it_finds_nothing(watched: Watched) -> None:
    """The control channel's SyncFinished waits for ``last_success_at`` in the
    state store to pass the request: a requested pass does not wait for the
    periodic save."""
    watched.passes(31)
    watched.loop.flush()
    asked = datetime.now(UTC)
    watched.loop.request_sync(["provider", "schedule"])
    _, writes = watched.counted(1)  # the periodic save is not due in this pass
    saved = {e.entity: e.last_success_at for e in read_status(watched.store).entities}
    assert saved["provider"] is not None and saved["provider"] >= asked
    assert saved["schedule"] is not None and saved["schedule"] >= asked
    assert saved["patient"] is not None and saved["patient"] < asked  # not asked: kept in memory
    assert writes == 1  # one transaction for both


def test_the_pms_clock_is_read_once_per_max_age(conn: PmsConnection) -> None:
    statements: Counter[str] = Counter()
    count_statements(conn, statements)
    fake = FakeTime()
    clock = PmsClock(conn, max_age=10.0, monotonic=fake)
    first = clock()
    fake.now += 9.0
    assert clock() == first and clock.reads == 1  # reused: never later than the PMS
    fake.now += 2.0
    later = clock()
    assert clock.reads == 2 and later >= first
    once = PmsClock(conn)  # the default: one reading for one pass
    once(), once()
    assert once.reads == 1
    assert sum(statements.values()) == 3
