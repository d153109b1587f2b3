"""Resolving front-desk exceptions through the control channel.

The engine runs in a thread here (on the demo practice and the reference
cloud) so the test can give it an exception desk. The desk is a small ledger
that records decisions with the real bookkeeping of
:mod:`bridge.bookings.exceptions` (``mark_resolved``); the booking
pipeline's own desk, which also writes the diary, is tested with the
pipeline. What is under test is the channel: the decision travels as typed
values, the desk's refusals come back as typed errors, the state changes
show as events, and a paused bridge refuses to act.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import sqlite_connection_string, write_bridge_config
from test_control_engine import AGENT, TOKEN, events_until, wait_for

from bridge.bookings.exceptions import (
    ExceptionNotOpen,
    InvalidResolution,
    Resolution,
    ResolveOutcome,
    get_exception,
    mark_resolved,
    open_exception,
)
from bridge.config import load_settings
from bridge.control.client import ControlClient
from bridge.control.errors import (
    EngineNotRunning,
    EnginePaused,
    ExceptionNotOpenError,
    InvalidResolutionError,
)
from bridge.control.events import ExceptionOpened, ExceptionResolved
from bridge.engine import Engine
from bridge.paths import BridgePaths
from bridge.pms.profile import load_profile
from bridge.secrets import MemorySecretStore
from bridge.state import StateStore, open_state
from sandbox.cloud.server import ReferenceCloud

pytestmark = pytest.mark.timeout(120)


class LedgerDesk:
    """Records decisions in the state store; answers as a desk does."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def resolve(self, exception_id: int, resolution: Resolution) -> ResolveOutcome:
        view = get_exception(self.store, exception_id)
        if view is None or view.state != "open":
            raise ExceptionNotOpen(f"exception {exception_id} is not open")
        if resolution.action not in view.actions:
            raise InvalidResolution(
                f"{resolution.action} does not resolve a {view.reason_code} exception"
            )
        with self.store.write() as session:
            mark_resolved(session, exception_id, resolution, {"choice": resolution.choice})
        if resolution.action == "reject":
            return ResolveOutcome(exception_id, "rejected", view.reason_code, resolution.message)
        return ResolveOutcome(
            exception_id, "held", "", "held for the patient", {"appointment": "77"}
        )


@pytest.fixture
def engine(tmp_path: Path, db: Path) -> Iterator[Engine]:
    with ReferenceCloud(tmp_path / "cloud" / "cloud.sqlite3", tokens={AGENT: TOKEN}) as cloud:
        home = tmp_path / "home"
        config = write_bridge_config(
            home,
            connection_string=sqlite_connection_string(db),
            cloud_url=cloud.url,
            agent_id=AGENT,
        )
        paths = BridgePaths(home / "config", home / "data", home / "logs")
        store = open_state(paths.state_db)
        engine = Engine(
            load_settings(config),
            store,
            MemorySecretStore({"cloud-token": TOKEN}),
            load_profile("opendental"),
            paths=paths,
            config_path=config,
        )
        stop = threading.Event()
        runner = threading.Thread(target=engine.run, args=(stop,))
        runner.start()
        try:
            wait_for(lambda: _answers(paths), 30, "the control channel")
            yield engine
        finally:
            stop.set()
            runner.join(30)
            store.close()
        assert not runner.is_alive()


def _answers(paths: BridgePaths) -> bool:
    try:
        ControlClient.connect(paths).close()
    except EngineNotRunning:
        return False
    return True


def test_exceptions_are_resolved_through_the_engines_desk(engine: Engine) -> None:
    with engine.store.write() as session:
        slot = open_exception(session, "item-1", "slot_taken", {"alternatives": [{"n": 1}]})
        patient = open_exception(session, "item-2", "ambiguous_patient", {"candidates": []})
    engine.exception_desk = LedgerDesk(engine.store)
    with ControlClient.connect(engine.paths) as client:
        # Events are hints taken once a second: wait until both openings were seen.
        _, after = events_until(
            client,
            0,
            lambda seen: len([e for e in seen if isinstance(e, ExceptionOpened)]) == 2,
            15,
        )
        outcome = client.resolve_exception(
            slot, Resolution("choose_alternative", choice="0", by="front desk")
        )
        assert outcome == ResolveOutcome(
            slot, "held", "", "held for the patient", {"appointment": "77"}
        )
        (waiting,) = client.exceptions()
        assert (waiting.id, waiting.item_id, waiting.reason_code) == (
            patient,
            "item-2",
            "ambiguous_patient",
        )
        assert waiting.actions == ("choose_patient", "new_patient", "reject")
        (resolved,) = client.exceptions(state="resolved")
        assert resolved.id == slot and resolved.resolved_by == "front desk"
        assert resolved.resolution == "choose_alternative"

        with pytest.raises(ExceptionNotOpenError, match=f"exception {slot} is not open"):
            client.resolve_exception(slot, Resolution("reject"))
        with pytest.raises(InvalidResolutionError, match="does not resolve a ambiguous_patient"):
            client.resolve_exception(patient, Resolution("choose_alternative", choice="0"))

        client.pause(by="front desk")
        with pytest.raises(EnginePaused, match="paused"):
            client.resolve_exception(patient, Resolution("reject"))
        client.resume()
        rejected = client.resolve_exception(patient, Resolution("reject", message="full"))
        assert (rejected.status, rejected.reason_code) == ("rejected", "ambiguous_patient")

        events, _ = events_until(
            client,
            after,
            lambda seen: len([e for e in seen if isinstance(e, ExceptionResolved)]) == 2,
            15,
        )
    resolutions = [
        (e.exception_id, e.resolution) for e in events if isinstance(e, ExceptionResolved)
    ]
    assert resolutions == [(slot, "choose_alternative"), (patient, "reject")]
