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
from bridge.pms.source import connect_pms
from bridge.secrets import SecretStore
from bridge.state import StateStore
from bridge.sync.detector import EntitySync, StepResult
from bridge.sync.outbox import Batch, Outbox, OutboxFullError
from bridge.sync.probes import Probe, StampProbe
from bridge.sync.records import RecordReader

log = logging.getLogger(__name__)
# httpx logs every request at INFO; the uplink reports what matters itself.
logging.getLogger("httpx").setLevel(logging.WARNING)

REFUSED_RETRY_SECONDS = 300.0
REPORT_SECONDS = 10.0  # how often an idle sync loop refreshes its health row


class _Stopped(Exception):
    """The engine is stopping; abandon the current wait."""


class PmsSyncLoop:
    """Steps every entity's detector when due, on one ODBC connection.

    Also the engine's "sync now": :meth:`request_sync` makes entities due at
    once and queues keys to re-read (repeated requests merge).
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
        self.syncs = {
            name: EntitySync(RecordReader(profile, name, zone), outbox, store)
            for name in profile.entities
        }
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
        self._examined = _RateWindow()
        self._initial_rate = _RateWindow()
        self._next_report = 0.0

    def request_sync(self, entities: Sequence[str] = (), keys: Sequence[str] = ()) -> None:
        """Sync ``entities`` (all when empty) now; re-read ``keys`` of them."""
        names = [e for e in entities if e in self.syncs] or list(self.syncs)
        for name in names:
            if keys:
                self.syncs[name].hint(keys)
            self._due[name] = 0.0
        self._requested.set()

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
        due = self._due
        while not stop.is_set():
            busy = False
            for name, sync in self.syncs.items():
                if stop.is_set() or time.monotonic() < due[name]:
                    continue
                started = time.monotonic()
                try:
                    result = sync.step(conn)
                except OutboxFullError as exc:
                    record_health(self.store, Health.from_error("sync", exc))
                    self.wake_uplink.set()
                    stop.wait(5.0)
                    return
                self._examined.add(result.examined)
                if result.staged:
                    self.wake_uplink.set()
                self._hint_related(name, result)
                if result.done:
                    due[name] = time.monotonic() + self.cadence[name]
                else:
                    busy = True  # first sync continues on the next pass
                    self._initial_rate.add(result.read)
                    self._limit_load(result.read, time.monotonic() - started, stop)
            if busy or time.monotonic() >= self._next_report:
                self._report()
                self._next_report = time.monotonic() + REPORT_SECONDS
            if not busy:
                wait = min(due.values()) - time.monotonic()
                self._requested.wait(min(max(0.0, wait), self.tick))
                self._requested.clear()

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
        cursors = [(name, s.cursor()) for name, s in self.syncs.items()]
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
                    self.wake.wait(1.0)
                    self.wake.clear()
                    continue
                crashpoint("uplink.batch_formed")
                try:
                    self._deliver(client, batch, stop)
                except _Stopped:
                    return
                except CloudError as exc:
                    record_health(self.store, Health.from_error("cloud", exc))
                    log.warning(
                        "cloud refused a batch; will retry",
                        extra={"kind": exc.kind.value, "changes": len(batch.changes)},
                    )
                    stop.wait(REFUSED_RETRY_SECONDS if not exc.retryable else 30.0)

    def _deliver(self, client: CloudClient, batch: Batch, stop: threading.Event) -> None:
        def sleep(seconds: float) -> None:
            if stop.wait(seconds):
                raise _Stopped

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
                    "last_batch_changes": ack.accepted,
                },
            ),
        )
