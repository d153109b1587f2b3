"""The inbox loop against the real reference cloud on loopback and a real state store.

Only the engine's boundary (:class:`~bridge.inbox.SyncControl`) is a
recording fake. Crash safety is proven twice: by stopping the loop between
handling and posting, and by SIGKILL at the loop's crashpoints in a
subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bridge.cloud.client import CloudClient
from bridge.cloud.protocol import InboxResult
from bridge.config import Settings, load_settings
from bridge.errors import ServerUnreachableError
from bridge.inbox import (
    Handler,
    InboxLoop,
    ReceivedItem,
    control_handlers,
    read_inbox_summary,
)
from bridge.inbox.records import forget_cursor, read_cursor
from bridge.pms.profile import load_profile
from bridge.secrets import MemorySecretStore
from bridge.state import StateStore, open_state
from bridge.state.models import ComponentHealth, InboxItem
from sandbox.cloud import Fault
from sandbox.cloud.models import ResultRecord
from sandbox.cloud.server import ReferenceCloud
from sandbox.cloud.spec import SpecChecker

AGENT = "agent-1"
TOKEN = "tok-inbox-123"
ENTITIES = tuple(load_profile("opendental").entities)
REPO = Path(__file__).resolve().parents[1]
BOOKING = {
    "patient": {"first_name": "Ada", "last_name": "Byron", "date_of_birth": "1990-12-10"},
    "start": "2026-12-01T10:00:00-08:00",
    "appointment_type": "Cleaning",
}


class RecordingControl:
    """The engine side of sync/reconcile requests: records every call."""

    def __init__(self, on_call: Callable[[], None] | None = None) -> None:
        self.calls: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []
        self._on_call = on_call

    def request_sync(self, entities: Sequence[str], keys: Sequence[str] = ()) -> None:
        self.calls.append(("sync", tuple(entities), tuple(keys)))
        if self._on_call:
            self._on_call()

    def request_reconcile(self, entities: Sequence[str]) -> None:
        self.calls.append(("reconcile", tuple(entities), ()))
        if self._on_call:
            self._on_call()

    def await_records(
        self, entity: str, keys: Sequence[str], since: float, timeout: float
    ) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """Every key counts as found (the real push: tests/test_sync_on_demand.py)."""
        return tuple(keys), ()


def wait_for(predicate: Callable[[], object], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def write_config(tmp_path: Path, cloud: ReferenceCloud) -> Path:
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
    return config


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[ReferenceCloud]:
    with ReferenceCloud(tmp_path / "cloud" / "cloud.sqlite3", tokens={AGENT: TOKEN}) as c:
        yield c


@pytest.fixture
def settings(tmp_path: Path, cloud: ReferenceCloud) -> Settings:
    return load_settings(write_config(tmp_path, cloud))


_SPEC: list[SpecChecker] = []


def spec_checked_client(settings: Settings) -> Callable[[], CloudClient]:
    """Clients whose every exchange is checked against docs/cloud-api.yaml."""
    if not _SPEC:
        _SPEC.append(SpecChecker())
    checker = _SPEC[0]
    secrets = MemorySecretStore({"cloud-token": TOKEN})
    return lambda: CloudClient(settings.cloud, secrets, event_hooks={"response": [checker.hook]})


def make_loop(
    settings: Settings,
    store: StateStore,
    handlers: Mapping[str, Handler],
    **kwargs: Any,
) -> InboxLoop:
    return InboxLoop(
        settings,
        store,
        MemorySecretStore({"cloud-token": TOKEN}),
        handlers,
        wait_seconds=0.3,
        client_factory=spec_checked_client(settings),
        **kwargs,
    )


@contextmanager
def running(loop: InboxLoop, stop: threading.Event | None = None) -> Iterator[threading.Event]:
    stop = stop or threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            loop(stop)
        except BaseException as exc:  # surfaced in the test below
            errors.append(exc)

    thread = threading.Thread(target=run, name="inbox-test")
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive(), "the inbox loop did not stop"
    assert not errors, errors


def results_by_id(cloud: ReferenceCloud) -> dict[str, ResultRecord]:
    return {r.id: r for r in cloud.results()}


def local_items(store: StateStore) -> dict[str, InboxItem]:
    with store.read() as session:
        return {row.id: row for row in session.scalars(select(InboxItem))}


def inbox_health(store: StateStore) -> ComponentHealth | None:
    with store.read() as session:
        return session.get(ComponentHealth, "inbox")


# -- handling -----------------------------------------------------------------


def test_sync_and_reconcile_requests_are_scheduled_and_confirmed(
    cloud: ReferenceCloud, settings: Settings, store: StateStore
) -> None:
    everything = cloud.enqueue("sync.request", {"entities": []})
    some = cloud.enqueue("sync.request", {"entities": ["appointment"], "keys": ["42", "42", "7"]})
    sweep = cloud.enqueue("reconcile.request", {"entities": ["patient", "patient", "claim"]})
    control = RecordingControl()
    with running(make_loop(settings, store, control_handlers(control, ENTITIES))):
        wait_for(lambda: len(cloud.results()) == 3)
        wait_for(lambda: all(r.result_posted_at for r in local_items(store).values()))

    assert control.calls == [
        ("sync", ENTITIES, ()),
        ("sync", ("appointment",), ("42", "7")),
        ("reconcile", ("patient", "claim"), ()),
    ]
    results = results_by_id(cloud)
    assert {k: (r.status, r.result["reason"]["code"]) for k, r in results.items()} == {
        everything.id: ("confirmed", "sync_scheduled"),
        some.id: ("confirmed", "records_pushed"),
        sweep.id: ("confirmed", "reconcile_scheduled"),
    }
    assert results[some.id].result["reason"]["message"] == "pushed 2 appointment record(s) now"
    assert all(r.repeats == 0 for r in results.values())
    assert {i.state for i in local_items(store).values()} == {"done"}
    health = inbox_health(store)
    assert health is not None and health.status == "ok", health and health.message


def test_invalid_items_are_rejected_with_specific_reasons_and_the_rest_carry_on(
    cloud: ReferenceCloud, settings: Settings, store: StateStore
) -> None:
    personal = "Ada Byron 1990-12-10"
    cases = {
        "sync-not-a-list": ("sync.request", {"entities": personal}),
        "sync-unknown-entity": ("sync.request", {"entities": ["patient", personal]}),
        "sync-not-a-string": ("sync.request", {"entities": [7]}),
        "sync-missing": ("sync.request", {"keys": ["1"]}),
        "sync-keys-two-entities": (
            "sync.request",
            {"entities": ["patient", "claim"], "keys": ["1"]},
        ),
        "sync-key-too-long": ("sync.request", {"entities": ["patient"], "keys": ["1", "x" * 101]}),
        "sync-keys-not-list": ("sync.request", {"entities": ["patient"], "keys": personal}),
        "reconcile-not-a-list": ("reconcile.request", {"entities": {"patient": True}}),
        "teleport": ("teleport.request", {"entities": []}),
        "valid-after-all-that": ("sync.request", {"entities": ["provider"], "extra": "ignored"}),
    }
    for item_id, (kind, payload) in cases.items():
        cloud.enqueue(kind, payload, item_id=item_id)
    control = RecordingControl()
    with running(make_loop(settings, store, control_handlers(control, ENTITIES))):
        wait_for(lambda: len(cloud.results()) == len(cases))

    results = {k: r.result for k, r in results_by_id(cloud).items()}
    expected = {
        "sync-not-a-list": "entities must be a list of entity names",
        "sync-unknown-entity": "entities[1] is not an entity of this practice's PMS profile",
        "sync-not-a-string": "entities[0] must be a string",
        "sync-missing": "entities is required (an empty list means every entity)",
        "sync-keys-two-entities": "keys needs exactly one entity in entities",
        "sync-key-too-long": "keys[1] must be a string of 1 to 100 characters",
        "sync-keys-not-list": "keys must be a list of record keys",
        "reconcile-not-a-list": "entities must be a list of entity names",
    }
    for item_id, message in expected.items():
        result = results[item_id]
        assert result["status"] == "rejected", item_id
        assert result["reason"]["code"] == "invalid_request", item_id
        assert result["reason"]["message"].startswith(message), (item_id, result)
    assert results["teleport"]["status"] == "rejected"
    assert results["teleport"]["reason"] == {
        "code": "unsupported_type",
        "message": "item type teleport.request is not supported by this bridge",
    }
    assert results["valid-after-all-that"]["status"] == "confirmed"
    assert control.calls == [("sync", ("provider",), ())]  # nothing invalid reached the engine
    assert personal not in json.dumps(results)
    assert "Ada" not in json.dumps(results)


def test_booking_items_wait_unanswered_visible_and_are_released_to_a_handler_later(
    cloud: ReferenceCloud, settings: Settings, store: StateStore
) -> None:
    booking = cloud.enqueue("booking.request", BOOKING)
    cancel = cloud.enqueue("booking.cancel", {"pms_appointment_id": "77"})
    sync = cloud.enqueue("sync.request", {"entities": []})
    control = RecordingControl()
    with running(make_loop(settings, store, control_handlers(control, ENTITIES))):
        wait_for(lambda: sync.id in results_by_id(cloud))
        wait_for(lambda: (h := inbox_health(store)) is not None and h.status == "warn")

    assert set(results_by_id(cloud)) == {sync.id}  # bookings are neither rejected nor lost
    summary = read_inbox_summary(store)
    assert summary.counts == {"waiting": 2, "done": 1}
    assert summary.waiting_types == {"booking.request": 1, "booking.cancel": 1}
    assert [(w.id, w.type) for w in summary.waiting] == [
        (booking.id, "booking.request"),
        (cancel.id, "booking.cancel"),
    ]
    assert all(w.received_at.tzinfo is not None for w in summary.waiting)
    assert "Ada" not in repr(summary)  # no payload contents in the status view
    health = inbox_health(store)
    assert health is not None
    assert health.message.startswith("2 request(s) from the cloud are waiting")
    assert "booking.request" in health.message and health.fix

    class BookingStub:
        def __init__(self) -> None:
            self.seen: list[tuple[str, int]] = []

        def validate(self, payload: Mapping[str, Any]) -> None:
            assert "patient" in payload or "pms_appointment_id" in payload

        def handle(self, item: ReceivedItem) -> InboxResult:
            self.seen.append((item.id, item.attempt))
            return InboxResult("held", pms_ids={"appointment": "901"})

    stub = BookingStub()
    handlers: dict[str, Handler] = {
        **control_handlers(control, ENTITIES),
        "booking.request": stub,
        "booking.cancel": stub,
    }
    with running(make_loop(settings, store, handlers)):
        wait_for(lambda: len(cloud.results()) == 3)
    assert stub.seen == [(booking.id, 1), (cancel.id, 1)]
    assert results_by_id(cloud)[booking.id].result["pms_ids"] == {"appointment": "901"}
    assert read_inbox_summary(store).counts == {"done": 3}


def test_the_cursor_is_kept_across_restarts_and_a_lost_cursor_repeats_nothing(
    cloud: ReferenceCloud, settings: Settings, store: StateStore
) -> None:
    booking = cloud.enqueue("booking.request", BOOKING)  # never answered: redelivered if asked
    control = RecordingControl()
    handlers = control_handlers(control, ENTITIES)
    with running(make_loop(settings, store, handlers)):
        wait_for(lambda: read_inbox_summary(store).counts.get("waiting") == 1)
    cursor = read_cursor(store)
    assert cursor is not None

    def deliveries() -> int:
        return next(i.deliveries for i in cloud.inbox() if i.id == booking.id)

    assert deliveries() == 1
    with running(make_loop(settings, store, handlers)):  # restart: polls after the cursor
        first = cloud.enqueue("sync.request", {"entities": ["patient"]})
        wait_for(lambda: first.id in results_by_id(cloud))
        time.sleep(0.8)  # a few more long-polls
    assert deliveries() == 1
    assert read_cursor(store) != cursor  # moved past the new item

    forget_cursor(store)  # as if the cloud had not recognised it
    with running(make_loop(settings, store, handlers)):
        wait_for(lambda: deliveries() == 2)  # delivered again from the start...
        second = cloud.enqueue("sync.request", {"entities": ["claim"]})
        wait_for(lambda: second.id in results_by_id(cloud))
    assert len(local_items(store)) == 3  # ...but stored once and still waiting
    assert local_items(store)[booking.id].state == "waiting"
    assert control.calls == [("sync", ("patient",), ()), ("sync", ("claim",), ())]


# -- crash safety -------------------------------------------------------------


def test_stopped_between_handling_and_posting_the_result_is_posted_once_after_restart(
    cloud: ReferenceCloud, settings: Settings, store: StateStore
) -> None:
    item = cloud.enqueue("sync.request", {"entities": ["appointment"]})
    stop = threading.Event()
    first = RecordingControl(on_call=stop.set)  # the engine stops right after scheduling
    with running(make_loop(settings, store, control_handlers(first, ENTITIES)), stop):
        stop.wait(15)
    assert first.calls == [("sync", ("appointment",), ())]
    row = local_items(store)[item.id]
    assert (row.state, row.result_posted_at, row.attempts) == ("done", None, 1)
    assert cloud.results() == []

    second = RecordingControl()
    with running(make_loop(settings, store, control_handlers(second, ENTITIES))):
        wait_for(lambda: local_items(store)[item.id].result_posted_at is not None)
        time.sleep(0.5)
    assert second.calls == []  # not handled again
    [result] = cloud.results()
    assert (result.id, result.status, result.repeats) == (item.id, "confirmed", 0)


CRASH_SCRIPT = """
import pathlib, sys, threading
from bridge.config import load_settings
from bridge.inbox import InboxLoop, control_handlers
from bridge.secrets import MemorySecretStore
from bridge.state import open_state

config, state, calls, token = sys.argv[1:5]
entities = sys.argv[5].split(",")

class FileControl:
    def request_sync(self, entities, keys=()):
        with open(calls, "a", encoding="utf-8") as f:
            f.write("sync " + ",".join(entities) + "\\n")
    def request_reconcile(self, entities):
        with open(calls, "a", encoding="utf-8") as f:
            f.write("reconcile " + ",".join(entities) + "\\n")

store = open_state(pathlib.Path(state))
loop = InboxLoop(
    load_settings(pathlib.Path(config)), store, MemorySecretStore({"cloud-token": token}),
    control_handlers(FileControl(), entities), wait_seconds=0.3,
)
stop = threading.Event()
threading.Timer(30, stop.set).start()
loop(stop)
"""


def run_until_killed(tmp_path: Path, crashpoint: str, calls: Path) -> None:
    env = {**os.environ, "BRIDGE_CRASHPOINT": crashpoint}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CRASH_SCRIPT,
            str(tmp_path / "bridge.toml"),
            str(tmp_path / "state.sqlite3"),
            str(calls),
            TOKEN,
            ",".join(ENTITIES),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]


@pytest.mark.parametrize(
    ("crashpoint", "handled_before_crash"),
    [
        ("inbox.received", []),  # stored with the cursor, nothing handled
        ("inbox.handled", ["sync patient"]),  # first result stored, not posted
        ("inbox.posted", ["sync patient", "reconcile claim"]),  # first post sent, not noted
    ],
)
def test_sigkill_anywhere_loses_nothing_and_handles_each_item_once(
    tmp_path: Path,
    cloud: ReferenceCloud,
    settings: Settings,
    crashpoint: str,
    handled_before_crash: list[str],
) -> None:
    items = [
        cloud.enqueue("sync.request", {"entities": ["patient"]}),
        cloud.enqueue("reconcile.request", {"entities": ["claim"]}),
    ]
    calls = tmp_path / "calls.txt"
    run_until_killed(tmp_path, crashpoint, calls)
    killed_calls = calls.read_text(encoding="utf-8").splitlines() if calls.exists() else []
    assert killed_calls == handled_before_crash

    store = open_state(tmp_path / "state.sqlite3")
    try:
        assert read_cursor(store) is not None  # receipt and cursor were committed together
        control = RecordingControl()
        with running(make_loop(settings, store, control_handlers(control, ENTITIES))):
            wait_for(lambda: len(cloud.results()) == 2)
            wait_for(lambda: all(r.result_posted_at for r in local_items(store).values()))
            time.sleep(0.5)
        restarted = [f"{kind} {','.join(ents)}" for kind, ents, _ in control.calls]
        assert killed_calls + restarted == ["sync patient", "reconcile claim"]
        results = cloud.results()
        assert [r.id for r in results] == [i.id for i in items]
        # a post the killed process made but did not note is repeated once, never more
        assert sum(r.repeats for r in results) == (1 if crashpoint == "inbox.posted" else 0)
        assert {row.attempts for row in local_items(store).values()} == {1}
    finally:
        store.close()


# -- cloud faults and failing handlers ------------------------------------------


def test_cloud_faults_are_survived_and_retry_after_is_honoured(
    cloud: ReferenceCloud, settings: Settings, store: StateStore
) -> None:
    control = RecordingControl()
    cloud.set_fault(Fault("unavailable", path_prefix="/v1/inbox", method="GET", retry_after=1))
    with running(make_loop(settings, store, control_handlers(control, ENTITIES))):
        wait_for(lambda: (h := inbox_health(store)) is not None and h.status == "fail")
        health = inbox_health(store)
        assert health is not None and health.error_kind == "cloud"
        assert "unavailable" in health.message and health.fix
        cloud.clear_faults()
        cloud.set_fault(Fault("error", count=2, path_prefix="/v1/inbox", method="GET"))
        cloud.set_fault(
            Fault("throttle", count=1, path_prefix="/v1/inbox/", method="POST", retry_after=2)
        )
        cloud.set_fault(Fault("drop_after", count=1, path_prefix="/v1/inbox/", method="POST"))
        started = time.monotonic()
        item = cloud.enqueue("sync.request", {"entities": ["schedule"]})
        wait_for(lambda: local_items(store).get(item.id) is not None, timeout=20)
        wait_for(lambda: local_items(store)[item.id].result_posted_at is not None, timeout=20)
        elapsed = time.monotonic() - started
        wait_for(lambda: (h := inbox_health(store)) is not None and h.status == "ok")
    assert elapsed >= 2.0  # the 429's Retry-After was waited out
    assert {f.kind: f.fired for f in cloud.faults()} == {
        "error": 2,
        "throttle": 1,
        "drop_after": 1,
    }
    [result] = cloud.results()
    assert result.repeats == 1  # the dropped answer was re-posted; recorded once
    assert control.calls == [("sync", ("schedule",), ())]


def test_a_rejected_token_is_reported_and_the_loop_keeps_going(
    cloud: ReferenceCloud, settings: Settings, store: StateStore
) -> None:
    cloud.set_token(AGENT, "another-token")
    loop = make_loop(settings, store, control_handlers(RecordingControl(), ENTITIES))
    with running(loop):
        wait_for(lambda: (h := inbox_health(store)) is not None and h.status == "fail")
    health = inbox_health(store)
    assert health is not None and health.error_kind == "cloud_auth"
    assert "bridge secret set cloud-token" in health.fix


class FlakyHandler:
    """Fails ``failures`` times with the PMS unreachable, then confirms."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts: list[int] = []

    def validate(self, payload: Mapping[str, Any]) -> None:
        return None

    def handle(self, item: ReceivedItem) -> InboxResult:
        self.attempts.append(item.attempt)
        if len(self.attempts) <= self.failures:
            raise ServerUnreachableError("the PMS database server did not answer")
        return InboxResult("confirmed")


def test_a_failing_handler_is_retried_then_routed_to_review_without_blocking_others(
    cloud: ReferenceCloud, settings: Settings, store: StateStore
) -> None:
    control = RecordingControl()
    flaky, broken = FlakyHandler(failures=1), FlakyHandler(failures=99)
    handlers: dict[str, Handler] = {
        **control_handlers(control, ENTITIES),
        "booking.request": flaky,
        "booking.cancel": broken,
    }
    stuck = cloud.enqueue("booking.cancel", {"pms_appointment_id": "1"})
    retried = cloud.enqueue("booking.request", BOOKING)
    after = cloud.enqueue("sync.request", {"entities": []})
    with running(make_loop(settings, store, handlers, max_attempts=2)):
        wait_for(lambda: after.id in results_by_id(cloud))
        wait_for(lambda: len(cloud.results()) == 3, timeout=20)
    results = {k: r.result for k, r in results_by_id(cloud).items()}
    assert flaky.attempts == [1, 2] and results[retried.id]["status"] == "confirmed"
    assert broken.attempts == [1, 2]
    assert results[stuck.id]["status"] == "needs_review"
    assert results[stuck.id]["reason"]["code"] == "pms_unavailable"
    assert "booking.cancel" in results[stuck.id]["reason"]["message"]


def test_an_item_that_keeps_killing_the_engine_is_routed_to_review_unhandled(
    cloud: ReferenceCloud, settings: Settings, store: StateStore
) -> None:
    item = cloud.enqueue("sync.request", {"entities": []})
    now = datetime.now(UTC)
    with store.write() as session:  # as left by five attempts that each died mid-handling
        session.add(
            InboxItem(
                id=item.id,
                type=item.type,
                payload=json.dumps(item.payload),
                created_at=item.created_at,
                received_at=now,
                state="received",
                attempts=5,
                updated_at=now,
            )
        )
    control = RecordingControl()
    with running(make_loop(settings, store, control_handlers(control, ENTITIES), max_attempts=5)):
        wait_for(lambda: len(cloud.results()) == 1)
    assert control.calls == []
    [result] = cloud.results()
    assert result.status == "needs_review"
    assert result.result["reason"] == {
        "code": "processing_failed",
        "message": "the bridge stopped 5 times while processing this sync.request item; "
        "it needs a person to look at it",
    }
