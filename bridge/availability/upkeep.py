"""Keeping the published availability equal to the diary, driven by the read path's deltas.

::

    sync loop --EntityChanges--> AvailabilityUpkeep.changed   (marks days; no query)
                                       |
    availability loop (own ODBC connection): dirty days -> SlotEngine.finder (live read)
        -> publish.day_records -> outbox (same transaction as its cursor) -> uplink

What makes a day dirty:

* an ``appointment`` or ``schedule`` record the sync loop read whose
  content changed, or a key it saw go: the days the row touches now and
  the days it touched before (:class:`~bridge.availability.days.DayIndex`);
* local midnight: the window moves (a timer, no PMS query): the new last
  day is computed (one live read of that day, plus one statement for its
  schedule rows' keys) and the day that left is deleted;
* a change to an ``operatory`` (Web Sched flag, hidden), a ``provider``
  (hidden, term date) or an ``appointment_type`` (length, hidden):
  everything, as does ``sync.request`` for ``availability`` (the cloud's,
  ``bridge sync availability``, the panel's "Sync availability"), the
  engine's start and every reconnection to the PMS.

So when nothing changes the upkeep sends the PMS nothing at all: every
query it makes follows a delta the normal polling found, a request, or the
midnight roll. Each round reads the appointment types once and the diary
once per run of consecutive dirty days (four statements, see
:mod:`bridge.bookings.diary`).

The window: local days from today, ``[bookings] availability_days`` of
them (default 60), but never past the booking window (``window_days``):
a day outside it has nothing bookable. ``availability_days = 0`` publishes
nothing (and deletes what was published).

Freshness: the ``availability`` sync cursor's ``last_success_at`` is when
the published days were last known to equal the diary: the start of the
last round, or, while idle, the oldest last delta pass of ``appointment``
and ``schedule`` (saved at most every ``SAVE_SECONDS``, one local write).
``bridge status``, the panel and the cloud heartbeat show its lag like any
entity's; a "sync now" is seen to finish when it passes the request.

Known limit: a blockout deleted in Open Dental leaves no tombstone, so the
read path (and therefore this upkeep) learns of it only from the
reconciliation sweep, which stages its delete directly: the freed time is
published at the next full recompute (any ``sync.request``, restart or
reconnection). See ``docs/availability.md``.

Threads: :meth:`AvailabilityUpkeep.changed` runs on the sync loop's thread
and only marks; :meth:`AvailabilityUpkeep.request_full` on any thread; the
rest on the availability loop's thread (``__call__``), or a test's
(:meth:`AvailabilityUpkeep.run_once`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.availability.days import (
    APPOINTMENT,
    SCHEDULE,
    TRACKED,
    DayIndex,
    appointment_days,
)
from bridge.availability.publish import ENTITY, Bookable, bookable_types, day_records, runs
from bridge.backoff import Backoff
from bridge.bookings.diary import OpenDentalDiary
from bridge.bookings.policy import Policy
from bridge.bookings.slot_engine import SlotEngine
from bridge.bookings.slots import OCCUPYING_STATUSES, local_midnight, wall_clock
from bridge.config import Settings
from bridge.errors import BridgeError, PmsError
from bridge.health import Health, record_health
from bridge.pms.odbc import PmsConnection
from bridge.state import StateStore
from bridge.state.models import RowState, SyncCursor
from bridge.sync.detector import SAVE_SECONDS
from bridge.sync.observers import EntityChanges
from bridge.sync.outbox import Outbox, OutboxFullError
from bridge.sync.records import Record

log = logging.getLogger(__name__)

COMPONENT = "availability"
EVERYTHING = ("operatory", "provider", "appointment_type")
"""Entities whose change can move any day's slots: a full recompute."""
MIDNIGHT_SLACK_SECONDS = 1.0  # wake just after local midnight, never just before


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AvailabilityUpkeep:
    """Publishes free slots per local day and keeps them current (module docstring)."""

    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        outbox: Outbox,
        wake_uplink: threading.Event,
        connect: Callable[[], PmsConnection],
        *,
        clock: Callable[[], datetime] = _utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        save_seconds: float = SAVE_SECONDS,
    ) -> None:
        bookings = settings.bookings
        self.settings = settings
        self.store = store
        self.outbox = outbox
        self.wake_uplink = wake_uplink
        self.connect = connect
        self.clock = clock
        self.timezone = settings.practice.timezone
        self.tz = ZoneInfo(self.timezone)
        self.policy = Policy.from_settings(bookings)
        self.days = min(bookings.availability_days, bookings.window_days)
        self.step_minutes = bookings.availability_step_minutes
        self.index = DayIndex(self.tz, bookings.buffer_minutes)
        self.save_seconds = save_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._full = True  # the first round publishes every day
        self._dirty: set[date] = set()
        self._window: tuple[date, date] | None = None  # as last published
        self._hashes: dict[tuple[str, str], str] = {}  # operatory/provider rows seen
        self._inputs_at: dict[str, datetime] = {}  # last delta pass per tracked entity
        self._fresh_at: datetime | None = None  # last_success_at as saved
        self._saved_at = monotonic()
        self.rounds = 0

    # -- what the sync loop and requests tell us (any thread; no PMS query) -------

    def changed(self, changes: EntityChanges) -> None:
        """Observer of the sync loop (:mod:`bridge.sync.observers`): mark what changed."""
        entity = changes.entity
        if entity in TRACKED:
            touched: set[date] = set()
            for record in changes.records:
                touched |= self.index.observe(record)
            for key in changes.gone:
                touched |= self.index.gone(entity, key)
            with self._lock:
                self._inputs_at[entity] = self.clock()
                if touched:
                    self._dirty |= touched
                    self._wake.set()
        elif entity in EVERYTHING and self._moves_everything(changes):
            self.request_full()

    def _moves_everything(self, changes: EntityChanges) -> bool:
        if changes.gone or (changes.staged and not changes.records):  # a snapshot entity
            return True
        moved = False
        with self._lock:  # unknown counts as changed: one full recompute too many at most
            for record in changes.records:
                row = (record.entity, record.key)
                if self._hashes.get(row) != record.hash:
                    moved = True
                    self._hashes[row] = record.hash
        return moved

    def request_full(self) -> None:
        """Recompute every day of the window (``sync.request`` for availability)."""
        with self._lock:
            self._full = True
        self._wake.set()

    def pending(self) -> bool:
        """Whether a round has work: a full recompute, dirty days, or a new day."""
        with self._lock:
            if self._full:
                return True
            window, dirty = self._window, set(self._dirty)
        current = self.window()
        if current != window:
            return True
        return current is not None and any(current[0] <= d <= current[1] for d in dirty)

    # -- the window ------------------------------------------------------------

    def today(self) -> date:
        return wall_clock(self.clock(), self.tz).date()

    def window(self) -> tuple[date, date] | None:
        """(first, last) local day published now; None when publishing is off."""
        if self.days <= 0:
            return None
        today = self.today()
        return today, today + timedelta(days=self.days - 1)

    def seconds_to_midnight(self) -> float:
        now = self.clock()
        nxt = local_midnight(wall_clock(now, self.tz).date() + timedelta(days=1), self.tz)
        return max(0.0, (nxt - now).total_seconds()) + MIDNIGHT_SLACK_SECONDS

    # -- a round -----------------------------------------------------------------

    def run_once(self, conn: PmsConnection, engine: SlotEngine | None = None) -> int:
        """Do the pending work now on ``conn``; return the days recomputed.

        On failure the work stays pending (raised: PmsError, OutboxFullError).
        """
        started = self.clock()
        window = self.window()
        with self._lock:
            full, dirty, before = self._full, self._dirty, self._window
            self._full, self._dirty = False, set()
        try:
            if window is None:
                self._publish([], window, started, examined=0)
                return 0
            first, last = window
            if full or before is None:
                entered = set(_days(first, last))  # the index learns every day
                todo = entered
            else:
                entered = {d for d in _days(first, last) if not before[0] <= d <= before[1]}
                todo = {d for d in dirty if first <= d <= last} | entered
            if not todo and before == window:
                return 0  # marks for days outside the window only: nothing to read
            engine = engine or self.engine(conn)
            types = bookable_types(engine.diary.appointment_types(), self.policy.for_type)
            records: list[Record] = []
            examined = 0
            for run_first, run_last in runs(todo):
                new = any(d in entered for d in _days(run_first, run_last))
                found, seen = self._compute(conn, engine, types, run_first, run_last, new)
                records += found
                examined += seen
            if before != window:
                self.index.retain(first, last)
            self._publish(records, window, started, examined=examined)
        except BaseException:
            with self._lock:  # nothing is lost: the next round does it
                self._full = self._full or full
                self._dirty |= dirty
            raise
        self.rounds += 1
        return len(todo)

    def engine(self, conn: PmsConnection) -> SlotEngine:
        return SlotEngine(
            OpenDentalDiary(conn, self.tz),
            self.policy,
            clock=self.clock,
            step_minutes=self.step_minutes,
        )

    def _compute(
        self,
        conn: PmsConnection,
        engine: SlotEngine,
        types: list[Bookable],
        first: date,
        last: date,
        learn_schedules: bool,
    ) -> tuple[list[Record], int]:
        """The records of ``first`` to ``last`` from one live read; teaches the index."""
        days = _days(first, last)
        self.index.begin_read()
        try:
            finder = engine.finder(first, last)
            snapshot = finder.snapshot
            buffer = self.index.buffer_minutes
            self.index.learn(
                APPOINTMENT,
                days,
                {
                    a.id: appointment_days(a.start, a.end, self.tz, buffer)
                    for a in snapshot.appointments
                    if a.status in OCCUPYING_STATUSES
                },
            )
            if learn_schedules:
                self.index.learn(SCHEDULE, days, _schedule_days(conn, first, last))
            records = day_records(finder, first, last, types, timezone=self.timezone)
        finally:
            self.index.end_read()
        seen = len(snapshot.appointments) + len(snapshot.work) + len(snapshot.blockouts)
        return records, seen

    def _publish(
        self,
        records: list[Record],
        window: tuple[date, date] | None,
        started: datetime,
        *,
        examined: int,
    ) -> None:
        """Stage the records, the deletes of days outside the window and the cursor, at once."""
        moved = window != self._window or not self.rounds  # the first round: any leftovers
        with self.store.write() as session:
            staged = self.outbox.stage(session, records).staged if records else 0
            if moved:
                staged += self.outbox.stage_delete(session, ENTITY, _outside(session, window))
            self._write_cursor(session, window, started, examined)
        self._window = window
        self._fresh_at, self._saved_at = started, self._monotonic()
        if staged:
            self.wake_uplink.set()
        log.info(
            "availability published",
            extra={"days": len(records), "changes": staged, "window_days": self.days},
        )

    def _write_cursor(
        self,
        session: Session,
        window: tuple[date, date] | None,
        success_at: datetime,
        examined: int,
    ) -> None:
        now = self.clock()
        cursor = session.get(SyncCursor, ENTITY)
        if cursor is None:
            cursor = SyncCursor(entity=ENTITY, phase="delta", started_at=now, rows_examined=0)
            session.add(cursor)
        total = 0 if window is None else (window[1] - window[0]).days + 1
        cursor.phase = "delta"
        cursor.rows_done = total
        cursor.rows_total = total
        cursor.watermark = None if window is None else window[1].isoformat()
        cursor.last_success_at = success_at
        cursor.finished_at = cursor.finished_at or now
        cursor.rows_examined = (cursor.rows_examined or 0) + examined
        cursor.updated_at = now

    # -- freshness while idle ----------------------------------------------------

    def save_freshness(self) -> bool:
        """While nothing is pending: move ``last_success_at`` to the oldest last delta
        pass of the tracked entities, at most every ``save_seconds``. True if saved."""
        if self._monotonic() - self._saved_at < self.save_seconds or self.pending():
            return False
        with self._lock:
            seen = [self._inputs_at.get(e) for e in TRACKED]
        if any(s is None for s in seen) or self._window is None:
            return False
        fresh = min(s for s in seen if s is not None)
        if self._fresh_at is not None and fresh <= self._fresh_at:
            return False
        with self.store.write() as session:
            cursor = session.get(SyncCursor, ENTITY)
            if cursor is None:
                return False
            cursor.last_success_at = fresh
            cursor.updated_at = self.clock()
        self._fresh_at, self._saved_at = fresh, self._monotonic()
        return True

    # -- the loop -------------------------------------------------------------------

    def __call__(self, stop: threading.Event) -> None:
        """The availability loop: its own PMS connection, woken by marks and midnight."""
        backoff = Backoff(base=1.0, cap=60.0)
        while not stop.is_set():
            if self.days <= 0:
                self._off(stop)
                return
            try:
                conn = self.connect()
            except BridgeError as exc:
                record_health(self.store, Health.from_error(COMPONENT, exc))
                stop.wait(backoff.next())
                continue
            backoff.reset()
            try:
                self.request_full()  # whatever happened while not connected
                self._serve(conn, stop)
            except (PmsError, OutboxFullError) as exc:
                record_health(self.store, Health.from_error(COMPONENT, exc))
                log.warning("availability upkeep paused", extra={"kind": exc.kind.value})
                stop.wait(backoff.next())
            finally:
                conn.close()

    def _serve(self, conn: PmsConnection, stop: threading.Event) -> None:
        engine = self.engine(conn)
        while not stop.is_set():
            if self.pending():
                self._wake.clear()
                days = self.run_once(conn, engine)
                record_health(
                    self.store,
                    Health(COMPONENT, "ok", f"{self.days} days published; {days} just recomputed"),
                )
                continue
            self.save_freshness()
            self._wake.wait(min(self.seconds_to_midnight(), self.save_seconds))
            self._wake.clear()

    def _off(self, stop: threading.Event) -> None:
        """Publishing is off: delete what was published, then idle (no PMS connection)."""
        with self.store.read() as session:
            published = _outside(session, None)
        if published:
            self._publish([], None, self.clock(), examined=0)
        stop.wait()


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _outside(session: Session, window: tuple[date, date] | None) -> list[str]:
    """Published days (local state, not the PMS) outside ``window``."""
    keys = session.scalars(
        select(RowState.key).where(RowState.entity == ENTITY, RowState.deleted.is_(False))
    ).all()
    if window is None:
        return sorted(keys)
    first, last = window[0].isoformat(), window[1].isoformat()
    return sorted(k for k in keys if not first <= k <= last)


def _schedule_days(conn: PmsConnection, first: date, last: date) -> dict[str, frozenset[date]]:
    """Schedule row key -> its day, for the days read (what the read path's records carry)."""
    rows = conn.execute(
        "SELECT ScheduleNum, SchedDate FROM schedule"
        " WHERE SchedDate >= ? AND SchedDate <= ? AND SchedType IN (0, 1, 2)",
        (first.isoformat(), last.isoformat()),
        entity="schedule",
    )
    found: dict[str, frozenset[date]] = {}
    for row in rows:
        day = row["SchedDate"]
        if isinstance(day, datetime):
            day = day.date()
        if isinstance(day, date):
            found[str(row["ScheduleNum"])] = frozenset({day})
    return found


__all__ = ["COMPONENT", "EVERYTHING", "AvailabilityUpkeep"]
