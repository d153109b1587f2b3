"""The inbox: commands waiting for an agent, the long-poll, and their results.

Items are numbered by an ever-increasing ``seq`` (SQLite AUTOINCREMENT, kept
across resets and restarts). A cursor is ``<instance>.<seq>``: opaque to
agents, it names the last item a page returned, in this database. A poll
returns the items after the cursor that have no result yet; without a cursor
(or with one from another database) every item without a result. So an item
stays deliverable until its result arrives, while the cursor moves on.

Long-poll: :meth:`Inbox.poll` waits on a :class:`threading.Condition` that
:meth:`Inbox.enqueue` notifies after its commit; a generation counter read
before each query closes the gap between "found nothing" and "wait", so no
wake-up is missed. :meth:`Inbox.wake_all` releases every waiter (at stop).

Results are idempotent per item: the same result again is acknowledged as a
duplicate, a different one is 409; both checks run in one write transaction.
The one exception is a *provisional* result (``held``, ``needs_review``,
``conflict``: the front desk may still decide): a different result replaces
it, and the replaced body is kept in ``result_history``. A final result
(``confirmed``, ``rejected``) never changes.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from sandbox.cloud.db import Database
from sandbox.cloud.models import InboxRecord, JsonObject, ResultRecord
from sandbox.cloud.validation import CODE, ID
from sandbox.cloud.wire import ApiError, canonical_sha256

PROVISIONAL = frozenset({"held", "needs_review", "conflict"})
"""Result statuses the front desk may still turn into another result."""


class Inbox:
    """Thread-safe."""

    def __init__(self, db: Database, now: Callable[[], str]) -> None:
        self._db = db
        self._now = now
        self._changed = threading.Condition()
        self._generation = 0

    def enqueue(
        self, agent_id: str, type: str, payload: Mapping[str, Any], item_id: str | None = None
    ) -> InboxRecord:
        """Add an item for ``agent_id`` and wake its long-polls.

        ``ValueError`` for a type or id the contract does not allow, or a taken id.
        """
        if not isinstance(type, str) or not CODE.fullmatch(type):
            raise ValueError(f"type: must match {CODE.pattern}")
        if not isinstance(payload, Mapping):
            raise ValueError("payload: must be an object")
        item_id = item_id or f"itm_{secrets.token_hex(8)}"
        if not isinstance(item_id, str) or not ID.fullmatch(item_id):
            raise ValueError(f"id: must match {ID.pattern}")
        created_at = self._now()
        try:
            with self._db.write() as conn:
                cursor = conn.execute(
                    "INSERT INTO inbox (id, agent_id, type, payload, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (item_id, agent_id, type, json.dumps(dict(payload)), created_at),
                )
                seq = cursor.lastrowid
        except sqlite3.IntegrityError:
            raise ValueError(f"id: {item_id!r} is taken") from None
        self.wake_all()
        assert seq is not None
        return InboxRecord(item_id, seq, agent_id, type, dict(payload), created_at, 0, False)

    def wake_all(self) -> None:
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def poll(
        self,
        agent_id: str,
        after: str | None,
        *,
        wait: float,
        limit: int,
        stopping: threading.Event,
    ) -> tuple[list[InboxRecord], str, bool]:
        """Items after the cursor without a result, oldest first, the next cursor and
        whether ``limit`` cut the page short; waits up to ``wait`` s for the first item."""
        after_seq = self.cursor_seq(after)
        deadline = time.monotonic() + wait
        while True:
            with self._changed:
                generation = self._generation
            rows = self._deliverable(agent_id, after_seq, limit + 1)
            remaining = deadline - time.monotonic()
            if rows or remaining <= 0 or stopping.is_set():
                break
            with self._changed:
                if self._generation == generation:
                    self._changed.wait(remaining)
        more = len(rows) > limit
        rows = rows[:limit]
        items = self._mark_delivered(rows)
        last = items[-1].seq if items else after_seq
        return items, f"{self._db.instance_id}.{last}", more

    def cursor_seq(self, cursor: str | None) -> int:
        """The seq a cursor names; 0 for none or another database's; 400 if unreadable."""
        if cursor is None:
            return 0
        instance, _, seq = cursor.rpartition(".")
        if not instance or not seq.isdigit() or not seq.isascii():
            raise ApiError(
                400, "invalid_cursor", "after: not a cursor from this cloud", field="after"
            )
        return int(seq) if instance == self._db.instance_id else 0

    def _deliverable(self, agent_id: str, after_seq: int, limit: int) -> list[Any]:
        with self._db.read() as conn:
            return conn.execute(
                "SELECT * FROM inbox WHERE agent_id = ? AND seq > ?"
                " AND NOT EXISTS (SELECT 1 FROM results r WHERE r.item_id = inbox.id)"
                " ORDER BY seq LIMIT ?",
                (agent_id, after_seq, limit),
            ).fetchall()

    def _mark_delivered(self, rows: list[Any]) -> list[InboxRecord]:
        if not rows:
            return []
        with self._db.write() as conn:
            conn.executemany(
                "UPDATE inbox SET deliveries = deliveries + 1 WHERE seq = ?",
                [(row["seq"],) for row in rows],
            )
            fresh = conn.execute(
                f"SELECT * FROM inbox WHERE seq IN ({','.join('?' * len(rows))}) ORDER BY seq",
                [row["seq"] for row in rows],
            ).fetchall()
        return [_item(row, resulted=False) for row in fresh]

    def record_result(
        self, agent_id: str, item_id: str, result: JsonObject
    ) -> tuple[ResultRecord, bool]:
        """Record ``result`` for the item once; returns the record and whether it was a repeat."""
        body_sha256 = canonical_sha256(result)
        with self._db.write() as conn:
            item = conn.execute(
                "SELECT 1 FROM inbox WHERE id = ? AND agent_id = ?", (item_id, agent_id)
            ).fetchone()
            if item is None:
                raise ApiError(404, "not_found", f"id: no inbox item {item_id!r}", field="id")
            row = conn.execute("SELECT * FROM results WHERE item_id = ?", (item_id,)).fetchone()
            if (
                row is not None
                and row["body_sha256"] != body_sha256
                and (row["status"] in PROVISIONAL)
            ):
                conn.execute(
                    "INSERT INTO result_history (item_id, body, received_at) VALUES (?, ?, ?)",
                    (item_id, row["body"], row["received_at"]),
                )
                conn.execute("DELETE FROM results WHERE item_id = ?", (item_id,))
                row = None
            if row is not None:
                if row["body_sha256"] != body_sha256:
                    raise ApiError(
                        409,
                        "result_conflict",
                        f"id: item {item_id!r} already has a different result",
                        field="id",
                    )
                conn.execute(
                    "UPDATE results SET repeats = repeats + 1 WHERE item_id = ?", (item_id,)
                )
                return _result(row), True
            record = ResultRecord(item_id, agent_id, result["status"], result, self._now(), 0)
            conn.execute(
                "INSERT INTO results (item_id, agent_id, status, body, body_sha256, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    item_id,
                    agent_id,
                    record.status,
                    json.dumps(result),
                    body_sha256,
                    record.received_at,
                ),
            )
        return record, False

    def items(self, agent_id: str | None) -> list[InboxRecord]:
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT inbox.*, r.item_id IS NOT NULL AS resulted FROM inbox"
                " LEFT JOIN results r ON r.item_id = inbox.id"
                " WHERE ? IS NULL OR inbox.agent_id = ? ORDER BY seq",
                (agent_id, agent_id),
            ).fetchall()
        return [_item(row, resulted=bool(row["resulted"])) for row in rows]

    def results(self, agent_id: str | None) -> list[ResultRecord]:
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT results.* FROM results JOIN inbox ON inbox.id = results.item_id"
                " WHERE ? IS NULL OR results.agent_id = ? ORDER BY inbox.seq",
                (agent_id, agent_id),
            ).fetchall()
        return [_result(row) for row in rows]


def _item(row: Any, *, resulted: bool) -> InboxRecord:
    return InboxRecord(
        id=row["id"],
        seq=row["seq"],
        agent_id=row["agent_id"],
        type=row["type"],
        payload=json.loads(row["payload"]),
        created_at=row["created_at"],
        deliveries=row["deliveries"],
        resulted=resulted,
    )


def _result(row: Any) -> ResultRecord:
    return ResultRecord(
        id=row["item_id"],
        agent_id=row["agent_id"],
        status=row["status"],
        result=json.loads(row["body"]),
        received_at=row["received_at"],
        repeats=row["repeats"],
    )
