"""The inbox loop: cloud commands in, results out (``GET /v1/inbox``, ``POST .../result``).

:class:`InboxLoop` is a supervised loop (:mod:`bridge.supervisor`). Each pass:

1. handles every stored ``received`` item, in receipt order
   (:mod:`bridge.inbox.records` keeps them; :mod:`bridge.inbox.handlers`
   says what a handler must do);
2. posts every stored result the cloud has not acknowledged;
3. long-polls the cloud for new items (``wait_seconds``) and stores them,
   with the cursor, in one transaction.

So a restart, after a crash anywhere, first finishes what was stored: an
item is handled once and its result posted until the cloud acknowledges it
(posting is idempotent per item; a failed post never re-runs the handler).

Outcomes an item can get without a handler acting:

* an unknown type: ``rejected`` / ``unsupported_type``;
* a payload that is not a JSON object or that the handler's ``validate``
  refuses: ``rejected`` / ``invalid_request`` with a message naming the field;
* a known type with no handler in this engine (bookings, until the write
  path exists): kept as ``waiting``, unanswered, shown in status; released
  to its handler when an engine that has one starts.

A handler that raises is retried on later passes (jittered backoff per
item); after ``max_attempts`` (also counting attempts a crash interrupted)
the item is answered ``needs_review`` (``pms_unavailable`` for PMS errors,
else ``processing_failed``), so one broken item never blocks the inbox.

Cloud failures are recorded as the ``inbox`` component's health; the loop
waits (never less than the cloud's Retry-After) and carries on. Stopping
takes up to ``wait_seconds``: a long-poll in flight is not interrupted.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial

from bridge.backoff import Backoff
from bridge.cloud.client import CloudClient
from bridge.cloud.protocol import InboxResult, Reason
from bridge.cloud.retry import retry_delay, send_with_retry
from bridge.config import Settings
from bridge.crashpoints import crashpoint
from bridge.errors import BridgeError, CloudError, CloudRejectedError, PmsError
from bridge.health import Health, record_health
from bridge.inbox import records
from bridge.inbox.handlers import KNOWN_TYPES, Handler, InvalidRequest, ReceivedItem, rejected
from bridge.inbox.summary import read_inbox_summary
from bridge.secrets import SecretStore
from bridge.state import StateStore

log = logging.getLogger(__name__)

COMPONENT = "inbox"
REFUSED_RETRY_SECONDS = 120.0
_SAFE_TYPE = re.compile(r"[a-z][a-z0-9_.]{0,39}")


class _Stopped(Exception):
    """The engine is stopping; abandon the current wait."""


class InboxLoop:
    """``loop(stop)`` runs until ``stop`` is set (see the module docstring).

    ``handlers`` maps item types to :class:`~bridge.inbox.handlers.Handler`;
    ``client_factory`` replaces the cloud client (tests).
    """

    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        secret_store: SecretStore,
        handlers: Mapping[str, Handler],
        *,
        client_factory: Callable[[], CloudClient] | None = None,
        wait_seconds: float = 25.0,
        max_attempts: int = 5,
        post_max_elapsed: float = 60.0,
    ) -> None:
        self.store = store
        self.handlers = dict(handlers)
        self.wait_seconds = wait_seconds
        self.max_attempts = max_attempts
        self.post_max_elapsed = post_max_elapsed
        self._client_factory = client_factory or (lambda: CloudClient(settings.cloud, secret_store))
        self._not_before: dict[str, float] = {}  # item id -> monotonic time (failed handler)
        self._item_backoff: dict[str, Backoff] = {}
        self._refused: dict[str, float] = {}  # item id -> monotonic time (result refused)

    def __call__(self, stop: threading.Event) -> None:
        try:
            client = self._client_factory()
        except BridgeError as exc:
            record_health(self.store, Health.from_error(COMPONENT, exc))
            raise  # the supervisor retries with backoff
        released = records.release_waiting(self.store, self.handlers)
        if released:
            log.info("waiting inbox items released to their handlers", extra={"items": released})
        backoff = Backoff(base=1.0, cap=60.0)
        with client:
            while not stop.is_set():
                try:
                    self._pass(client, stop)
                    backoff.reset()
                except _Stopped:
                    return
                except CloudRejectedError as exc:
                    if exc.code == "invalid_cursor":
                        log.warning("the cloud did not recognise the inbox cursor; starting over")
                        records.forget_cursor(self.store)
                        continue
                    self._cloud_failed(exc, stop, REFUSED_RETRY_SECONDS)
                except CloudError as exc:
                    delay = retry_delay(exc, backoff) if exc.retryable else REFUSED_RETRY_SECONDS
                    self._cloud_failed(exc, stop, delay)

    def _pass(self, client: CloudClient, stop: threading.Event) -> None:
        self._handle_received(stop)
        self._post_results(client, stop)
        if stop.is_set():
            raise _Stopped
        page = client.poll_inbox(after=records.read_cursor(self.store), wait=self.wait_seconds)
        new = records.receive(self.store, page, self.handlers)
        if new:
            crashpoint("inbox.received")
            log.info("inbox items received", extra={"items": new})
        self._report()

    def _cloud_failed(self, exc: CloudError, stop: threading.Event, delay: float) -> None:
        record_health(self.store, Health.from_error(COMPONENT, exc))
        log.warning(
            "inbox: cloud request failed; will retry",
            extra={"kind": exc.kind.value, "status": exc.status, "retry_in_s": round(delay, 1)},
        )
        stop.wait(delay)

    # -- handling ------------------------------------------------------------

    def _handle_received(self, stop: threading.Event) -> None:
        for item_id in records.received_ids(self.store):
            if stop.is_set():
                raise _Stopped
            if self._not_before.get(item_id, 0.0) > time.monotonic():
                continue
            started = records.begin_attempt(self.store, item_id)
            if started is None:
                continue
            item, is_object = started
            result = self._result_for(item, is_object)
            if result is None:
                continue
            records.finish(self.store, item.id, result)
            self._not_before.pop(item.id, None)
            self._item_backoff.pop(item.id, None)
            crashpoint("inbox.handled")
            log.info(
                "inbox item handled",
                extra={"item": item.id, "type": _safe_type(item.type), "status": result.status},
            )

    def _result_for(self, item: ReceivedItem, is_object: bool) -> InboxResult | None:
        """The item's result, or None to try again later."""
        handler = self.handlers.get(item.type)
        if handler is None:
            if item.type in KNOWN_TYPES:  # started before without its handler
                records.wait_for_handler(self.store, item.id)
                return None
            return rejected(
                "unsupported_type",
                f"item type {_safe_type(item.type)} is not supported by this bridge",
            )
        if not is_object:
            return rejected("invalid_request", "payload must be a JSON object")
        if item.attempt > self.max_attempts:  # earlier attempts died with the process
            return _review(
                "processing_failed",
                f"the bridge stopped {item.attempt - 1} times while processing this "
                f"{_safe_type(item.type)} item",
            )
        try:
            handler.validate(item.payload)
            return handler.handle(item)
        except InvalidRequest as exc:
            return rejected(exc.code, exc.message)
        except Exception as exc:  # a failing handler must not stop the inbox
            return self._handler_failed(item, exc)

    def _handler_failed(self, item: ReceivedItem, exc: Exception) -> InboxResult | None:
        code = "pms_unavailable" if isinstance(exc, PmsError) else "processing_failed"
        if item.attempt >= self.max_attempts:
            return _review(
                code,
                f"the bridge could not process this {_safe_type(item.type)} item in "
                f"{item.attempt} attempts ({type(exc).__name__})",
            )
        backoff = self._item_backoff.setdefault(item.id, Backoff(base=2.0, cap=300.0))
        delay = backoff.next()
        self._not_before[item.id] = time.monotonic() + delay
        message = exc.message if isinstance(exc, BridgeError) else type(exc).__name__
        log.warning(
            "inbox item failed; will retry",
            extra={"item": item.id, "error": type(exc).__name__, "retry_in_s": round(delay, 1)},
            exc_info=not isinstance(exc, BridgeError),
        )
        record_health(
            self.store,
            Health(
                COMPONENT,
                "warn",
                f"a {_safe_type(item.type)} item failed (attempt {item.attempt} of "
                f"{self.max_attempts}): {message}",
                fix=exc.fix if isinstance(exc, BridgeError) else "",
                error_kind=exc.kind.value if isinstance(exc, BridgeError) else None,
            ),
        )
        return None

    # -- results -------------------------------------------------------------

    def _post_results(self, client: CloudClient, stop: threading.Event) -> None:
        def sleep(seconds: float) -> None:
            if stop.wait(seconds):
                raise _Stopped

        for item_id, result in records.unposted(self.store):
            if stop.is_set():
                raise _Stopped
            if self._refused.get(item_id, 0.0) > time.monotonic():
                continue
            try:
                send_with_retry(
                    partial(client.post_result, item_id, result),
                    backoff=Backoff(base=1.0, cap=30.0),
                    sleep=sleep,
                    max_elapsed=self.post_max_elapsed,
                )
            except CloudRejectedError as exc:
                if exc.status in (404, 409):
                    # 404: the cloud no longer has the item; 409: it already holds a
                    # result for it. Either way nothing more can be delivered.
                    log.warning(
                        "the cloud will not take this inbox result; giving up on it",
                        extra={"item": item_id, "status": exc.status},
                    )
                    records.mark_posted(self.store, item_id)
                    continue
                self._refused[item_id] = time.monotonic() + REFUSED_RETRY_SECONDS
                log.warning(
                    "the cloud refused an inbox result; will retry",
                    extra={"item": item_id, "status": exc.status, "code": exc.code},
                )
                continue
            crashpoint("inbox.posted")
            records.mark_posted(self.store, item_id)
            self._refused.pop(item_id, None)

    # -- health --------------------------------------------------------------

    def _report(self) -> None:
        summary = read_inbox_summary(self.store, limit=0)
        details = {
            **{f"items_{state}": n for state, n in summary.counts.items()},
            "results_unposted": summary.results_unposted,
        }
        now = time.monotonic()
        refused = sum(1 for t in self._refused.values() if t > now)
        retrying = sum(1 for t in self._not_before.values() if t > now)
        waiting = summary.counts.get(records.WAITING, 0)
        if retrying:
            health = Health(
                COMPONENT,
                "warn",
                f"{retrying} request(s) from the cloud failed and will be tried again",
                fix="See the bridge log for the cause; the bridge retries by itself.",
                details=details,
            )
        elif refused:
            health = Health(
                COMPONENT,
                "warn",
                f"the cloud refused {refused} result(s); they are kept and sent again later",
                fix="Report this as a bug, with the support bundle.",
                details=details,
            )
        elif waiting:
            types = ", ".join(sorted({_safe_type(t) for t in summary.waiting_types}))
            health = Health(
                COMPONENT,
                "warn",
                f"{waiting} request(s) from the cloud are waiting ({types}): this bridge "
                "cannot carry them out yet",
                fix="Enter these requests in the PMS by hand, or update the bridge to a "
                "version that writes bookings; nothing is lost meanwhile.",
                details=details,
            )
        else:
            health = Health(
                COMPONENT,
                "ok",
                f"listening for cloud requests; last checked at {datetime.now(UTC):%H:%M:%S} UTC",
                details=details,
            )
        record_health(self.store, health)


def _review(code: str, what: str) -> InboxResult:
    return InboxResult(
        "needs_review", reason=Reason(code, f"{what}; it needs a person to look at it")
    )


def _safe_type(value: str) -> str:
    """An item type fit for messages and logs (a type is a code, but it is the cloud's)."""
    return value if _SAFE_TYPE.fullmatch(value) else "unrecognised"
