"""Change batches, the mirror, the change log and heartbeats.

Idempotency: :meth:`ChangeStore.apply_batch` runs in one write transaction
that first looks the ``(agent_id, batch_id)`` up. A batch already recorded is
answered with its original counts and ``duplicate=True`` and applies nothing;
since SQLite admits one writer at a time, two racing copies of a batch are
serialised and the second sees the first (the primary key is the backstop).
The same batch id with a different body is a 409.

Ordering: within a batch, changes apply in list order (the mirror's versions
of the batch's keys are read once, then kept up to date as the batch's
changes are decided, and the rows are written with ``executemany``). A change updates the
mirror row of its ``(agent_id, entity, key)`` only when its version is
greater in the shortlex order of
:func:`~sandbox.cloud.validation.version_key`; otherwise it is ``stale``.
Every change, applied or stale, is appended to the change log with its batch
and arrival time, so tests can prove what was applied, once, in which order.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

import orjson

from sandbox.cloud.db import Database
from sandbox.cloud.models import (
    BatchRecord,
    HeartbeatRecord,
    JsonObject,
    LogEntry,
    MirrorRow,
    Outcome,
)
from sandbox.cloud.validation import ChangeBatch, version_key
from sandbox.cloud.wire import ApiError

Clock = Callable[[], str]
_IN_CHUNK = 500  # keys per IN (...) list
_UPSERT_MIRROR = (
    "INSERT INTO mirror (agent_id, entity, key, version, observed_at, data, deleted,"
    " batch_id, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (agent_id, entity, key) DO UPDATE SET version = excluded.version,"
    " observed_at = excluded.observed_at, data = excluded.data,"
    " deleted = excluded.deleted, batch_id = excluded.batch_id,"
    " updated_at = excluded.updated_at"
)
_INSERT_LOG = (
    "INSERT INTO change_log (agent_id, batch_id, seq, position, entity, key, op,"
    " version, observed_at, data, outcome, received_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class ChangeStore:
    """Thread-safe; every method is one transaction."""

    def __init__(self, db: Database, now: Clock) -> None:
        self._db = db
        self._now = now

    def apply_batch(
        self, batch: ChangeBatch, *, body_sha256: str, body_bytes: int
    ) -> tuple[BatchRecord, bool]:
        """Record and apply ``batch`` once; returns its record and whether it was a duplicate."""
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT * FROM batches WHERE agent_id = ? AND batch_id = ?",
                (batch.agent_id, batch.batch_id),
            ).fetchone()
            if row is not None:
                return self._duplicate(conn, batch, row, body_sha256), True
            received_at = self._now()
            latest = self._versions(conn, batch)
            mirror_rows: list[tuple[object, ...]] = []
            log_rows: list[tuple[object, ...]] = []
            applied = 0
            for position, change in enumerate(batch.changes):
                slot = (change.entity, change.key)
                current = latest.get(slot)
                data = _dump(change.data)
                if current is not None and version_key(change.version) <= version_key(current):
                    outcome: Outcome = "stale"
                else:
                    outcome = "applied"
                    applied += 1
                    latest[slot] = change.version
                    mirror_rows.append(
                        (
                            batch.agent_id,
                            change.entity,
                            change.key,
                            change.version,
                            change.observed_at,
                            data if change.op == "upsert" else None,
                            int(change.op == "delete"),
                            batch.batch_id,
                            received_at,
                        )
                    )
                log_rows.append(
                    (
                        batch.agent_id,
                        batch.batch_id,
                        batch.seq,
                        position,
                        change.entity,
                        change.key,
                        change.op,
                        change.version,
                        change.observed_at,
                        data,
                        outcome,
                        received_at,
                    )
                )
            conn.executemany(_UPSERT_MIRROR, mirror_rows)
            conn.executemany(_INSERT_LOG, log_rows)
            record = BatchRecord(
                agent_id=batch.agent_id,
                batch_id=batch.batch_id,
                seq=batch.seq,
                received_at=received_at,
                changes=len(batch.changes),
                applied=applied,
                stale=len(batch.changes) - applied,
                body_bytes=body_bytes,
                duplicates=0,
            )
            conn.execute(
                "INSERT INTO batches (agent_id, batch_id, seq, body_sha256, received_at, changes,"
                " applied, stale, body_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.agent_id,
                    record.batch_id,
                    record.seq,
                    body_sha256,
                    record.received_at,
                    record.changes,
                    record.applied,
                    record.stale,
                    record.body_bytes,
                ),
            )
        return record, False

    def _duplicate(
        self, conn: sqlite3.Connection, batch: ChangeBatch, row: Any, body_sha256: str
    ) -> BatchRecord:
        record = _batch(row)
        if row["body_sha256"] != body_sha256:
            raise ApiError(
                409,
                "idempotency_key_reused",
                f"batch_id: {batch.batch_id!r} was already used for a different batch",
                field="batch_id",
            )
        conn.execute(
            "UPDATE batches SET duplicates = duplicates + 1 WHERE agent_id = ? AND batch_id = ?",
            (batch.agent_id, batch.batch_id),
        )
        return record

    @staticmethod
    def _versions(conn: sqlite3.Connection, batch: ChangeBatch) -> dict[tuple[str, str], str]:
        """(entity, key) -> the mirror's version, for the keys ``batch`` touches."""
        wanted: dict[str, set[str]] = {}
        for change in batch.changes:
            wanted.setdefault(change.entity, set()).add(change.key)
        found: dict[tuple[str, str], str] = {}
        for entity, keys in wanted.items():
            ordered = sorted(keys)
            for start in range(0, len(ordered), _IN_CHUNK):
                part = ordered[start : start + _IN_CHUNK]
                marks = ", ".join("?" * len(part))
                rows = conn.execute(
                    "SELECT key, version FROM mirror WHERE agent_id = ? AND entity = ?"
                    f" AND key IN ({marks})",
                    (batch.agent_id, entity, *part),
                )
                found.update(((entity, key), version) for key, version in rows)
        return found

    def mirror(self, agent_id: str, entity: str) -> dict[str, MirrorRow]:
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT * FROM mirror WHERE agent_id = ? AND entity = ? ORDER BY key",
                (agent_id, entity),
            ).fetchall()
        return {row["key"]: _mirror_row(row) for row in rows}

    def set_mirror_row(self, agent_id: str, entity: str, key: str, data: JsonObject) -> MirrorRow:
        """Tamper (tests): give a mirror row other data, or add a phantom row,
        behind the change log's back. An existing row keeps its version (and
        comes back to life if it was a tombstone); a new row gets version ``0``,
        older than any the agent sends."""
        now = self._now()
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO mirror (agent_id, entity, key, version, observed_at, data, deleted,"
                " batch_id, updated_at) VALUES (?, ?, ?, '0', ?, ?, 0, 'admin', ?)"
                " ON CONFLICT (agent_id, entity, key) DO UPDATE SET data = excluded.data,"
                " deleted = 0, updated_at = excluded.updated_at",
                (agent_id, entity, key, now, _dump(data), now),
            )
        return self.mirror_row(agent_id, entity, key)

    def drop_mirror_row(self, agent_id: str, entity: str, key: str) -> bool:
        """Tamper (tests): forget a mirror row entirely (no tombstone), as if the
        cloud had lost it. True if there was one."""
        with self._db.write() as conn:
            cursor = conn.execute(
                "DELETE FROM mirror WHERE agent_id = ? AND entity = ? AND key = ?",
                (agent_id, entity, key),
            )
            return cursor.rowcount > 0

    def mirror_row(self, agent_id: str, entity: str, key: str) -> MirrorRow:
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT * FROM mirror WHERE agent_id = ? AND entity = ? AND key = ?",
                (agent_id, entity, key),
            ).fetchone()
        return _mirror_row(row)

    def change_log(self, **filters: str | None) -> list[LogEntry]:
        """The log in arrival order, filtered by ``agent_id``, ``entity``, ``key``, ``batch_id``."""
        where, args = _where(filters)
        with self._db.read() as conn:
            rows = conn.execute(f"SELECT * FROM change_log{where} ORDER BY id", args).fetchall()
        return [
            LogEntry(**{**dict(row), "data": _load(row["data"])})  # columns are the fields
            for row in rows
        ]

    def batches(self, agent_id: str | None) -> list[BatchRecord]:
        where, args = _where({"agent_id": agent_id})
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT * FROM batches{where} ORDER BY received_at, seq", args
            ).fetchall()
        return [_batch(row) for row in rows]

    def record_heartbeat(self, agent_id: str, body: JsonObject) -> HeartbeatRecord:
        record = HeartbeatRecord(agent_id=agent_id, received_at=self._now(), body=body)
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO heartbeats (agent_id, received_at, body) VALUES (?, ?, ?)",
                (agent_id, record.received_at, json.dumps(body)),
            )
        return record

    def heartbeats(self, agent_id: str, *, latest: bool = False) -> list[HeartbeatRecord]:
        """The agent's heartbeats, oldest first (only the newest with ``latest``)."""
        query = "SELECT * FROM heartbeats WHERE agent_id = ? ORDER BY id"
        if latest:
            query = "SELECT * FROM heartbeats WHERE agent_id = ? ORDER BY id DESC LIMIT 1"
        with self._db.read() as conn:
            rows = conn.execute(query, (agent_id,)).fetchall()
        return [
            HeartbeatRecord(row["agent_id"], row["received_at"], json.loads(row["body"]))
            for row in rows
        ]

    def totals(self) -> dict[str, int]:
        """Counts for :class:`~sandbox.cloud.models.Stats`, from the database."""
        with self._db.read() as conn:
            batches = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(duplicates), 0), COALESCE(SUM(changes), 0),"
                " COALESCE(SUM(applied), 0), COALESCE(SUM(stale), 0),"
                " COALESCE(SUM(body_bytes), 0) FROM batches"
            ).fetchone()
            inbox = conn.execute(
                "SELECT COUNT(*), COUNT(*) - COUNT(r.item_id) FROM inbox"
                " LEFT JOIN results r ON r.item_id = inbox.id"
            ).fetchone()
            results = conn.execute("SELECT COUNT(*) FROM results").fetchone()
            files = conn.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM files").fetchone()
            heartbeats = conn.execute("SELECT COUNT(*) FROM heartbeats").fetchone()
        return {
            "batches": batches[0],
            "duplicate_batches": batches[1],
            "changes_received": batches[2],
            "changes_applied": batches[3],
            "changes_stale": batches[4],
            "batch_bytes": batches[5],
            "inbox_items": inbox[0],
            "inbox_pending": inbox[1],
            "results": results[0],
            "files": files[0],
            "file_bytes": files[1],
            "heartbeats": heartbeats[0],
        }


def _mirror_row(row: Any) -> MirrorRow:
    return MirrorRow(
        key=row["key"],
        data=_load(row["data"]),
        version=row["version"],
        deleted=bool(row["deleted"]),
        observed_at=row["observed_at"],
        batch_id=row["batch_id"],
        updated_at=row["updated_at"],
    )


def _batch(row: Any) -> BatchRecord:
    return BatchRecord(
        agent_id=row["agent_id"],
        batch_id=row["batch_id"],
        seq=row["seq"],
        received_at=row["received_at"],
        changes=row["changes"],
        applied=row["applied"],
        stale=row["stale"],
        body_bytes=row["body_bytes"],
        duplicates=row["duplicates"],
    )


def _where(filters: dict[str, str | None]) -> tuple[str, list[str]]:
    allowed = ("agent_id", "entity", "key", "batch_id")
    unknown = set(filters) - set(allowed)
    if unknown:
        raise ValueError(f"unknown filter: {', '.join(sorted(unknown))}")
    used = [(name, value) for name, value in filters.items() if value is not None]
    if not used:
        return "", []
    return " WHERE " + " AND ".join(f"{name} = ?" for name, _ in used), [v for _, v in used]


def _dump(data: JsonObject | None) -> str | None:
    return None if data is None else orjson.dumps(data).decode("utf-8")


def _load(text: str | None) -> JsonObject | None:
    return None if text is None else dict(json.loads(text))
