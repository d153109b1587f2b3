"""Engine events: typed hints that something changed, in a bounded ring buffer.

Events are only hints (STYLE.md practice 3). A client that sees one re-reads
:meth:`~bridge.control.client.ControlClient.status`, which is the truth.
Events can be missed: the engine keeps the newest :data:`CAPACITY` in memory
and forgets them when it stops. When a client asks for events after a
``seq`` the engine no longer has (dropped, or from before a restart), the
answer starts with an :class:`EventsMissed`: re-read everything.

``seq`` increases by one per event. It starts at ``run_id * 10**9 + 1`` for
each engine run, so a ``seq`` from an earlier run is always recognised as
one. Events hold ids, codes and entity names only, never personal data.

Types (``type`` on the wire): ``sync.started``, ``sync.finished``,
``sync.records``, ``component.changed``, ``exception.opened``, ``exception.resolved``,
``engine.paused``, ``engine.resumed``, ``events.missed``. A client skips
types it does not know (a newer engine may send more).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

CAPACITY = 1000
RUN_SEQ_SPAN = 10**9
MAX_WAIT_SECONDS = 25.0
MAX_EVENTS_PER_CALL = 500


@dataclass(frozen=True)
class Event:
    """Base of every event: ``seq`` (order) and ``at`` (UTC time)."""

    seq: int
    at: datetime
    type: ClassVar[str] = "event"

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            body[f.name] = value
        return body

    @staticmethod
    def from_json(obj: Any) -> Event | None:
        """The event, or None for an unknown type; raises ValueError if malformed."""
        if not isinstance(obj, dict):
            raise ValueError("an event must be a JSON object")
        cls = EVENT_TYPES.get(str(obj.get("type")))
        if cls is None:
            return None
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in obj:
                raise ValueError(f"event {cls.type} has no {f.name}")
            value = obj[f.name]
            if f.name == "at":
                value = datetime.fromisoformat(str(value))
            elif isinstance(value, list):
                value = tuple(value)
            values[f.name] = value
        return cls(**values)


@dataclass(frozen=True)
class SyncStarted(Event):
    """A requested sync was handed to the sync loop (presses that merged count once)."""

    entities: tuple[str, ...]
    keys: int
    type: ClassVar[str] = "sync.started"


@dataclass(frozen=True)
class SyncFinished(Event):
    """Each named entity has been read through since its sync was requested."""

    entities: tuple[str, ...]
    type: ClassVar[str] = "sync.finished"


@dataclass(frozen=True)
class RecordsSynced(Event):
    """Records asked for by key were re-read and pushed (even if unchanged).

    ``pushed``: keys found and sent; ``missing``: keys the PMS does not have;
    ``related``: how many related records went with them (a patient's
    appointments). Keys are PMS ids, never personal data.
    """

    entity: str
    pushed: tuple[str, ...]
    missing: tuple[str, ...]
    related: int
    type: ClassVar[str] = "sync.records"


@dataclass(frozen=True)
class ComponentChanged(Event):
    """A component's health changed (``ok``, ``warn``, ``fail``; previous None: new)."""

    component: str
    status: str
    previous: str | None
    type: ClassVar[str] = "component.changed"


@dataclass(frozen=True)
class ExceptionOpened(Event):
    """A booking now waits for the front desk."""

    exception_id: int
    reason_code: str
    type: ClassVar[str] = "exception.opened"


@dataclass(frozen=True)
class ExceptionResolved(Event):
    """An exception was resolved (``resolution`` is the action taken)."""

    exception_id: int
    resolution: str | None
    type: ClassVar[str] = "exception.resolved"


@dataclass(frozen=True)
class Paused(Event):
    """The bridge stopped reading the PMS, sending and handling the inbox."""

    by: str
    type: ClassVar[str] = "engine.paused"


@dataclass(frozen=True)
class Resumed(Event):
    by: str
    type: ClassVar[str] = "engine.resumed"


@dataclass(frozen=True)
class EventsMissed(Event):
    """Events after the client's ``after`` are gone (``reason``: ``dropped`` or
    ``restart``); re-read status and exceptions. Not stored: made per answer."""

    reason: str
    type: ClassVar[str] = "events.missed"


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        SyncStarted,
        SyncFinished,
        RecordsSynced,
        ComponentChanged,
        ExceptionOpened,
        ExceptionResolved,
        Paused,
        Resumed,
        EventsMissed,
    )
}

E = TypeVar("E", bound=Event)


class EventLog:
    """The engine's ring buffer of the newest events.

    Thread-safe: any thread may :meth:`emit`; :meth:`since` may block up to
    ``wait`` seconds for a new event (a long-poll), and :meth:`close` wakes
    every waiter.
    """

    def __init__(self, run_id: int = 0, capacity: int = CAPACITY) -> None:
        self.base = run_id * RUN_SEQ_SPAN
        self._last = self.base
        self._events: deque[Event] = deque(maxlen=capacity)
        self._changed = threading.Condition()
        self._closed = False

    @property
    def last_seq(self) -> int:
        with self._changed:
            return self._last

    def emit(self, cls: type[E], **values: Any) -> E:
        """Append a new ``cls`` event with the next ``seq`` and the time now."""
        with self._changed:
            self._last += 1
            event = cls(seq=self._last, at=datetime.now(UTC), **values)
            self._events.append(event)
            self._changed.notify_all()
        return event

    def since(
        self, after: int, *, wait: float = 0.0, limit: int = MAX_EVENTS_PER_CALL
    ) -> tuple[list[Event], int]:
        """Events with ``seq > after`` (oldest first, at most ``limit``) and the
        ``after`` to pass next time. Waits up to ``wait`` seconds if there are
        none. See the module docstring for :class:`EventsMissed`."""
        wait = min(max(wait, 0.0), MAX_WAIT_SECONDS)
        with self._changed:
            if wait and after >= self._last and not self._closed:
                self._changed.wait_for(lambda: self._last > after or self._closed, wait)
            buffered = list(self._events)
            last = self._last
        oldest = buffered[0].seq if buffered else last + 1
        out: list[Event] = []
        if after and (after > last or after < oldest - 1):
            reason = "restart" if after > last or after <= self.base else "dropped"
            out.append(EventsMissed(seq=oldest - 1, at=datetime.now(UTC), reason=reason))
            after = oldest - 1
        fresh = [e for e in buffered if e.seq > after][: max(limit, 1)]
        out.extend(fresh)
        return out, fresh[-1].seq if fresh else (after or last)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
