"""Merged "sync now" requests: pressed five times, it is one sync.

Every request for a sync (the panel's button, ``bridge sync``, the cloud's
``sync.request``) goes through :class:`SyncCoalescer` before it reaches the
sync loop. Per entity it keeps at most one *pending* sync (asked for, not
yet handed to the loop) and one *in flight* (handed over, not yet seen to
finish):

* a request for an entity that is already pending merges into it (its keys
  are added); the answer says ``merged``;
* a pending sync is handed over :data:`MERGE_SECONDS` after its first
  request, so a burst of presses becomes one hand-over; if the entity still
  has a sync in flight, it waits until that one finished (at most
  :data:`MAX_HOLD_SECONDS`), so at most one more sync follows a running one;
* while the bridge is paused nothing is handed over; everything pending
  goes when it resumes.

Each hand-over emits one :class:`~bridge.control.events.SyncStarted`; when
the watcher sees every entity's ``last_success_at`` pass the hand-over time
(:meth:`SyncCoalescer.observe`), one :class:`~bridge.control.events.SyncFinished`.
"Finished" is a hint: a pass that was already running at the hand-over can
end it early, and the loop then runs once more on its own.

Thread-safe; :meth:`SyncCoalescer.flush` is called by the engine's
``control-events`` loop, :meth:`SyncCoalescer.request` from any thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bridge.control.events import EventLog, SyncFinished, SyncStarted

MERGE_SECONDS = 0.3
MAX_HOLD_SECONDS = 30.0

Forward = Callable[[Sequence[str], Sequence[str]], None]


@dataclass
class _Pending:
    since: float  # monotonic time of the first request
    full: bool = False  # a sync of the whole entity (not only some keys)
    keys: set[str] = field(default_factory=set)


@dataclass
class _InFlight:
    at: datetime  # when it was handed to the loop (UTC)
    since: float  # the same, monotonic


class SyncCoalescer:
    """Merges sync requests (see the module docstring).

    ``forward(entities, keys)`` hands a sync to the sync loop; ``held()``
    says whether to hold everything back (the bridge is paused).
    """

    def __init__(
        self,
        forward: Forward,
        events: EventLog,
        *,
        held: Callable[[], bool] = lambda: False,
        merge_seconds: float = MERGE_SECONDS,
        max_hold_seconds: float = MAX_HOLD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._forward = forward
        self._events = events
        self._held = held
        self.merge_seconds = merge_seconds
        self.max_hold_seconds = max_hold_seconds
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: dict[str, _Pending] = {}
        self._in_flight: dict[str, _InFlight] = {}

    def request(self, entities: Sequence[str], keys: Sequence[str] = ()) -> bool:
        """Ask for a sync of ``entities`` (re-reading ``keys`` of them, if given).

        Returns True when every entity was already pending (merged).
        """
        now = self._clock()
        merged = bool(entities)
        with self._cond:
            for entity in entities:
                pending = self._pending.get(entity)
                if pending is None:
                    merged = False
                    pending = self._pending[entity] = _Pending(now)
                if keys:
                    pending.keys.update(keys)
                else:
                    pending.full = True
            self._cond.notify_all()
        return merged

    def pending(self) -> list[str]:
        with self._cond:
            return sorted(self._pending)

    def in_flight(self) -> list[str]:
        with self._cond:
            return sorted(self._in_flight)

    def wait(self, timeout: float) -> None:
        """Sleep until a request arrives or ``timeout`` passes."""
        with self._cond:
            self._cond.wait(timeout)

    def flush(self) -> float | None:
        """Hand over every pending sync that is due; return the seconds until
        the next one may be due (None: nothing pending)."""
        if self._held():
            return None
        now = self._clock()
        due: dict[str, _Pending] = {}
        next_due: float | None = None
        with self._cond:
            for entity, pending in list(self._pending.items()):
                ready_at = pending.since + self.merge_seconds
                flight = self._in_flight.get(entity)
                if flight is not None:
                    ready_at = max(ready_at, flight.since + self.max_hold_seconds)
                if ready_at <= now:
                    due[entity] = self._pending.pop(entity)
                else:
                    wait = ready_at - now
                    next_due = wait if next_due is None else min(next_due, wait)
            at = datetime.now(UTC)
            for entity in due:
                self._in_flight[entity] = _InFlight(at, now)
        if due:
            self._hand_over(due)
        return next_due

    def _hand_over(self, due: Mapping[str, _Pending]) -> None:
        full = [entity for entity, p in due.items() if p.full]
        if full:
            self._forward(full, ())
        for entity, pending in due.items():
            if pending.keys:
                self._forward([entity], sorted(pending.keys))
        keys = sum(len(p.keys) for p in due.values())
        self._events.emit(SyncStarted, entities=tuple(due), keys=keys)

    def observe(self, last_success: Mapping[str, datetime | None]) -> list[str]:
        """Note each entity's latest successful pass; emit SyncFinished for the
        entities in flight that passed since their hand-over. Returns them."""
        finished: list[str] = []
        with self._cond:
            for entity, flight in list(self._in_flight.items()):
                seen = last_success.get(entity)
                if seen is not None and seen >= flight.at:
                    finished.append(entity)
                    del self._in_flight[entity]
            if finished:
                self._cond.notify_all()  # a sync held behind one in flight may go now
        if finished:
            self._events.emit(SyncFinished, entities=tuple(finished))
        return finished

    def release_waiting(self) -> None:
        """Wake the flushing loop (after a resume)."""
        with self._cond:
            self._cond.notify_all()
