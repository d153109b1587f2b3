"""Delta probes against a real SQLite practice over ODBC: child rows, tombstones,
the bounded-cost patient strategy (signals, related changes, budgeted sweep)."""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bridge.config import load_settings
from bridge.pms.odbc import PmsConnection
from bridge.pms.profile import load_profile
from bridge.pms.source import pms_now
from bridge.secrets import MemorySecretStore
from bridge.state import StateStore
from bridge.state.models import SyncCursor
from bridge.sync.detector import DEFAULT_OVERLAP, EntitySync
from bridge.sync.loops import PmsSyncLoop
from bridge.sync.outbox import Outbox
from bridge.sync.records import RecordReader

LA = ZoneInfo("America/Los_Angeles")


def synced(entity: str, store: StateStore, conn: PmsConnection, **kwargs: int) -> EntitySync:
    """An EntitySync whose first sync is done and whose outbox is drained."""
    reader = RecordReader(load_profile("opendental"), entity, LA)
    sync = EntitySync(reader, Outbox(store, "agent-1"), store, **kwargs)  # type: ignore[arg-type]
    while not sync.step(conn).done:
        pass
    drain(sync.outbox)
    return sync


def drain(outbox: Outbox) -> dict[tuple[str, str], dict[str, object] | None]:
    """(op, key) -> data of everything staged, acknowledged."""
    out: dict[tuple[str, str], dict[str, object] | None] = {}
    while (batch := outbox.next_batch(max_changes=10_000, max_bytes=64 * 1024**2)) is not None:
        out.update({(c.op, c.key): c.data for c in batch.changes})
        outbox.acknowledge(batch.batch_id)
    return out


def write(db: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    with sqlite3.connect(db) as raw:
        for sql, params in statements:
            raw.execute(sql, params)


def one(db: Path, sql: str, params: tuple[object, ...] = ()) -> object:
    with sqlite3.connect(db) as raw:
        return raw.execute(sql, params).fetchone()[0]


# -- child rows --------------------------------------------------------------------


def test_claims_carry_their_procedures_and_a_claimproc_edit_resends_the_claim(
    db: Path, conn: PmsConnection, store: StateStore
) -> None:
    reader = RecordReader(load_profile("opendental"), "claim", LA)
    claim_num = int(str(one(db, "SELECT ClaimNum FROM claimproc WHERE ClaimNum > 0 LIMIT 1")))
    expected = one(db, "SELECT COUNT(*) FROM claimproc WHERE ClaimNum = ?", (claim_num,))
    record = reader.read_keys(conn, [str(claim_num)])[0]
    procedures = record.data["procedures"]
    assert isinstance(procedures, list) and len(procedures) == expected
    ids = [int(str(p["id"])) for p in procedures]
    assert ids == sorted(ids)  # child-key order, so the hash is stable
    assert {"procedure_id", "fee_billed", "status"} <= set(procedures[0])

    sync = synced("claim", store, conn)
    write(db, ("UPDATE claimproc SET InsPayAmt = 12.5 WHERE ClaimProcNum = ?", (ids[0],)))
    sync.step(conn)
    sent = drain(sync.outbox)
    assert list(sent) == [("upsert", str(claim_num))]
    paid = sent[("upsert", str(claim_num))]["procedures"][0]["insurance_paid"]  # type: ignore[index]
    assert paid == 12.5


def test_a_new_split_resends_its_payment_and_a_new_scheduleop_its_schedule(
    db: Path, conn: PmsConnection, store: StateStore
) -> None:
    payments = synced("payment", store, conn)
    schedules = synced("schedule", store, conn)
    pay_num = one(db, "SELECT MAX(PayNum) FROM payment")
    sched_num = one(db, "SELECT ScheduleNum FROM schedule WHERE SchedType = 1 LIMIT 1")
    write(
        db,
        ("INSERT INTO paysplit (SplitAmt, PatNum, PayNum) VALUES (5.0, 1, ?)", (pay_num,)),
        ("INSERT INTO scheduleop (ScheduleNum, OperatoryNum) VALUES (?, 2)", (sched_num,)),
    )
    payments.step(conn)
    assert list(drain(payments.outbox)) == [("upsert", str(pay_num))]
    schedules.step(conn)
    sent = drain(schedules.outbox)
    assert list(sent) == [("upsert", str(sched_num))]
    ops = sent[("upsert", str(sched_num))]["operatories"]  # type: ignore[index]
    assert {"operatory_id": "2"} in ops  # type: ignore[operator]


# -- tombstones ----------------------------------------------------------------------


def test_an_appointment_deleted_with_a_tombstone_becomes_a_delete(
    db: Path, conn: PmsConnection, store: StateStore
) -> None:
    sync = synced("appointment", store, conn)
    write(
        db,
        ("DELETE FROM appointment WHERE AptNum = 77", ()),
        ("INSERT INTO deletedobject (ObjectNum, ObjectType) VALUES (77, 0)", ()),
        # a tombstone of another kind, and one for a row that still exists
        ("INSERT INTO deletedobject (ObjectNum, ObjectType) VALUES (78, 5)", ()),
        ("INSERT INTO deletedobject (ObjectNum, ObjectType) VALUES (79, 0)", ()),
    )
    sync.step(conn)
    assert drain(sync.outbox) == {("delete", "77"): None}  # 79 still exists: no delete


def test_a_provider_schedule_deleted_with_a_tombstone_becomes_a_delete(
    db: Path, conn: PmsConnection, store: StateStore
) -> None:
    sync = synced("schedule", store, conn)
    num = one(db, "SELECT ScheduleNum FROM schedule WHERE SchedType = 1 LIMIT 1")
    write(
        db,
        ("DELETE FROM scheduleop WHERE ScheduleNum = ?", (num,)),
        ("DELETE FROM schedule WHERE ScheduleNum = ?", (num,)),
        ("INSERT INTO deletedobject (ObjectNum, ObjectType) VALUES (?, 1)", (num,)),
    )
    sync.step(conn)
    assert drain(sync.outbox) == {("delete", str(num)): None}


def test_a_schedule_that_leaves_the_filter_is_deleted_in_the_cloud(
    db: Path, conn: PmsConnection, store: StateStore
) -> None:
    sync = synced("schedule", store, conn)
    num = one(db, "SELECT ScheduleNum FROM schedule WHERE SchedType = 1 LIMIT 1")
    write(db, ("UPDATE schedule SET SchedType = 3 WHERE ScheduleNum = ?", (num,)))  # employee
    sync.step(conn)
    assert drain(sync.outbox) == {("delete", str(num)): None}


# -- the patient table: DateTStamp without an index ------------------------------


def test_patients_named_by_securitylog_are_reread_before_the_sweep_gets_there(
    db: Path, conn: PmsConnection, store: StateStore
) -> None:
    sync = synced("patient", store, conn, sweep_rows=100)
    top = int(str(one(db, "SELECT MAX(PatNum) FROM patient")))
    signalled, unsignalled = top - 10, top - 20
    write(
        db,
        ("UPDATE patient SET Email = 'a@example.org' WHERE PatNum = ?", (signalled,)),
        ("INSERT INTO securitylog (PermType, PatNum) VALUES (1, ?)", (signalled,)),
        ("UPDATE patient SET Email = 'b@example.org' WHERE PatNum = ?", (unsignalled,)),
    )
    sync.step(conn)
    assert list(drain(sync.outbox)) == [("upsert", str(signalled))]
    # the sweep finds the unsignalled edit within one cycle of 100-row slices
    steps = 0
    found: dict[tuple[str, str], dict[str, object] | None] = {}
    while ("upsert", str(unsignalled)) not in found:
        steps += 1
        assert steps <= top // 100 + 2, "the sweep did not reach the edited patient"
        sync.step(conn)
        found.update(drain(sync.outbox))
    assert list(found) == [("upsert", str(unsignalled))]


def test_new_patients_arrive_at_once_by_key_range(
    db: Path, conn: PmsConnection, store: StateStore
) -> None:
    sync = synced("patient", store, conn, sweep_rows=100)
    write(db, ("INSERT INTO patient (LName, FName, PriProv) VALUES ('New', 'Patient', 1)", ()))
    new = one(db, "SELECT MAX(PatNum) FROM patient")
    sync.step(conn)
    assert list(drain(sync.outbox)) == [("upsert", str(new))]


def test_an_edit_made_during_a_sweep_cycle_is_found_by_the_next_cycle(
    db: Path, conn: PmsConnection, store: StateStore
) -> None:
    sync = synced("patient", store, conn, sweep_rows=300)
    sync.step(conn)  # the sweep is now past the first 300 keys
    write(db, ("UPDATE patient SET Email = 'c@example.org' WHERE PatNum = 5", ()))
    seen: dict[tuple[str, str], dict[str, object] | None] = {}
    for _ in range(12):  # two full cycles of 900 patients
        sync.step(conn)
        seen.update(drain(sync.outbox))
    assert list(seen) == [("upsert", "5")]


def test_a_sweep_cycle_ends_at_the_newest_key_seen_and_still_finds_every_edit(
    db: Path, conn: PmsConnection, store: StateStore
) -> None:
    sync = synced("patient", store, conn, sweep_rows=300)
    statements = count_statements(conn)
    write(db, ("INSERT INTO patient (LName, FName, PriProv) VALUES ('New', 'Patient', 1)", ()))
    new = int(str(one(db, "SELECT MAX(PatNum) FROM patient")))
    sync.step(conn)
    assert list(drain(sync.outbox)) == [("upsert", str(new))]  # read in full at once
    # edited after that read, with no signal: the cycle running now ends below it,
    # the next one ends at the new-row probe's newest key and finds the edit
    write(db, ("UPDATE patient SET Email = 'd@example.org' WHERE PatNum = ?", (new,)))
    seen: dict[tuple[str, str], dict[str, object] | None] = {}
    for _ in range(2 * (new // 300 + 1)):
        sync.step(conn)
        seen.update(drain(sync.outbox))
    assert list(seen) == [("upsert", str(new))]
    assert not [sql for sql in statements.elements() if "MAX(" in sql]


def test_rows_at_the_watermark_are_reread_until_they_settle_then_left_alone(
    db: Path, conn: PmsConnection, store: StateStore
) -> None:
    sync = synced("appointment", store, conn)
    now = pms_now(conn)
    sync.step(conn, lambda: now)  # the rows the build left at the watermark settle
    assert sync.step(conn, lambda: now).read == 0  # and are not re-read again

    write(db, ("UPDATE appointment SET AptStatus = 5 WHERE AptNum = 10", ()))
    stamp = datetime.fromisoformat(
        str(one(db, "SELECT DateTStamp FROM appointment WHERE AptNum = 10"))
    )
    assert sync.step(conn, lambda: stamp).read == 1
    assert list(drain(sync.outbox)) == [("upsert", "10")]

    # the same stamp, other content: a second edit in the same second, or one
    # that committed late (the trigger that moves the stamp is bypassed)
    write(
        db,
        ("DROP TRIGGER appointment_DateTStamp_on_update", ()),
        ("UPDATE appointment SET AptStatus = 2 WHERE AptNum = 10", ()),
    )
    sync.step(conn, lambda: stamp + timedelta(seconds=5))
    sent = drain(sync.outbox)
    assert list(sent) == [("upsert", "10")] and sent[("upsert", "10")]["status"] == "complete"  # type: ignore[index]

    # a write that commits late, stamped before the newest row already read
    late = (stamp - timedelta(seconds=4)).isoformat(sep=" ")
    write(db, ("UPDATE appointment SET AptStatus = 5, DateTStamp = ? WHERE AptNum = 11", (late,)))
    sync.step(conn, lambda: stamp + timedelta(seconds=6))
    assert list(drain(sync.outbox)) == [("upsert", "11")]

    # once the PMS clock is past stamp + overlap + 1 s: one last read, then none
    settled = stamp + DEFAULT_OVERLAP + timedelta(seconds=1)
    last = sync.step(conn, lambda: settled)
    assert (last.read, last.staged) == (2, 0)
    assert sync.step(conn, lambda: settled + timedelta(seconds=2)).read == 0

    # an edit of a settled row moves its stamp: found at once
    moved = (stamp + timedelta(seconds=13)).isoformat(sep=" ")
    write(db, ("UPDATE appointment SET AptStatus = 1, DateTStamp = ? WHERE AptNum = 10", (moved,)))
    sync.step(conn, lambda: settled + timedelta(seconds=3))
    assert list(drain(sync.outbox)) == [("upsert", "10")]


def test_idle_polls_examine_a_bounded_number_of_rows(
    db: Path, conn: PmsConnection, store: StateStore
) -> None:
    sync = synced("patient", store, conn, sweep_rows=100, save_seconds=3600)
    cursor = sync.cursor()
    assert cursor is not None
    before = cursor.rows_examined
    results = [sync.step(conn) for _ in range(10)]
    assert all(r.staged == 0 for r in results)
    per_step = [r.examined for r in results]
    # sweep slice (100) + new-row probe + securitylog probe, never the table (900)
    assert max(per_step) <= 100 + 2 + 1
    # idle bookkeeping is kept in memory (and shown), then saved: nothing is lost
    view = sync.view()
    assert view is not None and view.rows_examined == before + sum(per_step) and view.unsaved
    assert sync.flush()
    with store.read() as session:
        row = session.get(SyncCursor, "patient")
        assert row is not None and row.rows_examined == before + sum(per_step)
        assert row.last_success_at == view.last_success_at


def test_a_patient_with_a_changed_appointment_is_reread_and_sync_now_rereads_keys(
    tmp_path: Path, db: Path, conn: PmsConnection, store: StateStore
) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(
        f"""
[practice]
name = "Test"
timezone = "America/Los_Angeles"
[pms]
profile = "opendental"
connection_string = 'Driver={{SQLite3}};Database={db}'
[cloud]
url = "https://cloud.invalid"
agent_id = "agent-1"
""",
        encoding="utf-8",
    )
    outbox = Outbox(store, "agent-1")
    loop = PmsSyncLoop(
        load_settings(config),
        load_profile("opendental"),
        store,
        MemorySecretStore({}),
        outbox,
        threading.Event(),
    )
    appointments, patients = loop.syncs["appointment"], loop.syncs["patient"]
    for sync in (appointments, patients):
        while not sync.step(conn).done:
            drain(outbox)  # the loop's detectors wait for the cloud to take their pages
    drain(outbox)
    # an appointment whose patient the sweep's first slice cannot reach
    apt, pat = one_row(
        db, "SELECT AptNum, PatNum FROM appointment WHERE PatNum > 500 AND AptStatus = 1 LIMIT 1"
    )
    assert patients.sweep_rows < 500
    write(
        db,
        ("UPDATE patient SET WirelessPhone = '(503) 555-0199' WHERE PatNum = ?", (pat,)),
        ("UPDATE appointment SET AptStatus = 5 WHERE AptNum = ?", (apt,)),
    )
    loop._hint_related("appointment", appointments.step(conn))
    assert list(drain(outbox)) == [("upsert", str(apt))]
    patients.step(conn)
    assert list(drain(outbox)) == [("upsert", str(pat))]

    # "sync now" for one key re-reads it and pushes it even though it is
    # unchanged, with the patient's appointments (bridge.sync.on_demand)
    loop.request_sync(["patient"], [str(pat)])
    assert loop._due["patient"] == 0.0
    loop.run_pass(conn)
    pushed = drain(outbox)
    assert ("upsert", str(pat)) in pushed and ("upsert", str(apt)) in pushed
    assert patients.step(conn).staged == 0  # the key is not read again by the delta step


def count_statements(conn: PmsConnection) -> Counter[str]:
    """Every statement ``conn`` sends from now on (its runner sees them all)."""
    sent: Counter[str] = Counter()
    runner = conn._runner
    execute: Callable[..., Any] = runner.execute

    def counting(sql: str, params: Any = (), **kwargs: Any) -> Any:
        sent[sql] += 1
        return execute(sql, params, **kwargs)

    runner.execute = counting  # type: ignore[method-assign]
    return sent


def one_row(db: Path, sql: str) -> tuple[object, ...]:
    with sqlite3.connect(db) as raw:
        return tuple(raw.execute(sql).fetchone())
