"""The durable outbox between change detection and the uplink.

Contracts:

* **Same transaction.** :meth:`Outbox.stage` and :meth:`Outbox.stage_delete`
  write into the caller's session; the detector moves its watermark in that
  same session, so a crash either keeps both or neither.
* **Nothing unchanged is sent.** A record whose content hash equals the last
  staged hash for its key is dropped (overlap windows re-read rows freely).
* **Per-key order.** Each staged change gets a version larger than any
  earlier version of its key (milliseconds since the epoch, bumped past the
  previous one, zero-padded so string order is numeric order); a newer
  change to a key whose older change is still unbatched replaces it.
* **Deterministic batches.** :meth:`next_batch` first returns any batch that
  was formed but not acknowledged, rebuilt exactly (same id, same changes);
  only then does it form a new one from the oldest changes. A batch id is a
  hash of the agent id and the batch's sequence numbers, so the same rows
  always make the same id. :meth:`split` (after HTTP 413) gives the halves
  ids derived from the parent id.
* **Never a silent drop.** Past ``max_bytes`` of pending changes, staging
  raises :class:`OutboxFullError` and writes nothing: the caller keeps its
  watermark and reports the alert; reading resumes once the cloud drains it.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from bridge.errors import StateError
from bridge.state import StateStore
from bridge.state.models import OutboxChange, RowState
from bridge.sync.records import Record

VERSION_DIGITS = 16
LIVE = 0  # changes found by delta detection: sent before any bulk backlog
BULK = 1  # first-sync and reconciliation rows: sent when nothing live waits
ROOM_RECHECK_SECONDS = 30.0
DEFAULT_MAX_BYTES = 512 * 1024**2
_IN_CHUNK = 500  # keys per IN (...) list, well under SQLite's variable limit


class OutboxFullError(StateError):
    """The outbox holds more than its cap; reading pauses until it drains."""

    default_fix = (
        "The cloud is not accepting changes fast enough (or is unreachable); "
        "check the cloud connection. Nothing is lost: reading resumes once it drains."
    )


@dataclass(frozen=True)
class PendingChange:
    seq: int
    entity: str
    key: str
    op: str
    version: str
    observed_at: datetime
    data: dict[str, object] | None

    def to_wire(self) -> dict[str, object]:
        return {
            "entity": self.entity,
            "op": self.op,
            "key": self.key,
            "version": self.version,
            "observed_at": self.observed_at.isoformat(),
            "data": self.data,
        }


@dataclass(frozen=True)
class Batch:
    batch_id: str
    changes: tuple[PendingChange, ...]

    @property
    def seqs(self) -> tuple[int, ...]:
        return tuple(c.seq for c in self.changes)


@dataclass(frozen=True)
class StageResult:
    staged: int
    unchanged: int


def _batch_id(agent_id: str, seqs: Iterable[int]) -> str:
    text = agent_id + ":" + ",".join(str(s) for s in seqs)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class Outbox:
    def __init__(
        self,
        store: StateStore,
        agent_id: str,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.agent_id = agent_id
        self.max_bytes = max_bytes
        self._clock = clock
        self._room_lock = threading.Lock()
        self._used: int | None = None
        self._used_checked = 0.0

    # -- staging (inside the caller's transaction) ---------------------------

    def stage(
        self,
        session: Session,
        records: Iterable[Record],
        *,
        force: bool = False,
        lane: int = LIVE,
    ) -> StageResult:
        """Stage upserts; ``force`` stages even records whose hash equals the
        last staged one (reconciliation: the cloud's copy is known to differ).
        ``lane`` BULK puts them behind every LIVE change (first sync)."""
        self._check_room(session)
        by_entity: dict[str, dict[str, Record]] = {}
        for record in records:  # a later record of the same key wins
            by_entity.setdefault(record.entity, {})[record.key] = record
        staged = unchanged = 0
        for entity, latest in by_entity.items():
            states = self._states(session, entity, list(latest))
            fresh = []
            for key, record in latest.items():
                state = states.get(key)
                if not force and state is not None and not state[2] and state[0] == record.hash:
                    unchanged += 1
                else:
                    fresh.append((key, "upsert", dict(record.data), record.hash))
            self._put_many(session, entity, fresh, states, lane)
            staged += len(fresh)
        return StageResult(staged, unchanged)

    def stage_delete(
        self, session: Session, entity: str, keys: Iterable[str], *, force: bool = False
    ) -> int:
        """Stage deletes; ``force`` stages keys already recorded as deleted too
        (reconciliation: the cloud still has them)."""
        self._check_room(session)
        wanted = list(dict.fromkeys(keys))
        states = self._states(session, entity, wanted)
        gone = [
            (k, "delete", None, "") for k in wanted if force or not (k in states and states[k][2])
        ]
        self._put_many(session, entity, gone, states, LIVE)
        return len(gone)

    def _check_room(self, session: Session) -> None:
        # Summing the outbox on every call would scan a large first-sync
        # backlog each time; the figure is re-read every ROOM_RECHECK_SECONDS
        # and kept up to date in between by staging and acknowledging.
        now = time.monotonic()
        with self._room_lock:
            if self._used is None or now - self._used_checked > ROOM_RECHECK_SECONDS:
                self._used = int(
                    session.scalar(select(func.coalesce(func.sum(OutboxChange.size), 0))) or 0
                )
                self._used_checked = now
            used = self._used
        if used >= self.max_bytes:
            raise OutboxFullError(
                f"the outbox holds {used} bytes of unsent changes (cap {self.max_bytes})"
            )

    @staticmethod
    def _states(session: Session, entity: str, keys: list[str]) -> dict[str, tuple[str, str, bool]]:
        """key -> (hash, version, deleted) for the keys that have a state."""
        found: dict[str, tuple[str, str, bool]] = {}
        for start in range(0, len(keys), _IN_CHUNK):
            part = keys[start : start + _IN_CHUNK]
            rows = session.execute(
                select(RowState.key, RowState.hash, RowState.version, RowState.deleted).where(
                    RowState.entity == entity, RowState.key.in_(part)
                )
            )
            found.update({r.key: (r.hash, r.version, r.deleted) for r in rows})
        return found

    def _put_many(
        self,
        session: Session,
        entity: str,
        changes: Sequence[tuple[str, str, Mapping[str, object] | None, str]],
        states: dict[str, tuple[str, str, bool]],
        lane: int,
    ) -> None:
        if not changes:
            return
        now = self._clock()
        keys = [key for key, *_ in changes]
        for start in range(0, len(keys), _IN_CHUNK):
            session.execute(
                delete(OutboxChange).where(
                    OutboxChange.entity == entity,
                    OutboxChange.key.in_(keys[start : start + _IN_CHUNK]),
                    OutboxChange.batch_id.is_(None),
                )
            )
        outbox_rows: list[dict[str, object]] = []
        state_rows = []
        added = 0
        for key, op, data, content_hash in changes:
            previous = states.get(key)
            version = self._next_version(now, previous[1] if previous else None)
            payload = json.dumps(data, sort_keys=True, ensure_ascii=False)
            size = len(payload.encode()) + len(key) + 64
            added += size
            outbox_rows.append(
                {
                    "entity": entity,
                    "key": key,
                    "op": op,
                    "version": version,
                    "observed_at": now,
                    "payload": payload,
                    "size": size,
                    "lane": lane,
                }
            )
            state_rows.append(
                {
                    "entity": entity,
                    "key": key,
                    "hash": content_hash,
                    "version": version,
                    "deleted": op == "delete",
                }
            )
        session.execute(insert(OutboxChange), outbox_rows)
        with self._room_lock:
            if self._used is not None:
                self._used += added
        upsert = sqlite_insert(RowState)
        session.execute(
            upsert.on_conflict_do_update(
                index_elements=[RowState.entity, RowState.key],
                set_={
                    "hash": upsert.excluded.hash,
                    "version": upsert.excluded.version,
                    "deleted": upsert.excluded.deleted,
                },
            ),
            state_rows,
        )

    @staticmethod
    def _next_version(now: datetime, previous: str | None) -> str:
        millis = int(now.timestamp() * 1000)
        if previous is not None and previous.isdigit():
            millis = max(millis, int(previous) + 1)
        return f"{millis:0{VERSION_DIGITS}d}"

    # -- batching (the uplink's side) ----------------------------------------

    def next_batch(self, max_changes: int = 500, max_bytes: int = 1024**2) -> Batch | None:
        with self.store.write() as session:
            # by the batch_id index: formed batches are few, the backlog is not
            pending_id = session.scalar(
                select(OutboxChange.batch_id)
                .where(OutboxChange.batch_id.is_not(None))
                .group_by(OutboxChange.batch_id)
                .order_by(func.min(OutboxChange.seq))
                .limit(1)
            )
            if pending_id is not None:
                return self._load(session, pending_id)
            rows: Sequence[OutboxChange] = ()
            for lane in (LIVE, BULK):
                rows = session.scalars(
                    select(OutboxChange)
                    .where(OutboxChange.lane == lane, OutboxChange.batch_id.is_(None))
                    .order_by(OutboxChange.seq)
                    .limit(max_changes)
                ).all()
                if rows:
                    break
            chosen: list[OutboxChange] = []
            size = 0
            for row in rows:
                if chosen and size + row.size > max_bytes:
                    break
                chosen.append(row)
                size += row.size
            if not chosen:
                return None
            batch_id = _batch_id(self.agent_id, (r.seq for r in chosen))
            for row in chosen:
                row.batch_id = batch_id
            session.flush()
            return self._load(session, batch_id)

    def split(self, batch: Batch) -> tuple[Batch, Batch]:
        """Split a batch the cloud refused as too large (413) into halves."""
        if len(batch.changes) < 2:
            raise ValueError("a single change cannot be split")
        half = len(batch.changes) // 2
        parts = (batch.seqs[:half], batch.seqs[half:])
        ids = tuple(
            hashlib.sha256(f"{batch.batch_id}/{i}".encode()).hexdigest()[:32] for i in (0, 1)
        )
        with self.store.write() as session:
            for part, part_id in zip(parts, ids, strict=True):
                session.execute(
                    update(OutboxChange).where(OutboxChange.seq.in_(part)).values(batch_id=part_id)
                )
            session.flush()
            return self._load(session, ids[0]), self._load(session, ids[1])

    def acknowledge(self, batch_id: str) -> int:
        with self.store.write() as session:
            size = session.scalar(
                select(func.coalesce(func.sum(OutboxChange.size), 0)).where(
                    OutboxChange.batch_id == batch_id
                )
            )
            result = session.execute(delete(OutboxChange).where(OutboxChange.batch_id == batch_id))
        with self._room_lock:
            if self._used is not None:
                self._used = max(0, self._used - int(size or 0))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def depth(self) -> tuple[int, int]:
        """(changes, bytes) waiting for the cloud."""
        with self.store.read() as session:
            count, size = session.execute(
                select(func.count(), func.coalesce(func.sum(OutboxChange.size), 0))
            ).one()
        return int(count), int(size)

    @staticmethod
    def _load(session: Session, batch_id: str) -> Batch:
        rows = session.scalars(
            select(OutboxChange).where(OutboxChange.batch_id == batch_id).order_by(OutboxChange.seq)
        ).all()
        return Batch(
            batch_id,
            tuple(
                PendingChange(
                    r.seq, r.entity, r.key, r.op, r.version, r.observed_at, json.loads(r.payload)
                )
                for r in rows
            ),
        )
