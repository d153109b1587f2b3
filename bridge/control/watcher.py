"""Events from the engine's state: component health and exception changes.

The loops record what they do in the state store (component health rows,
sync cursors, booking exceptions) and know nothing of the control channel.
:class:`StateWatcher` reads those small tables once a tick (the engine's
``control-events`` loop: every :data:`TICK_SECONDS`) and turns differences
into events: :class:`~bridge.control.events.ComponentChanged` when a
component's status (``ok``/``warn``/``fail``) changes,
:class:`~bridge.control.events.ExceptionOpened` and
:class:`~bridge.control.events.ExceptionResolved` when the set of open
exceptions changes, and hands the sync cursors' ``last_success_at`` to the
:class:`~bridge.control.syncs.SyncCoalescer` for
:class:`~bridge.control.events.SyncFinished`.

The first tick only records where things stand (no events); the host runs
it before the channel opens. A change that comes and goes within one tick is
not seen: events are hints.
"""

from __future__ import annotations

from sqlalchemy import select

from bridge.bookings.exceptions import OPEN
from bridge.control.events import (
    ComponentChanged,
    EventLog,
    ExceptionOpened,
    ExceptionResolved,
)
from bridge.control.syncs import SyncCoalescer
from bridge.state import StateStore
from bridge.state.models import BookingException, ComponentHealth, SyncCursor

TICK_SECONDS = 1.0


class StateWatcher:
    """Diffs the state tick by tick (see the module docstring); one thread only."""

    def __init__(self, store: StateStore, events: EventLog, syncs: SyncCoalescer) -> None:
        self.store = store
        self.events = events
        self.syncs = syncs
        self._health: dict[str, str] | None = None
        self._open: dict[int, str] = {}

    def tick(self) -> None:
        with self.store.read() as session:
            health = {
                str(component): str(status)
                for component, status in session.execute(
                    select(ComponentHealth.component, ComponentHealth.status)
                )
            }
            cursors = {
                str(entity): seen
                for entity, seen in session.execute(
                    select(SyncCursor.entity, SyncCursor.last_success_at)
                )
            }
            open_now = {
                int(ident): str(reason)
                for ident, reason in session.execute(
                    select(BookingException.id, BookingException.reason_code).where(
                        BookingException.state == OPEN
                    )
                )
            }
            gone = sorted(set(self._open) - set(open_now)) if self._health is not None else []
            resolutions = (
                {
                    int(ident): resolution
                    for ident, resolution in session.execute(
                        select(BookingException.id, BookingException.resolution).where(
                            BookingException.id.in_(gone)
                        )
                    )
                }
                if gone
                else {}
            )
        if self._health is not None:
            for component, status in sorted(health.items()):
                previous = self._health.get(component)
                if previous != status:
                    self.events.emit(
                        ComponentChanged, component=component, status=status, previous=previous
                    )
            for ident in sorted(set(open_now) - set(self._open)):
                self.events.emit(ExceptionOpened, exception_id=ident, reason_code=open_now[ident])
            for ident in gone:
                self.events.emit(
                    ExceptionResolved, exception_id=ident, resolution=resolutions.get(ident)
                )
        self._health = health
        self._open = open_now
        self.syncs.observe(cursors)
