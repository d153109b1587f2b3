"""Posting a batch that may be too large: split on 413, recursively.

:func:`post_changes_splitting` sends a batch with ``send`` (usually
``CloudClient.post_changes``, perhaps wrapped in
:func:`~bridge.cloud.retry.send_with_retry`). Contract:

* On :class:`~bridge.errors.BatchTooLargeError` the batch is split into two
  halves (first half the larger by at most one), which are sent in order,
  each split again if it too is refused, down to single changes.
* A half's ``batch_id`` is derived from its parent's id and the half's index
  (:func:`child_batch_id`), so rebuilding the same split after a crash
  reuses the same ids and the cloud's idempotency still holds. Halves keep
  the parent's ``agent_id`` and ``seq``.
* A single change that is still too large raises
  :class:`~bridge.errors.CloudRejectedError` (not retryable), naming the
  entity and batch, never the data.
* Returns the acknowledgements of the batches that landed, in order; every
  other error from ``send`` propagates unchanged (halves sent before it have
  landed and are idempotent, so resending the whole batch is safe).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from bridge.cloud.protocol import ChangeAck, ChangeBatch
from bridge.errors import BatchTooLargeError, CloudRejectedError

MAX_BATCH_ID = 128


def child_batch_id(parent: str, index: int) -> str:
    """``<parent>.<index>``; if that passes 128 characters, a hash of it
    (``s`` + 64 hex digits), still deterministic."""
    child = f"{parent}.{index}"
    if len(child) <= MAX_BATCH_ID:
        return child
    return "s" + hashlib.sha256(child.encode("utf-8")).hexdigest()


def split_batch(batch: ChangeBatch) -> tuple[ChangeBatch, ChangeBatch]:
    """The two halves of a batch of at least two changes."""
    if len(batch.changes) < 2:
        raise ValueError("a single change cannot be split")
    middle = (len(batch.changes) + 1) // 2
    parts = (batch.changes[:middle], batch.changes[middle:])
    first, second = (
        ChangeBatch(batch.agent_id, child_batch_id(batch.batch_id, i), batch.seq, part)
        for i, part in enumerate(parts)
    )
    return first, second


def post_changes_splitting(
    batch: ChangeBatch, send: Callable[[ChangeBatch], ChangeAck]
) -> list[ChangeAck]:
    """Send ``batch``, splitting on 413 (see the module contract)."""
    try:
        return [send(batch)]
    except BatchTooLargeError as exc:
        if len(batch.changes) == 1:
            change = batch.changes[0]
            raise CloudRejectedError(
                f"one '{change.entity}' change in batch {batch.batch_id} is too large for "
                "the cloud even on its own",
                status=413,
                code=exc.code,
            ) from exc
        acks: list[ChangeAck] = []
        for half in split_batch(batch):
            acks.extend(post_changes_splitting(half, send))
        return acks
