"""First sync and change detection against a real SQLite practice over ODBC."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from zoneinfo import ZoneInfo

from bridge.pms.odbc import PmsConnection
from bridge.pms.profile import load_profile
from bridge.state import StateStore
from bridge.sync.detector import EntitySync
from bridge.sync.outbox import Outbox
from bridge.sync.records import RecordReader
from sandbox.practice import BuildReport

LA = ZoneInfo("America/Los_Angeles")


def make_sync(entity: str, store: StateStore, chunk_rows: int = 5_000) -> EntitySync:
    reader = RecordReader(load_profile("opendental"), entity, LA)
    return EntitySync(reader, Outbox(store, "agent-1"), store, chunk_rows=chunk_rows)


def drain(outbox: Outbox) -> list[tuple[str, str, dict[str, object] | None]]:
    out = []
    while (batch := outbox.next_batch(max_changes=10_000, max_bytes=64 * 1024**2)) is not None:
        out.extend((c.op, c.key, c.data) for c in batch.changes)
        outbox.acknowledge(batch.batch_id)
    return out


def test_first_sync_resumes_after_a_crash_from_the_last_committed_key(
    conn: PmsConnection, store: StateStore, practice: BuildReport
) -> None:
    total = practice.counts["appointment"]
    sync = make_sync("appointment", store, chunk_rows=1_000)
    first = sync.step(conn)
    assert (first.phase, first.read, first.done) == ("initial", 1_000, False)
    # crash: a new EntitySync (new process) picks up the cursor
    sync = make_sync("appointment", store, chunk_rows=1_000)
    while not sync.step(conn).done:
        pass
    cursor = sync.cursor()
    assert cursor is not None
    assert (cursor.phase, cursor.rows_done, cursor.rows_total) == ("delta", total, total)
    keys = [key for _op, key, _data in drain(Outbox(store, "agent-1"))]
    assert len(keys) == total == len(set(keys))  # every row once, none twice


def test_edits_same_second_changes_and_quiet_polls(
    conn: PmsConnection, store: StateStore, db: Path
) -> None:
    sync = make_sync("appointment", store)
    while not sync.step(conn).done:
        pass
    outbox = Outbox(store, "agent-1")
    drain(outbox)
    assert sync.step(conn).staged == 0  # nothing changed: nothing staged

    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE appointment SET AptStatus = 5 WHERE AptNum = 10")
    with sqlite3.connect(db) as raw:  # a second edit in the same second
        raw.execute("UPDATE appointment SET AptStatus = 2 WHERE AptNum = 11")
    sync.step(conn)
    changes = {key: data for _op, key, data in drain(outbox)}
    assert set(changes) == {"10", "11"}
    assert changes["10"] is not None and changes["10"]["status"] == "broken"
    assert sync.step(conn).staged == 0  # the overlap re-read sends nothing twice


def test_snapshot_entities_find_inserts_edits_and_deletes(
    conn: PmsConnection, store: StateStore, db: Path
) -> None:
    sync = make_sync("appointment_type", store)
    while not sync.step(conn).done:
        pass
    outbox = Outbox(store, "agent-1")
    drain(outbox)
    with sqlite3.connect(db) as raw:
        raw.execute("DELETE FROM appointmenttype WHERE AppointmentTypeNum = 1")
        raw.execute("UPDATE appointmenttype SET Pattern = '/XXXXXX/' WHERE AppointmentTypeNum = 2")
        raw.execute(
            "INSERT INTO appointmenttype (AppointmentTypeName, Pattern) "
            "VALUES ('Online new', '/XX/')"
        )
    sync.step(conn)
    changes = {(op, key) for op, key, _ in drain(outbox)}
    new_key = str(conn.execute("SELECT MAX(AppointmentTypeNum) FROM appointmenttype")[0][0])
    assert changes == {("delete", "1"), ("upsert", "2"), ("upsert", new_key)}
    assert sync.step(conn).staged == 0
