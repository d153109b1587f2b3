"""The engine: what ``bridge run`` (and the Windows service) executes.

It claims the local state (one engine per state file), records a run with a
heartbeat, and supervises one loop per concern. Today's loops:

* ``heartbeat`` refreshes the run's heartbeat so ``bridge status`` can tell
  a running engine from a dead one;
* ``pms-watch`` keeps a connection to the PMS, checks the profile's tables
  once per connection, pings the database on a cadence and records the PMS
  component's health; on failure it reconnects with capped, jittered backoff;
* ``pms-sync`` reads every profile entity into the durable outbox (first
  sync, then deltas) and ``uplink`` pushes the outbox to the cloud
  (:mod:`bridge.sync.loops`);
* ``availability`` publishes the diary's free slots per local day and
  keeps them current from the deltas ``pms-sync`` observes
  (:mod:`bridge.availability`); a sync of ``availability`` recomputes them;
* ``reconcile`` proves on a schedule (and on request) that the cloud's copy
  equals the PMS and re-sends what differs (:mod:`bridge.sync.reconcile`);
* ``inbox`` takes the cloud's requests (:mod:`bridge.inbox`) and
  ``cloud-heartbeat`` reports queue depths, per-entity lag and current
  errors to the cloud (:mod:`bridge.cloud.heartbeat`);
* ``booking-report`` keeps the daily booking reports (the ``report``
  entity) current in the outbox (:mod:`bridge.bookings.report`).

The engine is the inbox's :class:`~bridge.inbox.SyncControl`: "sync now"
and "reconcile now" reach the sync and reconcile loops through it. Each
configured export folder adds a ``folder:<label>`` loop (:mod:`bridge.files`).

The local control channel (:mod:`bridge.control`, used by the CLI and the
panel) adds the ``control`` and ``control-events`` loops; every "sync now"
(the channel's or the cloud's) is merged there before it reaches the sync
loop, and a pause (persisted in state) stops the PMS, sync, uplink,
reconcile, inbox and folder loops without stopping the engine.
``exception_desk`` is the booking pipeline's desk, or None when bookings
are off (the channel then refuses exception actions).
:meth:`Engine.run` returns after ``stop`` is set and every loop has ended;
the run is then marked stopped. A crash of the whole process leaves the run
without a stop time and its heartbeat goes stale, which status reports.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from bridge import __version__
from bridge.availability import ENTITY as AVAILABILITY
from bridge.availability import AvailabilityUpkeep
from bridge.backoff import Backoff
from bridge.bookings.exceptions import ExceptionDesk
from bridge.bookings.pipeline import BookingPipeline, booking_handlers
from bridge.bookings.report import BookingReportLoop
from bridge.bookings.wiring import build_pipeline
from bridge.cloud.heartbeat import HeartbeatLoop
from bridge.config import Settings
from bridge.control.events import RecordsSynced
from bridge.control.host import ControlHost
from bridge.errors import BridgeError
from bridge.files import folder_loops
from bridge.health import Health, record_health
from bridge.inbox import InboxLoop, control_handlers
from bridge.paths import BridgePaths, default_paths
from bridge.pms.odbc import PmsConnection
from bridge.pms.profile import Profile
from bridge.pms.source import connect_pms, profile_problems
from bridge.secrets import SecretStore
from bridge.state import StateStore
from bridge.state.models import EngineRun
from bridge.supervisor import LoopSpec, Supervisor
from bridge.sync.loops import PmsSyncLoop, UplinkLoop
from bridge.sync.on_demand import RecordsOutcome
from bridge.sync.outbox import Outbox
from bridge.sync.reconcile import ReconcileLoop

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
PMS_PING_SECONDS = 15.0
INBOX_WAIT_SECONDS = 10.0  # a long-poll must end well within the supervisor's join time


class Engine:
    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        secret_store: SecretStore,
        profile: Profile,
        *,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        pms_ping_seconds: float = PMS_PING_SECONDS,
        realtime_seconds: float | None = None,
        paths: BridgePaths | None = None,
        config_path: Path | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.secret_store = secret_store
        self.profile = profile
        self.heartbeat_seconds = heartbeat_seconds
        self.pms_ping_seconds = pms_ping_seconds
        self.realtime_seconds = realtime_seconds
        # Logs and config for the control channel (support bundle, log view);
        # by default the bridge's folders, with the data folder the state's.
        default = default_paths()
        self.paths = paths or BridgePaths(default.config_dir, store.path.parent, default.log_dir)
        self.config_path = config_path or Path(
            os.environ.get("BRIDGE_CONFIG") or self.paths.config_file
        )
        self.exception_desk: ExceptionDesk | None = None
        self.control: ControlHost | None = None
        self._run_id: int | None = None
        self._sync: PmsSyncLoop | None = None
        self._reconcile: ReconcileLoop | None = None
        self._availability: AvailabilityUpkeep | None = None

    # -- SyncControl (the inbox's view of the engine) -------------------------

    def request_sync(self, entities: Sequence[str], keys: Sequence[str] = ()) -> None:
        """Merged with other requests by the control host (five presses: one sync)."""
        if self.control is not None:
            self.control.request_sync(entities, keys)
        else:
            self._forward_sync(entities, keys)

    def _forward_sync(self, entities: Sequence[str], keys: Sequence[str] = ()) -> None:
        read = [e for e in entities if e != AVAILABILITY]
        if self._availability is not None and (AVAILABILITY in entities or not entities):
            self._availability.request_full()  # keys (days) too: every day is recomputed
        if self._sync is not None and (read or not entities):
            self._sync.request_sync(read, keys)

    def request_reconcile(self, entities: Sequence[str]) -> None:
        if self._reconcile is not None:
            self._reconcile.request(entities)

    def await_records(
        self, entity: str, keys: Sequence[str], since: float, timeout: float
    ) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """Wait for records asked for by key (:mod:`bridge.sync.on_demand`)."""
        if self._sync is None:
            return None
        return self._sync.records.wait(entity, keys, since, timeout)

    def _records_synced(self, outcome: RecordsOutcome) -> None:
        if self.control is not None:
            self.control.events.emit(
                RecordsSynced,
                entity=outcome.entity,
                pushed=outcome.pushed,
                missing=outcome.missing,
                related=outcome.related_count,
            )

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set. Raises StateError if another engine runs."""
        self.store.acquire_writer_lock()
        self._run_id = self._start_run()
        log.info("engine started", extra={"version": __version__, "profile": self.profile.name})
        outbox = Outbox(self.store, self.settings.cloud.agent_id)
        wake_uplink = threading.Event()
        sync = PmsSyncLoop(
            self.settings,
            self.profile,
            self.store,
            self.secret_store,
            outbox,
            wake_uplink,
            realtime_seconds=self.realtime_seconds,
        )
        sync.records.on_settled = self._records_synced
        uplink = UplinkLoop(self.settings, self.store, self.secret_store, outbox, wake_uplink)
        engine = self.settings.engine
        reconcile = ReconcileLoop(
            self.settings,
            self.profile,
            self.store,
            self.secret_store,
            outbox,
            wake_uplink,
            interval_seconds=engine.reconcile_interval_hours * 3600,
        )
        availability = AvailabilityUpkeep(
            self.settings,
            self.store,
            outbox,
            wake_uplink,
            lambda: connect_pms(self.settings, self.secret_store),
        )
        sync.observers.append(availability.changed)
        self._sync, self._reconcile = sync, reconcile
        self._availability = availability
        entities = (*self.profile.entities, AVAILABILITY)  # what a sync may name
        handlers = control_handlers(self, entities, record_entities=self.profile.entities)
        bookings = self._booking_pipeline()
        if bookings is not None:
            handlers.update(booking_handlers(bookings))
            self.exception_desk = bookings
        inbox = InboxLoop(
            self.settings,
            self.store,
            self.secret_store,
            handlers,
            wait_seconds=INBOX_WAIT_SECONDS,
        )
        cloud_heartbeat = HeartbeatLoop(
            self.settings,
            self.store,
            self.secret_store,
            outbox,
            interval_seconds=engine.status_interval_seconds,
            entities=tuple(self.profile.entities),
        )
        control = self.control = ControlHost(
            store=self.store,
            secret_store=self.secret_store,
            entities=entities,
            paths=self.paths,
            config_path=self.config_path,
            run_id=self._run_id,
            forward_sync=self._forward_sync,
            exception_desk=lambda: self.exception_desk,
            timezone=self.settings.practice.zone,
            record_entities=tuple(self.profile.entities),
        )
        reports = BookingReportLoop(self.store, outbox, self.settings.practice.zone, wake_uplink)
        control.start(stop)
        supervisor = Supervisor(
            [
                *control.pausable(
                    [
                        LoopSpec("heartbeat", self._heartbeat_loop),
                        LoopSpec("pms-watch", self._pms_watch_loop),
                        LoopSpec("pms-sync", sync),
                        LoopSpec("availability", availability),
                        LoopSpec("uplink", uplink),
                        LoopSpec("reconcile", reconcile),
                        LoopSpec("inbox", inbox),
                        LoopSpec("cloud-heartbeat", cloud_heartbeat),
                        LoopSpec("booking-report", reports),
                        *folder_loops(self.settings, self.store, self.secret_store),
                    ]
                ),
                *control.loops(),
            ],
            stop,
            on_crash=self._report_crash,
        )
        try:
            supervisor.run()
        finally:
            if bookings is not None:
                bookings.shutdown()
            control.close()
            self._finish_run()
            log.info("engine stopped")

    def _booking_pipeline(self) -> BookingPipeline | None:
        """The booking pipeline, or None (no writer configured, or it cannot start:
        then booking items wait in the inbox and the ``bookings`` component says why)."""
        try:
            pipeline = build_pipeline(self.settings, self.store, self.secret_store)
        except BridgeError as exc:
            record_health(self.store, Health.from_error("bookings", exc))
            log.warning("bookings are off: the writer cannot start", extra={"error": exc.kind})
            return None
        if pipeline is None:
            return None
        record_health(
            self.store,
            Health("bookings", "ok", f"bookings are written through {self.settings.writer.kind}"),
        )
        return pipeline

    # -- run bookkeeping -------------------------------------------------

    def _start_run(self) -> int:
        now = datetime.now(UTC)
        with self.store.write() as session:
            for stale in session.scalars(select(EngineRun).where(EngineRun.stopped_at.is_(None))):
                stale.state = "crashed"
                stale.stopped_at = stale.heartbeat_at
            run = EngineRun(
                pid=os.getpid(),
                version=__version__,
                started_at=now,
                heartbeat_at=now,
                state="running",
            )
            session.add(run)
            session.flush()
            return run.id

    def _finish_run(self) -> None:
        with self.store.write() as session:
            run = session.get(EngineRun, self._run_id)
            if run is not None:
                run.state = "stopped"
                run.stopped_at = datetime.now(UTC)

    def _report_crash(self, loop: str, exc: BaseException) -> None:
        message = f"the {loop} loop crashed ({type(exc).__name__}) and was restarted"
        record_health(self.store, Health(f"loop:{loop}", "warn", message))

    # -- loops -------------------------------------------------------------

    def _heartbeat_loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.heartbeat_seconds):
            with self.store.write() as session:
                run = session.get(EngineRun, self._run_id)
                if run is not None:
                    run.heartbeat_at = datetime.now(UTC)

    def _pms_watch_loop(self, stop: threading.Event) -> None:
        backoff = Backoff(base=1.0, cap=60.0)
        while not stop.is_set():
            try:
                conn = self._connect_and_verify()
            except BridgeError as exc:
                record_health(self.store, Health.from_error("pms", exc))
                delay = backoff.next()
                log.warning(
                    "PMS not available; retrying",
                    extra={"kind": exc.kind.value, "retry_in_s": round(delay, 1)},
                )
                stop.wait(delay)
                continue
            backoff.reset()
            try:
                self._ping_until_failure(conn, stop)
            finally:
                conn.close()

    def _connect_and_verify(self) -> PmsConnection:
        conn = connect_pms(self.settings, self.secret_store)
        try:
            problems = profile_problems(conn, self.profile)
            if problems:
                raise problems[0]
        except BaseException:
            conn.close()
            raise
        log.info("PMS connected", extra={"family": conn.family})
        return conn

    def _ping_until_failure(self, conn: PmsConnection, stop: threading.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                list(conn.execute("SELECT 1"))
            except BridgeError as exc:
                record_health(self.store, Health.from_error("pms", exc))
                log.warning("PMS connection lost", extra={"kind": exc.kind.value})
                return
            latency_ms = round((time.monotonic() - started) * 1000, 1)
            record_health(
                self.store,
                Health(
                    "pms",
                    "ok",
                    f"connected to the {self.profile.profile.title} database ({conn.family})",
                    details={"latency_ms": latency_ms, "entities": len(self.profile.entities)},
                ),
            )
            stop.wait(self.pms_ping_seconds)
