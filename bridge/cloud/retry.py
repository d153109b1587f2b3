"""Retrying one cloud call: Retry-After first, jittered exponential backoff otherwise.

:func:`send_with_retry` calls ``call()`` until it returns. Contract:

* A :class:`~bridge.errors.CloudError` with ``retryable`` False (auth, TLS,
  rejected, 413) is raised at once: only the caller can fix those.
* After a retryable error (5xx, 429, 503, connection lost) it sleeps, then
  calls again. The wait is the backoff's next full-jitter delay, but never
  less than the ``Retry-After`` the cloud sent (it never retries sooner than
  the server asked).
* With ``max_elapsed`` (seconds, measured with ``clock``), it gives up and
  re-raises the last retryable error when the next wait would end past it;
  without it, it keeps trying (the agent's outbox is durable, so waiting is
  always safe). Every write is idempotent, so resending is safe.
* The backoff is reset after a success. ``sleep`` and ``clock`` are
  injectable for tests; nothing else is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from bridge.backoff import Backoff
from bridge.errors import CloudError

T = TypeVar("T")


def retry_delay(error: CloudError, backoff: Backoff) -> float:
    """How long to wait after ``error``: the jittered backoff, at least Retry-After."""
    delay = backoff.next()
    retry_after = getattr(error, "retry_after", None)
    if isinstance(retry_after, int | float):
        delay = max(delay, float(retry_after))
    return delay


def send_with_retry(
    call: Callable[[], T],
    *,
    backoff: Backoff,
    sleep: Callable[[float], None] = time.sleep,
    max_elapsed: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``call()`` retried per the module contract."""
    started = clock()
    while True:
        try:
            result = call()
        except CloudError as exc:
            if not exc.retryable:
                raise
            delay = retry_delay(exc, backoff)
            if max_elapsed is not None and clock() - started + delay > max_elapsed:
                raise
            sleep(delay)
            continue
        backoff.reset()
        return result
