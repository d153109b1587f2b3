"""The inbox's durable record: table ``inbox_item`` and the cursor in ``meta``.

States of an item (column ``state``)::

    received --handled--> done --result posted--> done + result_posted_at
    waiting  (a known type with no handler in this engine: kept, not answered)

Contracts:

* **Receipt.** :func:`receive` stores every new item of a page *and* moves
  the cursor (``meta`` key ``inbox.cursor``) in one transaction: after a
  crash either both happened or neither (the cloud then delivers the page
  again). An item already stored is never stored or handled again; one
  whose result was posted but which the cloud delivers anew (the cloud lost
  the result) has its stored result posted again, never re-handled.
* **Attempts.** :func:`begin_attempt` counts an attempt durably *before* the
  handler runs, so a crash mid-handling shows as ``attempts`` above 1.
* **Order.** Items are handled in the order they were received (rowid).

All functions take the :class:`~bridge.state.StateStore` and are safe from
any thread (writes go through its one-writer lock).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Integer, literal_column, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnClause

from bridge.cloud.protocol import Alternative, InboxPage, InboxResult, Reason
from bridge.inbox.handlers import KNOWN_TYPES, ReceivedItem
from bridge.state import StateStore
from bridge.state.models import InboxItem, MetaValue

CURSOR_KEY = "inbox.cursor"
RECEIVED = "received"
WAITING = "waiting"
DONE = "done"
PROVISIONAL = frozenset({"held", "needs_review", "conflict"})
"""Result statuses the front desk may still replace (Cloud API v1)."""
_ROWID: ColumnClause[int] = literal_column("inbox_item.rowid", Integer)


def _now() -> datetime:
    return datetime.now(UTC)


def read_cursor(store: StateStore) -> str | None:
    with store.read() as session:
        row = session.get(MetaValue, CURSOR_KEY)
        return row.value if row is not None else None


def forget_cursor(store: StateStore) -> None:
    """Drop the cursor (the cloud did not recognise it); stored ids keep items from repeating."""
    with store.write() as session:
        row = session.get(MetaValue, CURSOR_KEY)
        if row is not None:
            session.delete(row)


def receive(store: StateStore, page: InboxPage, handled_types: Collection[str]) -> int:
    """Store the page's new items and its cursor in one transaction; returns how many were new."""
    now = _now()
    new = 0
    with store.write() as session:
        for item in page.items:
            row = session.get(InboxItem, item.id)
            if row is not None:
                if row.state == DONE and row.result_posted_at is not None:
                    row.result_posted_at = None  # the cloud lost our result: post it again
                    row.updated_at = now
                continue
            waits = item.type in KNOWN_TYPES and item.type not in handled_types
            session.add(
                InboxItem(
                    id=item.id,
                    type=item.type,
                    payload=json.dumps(dict(item.payload), ensure_ascii=False),
                    created_at=item.created_at.isoformat(),
                    received_at=now,
                    state=WAITING if waits else RECEIVED,
                    attempts=0,
                    updated_at=now,
                )
            )
            session.flush()  # rowid order is receipt order
            new += 1
        cursor = session.get(MetaValue, CURSOR_KEY)
        if cursor is None:
            session.add(MetaValue(key=CURSOR_KEY, value=page.cursor))
        else:
            cursor.value = page.cursor
    return new


def release_waiting(store: StateStore, handled_types: Collection[str]) -> int:
    """Waiting items whose type now has a handler go back to ``received``."""
    now = _now()
    with store.write() as session:
        rows = session.scalars(
            select(InboxItem).where(
                InboxItem.state == WAITING, InboxItem.type.in_(list(handled_types))
            )
        ).all()
        for row in rows:
            row.state = RECEIVED
            row.updated_at = now
        return len(rows)


def wait_for_handler(store: StateStore, item_id: str) -> None:
    """Put a ``received`` item back to ``waiting`` (its handler is not in this engine)."""
    with store.write() as session:
        row = session.get(InboxItem, item_id)
        if row is not None and row.state == RECEIVED:
            row.state = WAITING
            row.updated_at = _now()


def received_ids(store: StateStore) -> list[str]:
    with store.read() as session:
        return list(
            session.scalars(
                select(InboxItem.id).where(InboxItem.state == RECEIVED).order_by(_ROWID)
            )
        )


def begin_attempt(store: StateStore, item_id: str) -> tuple[ReceivedItem, bool] | None:
    """Count one more attempt (durably) and return the item, and whether its
    stored payload is a JSON object (if not, the item comes with an empty
    payload); None if the item is not ``received``."""
    with store.write() as session:
        row = session.get(InboxItem, item_id)
        if row is None or row.state != RECEIVED:
            return None
        row.attempts += 1
        row.updated_at = _now()
        payload = _load_payload(row.payload)
        is_object = isinstance(payload, dict)
        item = ReceivedItem(
            id=row.id,
            type=row.type,
            created_at=row.created_at,
            payload=payload if is_object else {},
            attempt=row.attempts,
        )
        return item, is_object


def _load_payload(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def finish(store: StateStore, item_id: str, result: InboxResult) -> None:
    """Store the item's result (state ``done``); it is then posted, never recomputed."""
    with store.write() as session:
        row = session.get(InboxItem, item_id)
        if row is None:
            return
        if row.state == DONE and row.result is not None:
            return  # the front desk decided while the handler was finishing: keep that
        row.state = DONE
        row.result = json.dumps(result.to_json(), ensure_ascii=False)
        row.updated_at = _now()


def unposted(store: StateStore) -> list[tuple[str, InboxResult]]:
    """Done items whose result the cloud has not acknowledged, oldest first."""
    with store.read() as session:
        rows = session.execute(
            select(InboxItem.id, InboxItem.result)
            .where(
                InboxItem.state == DONE,
                InboxItem.result_posted_at.is_(None),
                InboxItem.result.is_not(None),
            )
            .order_by(_ROWID)
        ).all()
    return [(i, result_from_json(json.loads(text))) for i, text in rows if text is not None]


def mark_posted(store: StateStore, item_id: str) -> None:
    with store.write() as session:
        row = session.get(InboxItem, item_id)
        if row is not None:
            row.result_posted_at = row.updated_at = _now()


def result_from_json(obj: dict[str, Any]) -> InboxResult:
    """The stored result back as the wire model (it was written by ``to_json``)."""
    reason = obj.get("reason")
    return InboxResult(
        status=obj["status"],
        pms_ids=dict(obj.get("pms_ids") or {}),
        alternatives=tuple(
            Alternative(
                start=datetime.fromisoformat(a["start"]),
                end=datetime.fromisoformat(a["end"]),
                provider_id=a["provider_id"],
                operatory_id=a["operatory_id"],
            )
            for a in obj.get("alternatives") or ()
        ),
        reason=Reason(reason["code"], reason["message"]) if reason else None,
    )


def supersede(store: StateStore, item_id: str, result: InboxResult) -> bool:
    """Replace a provisional result (``held``, ``needs_review``, ``conflict``) with the
    front desk's decision; the inbox loop then posts it. False when the item is unknown
    or its stored result is final (``confirmed``, ``rejected``)."""
    with store.write() as session:
        return supersede_in(session, item_id, result)


def supersede_in(session: Session, item_id: str, result: InboxResult) -> bool:
    """:func:`supersede` inside the caller's write transaction."""
    row = session.get(InboxItem, item_id)
    if row is None:
        return False
    if row.result is not None and json.loads(row.result).get("status") not in PROVISIONAL:
        return False
    row.state = DONE
    row.result = json.dumps(result.to_json(), ensure_ascii=False)
    row.result_posted_at = None
    row.updated_at = _now()
    return True
