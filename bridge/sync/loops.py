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
from collections.abc import Callable
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
from bridge.sync.detector import EntitySync
from bridge.sync.outbox import Batch, Outbox, OutboxFullError
from bridge.sync.records import RecordReader

log = logging.getLogger(__name__)
# httpx logs every request at INFO; the uplink reports what matters itself.
logging.getLogger("httpx").setLevel(logging.WARNING)

REFUSED_RETRY_SECONDS = 300.0


class _Stopped(Exception):
    """The engine is stopping; abandon the current wait."""


class PmsSyncLoop:
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
        self.store = store
        self.secret_store = secret_store
        self.outbox = outbox
        self.wake_uplink = wake_uplink
        zone = settings.practice.zone
        self.syncs = {
            name: EntitySync(RecordReader(profile, name, zone), outbox, store)
            for name in profile.entities
        }
        self.cadence = {
            name: (realtime_seconds or settings.engine.poll_interval_seconds)
            if spec.cadence == "realtime"
            else CADENCE_SECONDS[spec.cadence]
            for name, spec in profile.entities.items()
        }
        self.tick = min(self.cadence.values())

    def __call__(self, stop: threading.Event) -> None:
        backoff = Backoff(base=1.0, cap=60.0)
        due = dict.fromkeys(self.syncs, 0.0)
        while not stop.is_set():
            try:
                conn = connect_pms(self.settings, self.secret_store)
            except BridgeError as exc:
                record_health(self.store, Health.from_error("sync", exc))
                stop.wait(backoff.next())
                continue
            backoff.reset()
            try:
                self._run(conn, due, stop)
            except PmsError as exc:
                record_health(self.store, Health.from_error("sync", exc))
                log.warning("sync lost the PMS connection", extra={"kind": exc.kind.value})
                stop.wait(backoff.next())
            finally:
                conn.close()

    def _run(self, conn: PmsConnection, due: dict[str, float], stop: threading.Event) -> None:
        while not stop.is_set():
            busy = False
            for name, sync in self.syncs.items():
                if stop.is_set() or time.monotonic() < due[name]:
                    continue
                try:
                    result = sync.step(conn)
                except OutboxFullError as exc:
                    record_health(self.store, Health.from_error("sync", exc))
                    self.wake_uplink.set()
                    stop.wait(5.0)
                    return
                if result.staged:
                    self.wake_uplink.set()
                if result.done:
                    due[name] = time.monotonic() + self.cadence[name]
                else:
                    busy = True  # first sync continues on the next pass
            self._report()
            if not busy:
                stop.wait(self.tick)

    def _report(self) -> None:
        cursors = [(name, s.cursor()) for name, s in self.syncs.items()]
        initial = [(n, c) for n, c in cursors if c is None or c.phase == "initial"]
        done = sum(c.rows_done for _, c in cursors if c is not None)
        total = sum(c.rows_total or 0 for _, c in cursors if c is not None)
        if initial:
            message = f"first sync: {done:,} of {total:,} rows read"
        else:
            message = f"watching {len(cursors)} entities for changes"
        record_health(
            self.store,
            Health(
                "sync",
                "ok",
                message,
                details={
                    "rows_done": done,
                    "rows_total": total,
                    "entities_in_first_sync": len(initial),
                },
            ),
        )


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
        max_changes: int = 2_000,
        max_bytes: int = 4 * 1024**2,
    ) -> None:
        self.settings = settings
        self.store = store
        self.outbox = outbox
        self.wake = wake
        self.max_changes = max_changes
        self.max_bytes = max_bytes
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
