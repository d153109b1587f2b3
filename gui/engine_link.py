"""The panel's one link to the engine: polls the control client, emits Qt signals.

Widgets never see a thread or a socket: they read the link's last values
(:attr:`EngineLink.snapshot`, :attr:`EngineLink.exceptions`, ...) and listen
to its signals, which are always emitted on the main thread. All control
calls run through :func:`gui.tasks.run_in_background`.

How it polls (Syncthing's rule: events are hints, status is the truth):

* One poll cycle at a time, on a worker thread, with its own
  :class:`~bridge.control.client.ControlClient` (it long-polls, so it holds
  that client meanwhile). A cycle long-polls ``events(after, wait)``; when
  any event arrived, the refresh interval passed, or a refresh was asked
  for, it re-reads ``status()`` and ``exceptions()``. The next cycle starts
  as soon as the last one is delivered.
* After (re)connecting, the events buffered before are skipped (they are
  history, not news) and status is read at once. An
  :class:`~bridge.control.events.EventsMissed` only triggers a re-read.
* When the engine cannot be reached, :attr:`connected` turns false with the
  client's reason and the link retries every ``retry_seconds``.
* New exceptions are found by comparing exception ids between reads (not
  from events, which can be missed); :attr:`new_exceptions` fires for those
  that appeared after the first read, for the desktop notification.

Actions (:meth:`sync_now`, :meth:`pause`, :meth:`resume`, :meth:`call`) each
open a client of their own for the call (a local handshake costs little)
and ask for a refresh when they finish. "Sync now" for entities that already wait for a
sync is not sent again: together with the engine merging presses, five
presses are one sync. The entities waiting for a sync are :attr:`syncing`
until the engine's ``sync.finished`` names them, or the status shows them
read without error after the engine took the request (the truth, should
the event be missed), or :data:`SYNC_FEEDBACK_SECONDS` pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from PySide6.QtCore import QObject, QTimer, Signal

from bridge.bookings.exceptions import ExceptionView
from bridge.control.client import ControlClient
from bridge.control.errors import BookingsDisabled, ControlError
from bridge.control.events import Event, EventsMissed, SyncFinished
from bridge.control.results import PauseState, SyncScheduled
from bridge.paths import BridgePaths
from bridge.status import StatusSnapshot
from gui.tasks import run_in_background

T = TypeVar("T")

REFRESH_SECONDS = 5.0
WAIT_SECONDS = 5.0
RETRY_SECONDS = 2.0
SYNC_FEEDBACK_SECONDS = 300.0
ALL = "*"  # in :attr:`EngineLink.syncing`: a sync of every entity is pending

Connector = Callable[[], ControlClient]


@dataclass(frozen=True)
class _CycleResult:
    client: ControlClient
    events: list[Event]
    next_after: int
    snapshot: StatusSnapshot | None = None
    exceptions: tuple[ExceptionView, ...] | None = None
    bookings_enabled: bool = True


@dataclass
class _PollState:
    after: int = 0
    fresh_connection: bool = True
    last_read: float = 0.0
    refresh_wanted: bool = True
    client: ControlClient | None = None
    known_exceptions: set[int] | None = None
    sync_waits: dict[str, _SyncWait] = field(default_factory=dict)
    everything: bool = False  # the waits are one "sync everything"


@dataclass(frozen=True)
class _SyncWait:
    requested_at: datetime  # UTC, when the engine took the request
    deadline: float  # monotonic: give up showing "syncing" after this


class EngineLink(QObject):
    """Keeps the engine's status, exceptions and connection state; emits on change."""

    status_changed = Signal(object)  # StatusSnapshot
    exceptions_changed = Signal(object)  # tuple[ExceptionView, ...]
    new_exceptions = Signal(object)  # tuple[ExceptionView, ...] that just appeared
    connection_changed = Signal(bool, str)  # connected, why not (empty when connected)
    event_received = Signal(object)  # Event (hints; widgets re-read the link's values)
    syncing_changed = Signal(object)  # frozenset[str]: entities waiting for a sync

    def __init__(
        self,
        paths: BridgePaths | None = None,
        *,
        connector: Connector | None = None,
        refresh_seconds: float = REFRESH_SECONDS,
        wait_seconds: float = WAIT_SECONDS,
        retry_seconds: float = RETRY_SECONDS,
        operator: str = "panel",
    ) -> None:
        super().__init__()
        self._connect: Connector = connector or (lambda: ControlClient.connect(paths))
        self.refresh_seconds = refresh_seconds
        self.wait_seconds = wait_seconds
        self.retry_seconds = retry_seconds
        self.operator = operator
        self.snapshot: StatusSnapshot | None = None
        self.exceptions: tuple[ExceptionView, ...] = ()
        self.bookings_enabled = True
        self.connected = False
        self.unreachable = "The panel is connecting to the bridge engine."
        self.unreachable_fix = ""
        self._poll = _PollState()
        self._running = False
        self._cycle_in_flight = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._start_cycle)

    # -- life -------------------------------------------------------------------

    def start(self) -> None:
        if not self._running:
            self._running = True
            self._timer.start(0)

    def stop(self) -> None:
        """Stop polling; clients are closed in the background (a long-poll may be running)."""
        self._running = False
        self._timer.stop()
        client, self._poll.client = self._poll.client, None
        if client is not None:  # a cycle in flight closes its own client when it ends
            run_in_background(client.close)

    def refresh(self) -> None:
        """Re-read status and exceptions as soon as possible."""
        self._poll.refresh_wanted = True
        if self._running and not self._cycle_in_flight:
            self._timer.start(0)

    @property
    def syncing(self) -> frozenset[str]:
        """Entities waiting for a requested sync (with :data:`ALL` for "everything")."""
        names = frozenset(self._poll.sync_waits)
        return names | {ALL} if self._poll.everything else names

    # -- the poll cycle -----------------------------------------------------------

    def _start_cycle(self) -> None:
        if not self._running or self._cycle_in_flight:
            return
        self._cycle_in_flight = True
        poll = self._poll
        due = poll.refresh_wanted or time.monotonic() - poll.last_read >= self.refresh_seconds
        fresh = poll.fresh_connection
        after = poll.after
        wait = 0.0 if (due or fresh) else self._wait_budget()
        client = poll.client
        run_in_background(
            lambda: self._cycle(client, after, wait, fresh, due),
            self._cycle_done,
            self._cycle_failed,
        )

    def _wait_budget(self) -> float:
        left = self.refresh_seconds - (time.monotonic() - self._poll.last_read)
        return max(0.0, min(self.wait_seconds, left))

    def _cycle(
        self, client: ControlClient | None, after: int, wait: float, fresh: bool, due: bool
    ) -> _CycleResult:
        """Worker thread: one round with the engine (touches no widget, no link state)."""
        client = client or self._connect()
        try:
            if fresh:
                _, after = client.events(0)  # start from now: older events are history
                events: list[Event] = []
            else:
                events, after = client.events(after, wait=wait)
            if not (fresh or due or events):
                return _CycleResult(client, events, after)
            snapshot = client.status()
            try:
                exceptions: tuple[ExceptionView, ...] = tuple(client.exceptions())
                enabled = True
            except BookingsDisabled:
                exceptions, enabled = (), False
        except BaseException:
            client.close()
            raise
        return _CycleResult(client, events, after, snapshot, exceptions, enabled)

    def _cycle_done(self, result: _CycleResult) -> None:
        self._cycle_in_flight = False
        if not self._running:
            run_in_background(result.client.close)
            return
        poll = self._poll
        poll.client = result.client
        poll.after = result.next_after
        poll.fresh_connection = False
        if not self.connected:
            self.connected = True
            self.unreachable = self.unreachable_fix = ""
            self.connection_changed.emit(True, "")
        for event in result.events:
            if isinstance(event, SyncFinished):
                self._sync_finished(event.entities)
            self.event_received.emit(event)
        if result.snapshot is not None:
            poll.last_read = time.monotonic()
            poll.refresh_wanted = False
            self.snapshot = result.snapshot
            self._sync_read_through(result.snapshot)
            self.bookings_enabled = result.bookings_enabled
            self._take_exceptions(result.exceptions or ())
            self.status_changed.emit(result.snapshot)
        self._expire_syncs()
        if result.events and result.snapshot is None:
            poll.refresh_wanted = True  # read the truth in the next cycle
        if any(isinstance(e, EventsMissed) for e in result.events):
            poll.refresh_wanted = True
        self._timer.start(0)

    def _cycle_failed(self, error: BaseException) -> None:
        self._cycle_in_flight = False
        self._poll.client = None  # closed by the cycle
        self._poll.fresh_connection = True
        if not self._running:
            return
        reason, fix = _reason(error)
        if self.connected or reason != self.unreachable:
            self.connected = False
            self.unreachable, self.unreachable_fix = reason, fix
            self.connection_changed.emit(False, reason)
        self._timer.start(int(self.retry_seconds * 1000))

    def _take_exceptions(self, views: tuple[ExceptionView, ...]) -> None:
        ids = {v.id for v in views}
        known = self._poll.known_exceptions
        fresh = tuple(v for v in views if known is not None and v.id not in known)
        self._poll.known_exceptions = ids if known is None else (known & ids) | ids
        if views != self.exceptions:
            self.exceptions = views
            self.exceptions_changed.emit(views)
        if fresh:
            self.new_exceptions.emit(fresh)

    # -- sync feedback ----------------------------------------------------------------

    def _sync_finished(self, entities: Sequence[str]) -> None:
        self._end_waits([e for e in entities if e in self._poll.sync_waits])

    def _sync_read_through(self, snapshot: StatusSnapshot) -> None:
        """The truth: an entity read without error after its request has synced."""
        waits = self._poll.sync_waits
        done = [
            e.entity
            for e in snapshot.entities
            if e.entity in waits
            and e.last_success_at is not None
            and e.last_success_at >= waits[e.entity].requested_at
        ]
        self._end_waits(done)

    def _expire_syncs(self) -> None:
        now = time.monotonic()
        self._end_waits([e for e, w in self._poll.sync_waits.items() if w.deadline <= now])

    def _end_waits(self, entities: Sequence[str]) -> None:
        poll = self._poll
        for entity in entities:
            poll.sync_waits.pop(entity, None)
        if entities or (poll.everything and not poll.sync_waits):
            poll.everything = poll.everything and bool(poll.sync_waits)
            self.syncing_changed.emit(self.syncing)

    def sync_pending(self, entities: Sequence[str] = ()) -> bool:
        """Whether a sync covering ``entities`` (empty: every entity) already waits."""
        poll = self._poll
        if poll.everything:
            return True
        return bool(entities) and all(e in poll.sync_waits for e in entities)

    # -- actions ---------------------------------------------------------------------

    def call(
        self,
        action: Callable[[ControlClient], T],
        on_done: Callable[[T], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Run ``action(client)`` in the background; then refresh and call back on main."""

        def work() -> T:
            with self._connect() as client:
                return action(client)

        def done(value: T) -> None:
            self.refresh()
            if on_done is not None:
                on_done(value)

        def failed(error: BaseException) -> None:
            self.refresh()
            if on_error is not None:
                on_error(error)

        run_in_background(work, done, failed)

    def sync_now(
        self,
        entities: Sequence[str] = (),
        on_done: Callable[[SyncScheduled | None], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> bool:
        """Ask for a sync; False (and ``on_done(None)``) when one is already pending."""
        if self.sync_pending(entities):
            if on_done is not None:
                on_done(None)
            return False
        poll = self._poll
        names: tuple[str, ...] = tuple(entities)
        if not names and self.snapshot is not None:
            names = tuple(e.entity for e in self.snapshot.entities)
        placeholder = _SyncWait(datetime.now(UTC), time.monotonic() + SYNC_FEEDBACK_SECONDS)
        for name in names:
            poll.sync_waits[name] = placeholder
        poll.everything = poll.everything or not entities
        self.syncing_changed.emit(self.syncing)

        def done(scheduled: SyncScheduled) -> None:
            taken = _SyncWait(datetime.now(UTC), time.monotonic() + SYNC_FEEDBACK_SECONDS)
            for name in scheduled.entities:
                if name in poll.sync_waits or not entities:
                    poll.sync_waits[name] = taken
            if on_done is not None:
                on_done(scheduled)

        def failed(error: BaseException) -> None:
            self._end_waits(names)
            if not entities:
                poll.everything = False
                self.syncing_changed.emit(self.syncing)
            if on_error is not None:
                on_error(error)

        self.call(lambda c: c.sync_now(entities), done, failed)
        return True

    def pause(
        self,
        on_done: Callable[[PauseState], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.call(lambda c: c.pause(self.operator), on_done, on_error)

    def resume(
        self,
        on_done: Callable[[PauseState], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.call(lambda c: c.resume(self.operator), on_done, on_error)


def _reason(error: BaseException) -> tuple[str, str]:
    """A sentence for a person (the client's message) and what to do (its fix)."""
    if isinstance(error, ControlError):
        return error.message[:1].upper() + error.message[1:], error.fix
    return f"The panel could not talk to the engine ({type(error).__name__}).", ""
