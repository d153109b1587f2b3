"""The cloud heartbeat loop against the real reference cloud on loopback.

Everything asserted is read back from what the reference cloud stored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge import __version__
from bridge.cloud.client import CloudClient
from bridge.cloud.heartbeat import HeartbeatLoop
from bridge.config import Settings, load_settings
from bridge.health import Health, record_health
from bridge.secrets import MemorySecretStore
from bridge.state import StateStore
from bridge.state.models import ComponentHealth, InboxItem, SyncCursor
from bridge.sync.outbox import Outbox
from bridge.sync.records import Record, content_hash
from sandbox.cloud import Fault
from sandbox.cloud.models import HeartbeatRecord
from sandbox.cloud.server import ReferenceCloud
from sandbox.cloud.spec import SpecChecker

AGENT = "agent-1"
TOKEN = "tok-heartbeat-123"


def wait_for(predicate: Callable[[], object], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[ReferenceCloud]:
    with ReferenceCloud(tmp_path / "cloud" / "cloud.sqlite3", tokens={AGENT: TOKEN}) as c:
        yield c


@pytest.fixture
def settings(tmp_path: Path, cloud: ReferenceCloud) -> Settings:
    config = tmp_path / "bridge.toml"
    config.write_text(
        f"""
[practice]
name = "Test Dental"
timezone = "America/Los_Angeles"
[pms]
profile = "opendental"
connection_string = 'Driver={{SQLite3}};Database={tmp_path / "od.sqlite3"}'
[cloud]
url = "{cloud.url}"
agent_id = "{AGENT}"
timeout_seconds = 10
""",
        encoding="utf-8",
    )
    return load_settings(config)


_SPEC: list[SpecChecker] = []


def spec_checked_client(settings: Settings) -> Callable[[], CloudClient]:
    """Clients whose every exchange is checked against docs/cloud-api.yaml."""
    if not _SPEC:
        _SPEC.append(SpecChecker())
    checker = _SPEC[0]
    secrets = MemorySecretStore({"cloud-token": TOKEN})
    return lambda: CloudClient(settings.cloud, secrets, event_hooks={"response": [checker.hook]})


@pytest.fixture
def outbox(store: StateStore) -> Outbox:
    return Outbox(store, AGENT)


def make_loop(
    settings: Settings, store: StateStore, outbox: Outbox, **kwargs: Any
) -> HeartbeatLoop:
    return HeartbeatLoop(
        settings,
        store,
        MemorySecretStore({"cloud-token": TOKEN}),
        outbox,
        entities=("patient", "appointment", "procedure"),
        client_factory=spec_checked_client(settings),
        **kwargs,
    )


@contextmanager
def running(loop: HeartbeatLoop) -> Iterator[threading.Event]:
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            loop(stop)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = threading.Thread(target=run, name="heartbeat-test")
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive(), "the heartbeat loop did not stop"
    assert not errors, errors


def health(store: StateStore, component: str = "heartbeat") -> ComponentHealth | None:
    with store.read() as session:
        return session.get(ComponentHealth, component)


def stage(outbox: Outbox, store: StateStore, *keys: str) -> None:
    with store.write() as session:
        outbox.stage(
            session,
            [
                Record("appointment", k, {"id": k}, None, content_hash({"id": k}))  # type: ignore[arg-type]
                for k in keys
            ],
        )


def seed_state(store: StateStore, outbox: Outbox) -> datetime:
    """Three changes waiting, two inbox items, one synced entity, two unhealthy components."""
    stage(outbox, store, "1", "2", "3")
    now = datetime.now(UTC)
    synced = now - timedelta(seconds=30)
    with store.write() as session:
        session.add(
            SyncCursor(entity="appointment", phase="delta", updated_at=now, last_success_at=synced)
        )
        session.add(SyncCursor(entity="procedure", phase="initial", updated_at=now))
        for item_id, kind, state in [
            ("b1", "booking.request", "waiting"),
            ("s1", "sync.request", "received"),
            ("s0", "sync.request", "done"),
        ]:
            session.add(
                InboxItem(
                    id=item_id,
                    type=kind,
                    payload="{}",
                    created_at=now.isoformat(),
                    received_at=now,
                    state=state,
                    result='{"status": "confirmed"}' if state == "done" else None,
                    attempts=0,
                    updated_at=now,
                )
            )
    record_health(
        store,
        Health(
            "pms",
            "fail",
            "the PMS database server could not be reached",
            fix="Check the server.",
            error_kind="unreachable",
        ),
    )
    record_health(store, Health("loop:uplink", "warn", "the uplink loop crashed and restarted"))
    record_health(store, Health("sync", "ok", "watching 12 entities for changes"))
    return synced


def latest(cloud: ReferenceCloud) -> HeartbeatRecord:
    record = cloud.heartbeat()
    assert record is not None
    return record


def test_first_heartbeat_is_prompt_and_carries_queues_lag_and_errors(
    cloud: ReferenceCloud, settings: Settings, store: StateStore, outbox: Outbox
) -> None:
    synced = seed_state(store, outbox)
    started = time.monotonic()
    with running(make_loop(settings, store, outbox, interval_seconds=60)):
        wait_for(lambda: cloud.heartbeat() is not None, timeout=5)
        prompt = time.monotonic() - started
        wait_for(lambda: (h := health(store)) is not None and h.status == "ok")
    assert prompt < 3

    body = latest(cloud).body
    changes, size = outbox.depth()
    assert (body["agent_id"], body["version"]) == (AGENT, __version__)
    assert body["queue_depths"] == {
        "outbox": 3,
        "outbox_bytes": size,
        "inbox": 2,
        "inbox_received": 1,
        "inbox_waiting": 1,
        "inbox_results_unposted": 1,
    }
    assert changes == 3 and size > 0
    assert body["last_sync"] == {
        "patient": None,
        "appointment": synced.isoformat(),
        "procedure": None,
    }
    assert set(body["lag_seconds"]) == {"appointment"}
    assert 29.0 <= body["lag_seconds"]["appointment"] < 40.0
    assert body["errors"] == [
        {
            "component": "loop:uplink",
            "message": "the uplink loop crashed and restarted",
            "kind": "warn",
            "since": None,
        },
        {
            "component": "pms",
            "message": "the PMS database server could not be reached",
            "kind": "unreachable",
            "since": None,
        },
    ]
    assert len(cloud.heartbeats()) == 1  # one prompt beat, the next after the interval


def test_heartbeats_repeat_with_fresh_state(
    cloud: ReferenceCloud, settings: Settings, store: StateStore, outbox: Outbox
) -> None:
    with running(make_loop(settings, store, outbox, interval_seconds=0.2)):
        wait_for(lambda: cloud.heartbeat() is not None)
        stage(outbox, store, "a", "b")
        record_health(store, Health("pms", "fail", "login failed", error_kind="login_failed"))
        wait_for(lambda: latest(cloud).body["queue_depths"]["outbox"] == 2)
        wait_for(lambda: latest(cloud).body["errors"] != [])
    first = cloud.heartbeats()[0].body
    assert first["queue_depths"]["outbox"] == 0 and first["errors"] == []
    assert first["last_sync"] == {"patient": None, "appointment": None, "procedure": None}
    assert latest(cloud).body["errors"][0]["kind"] == "login_failed"


def test_a_failing_cloud_is_recorded_never_crashes_and_retry_after_is_honoured(
    cloud: ReferenceCloud, settings: Settings, store: StateStore, outbox: Outbox
) -> None:
    cloud.set_fault(Fault("error", path_prefix="/v1/heartbeat"))
    with running(make_loop(settings, store, outbox, interval_seconds=60)):
        wait_for(lambda: (h := health(store)) is not None and h.status == "fail")
        failing = health(store)
        assert failing is not None and failing.error_kind == "cloud" and failing.fix
        cloud.clear_faults()
        cloud.set_fault(Fault("throttle", count=1, path_prefix="/v1/heartbeat", retry_after=2))
        throttled = time.monotonic()
        wait_for(lambda: cloud.heartbeat() is not None, timeout=20)
        waited = time.monotonic() - throttled
        wait_for(lambda: (h := health(store)) is not None and h.status == "ok")
    assert waited >= 2.0  # the retry after the 429 came no sooner than Retry-After
    assert [f.fired for f in cloud.faults()] == [1]
    body = latest(cloud).body
    assert "heartbeat" not in {e["component"] for e in body["errors"]}  # not its own old failure


def test_a_rejected_token_is_reported_and_the_loop_carries_on(
    cloud: ReferenceCloud, settings: Settings, store: StateStore, outbox: Outbox
) -> None:
    cloud.set_token(AGENT, "another-token")
    with running(make_loop(settings, store, outbox, interval_seconds=0.2)):
        wait_for(lambda: (h := health(store)) is not None and h.status == "fail")
        failing = health(store)
        assert failing is not None and failing.error_kind == "cloud_auth"
        cloud.set_token(AGENT, TOKEN)  # the practice stores the right token
        wait_for(lambda: cloud.heartbeat() is not None)
        wait_for(lambda: (h := health(store)) is not None and h.status == "ok")


def test_a_missing_token_fails_the_loop_start_for_the_supervisor_to_retry(
    settings: Settings, store: StateStore, outbox: Outbox
) -> None:
    loop = HeartbeatLoop(settings, store, MemorySecretStore({}), outbox)
    with pytest.raises(Exception, match="cloud-token"):
        loop(threading.Event())
    failing = health(store)
    assert failing is not None and failing.status == "fail" and failing.error_kind == "secret"
