"""Pausing the bridge: the persisted flag and the gate the engine's loops pass.

A pause stops every loop that touches the PMS or the cloud's data (PMS
watch, sync, uplink, reconcile, inbox, export-folder uploads) without
stopping the engine: the
heartbeat, the cloud heartbeat and the control channel keep running, so
``bridge status`` and the panel go on working and ``resume`` is instant.

The flag lives in the state store's ``meta`` table (:data:`PAUSED_KEY`), so
an engine started later starts paused, and ``bridge status`` shows it with
the engine stopped too. :func:`read_pause` and :func:`write_pause` are the
only code that touches it.

:class:`PauseGate` makes any supervised loop pausable without changing it:
:meth:`PauseGate.pausable` wraps the loop so that it runs with its own
``run`` event instead of the engine's ``stop``; a pause sets ``run``, so the
loop ends the way it ends for a shutdown (closing its connections), and the
wrapper waits until a resume to call it again. The engine's ``stop`` is
relayed to every ``run`` event (:meth:`PauseGate.close_when`). A loop in the
middle of a step finishes it first; the inbox's long-poll can take its full
wait (10 s), so a pause *settles* within seconds, not at once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from bridge.control.results import PauseState
from bridge.state import StateStore
from bridge.state.models import MetaValue

PAUSED_KEY = "control.paused"
MAX_BY_LENGTH = 100

LoopFn = Callable[[threading.Event], None]


def read_pause(store: StateStore) -> PauseState:
    """The persisted flag; a damaged value reads as paused (the safe side)."""
    with store.read() as session:
        row = session.get(MetaValue, PAUSED_KEY)
        value = row.value if row is not None else None
    if value is None:
        return PauseState(False)
    try:
        obj = json.loads(value)
        return PauseState(True, datetime.fromisoformat(obj["since"]), str(obj.get("by", "")))
    except (ValueError, KeyError, TypeError):
        return PauseState(True, None, "")


def write_pause(store: StateStore, paused: bool, by: str = "") -> PauseState:
    """Persist the flag (in one write transaction) and return the new state."""
    state = PauseState(True, datetime.now(UTC), by[:MAX_BY_LENGTH]) if paused else PauseState(False)
    with store.write() as session:
        row = session.get(MetaValue, PAUSED_KEY)
        if not paused:
            if row is not None:
                session.delete(row)
            return state
        since = state.since.isoformat() if state.since else None
        value = json.dumps({"since": since, "by": state.by})
        if row is None:
            session.add(MetaValue(key=PAUSED_KEY, value=value))
        else:
            row.value = value
    return state


class PauseGate:
    """Holds paused loops back; thread-safe (see the module docstring)."""

    def __init__(self, state: PauseState) -> None:
        self._cond = threading.Condition()
        self._state = state
        self._closed = False
        self._active: dict[str, threading.Event] = {}

    @property
    def state(self) -> PauseState:
        with self._cond:
            return self._state

    @property
    def paused(self) -> bool:
        return self.state.paused

    def set(self, state: PauseState) -> None:
        """Pause (every running pausable loop is told to end) or resume."""
        with self._cond:
            self._state = state
            if state.paused:
                for run in self._active.values():
                    run.set()
            self._cond.notify_all()

    def active_loops(self) -> list[str]:
        """Names of pausable loops running now (empty once a pause settled)."""
        with self._cond:
            return sorted(self._active)

    def wait_settled(self, timeout: float) -> bool:
        """After a pause: wait until no pausable loop runs; True if none does."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._state.paused or not self._active or self._closed, timeout
            )

    def close(self) -> None:
        """The engine is stopping: end every loop and release every waiting one."""
        with self._cond:
            self._closed = True
            for run in self._active.values():
                run.set()
            self._cond.notify_all()

    def close_when(self, stop: threading.Event) -> threading.Thread:
        """Start a thread that calls :meth:`close` once ``stop`` is set."""

        def relay() -> None:
            stop.wait()
            self.close()

        thread = threading.Thread(target=relay, name="pause-gate", daemon=True)
        thread.start()
        return thread

    def pausable(self, name: str, target: LoopFn) -> LoopFn:
        """``target`` as a loop that ends on pause and starts again on resume.

        Exceptions from ``target`` propagate (the supervisor restarts the
        wrapper as it would the loop). The wrapper returns when ``stop`` is
        set, the gate is closed, or ``target`` returns on its own.
        """

        def loop(stop: threading.Event) -> None:
            while True:
                with self._cond:
                    while self._state.paused and not self._closed and not stop.is_set():
                        self._cond.wait(1.0)
                    if self._closed or stop.is_set():
                        return
                    run = threading.Event()
                    self._active[name] = run
                try:
                    target(run)
                finally:
                    with self._cond:
                        self._active.pop(name, None)
                        self._cond.notify_all()
                if stop.is_set() or self._closed or not run.is_set():
                    return

        return loop
