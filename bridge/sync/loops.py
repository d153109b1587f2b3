"""The engine's read-path loops: PMS -> outbox, and outbox -> cloud.

:class:`PmsSyncLoop` keeps its own ODBC connection and steps every entity's
:class:`~bridge.sync.detector.EntitySync` when its cadence is due (first-sync
chunks interleave across entities, so small tables finish early). Anything
staged wakes the uplink at once.

:class:`UplinkLoop` sends the outbox's next batch, acknowledges it, and goes
on; it splits a batch the cloud finds too large, honours Retry-After, and
reports the cloud's health. A single change the cloud refuses outright is
never dropped: the loop reports it and retries later, so it stays visible.

Both record a component health row (``sync``, ``cloud``) for status. Each
runs in its own supervised thread.

After every delta step the sync loop tells its :attr:`PmsSyncLoop.observers`
what the step saw (:mod:`bridge.sync.observers`: the records read by key and
the keys that are gone); published availability is kept current that way.

An idle pass of the sync loop (nothing changed in the PMS) is meant to cost
little: one lazy PMS clock per pass shared by every entity
(:class:`~bridge.pms.source.PmsClock`), the probes' cheapest questions
(:mod:`bridge.sync.probes`), and no local-state transaction (the detectors
keep idle bookkeeping in memory; the loop saves every entity's in one
transaction every ``SAVE_SECONDS``, after a step that :meth:`request_sync`
asked for, and when it stops). ``tests/test_idle_cost.py`` counts the
statements of an idle pass.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from bridge.backoff import Backoff
from bridge.cloud.client import CloudClient
from bridge.cloud.protocol import Change, ChangeBatch
from bridge.cloud.retry import send_with_retry
from bridge.config import Settings
from bridge.crashpoints import crashpoint
from bridge.errors import (
    BatchTooLargeError,
    BridgeError,
    CloudError,
    PmsError,
)
from bridge.health import Health, record_health
from bridge.pms.odbc import PmsConnection
from bridge.pms.profile import CADENCE_SECONDS, Profile
from bridge.pms.source import PmsClock, connect_pms
from bridge.secrets import SecretStore
from bridge.state import StateStore
from bridge.sync.detector import SAVE_SECONDS, EntitySync, StepResult, save_bookkeeping
from bridge.sync.observers import ChangeObserver, EntityChanges, KeyTrackingReader
from bridge.sync.on_demand import RecordRequests, push_records
from bridge.sync.outbox import PAGES_AHEAD, Batch, Outbox, OutboxFullError, Page
from bridge.sync.probes import Probe, StampProbe

log = logging.getLogger(__name__)
# httpx logs every request at INFO; the uplink reports what matters itself.
logging.getLogger("httpx").setLevel(logging.WARNING)

REFUSED_RETRY_SECONDS = 300.0
REPORT_SECONDS = 10.0  # how often an idle sync loop refreshes its health row
# A PMS clock reading is reused for this long (earlier is the cautious side: see
# PmsClock); an idle loop then asks the PMS its time once per 10 s, not per pass.
CLOCK_MAX_AGE_SECONDS = 10.0
# The uplink is woken whenever something is staged; this is only its safety net.
UPLINK_IDLE_RECHECK_SECONDS = 10.0


class _Stopped(Exception):
    """The engine is stopping; abandon the current wait."""


class PmsSyncLoop:
    """Steps every entity's detector when due, on one ODBC connection.

    Also the engine's "sync now": :meth:`request_sync` makes entities due at
    once; named keys go to :attr:`records` and are pushed at the start of the
    next pass even if unchanged (:mod:`bridge.sync.on_demand`).
    """

    def __init__(
        self,
        settings: Settings,
        profile: Profile,
        store: StateStore,
        secret_store: SecretStore,
        outbox: Outbox,
        wake_uplink: threading.Event,
        *,
        realtime_seconds: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.profile = profile
        self.store = store
        self.secret_store = secret_store
        self.outbox = outbox
        self.wake_uplink = wake_uplink
        zone = settings.practice.zone
        engine = settings.engine
        self.cadence = {
            name: (realtime_seconds or engine.poll_interval_seconds)
            if spec.cadence == "realtime"
            else CADENCE_SECONDS[spec.cadence]
            for name, spec in profile.entities.items()
        }
        self._monotonic = monotonic
        self.syncs = {
            name: EntitySync(
                KeyTrackingReader(profile, name, zone),
                outbox,
                store,
                save_seconds=None,  # the loop saves every entity's bookkeeping at once
                pages_ahead=PAGES_AHEAD,  # the uplink drains them; stay a few pages ahead
                monotonic=monotonic,
            )
            for name in profile.entities
        }
        self.records = RecordRequests()
        # Told what every delta step saw, on this loop's thread (bridge.sync.observers).
        self.observers: list[ChangeObserver] = []
        # The sweep budget is shared equally by every sweeping probe.
        sweeps = sum(1 for sync in self.syncs.values() for p in sync.probes if _sweeps(p))
        share = engine.sweep_rows_per_minute / max(sweeps, 1)
        for name, sync in self.syncs.items():
            sync.sweep_rows = max(100, int(share * self.cadence[name] / 60))
        # entity -> [(entity to hint, field naming its keys)]
        self.related: dict[str, list[tuple[str, str]]] = {}
        for name, spec in profile.entities.items():
            for rel in spec.related:
                self.related.setdefault(rel.entity, []).append((name, rel.field))
        self.tick = min(self.cadence.values())
        self.first_sync_rows_per_second = engine.first_sync_rows_per_second
        self._due = dict.fromkeys(self.syncs, 0.0)
        self._requested = threading.Event()
        self._asked: set[str] = set()  # entities a request_sync named, until stepped
        self._asked_lock = threading.Lock()
        self._examined = _RateWindow()
        self._initial_rate = _RateWindow()
        self._next_report = 0.0
        self._next_save = monotonic() + SAVE_SECONDS

    def request_sync(self, entities: Sequence[str] = (), keys: Sequence[str] = ()) -> None:
        """Sync ``entities`` (all when empty) now; push ``keys`` of them even if unchanged.

        The next step of each is saved at once, even if it found nothing:
        "sync now" is seen to finish when the cursors' ``last_success_at``
        passes the request (the control channel's ``SyncFinished``).
        """
        names = [e for e in entities if e in self.syncs] or list(self.syncs)
        with self._asked_lock:
            self._asked.update(names)
        for name in names:
            if keys:
                self.records.ask(name, keys)
            self._due[name] = 0.0
        self._requested.set()

    def _take_asked(self, name: str) -> bool:
        with self._asked_lock:
            asked = name in self._asked
            self._asked.discard(name)
        return asked

    def __call__(self, stop: threading.Event) -> None:
        backoff = Backoff(base=1.0, cap=60.0)
        while not stop.is_set():
            try:
                conn = connect_pms(self.settings, self.secret_store)
            except BridgeError as exc:
                record_health(self.store, Health.from_error("sync", exc))
                stop.wait(backoff.next())
                continue
            backoff.reset()
            try:
                self._run(conn, stop)
            except PmsError as exc:
                record_health(self.store, Health.from_error("sync", exc))
                log.warning("sync lost the PMS connection", extra={"kind": exc.kind.value})
                stop.wait(backoff.next())
            finally:
                conn.close()

    def _run(self, conn: PmsConnection, stop: threading.Event) -> None:
        clock = PmsClock(conn, max_age=CLOCK_MAX_AGE_SECONDS, monotonic=self._monotonic)
        try:
            while not stop.is_set():
                busy = self.run_pass(conn, stop, clock)
                if not busy:
                    wait = min(self._due.values()) - self._monotonic()
                    self._requested.wait(min(max(0.0, wait), self.tick))
                    self._requested.clear()
        finally:
            self.flush()

    def run_pass(
        self,
        conn: PmsConnection,
        stop: threading.Event | None = None,
        clock: PmsClock | None = None,
    ) -> bool:
        """Step every entity that is due, once; True while a first sync goes on.

        Every entity's step uses ``clock`` (default: a new one, read at most
        once in this pass and only if a probe needs it). Saves the
        detectors' bookkeeping every ``SAVE_SECONDS`` and reports health
        every ``REPORT_SECONDS`` (and after every pass while busy). A full
        outbox is reported and ends the pass early (False).
        """
        due = self._due
        clock = clock or PmsClock(conn)
        busy = False
        asked: list[EntitySync] = []
        if self.records.pending() and not self._push_records(conn, stop):
            return False
        for name, sync in self.syncs.items():
            if (stop is not None and stop.is_set()) or self._monotonic() < due[name]:
                continue
            started = self._monotonic()
            if self._take_asked(name):
                asked.append(sync)
            try:
                result = sync.step(conn, clock)
            except OutboxFullError as exc:
                self._ask_again(asked)
                record_health(self.store, Health.from_error("sync", exc))
                self.wake_uplink.set()
                if stop is not None:
                    stop.wait(5.0)
                return False
            except BaseException:
                self._ask_again(asked)
                raise
            self._examined.add(result.examined)
            if result.staged:
                self.wake_uplink.set()
            self._hint_related(name, result)
            self._tell_observers(name, result)
            if result.done:
                due[name] = self._monotonic() + self.cadence[name]
            else:
                busy = True  # first sync continues on the next pass
                self._initial_rate.add(result.read)
                if stop is not None:
                    self._limit_load(result.read, self._monotonic() - started, stop)
        if self._monotonic() >= self._next_save:
            save_bookkeeping(self.store, self.syncs.values())
            self._next_save = self._monotonic() + SAVE_SECONDS
        elif asked:
            save_bookkeeping(self.store, asked)  # a "sync now" is seen to finish at once
        if busy or self._monotonic() >= self._next_report:
            self._report()
            self._next_report = self._monotonic() + REPORT_SECONDS
        return busy

    def _push_records(self, conn: PmsConnection, stop: threading.Event | None) -> bool:
        """Push the records asked for by key; False when the outbox is full."""
        taken_at, wanted = self.records.take()
        readers = {name: sync.reader for name, sync in self.syncs.items()}
        for entity, keys in wanted.items():
            try:
                outcome = push_records(conn, readers, self.outbox, self.store, entity, keys)
            except OutboxFullError as exc:
                for name, left in wanted.items():
                    self.records.give_back(name, left)
                record_health(self.store, Health.from_error("sync", exc))
                self.wake_uplink.set()
                if stop is not None:
                    stop.wait(5.0)
                return False
            except BaseException:
                for name, left in wanted.items():
                    self.records.give_back(name, left)
                raise
            wanted = {name: left for name, left in wanted.items() if name != entity}
            self.wake_uplink.set()
            log.info(
                "records pushed on request",
                extra={
                    "entity": entity,
                    "pushed": len(outcome.pushed),
                    "missing": len(outcome.missing),
                    "related": outcome.related_count,
                },
            )
            self.records.settle(outcome, taken_at)
        return True

    def _tell_observers(self, name: str, result: StepResult) -> None:
        """Hand a delta step's findings to every observer (:mod:`bridge.sync.observers`)."""
        reader = self.syncs[name].reader
        gone = reader.take_missing() if isinstance(reader, KeyTrackingReader) else ()
        if result.phase != "delta" or not self.observers:
            return
        changes = EntityChanges(name, result.changed, gone, result.staged)
        for observer in self.observers:
            try:
                observer(changes)
            except Exception:  # an observer's bug must not stop the read path
                log.exception("a sync observer failed", extra={"entity": name})

    def _ask_again(self, syncs: list[EntitySync]) -> None:
        """A pass ended early: the asked-for entities still owe an immediate save."""
        with self._asked_lock:
            self._asked.update(s.entity for s in syncs)

    def flush(self) -> None:
        """Save every detector's in-memory bookkeeping now (when stopping)."""
        try:
            save_bookkeeping(self.store, self.syncs.values())
        except BridgeError as exc:
            log.warning("could not save sync bookkeeping", extra={"kind": exc.kind.value})

    def _hint_related(self, name: str, result: StepResult) -> None:
        for target, field in self.related.get(name, ()):
            keys = {str(r.data.get(field)) for r in result.changed if r.data.get(field)}
            if keys:
                self.syncs[target].hint(keys)
                self._due[target] = 0.0

    def _limit_load(self, rows: int, took: float, stop: threading.Event) -> None:
        """Keep the first sync under ``first_sync_rows_per_second`` (0: no limit)."""
        limit = self.first_sync_rows_per_second
        if limit > 0 and rows > 0:
            stop.wait(max(0.0, rows / limit - took))

    def _report(self) -> None:
        cursors = [(name, s.view()) for name, s in self.syncs.items()]
        initial = [(n, c) for n, c in cursors if c is None or c.phase == "initial"]
        done = sum(c.rows_done for _, c in cursors if c is not None)
        total = sum(c.rows_total or 0 for _, c in cursors if c is not None)
        examined_per_minute = round(self._examined.per_second() * 60)
        details: dict[str, object] = {
            "rows_done": done,
            "rows_total": total,
            "entities_in_first_sync": len(initial),
            "rows_examined_per_minute": examined_per_minute,
        }
        if initial:
            rate = self._initial_rate.per_second()
            remaining = max(total - done, 0)
            details["rate_rows_per_s"] = round(rate, 1)
            details["eta_seconds"] = round(remaining / rate) if rate > 0 else None
            message = f"first sync: {done:,} of {total:,} rows read"
        else:
            message = f"watching {len(cursors)} entities for changes"
        record_health(self.store, Health("sync", "ok", message, details=details))


class _RateWindow:
    """Events per second over the last minute (for rates shown in status)."""

    def __init__(self, window: float = 60.0) -> None:
        self.window = window
        self._events: deque[tuple[float, int]] = deque()
        self._started = time.monotonic()

    def add(self, count: int) -> None:
        now = time.monotonic()
        self._events.append((now, count))
        while self._events and self._events[0][0] < now - self.window:
            self._events.popleft()

    def per_second(self) -> float:
        now = time.monotonic()
        total = sum(c for t, c in self._events if t >= now - self.window)
        span = min(self.window, now - self._started)
        return total / span if span > 0 else 0.0


def _sweeps(probe: Probe) -> bool:
    return isinstance(probe, StampProbe) and not probe.indexed


class UplinkLoop:
    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        secret_store: SecretStore,
        outbox: Outbox,
        wake: threading.Event,
        *,
        client_factory: Callable[[], CloudClient] | None = None,
        max_changes: int = 1_000,  # the Cloud API's documented batch limit
        max_bytes: int = 4 * 1024**2,
    ) -> None:
        self.settings = settings
        self.store = store
        self.outbox = outbox
        self.wake = wake
        self.max_changes = max_changes
        self.max_bytes = max_bytes
        self._next_health = 0.0
        self._client_factory = client_factory or (lambda: CloudClient(settings.cloud, secret_store))

    def __call__(self, stop: threading.Event) -> None:
        try:
            client = self._client_factory()
        except BridgeError as exc:
            record_health(self.store, Health.from_error("cloud", exc))
            raise  # the supervisor retries with backoff
        with client:
            while not stop.is_set():
                batch = self.outbox.next_batch(self.max_changes, self.max_bytes)
                if batch is None:
                    self.wake.wait(UPLINK_IDLE_RECHECK_SECONDS)
                    self.wake.clear()
                    continue
                crashpoint("uplink.batch_formed")
                try:
                    self._deliver(client, batch, stop)
                except _Stopped:
                    return
                except CloudError as exc:
                    record_health(self.store, Health.from_error("cloud", exc))
                    changes = batch.count if isinstance(batch, Page) else len(batch.changes)
                    log.warning(
                        "cloud refused a batch; will retry",
                        extra={"kind": exc.kind.value, "changes": changes},
                    )
                    stop.wait(REFUSED_RETRY_SECONDS if not exc.retryable else 30.0)

    def _deliver(self, client: CloudClient, batch: Batch | Page, stop: threading.Event) -> None:
        def sleep(seconds: float) -> None:
            if stop.wait(seconds):
                raise _Stopped

        if isinstance(batch, Page):
            self._deliver_page(client, batch, sleep)
            return
        wire = ChangeBatch(
            agent_id=self.settings.cloud.agent_id,
            batch_id=batch.batch_id,
            seq=batch.seqs[0],
            changes=tuple(
                Change(c.entity, c.op, c.key, c.version, c.observed_at, c.data)  # type: ignore[arg-type]
                for c in batch.changes
            ),
        )
        try:
            ack = send_with_retry(
                lambda: client.post_changes(wire),
                backoff=Backoff(base=1.0, cap=60.0),
                sleep=sleep,
                max_elapsed=300.0,
            )
        except BatchTooLargeError:
            if len(batch.changes) < 2:
                raise
            self.outbox.split(batch)
            return
        crashpoint("uplink.sent")
        self.outbox.acknowledge(batch.batch_id)
        crashpoint("uplink.acknowledged")
        self._report_health(ack.accepted)

    def _deliver_page(
        self, client: CloudClient, page: Page, sleep: Callable[[float], None]
    ) -> None:
        try:
            ack = send_with_retry(
                lambda: client.post_changes_body(page.batch_id, page.body),
                backoff=Backoff(base=1.0, cap=60.0),
                sleep=sleep,
                max_elapsed=300.0,
            )
        except BatchTooLargeError:
            if page.count < 2:
                raise
            self.outbox.explode(page)  # its changes batch and split as ordinary rows
            return
        crashpoint("uplink.sent")
        self.outbox.acknowledge(page.batch_id)
        crashpoint("uplink.acknowledged")
        self._report_health(ack.accepted)

    def _report_health(self, last_batch_changes: int) -> None:
        if time.monotonic() < self._next_health:
            return  # counting a large backlog after every batch costs more than the batch
        self._next_health = time.monotonic() + REPORT_SECONDS
        depth, size = self.outbox.depth()
        record_health(
            self.store,
            Health(
                "cloud",
                "ok",
                f"last batch acknowledged at {datetime.now(UTC):%H:%M:%S} UTC; "
                f"{depth} change(s) waiting",
                details={
                    "queue_changes": depth,
                    "queue_bytes": size,
                    "last_batch_changes": last_batch_changes,
                },
            ),
        )
