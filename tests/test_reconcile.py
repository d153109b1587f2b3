"""Reconciliation end to end: a real practice over ODBC (SQLite3 driver, and
MariaDB Connector/ODBC) -> outbox -> the reference cloud over HTTP; the cloud
and the PMS are tampered with behind the bridge's back, and after a sweep the
cloud's mirror equals the PMS field for field."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
import pyodbc
import pytest
from conftest import (
    MARIADB_HOST,
    MARIADB_PASSWORD,
    MARIADB_PORT,
    MARIADB_USER,
    mariadb_connection_string,
)

from bridge.cloud import CloudClient
from bridge.cloud.protocol import Change, ChangeBatch
from bridge.config import Settings, load_settings
from bridge.config.model import Cloud
from bridge.pms.odbc import OdbcSettings, PmsConnection, connect
from bridge.pms.profile import load_profile
from bridge.secrets import MemorySecretStore, Secret
from bridge.state import StateStore
from bridge.state.models import ComponentHealth, OutboxChange, ReconcileRun, SyncCursor
from bridge.sync.outbox import Outbox
from bridge.sync.reconcile import (
    ReconcileLoop,
    Reconciler,
    ReconcileResult,
    UnreconcilableKeysError,
    percent_in_sync,
    reconcile_summary,
)
from bridge.sync.records import Record, RecordReader
from sandbox.cloud.server import ReferenceCloud
from sandbox.cloud.spec import SpecChecker
from sandbox.practice import build_practice

pytest_plugins = ["sandbox.cloud.fixtures"]

LA = ZoneInfo("America/Los_Angeles")
PROFILE = load_profile("opendental")
AGENT = "agent-1"
TOKEN = "tok-reconcile"


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[ReferenceCloud]:
    with ReferenceCloud(tmp_path / "cloud" / "cloud.sqlite3", tokens={AGENT: TOKEN}) as c:
        yield c


class Traffic:
    """Counts /v1 requests by path, and checks each exchange against the spec."""

    def __init__(self, spec: SpecChecker) -> None:
        self.spec = spec
        self.paths: dict[str, int] = {}

    def hook(self, response: httpx.Response) -> None:
        path = response.request.url.path
        self.paths[path] = self.paths.get(path, 0) + 1
        self.spec.hook(response)


@pytest.fixture
def traffic(cloud_spec: SpecChecker) -> Traffic:
    return Traffic(cloud_spec)


def make_client(cloud: ReferenceCloud, traffic: Traffic) -> CloudClient:
    return CloudClient(
        Cloud(url=cloud.url, agent_id=AGENT, timeout_seconds=10),
        MemorySecretStore({"cloud-token": TOKEN}),
        event_hooks={"response": [traffic.hook]},
    )


@pytest.fixture
def client(cloud: ReferenceCloud, traffic: Traffic) -> Iterator[CloudClient]:
    with make_client(cloud, traffic) as c:
        yield c


@pytest.fixture
def outbox(store: StateStore) -> Outbox:
    return Outbox(store, AGENT)


def reader(entity: str) -> RecordReader:
    return RecordReader(PROFILE, entity, LA)


def first_sync(conn: PmsConnection, store: StateStore, outbox: Outbox, *entities: str) -> None:
    """What the detector's first sync does: every record staged, cursor in delta."""
    now = datetime.now(UTC)
    for entity in entities:
        with store.write() as session:
            outbox.stage(session, reader(entity).read(conn))
            session.merge(
                SyncCursor(
                    entity=entity,
                    phase="delta",
                    rows_done=0,
                    updated_at=now,
                    finished_at=now,
                    strategy_state="{}",
                    rows_examined=0,
                )
            )


def deliver(outbox: Outbox, client: CloudClient) -> int:
    """What the uplink does: send every batch and acknowledge it."""
    sent = 0
    while (batch := outbox.next_batch(max_changes=1000)) is not None:
        wire = ChangeBatch(
            AGENT,
            batch.batch_id,
            batch.seqs[0],
            tuple(
                Change(c.entity, c.op, c.key, c.version, c.observed_at, c.data)  # type: ignore[arg-type]
                for c in batch.changes
            ),
        )
        client.post_changes(wire)
        outbox.acknowledge(batch.batch_id)
        sent += len(batch.changes)
    return sent


def pms_rows(conn: PmsConnection, entity: str) -> dict[str, dict[str, Any]]:
    return {r.key: dict(r.data) for r in reader(entity).read(conn)}


def cloud_rows(cloud: ReferenceCloud, entity: str) -> dict[str, dict[str, Any] | None]:
    return {k: row.data for k, row in cloud.mirror(entity).items() if not row.deleted}


def assert_cloud_equals_pms(cloud: ReferenceCloud, conn: PmsConnection, entity: str) -> None:
    expected, got = pms_rows(conn, entity), cloud_rows(cloud, entity)
    assert set(got) == set(expected), set(got) ^ set(expected)
    different = [k for k in expected if got[k] != expected[k]]
    assert different == [], different[:5]


def sweep(
    conn: PmsConnection,
    client: CloudClient,
    store: StateStore,
    outbox: Outbox,
    entity: str,
    **kwargs: Any,
) -> ReconcileResult:
    return Reconciler(reader(entity), outbox, store, **kwargs).sweep(conn, client, "request")


def late_write(db: Path, sql: str) -> None:
    with sqlite3.connect(db) as raw:
        raw.execute(sql)


# -- the sweep -------------------------------------------------------------------------


def test_a_faithful_copy_is_100_percent_in_sync_without_listing_keys(
    conn: PmsConnection,
    client: CloudClient,
    store: StateStore,
    outbox: Outbox,
    traffic: Traffic,
) -> None:
    # every entity shape (embedded child rows included); the two largest plain
    # tables are left to the other tests, for time
    entities = [e for e in PROFILE.entities if e not in ("appointment", "procedure")]
    first_sync(conn, store, outbox, *entities)
    deliver(outbox, client)
    started = time.monotonic()
    for entity in entities:
        result = sweep(conn, client, store, outbox, entity)
        assert (result.status, result.percent_in_sync) == ("ok", 100.0), entity
        assert result.rows_pms == result.rows_cloud == result.rows_matched
        assert (result.resent, result.deleted, result.pending) == (0, 0, 0)
    print(f"swept {len(entities)} entities in {time.monotonic() - started:.2f} s")
    assert traffic.paths.get("/v1/checksums/keys", 0) == 0
    appointments = reconcile_summary(store)
    assert {s.entity for s in appointments} == set(entities)
    assert all(s.percent_in_sync == 100.0 and s.status == "ok" for s in appointments)
    assert outbox.depth() == (0, 0)


def test_drift_on_both_sides_is_repaired_and_nothing_is_missed(
    db: Path,
    conn: PmsConnection,
    client: CloudClient,
    cloud: ReferenceCloud,
    store: StateStore,
    outbox: Outbox,
    traffic: Traffic,
) -> None:
    first_sync(conn, store, outbox, "appointment", "patient")
    deliver(outbox, client)
    # The cloud loses a row, one is altered, and a phantom appears (also past the last key).
    assert cloud.drop_mirror_row("appointment", "500")
    cloud.set_mirror_row("appointment", "501", {"status": "tampered"})
    cloud.set_mirror_row("appointment", "10166", {"phantom": True})
    cloud.set_mirror_row("appointment", "99999999", {"phantom": True})
    cloud.set_mirror_row("patient", "0", {"phantom": True})  # before the first key
    # Behind the bridge's back: writes whose stamps stay behind any watermark
    # (late-committing, same-second), and deletes without a deletedobject row.
    late_write(
        db,
        "UPDATE appointment SET AptStatus = 5, DateTStamp = datetime(DateTStamp, '-1 second')"
        " WHERE AptNum IN (42, 4242)",
    )
    late_write(
        db,
        "UPDATE patient SET FName = 'Renamed', DateTStamp = datetime(DateTStamp, '-1 second')"
        " WHERE PatNum = 17",
    )
    late_write(db, "DELETE FROM appointment WHERE AptNum IN (7, 9000)")
    late_write(db, "DELETE FROM patient WHERE PatNum = 900")

    result = sweep(conn, client, store, outbox, "appointment")
    assert result.status == "ok"
    assert (result.rows_pms, result.rows_cloud) == (10_163, 10_166)
    # matched: all but 42, 4242 (changed), 501 (altered); 500 is missing; 7, 9000 gone
    assert result.rows_matched == 10_163 - 3 - 1
    assert result.percent_in_sync < 100
    assert (result.resent, result.deleted, result.pending) == (4, 4, 0)  # 42 4242 500 501 / ...
    assert result.ranges == 11 and result.ranges_differing == 4  # keys 7-501, 4242, 9000, tail
    patients = sweep(conn, client, store, outbox, "patient")
    assert (patients.resent, patients.deleted) == (1, 2)  # 17 / 900 and the phantom 0
    # only for the ranges that differ; (8001, 9002] holds 1001 cloud rows: two pages
    assert traffic.paths["/v1/checksums/keys"] == 4 + 1 + 1

    deliver(outbox, client)
    assert_cloud_equals_pms(cloud, conn, "appointment")
    assert_cloud_equals_pms(cloud, conn, "patient")
    assert cloud_rows(cloud, "appointment")["42"]["status"] == "broken"  # type: ignore[index]

    again = sweep(conn, client, store, outbox, "appointment")
    assert (again.percent_in_sync, again.resent, again.deleted) == (100.0, 0, 0)
    [summary] = [s for s in reconcile_summary(store) if s.entity == "appointment"]
    assert summary.percent_in_sync == 100.0 and summary.verified_at is not None
    with store.read() as session:
        runs = session.query(ReconcileRun).filter_by(entity="appointment").all()
    assert [(r.status, r.resent) for r in runs] == [("ok", 4), ("ok", 0)]
    assert percent_in_sync(runs[0].rows_matched, runs[0].rows_pms, runs[0].rows_cloud) < 100


def test_small_ranges_batches_and_paged_key_lists(
    db: Path,
    conn: PmsConnection,
    client: CloudClient,
    cloud: ReferenceCloud,
    store: StateStore,
    outbox: Outbox,
    traffic: Traffic,
) -> None:
    first_sync(conn, store, outbox, "patient")
    deliver(outbox, client)
    for key in range(901, 960):  # many phantoms past the last key: the open-ended range pages
        cloud.set_mirror_row("patient", str(key), {"phantom": key})
    cloud.set_mirror_row("patient", "33", {"altered": True})
    for odd in ("x", "007", "12a", "5" * 30):  # keys no PMS row can have, between the others
        cloud.set_mirror_row("patient", odd, {"phantom": odd})
    late_write(db, "DELETE FROM patient WHERE PatNum BETWEEN 100 AND 140")
    result = sweep(
        conn, client, store, outbox, "patient", range_rows=50, ranges_per_request=4, keys_page=7
    )
    assert (result.rows_pms, result.rows_cloud) == (859, 963)
    assert (result.resent, result.deleted) == (1, 41 + 59 + 4)
    assert result.ranges == 18  # 859 rows in ranges of 50, plus the open end
    assert traffic.paths["/v1/checksums"] == 5
    deliver(outbox, client)
    assert_cloud_equals_pms(cloud, conn, "patient")
    assert sweep(conn, client, store, outbox, "patient", range_rows=50).percent_in_sync == 100.0


def test_pending_changes_are_not_drift_and_are_not_staged_twice(
    db: Path,
    conn: PmsConnection,
    client: CloudClient,
    cloud: ReferenceCloud,
    store: StateStore,
    outbox: Outbox,
) -> None:
    first_sync(conn, store, outbox, "appointment")
    deliver(outbox, client)
    late_write(db, "UPDATE appointment SET AptStatus = 5 WHERE AptNum IN (10, 20, 30, 40)")
    changed = [r for r in reader("appointment").read(conn, "AptNum IN (10, 20, 30, 40)")]
    with store.write() as session:  # the detector staged them; the uplink has not sent them
        outbox.stage(session, changed[:2])
    in_flight = outbox.next_batch()  # a batch formed but not acknowledged: still pending
    assert in_flight is not None
    with store.write() as session:
        outbox.stage(session, changed[2:])
    with store.read() as session:
        before = [(c.seq, c.key, c.batch_id) for c in session.query(OutboxChange)]

    result = sweep(conn, client, store, outbox, "appointment")
    assert (result.pending, result.resent, result.deleted) == (4, 0, 0)
    assert result.percent_in_sync == 100.0
    with store.read() as session:
        assert [(c.seq, c.key, c.batch_id) for c in session.query(OutboxChange)] == before
    deliver(outbox, client)
    assert_cloud_equals_pms(cloud, conn, "appointment")


def test_a_change_staged_during_the_sweep_is_never_overwritten_by_an_older_read(
    db: Path,
    conn: PmsConnection,
    client: CloudClient,
    cloud: ReferenceCloud,
    store: StateStore,
    outbox: Outbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first_sync(conn, store, outbox, "appointment")
    deliver(outbox, client)
    cloud.set_mirror_row("appointment", "42", {"status": "tampered"})
    original = Reconciler._read_span

    def read_then_race(self: Reconciler, c: PmsConnection, part: Any, span: Any) -> list[Record]:
        records = original(self, c, part, span)  # the sweep has read key 42 ...
        if part.contains("42"):  # ... then it changes, the detector stages it, the uplink sends
            late_write(db, "UPDATE appointment SET AptStatus = 5 WHERE AptNum = 42")
            with store.write() as session:
                outbox.stage(session, reader("appointment").read(conn, "AptNum = 42"))
            deliver(outbox, client)
        return records

    monkeypatch.setattr(Reconciler, "_read_span", read_then_race)
    result = sweep(conn, client, store, outbox, "appointment")
    assert (result.pending, result.resent) == (1, 0)  # left to the detector's newer change
    deliver(outbox, client)
    assert cloud_rows(cloud, "appointment")["42"]["status"] == "broken"  # type: ignore[index]
    assert_cloud_equals_pms(cloud, conn, "appointment")


def test_keys_that_cannot_be_ranged_fail_the_run_clearly(
    db: Path, conn: PmsConnection, client: CloudClient, store: StateStore, outbox: Outbox
) -> None:
    late_write(
        db, "UPDATE appointmenttype SET AppointmentTypeNum = -1 WHERE AppointmentTypeNum = 1"
    )
    assert next(reader("appointment_type").read(conn)).key == "-1"
    with pytest.raises(UnreconcilableKeysError):
        sweep(conn, client, store, outbox, "appointment_type")
    [summary] = reconcile_summary(store)
    assert (summary.entity, summary.status, summary.percent_in_sync) == (
        "appointment_type",
        "failed",
        None,
    )
    assert "integers" in summary.error


# -- the loop ---------------------------------------------------------------------------


def settings_for(tmp_path: Path, db: Path, cloud: ReferenceCloud) -> Settings:
    config = tmp_path / "bridge.toml"
    config.write_text(
        f"""
[practice]
name = "Test Dental"
timezone = "America/Los_Angeles"
[pms]
profile = "opendental"
connection_string = 'Driver={{SQLite3}};Database={db}'
[cloud]
url = "{cloud.url}"
agent_id = "{AGENT}"
""",
        encoding="utf-8",
    )
    return load_settings(config)


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def runs(store: StateStore) -> list[tuple[str, str, str]]:
    with store.read() as session:
        return [
            (r.entity, r.trigger, r.status)
            for r in session.query(ReconcileRun).order_by(ReconcileRun.id)
        ]


def test_the_loop_sweeps_on_request_and_on_schedule(
    tmp_path: Path,
    db: Path,
    conn: PmsConnection,
    client: CloudClient,
    cloud: ReferenceCloud,
    store: StateStore,
    outbox: Outbox,
    traffic: Traffic,
) -> None:
    first_sync(conn, store, outbox, "provider", "operatory", "patient")
    deliver(outbox, client)
    cloud.drop_mirror_row("operatory", "3")
    wake = threading.Event()
    loop = ReconcileLoop(
        settings_for(tmp_path, db, cloud),
        PROFILE,
        store,
        MemorySecretStore({"cloud-token": TOKEN}),
        outbox,
        wake,
        interval_seconds=3600,
        client_factory=lambda: make_client(cloud, traffic),
        poll_seconds=0.2,
    )
    # first sync just finished: nothing is due for an hour, requests run at once
    loop.request(["operatory", "not-an-entity"])
    loop.request(["operatory"])  # merged with the first
    loop.request(["appointment"])  # still in first sync: waits
    stop = threading.Event()
    thread = threading.Thread(target=loop, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: ("operatory", "request", "ok") in runs(store))
        assert wake.is_set()  # the re-sent operatory woke the uplink
        assert runs(store) == [("operatory", "request", "ok")]
        assert loop.requested() == {"appointment"}
        deliver(outbox, client)
        assert_cloud_equals_pms(cloud, conn, "operatory")

        loop.request([])  # everything that can run
        wait_for(lambda: len(runs(store)) == 4 and runs(store)[-1][2] != "running")
        assert sorted(runs(store)[1:]) == [
            ("operatory", "request", "ok"),
            ("patient", "request", "ok"),
            ("provider", "request", "ok"),
        ]
        assert loop.requested() == {
            name for name in PROFILE.entities if name not in {"provider", "operatory", "patient"}
        }
        # the schedule: everything verified is due again after the interval
        loop.interval = loop.interval / 3600 / 10  # 0.1 s
        wait_for(lambda: sum(1 for r in runs(store) if r[1] == "schedule") >= 3)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    summary = {s.entity: s for s in reconcile_summary(store)}
    assert set(summary) == {"provider", "operatory", "patient"}
    assert all(s.percent_in_sync == 100.0 for s in summary.values())
    with store.read() as session:
        health = session.get(ComponentHealth, "reconcile")
    assert health is not None
    assert health.status == "ok" and "verified" in health.message


# -- MariaDB ------------------------------------------------------------------------------


@pytest.mark.mariadb
def test_drift_is_repaired_on_mariadb(
    mariadb_database: str,
    client: CloudClient,
    cloud: ReferenceCloud,
    store: StateStore,
    outbox: Outbox,
) -> None:
    url = (
        f"mariadb://{quote(MARIADB_USER)}:{quote(MARIADB_PASSWORD)}@{MARIADB_HOST}:"
        f"{MARIADB_PORT}/{mariadb_database}"
    )
    build_practice(url, size="demo", replace=True)
    settings = OdbcSettings(
        connection_string=mariadb_connection_string(mariadb_database),
        password=Secret(MARIADB_PASSWORD, "test-root") if MARIADB_PASSWORD else None,
    )
    with connect(settings) as maria:
        first_sync(maria, store, outbox, "appointment")
        deliver(outbox, client)
        cloud.drop_mirror_row("appointment", "500")
        cloud.set_mirror_row("appointment", "20000", {"phantom": True})
        raw = pyodbc.connect(
            f"{mariadb_connection_string(mariadb_database)};Password={MARIADB_PASSWORD}",
            autocommit=True,
        )
        try:  # DateTStamp set to itself: MariaDB's ON UPDATE stamp does not move
            raw.execute(
                "UPDATE appointment SET AptStatus = 5, DateTStamp = DateTStamp WHERE AptNum = 42"
            )
            raw.execute("DELETE FROM appointment WHERE AptNum = 7")
        finally:
            raw.close()
        result = sweep(maria, client, store, outbox, "appointment")
        assert result.percent_in_sync < 100
        assert (result.resent, result.deleted) == (2, 2)
        deliver(outbox, client)
        assert_cloud_equals_pms(cloud, maria, "appointment")
        assert sweep(maria, client, store, outbox, "appointment").percent_in_sync == 100.0


def test_the_loop_retries_a_failed_sweep_and_closes_interrupted_runs(
    tmp_path: Path,
    db: Path,
    conn: PmsConnection,
    client: CloudClient,
    cloud: ReferenceCloud,
    store: StateStore,
    outbox: Outbox,
    traffic: Traffic,
) -> None:
    first_sync(conn, store, outbox, "provider")
    deliver(outbox, client)
    with store.write() as session:  # a sweep the last engine did not finish
        session.add(
            ReconcileRun(
                entity="provider",
                trigger="schedule",
                started_at=datetime.now(UTC),
                status="running",
            )
        )
    cloud.set_token(AGENT, "another-token")  # the cloud refuses the agent for now
    loop = ReconcileLoop(
        settings_for(tmp_path, db, cloud),
        PROFILE,
        store,
        MemorySecretStore({"cloud-token": TOKEN}),
        outbox,
        threading.Event(),
        interval_seconds=3600,
        client_factory=lambda: make_client(cloud, traffic),
        poll_seconds=0.2,
    )
    loop.request(["provider"])
    stop = threading.Event()
    thread = threading.Thread(target=loop, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: len(runs(store)) == 2 and loop.requested() == {"provider"})
        assert runs(store) == [
            ("provider", "schedule", "failed"),
            ("provider", "request", "failed"),
        ]
        with store.read() as session:
            interrupted, refused = session.query(ReconcileRun).order_by(ReconcileRun.id).all()
            health = session.get(ComponentHealth, "reconcile")
        assert interrupted.error.startswith("interrupted")
        assert "did not accept the agent token" in refused.error
        assert health is not None and (health.status, health.error_kind) == ("fail", "cloud_auth")
        cloud.set_token(AGENT, TOKEN)
        loop.request(["provider"])  # asked again: no waiting out the backoff
        wait_for(lambda: ("provider", "request", "ok") in runs(store), timeout=10)
        assert loop.requested() == set()
    finally:
        stopped = time.monotonic()
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert time.monotonic() - stopped < 2  # an idle loop stops promptly
    [summary] = reconcile_summary(store)
    assert (summary.status, summary.percent_in_sync, summary.error) == ("ok", 100.0, "")
