"""What the engine owns for the control channel, in one object.

:class:`ControlHost` is created by :meth:`bridge.engine.Engine.run` once the
run is recorded, and holds the engine's side of everything the channel
offers: the event buffer, the pause gate and its persisted flag, the merged
sync requests, the state watcher, the operations and the server. The engine
gives it two loops to supervise (:meth:`ControlHost.loops`):

* ``control`` -- the :class:`~bridge.control.server.ControlServer`;
* ``control-events`` -- hands merged syncs to the sync loop when due and
  ticks the :class:`~bridge.control.watcher.StateWatcher`;

and wraps the loops that touch the PMS or the cloud's data so that a pause
stops them (:meth:`ControlHost.pausable`).

Threading: every public method may be called from any thread.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bridge.bookings.exceptions import ExceptionDesk
from bridge.bookings.report import build_report
from bridge.control.endpoint import Endpoint, endpoint_for
from bridge.control.events import EventLog, Paused, Resumed
from bridge.control.pause import PauseGate, read_pause, write_pause
from bridge.control.results import PauseState, SyncScheduled
from bridge.control.server import ControlServer
from bridge.control.service import ControlService
from bridge.control.syncs import Forward, SyncCoalescer
from bridge.control.watcher import TICK_SECONDS, StateWatcher
from bridge.paths import BridgePaths
from bridge.secrets import SecretStore
from bridge.state import StateStore
from bridge.status import read_status
from bridge.supervisor import LoopSpec

log = logging.getLogger(__name__)

PAUSABLE_LOOPS = frozenset(
    {"pms-watch", "pms-sync", "availability", "uplink", "reconcile", "inbox"}
)
PAUSABLE_PREFIXES = ("folder:",)  # export-folder uploads (one loop per folder)
"""Loops a pause stops: everything that reads the PMS, sends data or handles the inbox."""
PAUSE_SETTLE_SECONDS = 15.0


class ControlHost:
    """The engine's side of the control channel (see the module docstring)."""

    def __init__(
        self,
        *,
        store: StateStore,
        secret_store: SecretStore,
        entities: Sequence[str],
        paths: BridgePaths,
        config_path: Path,
        run_id: int,
        forward_sync: Forward,
        exception_desk: Callable[[], ExceptionDesk | None],
        endpoint: Endpoint | None = None,
        timezone: ZoneInfo | None = None,
        record_entities: Sequence[str] | None = None,
    ) -> None:
        self.store = store
        self.secret_store = secret_store
        self.entities = tuple(entities)
        self.paths = paths
        self.config_path = config_path
        self.exception_desk = exception_desk
        self.timezone = timezone or ZoneInfo("UTC")
        self.record_entities = None if record_entities is None else tuple(record_entities)
        self.events = EventLog(run_id)
        self.gate = PauseGate(read_pause(store))
        self.syncs = SyncCoalescer(forward_sync, self.events, held=lambda: self.gate.paused)
        self.watcher = StateWatcher(store, self.events, self.syncs)
        self.watcher.tick()  # the baseline: whatever changes once clients can connect is news
        self.endpoint = endpoint or endpoint_for(store.path.parent)
        self.service = ControlService(self)
        self.server = ControlServer(self.endpoint, self.service)
        self._pause_lock = threading.Lock()
        self._bundle_lock = threading.Lock()

    # -- wiring into the engine -------------------------------------------------------

    def start(self, stop: threading.Event) -> None:
        """Relay ``stop`` to paused and pausable loops; call before the supervisor runs."""
        self.gate.close_when(stop)
        if self.gate.paused:
            log.warning("the bridge starts paused; 'bridge resume' lets it work again")

    def pausable(self, specs: Sequence[LoopSpec]) -> list[LoopSpec]:
        """``specs`` with the loops named in :data:`PAUSABLE_LOOPS` (or starting
        with one of :data:`PAUSABLE_PREFIXES`) made pausable."""
        return [
            LoopSpec(s.name, self.gate.pausable(s.name, s.target))
            if s.name in PAUSABLE_LOOPS or s.name.startswith(PAUSABLE_PREFIXES)
            else s
            for s in specs
        ]

    def loops(self) -> list[LoopSpec]:
        return [LoopSpec("control", self.server), LoopSpec("control-events", self._events_loop)]

    def close(self) -> None:
        self.gate.close()
        self.events.close()

    def _events_loop(self, stop: threading.Event) -> None:
        next_tick = 0.0
        while not stop.is_set():
            due_in = self.syncs.flush()
            now = time.monotonic()
            if now >= next_tick:
                self.watcher.tick()
                next_tick = now + TICK_SECONDS
            wait = next_tick - now if due_in is None else min(due_in, next_tick - now)
            self.syncs.wait(max(0.02, wait))

    # -- operations --------------------------------------------------------------------

    def request_sync(self, entities: Sequence[str], keys: Sequence[str] = ()) -> SyncScheduled:
        """Ask for a sync; merges with a pending one (:mod:`bridge.control.syncs`)."""
        names = tuple(entities) or self.entities
        merged = self.syncs.request(names, keys)
        return SyncScheduled(names, len(set(keys)), merged, self.gate.paused)

    def booking_report(self, day: date | None = None) -> dict[str, Any]:
        """The booking report of ``day`` (practice-local; default today), from local state."""
        today = datetime.now(self.timezone).date()
        return build_report(self.store, day or today, self.timezone)

    def pause(self, by: str = "") -> PauseState:
        """Pause (persisted) and wait up to 15 s for the loops to stop; idempotent."""
        with self._pause_lock:
            state = self.gate.state
            if not state.paused:
                state = write_pause(self.store, True, by)
                self.gate.set(state)
                self.events.emit(Paused, by=state.by)
                log.info("bridge paused")
        settled = self.gate.wait_settled(PAUSE_SETTLE_SECONDS)
        return dataclasses.replace(state, settled=settled)

    def resume(self, by: str = "") -> PauseState:
        """Resume (persisted); the paused loops start again at once; idempotent."""
        with self._pause_lock:
            state = self.gate.state
            if state.paused:
                state = write_pause(self.store, False)
                self.gate.set(state)
                self.syncs.release_waiting()
                self.events.emit(Resumed, by=by[:100])
                log.info("bridge resumed")
        return state

    def support_bundle(self) -> Path:
        """Write a support bundle into the data folder; one at a time."""
        from bridge.support_bundle import write_support_bundle  # noqa: PLC0415 - heavy, rare

        with self._bundle_lock:
            return write_support_bundle(
                self.paths,
                self.config_path,
                self.secret_store,
                status=read_status(self.store),
                made_by="engine",
            )
