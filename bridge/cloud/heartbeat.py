"""The cloud heartbeat: the agent's health, sent to ``POST /v1/heartbeat``.

:class:`HeartbeatLoop` is a supervised loop (:mod:`bridge.supervisor`). It
sends one heartbeat as soon as it starts, then one every
``interval_seconds``. Each is built afresh from local state
(:meth:`HeartbeatLoop.build`):

* ``queue_depths``: ``outbox`` (changes) and ``outbox_bytes`` waiting for the
  cloud; ``inbox`` (items not yet answered: ``inbox_received`` still to
  handle plus ``inbox_waiting`` for a handler this engine lacks) and
  ``inbox_results_unposted``;
* ``last_sync`` per entity: the last step that read the PMS without error
  (``sync_cursor.last_success_at``; null for an entity never read), and
  ``lag_seconds``: how long ago that was;
* ``errors``: every component whose health is not ok (``warn`` or ``fail``)
  with its message and kind (the error kind, else the status). Messages hold
  no personal data (a contract of :mod:`bridge.health`). The heartbeat's own
  row is left out: it would only ever report the previous beat.

A failed send never ends the loop: it is recorded as the ``heartbeat``
component's health and the next beat comes after a jittered backoff (at most
the interval, never sooner than the cloud's Retry-After). The cloud's clock
in each acknowledgement is compared with ours; a large skew is reported.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy import select

from bridge import __version__
from bridge.backoff import Backoff
from bridge.cloud.client import CloudClient
from bridge.cloud.protocol import Heartbeat, HeartbeatError
from bridge.config import Settings
from bridge.errors import BridgeError, CloudError, CloudUnavailableError
from bridge.health import Health, record_health
from bridge.inbox.summary import read_inbox_summary
from bridge.secrets import SecretStore
from bridge.state import StateStore
from bridge.state.models import ComponentHealth, SyncCursor
from bridge.sync.outbox import Outbox

log = logging.getLogger(__name__)

COMPONENT = "heartbeat"
MAX_ERRORS = 100  # the contract's cap
MAX_MESSAGE = 1000
MAX_NAME = 64
SKEW_WARN_SECONDS = 300.0


class HeartbeatLoop:
    """``loop(stop)`` runs until ``stop`` is set (see the module docstring).

    ``entities`` (the profile's) are reported with ``last_sync`` null until
    first read; ``clock`` and ``client_factory`` are for tests.
    """

    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        secret_store: SecretStore,
        outbox: Outbox,
        *,
        interval_seconds: float = 60.0,
        client_factory: Callable[[], CloudClient] | None = None,
        entities: Sequence[str] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.agent_id = settings.cloud.agent_id
        self.store = store
        self.outbox = outbox
        self.interval_seconds = interval_seconds
        self.entities = tuple(entities)
        self._clock = clock
        self._client_factory = client_factory or (lambda: CloudClient(settings.cloud, secret_store))

    def __call__(self, stop: threading.Event) -> None:
        try:
            client = self._client_factory()
        except BridgeError as exc:
            record_health(self.store, Health.from_error(COMPONENT, exc))
            raise  # the supervisor retries with backoff
        backoff = Backoff(base=1.0, cap=60.0)
        with client:
            while not stop.is_set():
                delay = self.beat(client, backoff)
                stop.wait(delay)

    def beat(self, client: CloudClient, backoff: Backoff) -> float:
        """Send one heartbeat and record the outcome; returns the wait before the next."""
        heartbeat = self.build()
        try:
            ack = client.heartbeat(heartbeat)
        except CloudError as exc:
            record_health(self.store, Health.from_error(COMPONENT, exc))
            if exc.retryable:
                delay = min(backoff.next(), self.interval_seconds)
                if isinstance(exc, CloudUnavailableError) and exc.retry_after is not None:
                    delay = max(delay, exc.retry_after)
            else:
                delay = self.interval_seconds
            log.warning(
                "heartbeat not delivered; will retry",
                extra={"kind": exc.kind.value, "status": exc.status, "retry_in_s": round(delay, 1)},
            )
            return delay
        backoff.reset()
        skew = (ack.received_at - self._clock()).total_seconds()
        details = {"clock_skew_seconds": round(skew, 1), "errors_reported": len(heartbeat.errors)}
        if abs(skew) > SKEW_WARN_SECONDS:
            health = Health(
                COMPONENT,
                "warn",
                f"this computer's clock differs from the cloud's by {abs(skew) / 60:.0f} minutes",
                fix="Set the server's clock to synchronise with an internet time server.",
                details=details,
            )
        else:
            health = Health(
                COMPONENT,
                "ok",
                f"last heartbeat acknowledged at {self._clock():%H:%M:%S} UTC",
                details=details,
            )
        record_health(self.store, health)
        return self.interval_seconds

    def build(self) -> Heartbeat:
        """The heartbeat from local state, now."""
        now = self._clock()
        changes, size = self.outbox.depth()
        inbox = read_inbox_summary(self.store, limit=0)
        received = inbox.counts.get("received", 0)
        waiting = inbox.counts.get("waiting", 0)
        with self.store.read() as session:
            cursors = {
                entity: at
                for entity, at in session.execute(
                    select(SyncCursor.entity, SyncCursor.last_success_at)
                )
            }
            unhealthy = session.scalars(
                select(ComponentHealth)
                .where(ComponentHealth.status != "ok", ComponentHealth.component != COMPONENT)
                .order_by(ComponentHealth.component)
                .limit(MAX_ERRORS)
            ).all()
        last_sync: dict[str, datetime | None] = dict.fromkeys(self.entities)
        last_sync.update(cursors)
        return Heartbeat(
            agent_id=self.agent_id,
            version=__version__,
            queue_depths={
                "outbox": changes,
                "outbox_bytes": size,
                "inbox": received + waiting,
                "inbox_received": received,
                "inbox_waiting": waiting,
                "inbox_results_unposted": inbox.results_unposted,
            },
            last_sync=last_sync,
            lag_seconds={
                entity: round(max(0.0, (now - at).total_seconds()), 1)
                for entity, at in last_sync.items()
                if at is not None
            },
            errors=tuple(
                HeartbeatError(
                    component=row.component[:MAX_NAME],
                    message=row.message[:MAX_MESSAGE],
                    kind=(row.error_kind or row.status)[:MAX_NAME],
                )
                for row in unhealthy
            ),
        )
