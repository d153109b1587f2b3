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
* **First-sync pages.** :meth:`Outbox.stage_pages` stores a first sync's
  records as pages (``outbox_page``): each page is one finished, gzipped
  ``POST /v1/changes`` body of up to ``page_changes`` records, built once
  in the detector's transaction (so a re-sent page is byte-for-byte the
  same, and keeps its batch id). One row and one compression per page
  instead of an ORM row, a JSON decode and a re-encode per record. Keys
  that already have a row state (a repeated first sync) go through
  :meth:`stage` instead, so unchanged rows are still dropped and versions
  still increase per key. Pages are sent after every live change and
  before the bulk rows; a live change to a key whose first-sync version
  still waits in a page goes to the bulk lane, so the cloud never gets a
  key's versions out of order; :meth:`wait_for_pages` lets the reader stay at most
  a few pages ahead of the cloud (backpressure), which keeps the outbox
  small and every statement on it cheap.
"""

from __future__ import annotations

import gzip
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
from bridge.state.models import OutboxChange, OutboxPage, RowState
from bridge.sync.records import Record

VERSION_DIGITS = 16
LIVE = 0  # changes found by delta detection: sent before any bulk backlog
BULK = 1  # first-sync and reconciliation rows: sent when nothing live waits
ROOM_RECHECK_SECONDS = 30.0
DEFAULT_MAX_BYTES = 512 * 1024**2
_IN_CHUNK = 500  # keys per IN (...) list, well under SQLite's variable limit
PAGE_CHANGES = 1_000  # records per first-sync page: the Cloud API's documented batch limit
PAGE_BYTES = 4 * 1024**2  # uncompressed body bytes per page, half the cloud's body limit
PAGES_AHEAD = 6  # pages a first sync may store ahead of the cloud's acknowledgements
PAGE_GZIP_LEVEL = 1  # pages are large and JSON compresses well even at level 1


# Plain DB-API executemany: SQLAlchemy's per-row parameter processing cost
# more than the insert itself for a first sync's millions of row states.
_UPSERT_STATES = (
    "INSERT INTO row_state (entity, key, hash, version, deleted) VALUES (?, ?, ?, ?, 0)"
    " ON CONFLICT (entity, key) DO UPDATE SET hash = excluded.hash,"
    " version = excluded.version, deleted = excluded.deleted"
)


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
class Page:
    """A stored first-sync page: the finished, gzip-compressed request body.

    The uplink sends ``body`` as it is; :attr:`changes` decodes it (tools,
    tests, and :meth:`Outbox.explode`)."""

    page_id: int
    batch_id: str
    entity: str
    count: int
    size: int  # uncompressed body bytes
    body: bytes

    @property
    def changes(self) -> tuple[PendingChange, ...]:
        decoded = json.loads(gzip.decompress(self.body))
        return tuple(
            PendingChange(
                self.page_id,
                c["entity"],
                c["key"],
                c["op"],
                c["version"],
                datetime.fromisoformat(c["observed_at"]),
                c["data"],
            )
            for c in decoded["changes"]
        )

    @property
    def seqs(self) -> tuple[int, ...]:
        return (self.page_id,)


@dataclass(frozen=True)
class StageResult:
    staged: int
    unchanged: int


def _payload(key: str, data: Mapping[str, object] | None) -> tuple[str, int]:
    """An outbox row's stored data and the bytes it counts against the cap."""
    payload = json.dumps(data, sort_keys=True, ensure_ascii=False)
    return payload, len(payload.encode()) + len(key) + 64


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
        self._acked = threading.Condition()

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

    def stage_pages(
        self,
        session: Session,
        records: Sequence[Record],
        *,
        page_changes: int = PAGE_CHANGES,
        page_bytes: int = PAGE_BYTES,
    ) -> StageResult:
        """Stage first-sync records (one entity, unique keys) as pages; see
        the module doc. Keys with a row state are staged by :meth:`stage`."""
        if not records:
            return StageResult(0, 0)
        self._check_room(session)
        entity = records[0].entity
        states = self._states(session, entity, [r.key for r in records])
        known = [r for r in records if r.key in states]
        fresh = [r for r in records if r.key not in states]
        result = self.stage(session, known, lane=BULK) if known else StageResult(0, 0)
        if not fresh:
            return result
        now = self._clock()
        version = self._next_version(now, None)
        head = '{"entity":' + json.dumps(entity) + ',"op":"upsert","key":'
        tail = ',"version":"' + version + '","observed_at":"' + now.isoformat() + '","data":'
        page: list[str] = []
        first = fresh[0].key
        size = 0
        for index, record in enumerate(fresh):
            line = head + json.dumps(record.key) + tail + record.canonical_text() + "}"
            if page and (len(page) >= page_changes or size + len(line) > page_bytes):
                self._put_page(session, entity, first, fresh[index - 1].key, page, version, now)
                page, size, first = [], 0, record.key
            page.append(line)
            size += len(line) + 1
        self._put_page(session, entity, first, fresh[-1].key, page, version, now)
        session.connection().exec_driver_sql(
            _UPSERT_STATES, [(entity, r.key, r.hash, version) for r in fresh]
        )
        return StageResult(result.staged + len(fresh), result.unchanged)

    def _put_page(
        self,
        session: Session,
        entity: str,
        first_key: str,
        last_key: str,
        lines: list[str],
        version: str,
        now: datetime,
    ) -> None:
        batch_id = hashlib.sha256(
            f"{self.agent_id}:page:{entity}:{first_key}:{last_key}:{version}".encode()
        ).hexdigest()[:32]
        page_id = session.execute(
            insert(OutboxPage)
            .values(
                batch_id=batch_id,
                entity=entity,
                first_key=first_key,
                last_key=last_key,
                changes=len(lines),
                size=0,
                body=b"",
                created_at=now,
            )
            .returning(OutboxPage.id)
        ).scalar_one()
        text = (
            '{"agent_id":'
            + json.dumps(self.agent_id)
            + ',"batch_id":"'
            + batch_id
            + '","seq":'
            + str(page_id)
            + ',"changes":['
            + ",".join(lines)
            + "]}"
        )
        raw = text.encode("utf-8")
        session.execute(
            update(OutboxPage)
            .where(OutboxPage.id == page_id)
            .values(size=len(raw), body=gzip.compress(raw, PAGE_GZIP_LEVEL, mtime=0))
        )
        with self._room_lock:
            if self._used is not None:
                self._used += len(raw)

    def wait_for_pages(self, limit: int = PAGES_AHEAD, timeout: float = 0.5) -> bool:
        """Block until fewer than ``limit`` pages wait for the cloud, at most
        ``timeout`` seconds; True if there is room now."""
        deadline = time.monotonic() + timeout
        with self._acked:
            while True:
                if self.pages_waiting() < limit:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._acked.wait(left)

    def pages_waiting(self) -> int:
        with self.store.read() as session:
            return int(session.scalar(select(func.count()).select_from(OutboxPage)) or 0)

    def _check_room(self, session: Session) -> None:
        # Summing the outbox on every call would scan a large first-sync
        # backlog each time; the figure is re-read every ROOM_RECHECK_SECONDS
        # and kept up to date in between by staging and acknowledging.
        now = time.monotonic()
        with self._room_lock:
            if self._used is None or now - self._used_checked > ROOM_RECHECK_SECONDS:
                self._used = int(
                    session.scalar(select(func.coalesce(func.sum(OutboxChange.size), 0))) or 0
                ) + int(session.scalar(select(func.coalesce(func.sum(OutboxPage.size), 0))) or 0)
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
        behind_pages = self._in_pending_pages(session, entity, keys) if lane == LIVE else set()
        outbox_rows: list[dict[str, object]] = []
        state_rows = []
        added = 0
        for key, op, data, content_hash in changes:
            previous = states.get(key)
            version = self._next_version(now, previous[1] if previous else None)
            payload, size = _payload(key, data)
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
                    # after the page that holds the key's older version (per-key order)
                    "lane": BULK if key in behind_pages else lane,
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
    def _in_pending_pages(session: Session, entity: str, keys: Sequence[str]) -> set[str]:
        """The keys whose first-sync version waits in a page not yet acknowledged.

        A newer change to such a key must reach the cloud after that page, so
        it waits in the bulk lane (sent after pages), not in the live lane
        (sent before them). Pages hold ascending key ranges; only the few
        pages of a running first sync exist at any time.
        """
        ranges = [
            (int(first), int(last))
            for first, last in session.execute(
                select(OutboxPage.first_key, OutboxPage.last_key).where(OutboxPage.entity == entity)
            )
            if first.isdigit() and last.isdigit()
        ]
        if not ranges:
            return set()
        return {
            key
            for key in keys
            if key.isdigit() and any(low <= int(key) <= high for low, high in ranges)
        }

    @staticmethod
    def _next_version(now: datetime, previous: str | None) -> str:
        millis = int(now.timestamp() * 1000)
        if previous is not None and previous.isdigit():
            millis = max(millis, int(previous) + 1)
        return f"{millis:0{VERSION_DIGITS}d}"

    # -- batching (the uplink's side) ----------------------------------------

    def next_batch(self, max_changes: int = 500, max_bytes: int = 1024**2) -> Batch | Page | None:
        """The next thing to send: a formed but unacknowledged batch, else a
        batch of live changes, else the oldest first-sync page, else a batch
        of bulk changes.

        What goes next is decided in a read transaction; a write transaction
        is opened only to form a new batch (not to re-send one, send a page,
        or find that nothing waits).
        """
        with self.store.read() as session:
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
            if not self._waiting(session, LIVE):
                page = self._oldest_page(session)
                if page is not None:
                    return page
                if not self._waiting(session, BULK):
                    return None
                lane = BULK
            else:
                lane = LIVE
        with self.store.write() as session:
            rows = session.scalars(
                select(OutboxChange)
                .where(OutboxChange.lane == lane, OutboxChange.batch_id.is_(None))
                .order_by(OutboxChange.seq)
                .limit(max_changes)
            ).all()
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

    @staticmethod
    def _waiting(session: Session, lane: int) -> bool:
        """Whether changes of ``lane`` wait to be put into a batch."""
        waiting = select(OutboxChange.seq).where(
            OutboxChange.lane == lane, OutboxChange.batch_id.is_(None)
        )
        return session.scalar(waiting.limit(1)) is not None

    @staticmethod
    def _oldest_page(session: Session) -> Page | None:
        row = session.scalars(select(OutboxPage).order_by(OutboxPage.id).limit(1)).first()
        if row is None:
            return None
        return Page(row.id, row.batch_id, row.entity, row.changes, row.size, row.body)

    def explode(self, page: Page) -> int:
        """Turn a page the cloud refused as too large back into ordinary bulk
        rows (same keys, versions and data), which batch and split as usual."""
        rows: list[dict[str, object]] = []
        for change in page.changes:
            payload, size = _payload(change.key, change.data)
            rows.append(
                {
                    "entity": change.entity,
                    "key": change.key,
                    "op": change.op,
                    "version": change.version,
                    "observed_at": change.observed_at,
                    "payload": payload,
                    "size": size,
                    "lane": BULK,
                }
            )
        with self.store.write() as session:
            session.execute(delete(OutboxPage).where(OutboxPage.id == page.page_id))
            if rows:
                session.execute(insert(OutboxChange), rows)
        with self._room_lock:
            self._used = None  # recount on the next staging
        with self._acked:
            self._acked.notify_all()
        return len(rows)

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
        """Forget an acknowledged batch or page; returns how many changes it held."""
        with self.store.write() as session:
            size = session.scalar(
                select(func.coalesce(func.sum(OutboxChange.size), 0)).where(
                    OutboxChange.batch_id == batch_id
                )
            )
            result = session.execute(delete(OutboxChange).where(OutboxChange.batch_id == batch_id))
            count = int(result.rowcount or 0)  # type: ignore[attr-defined]
            page = None
            if not count:
                page = session.execute(
                    select(OutboxPage.changes, OutboxPage.size).where(
                        OutboxPage.batch_id == batch_id
                    )
                ).first()
                if page is not None:
                    session.execute(delete(OutboxPage).where(OutboxPage.batch_id == batch_id))
                    count, size = page.changes, page.size
        with self._room_lock:
            if self._used is not None:
                self._used = max(0, self._used - int(size or 0))
        if page is not None:
            with self._acked:
                self._acked.notify_all()
        return count

    def depth(self) -> tuple[int, int]:
        """(changes, bytes) waiting for the cloud."""
        with self.store.read() as session:
            count, size = session.execute(
                select(func.count(), func.coalesce(func.sum(OutboxChange.size), 0))
            ).one()
            in_pages, page_size = session.execute(
                select(
                    func.coalesce(func.sum(OutboxPage.changes), 0),
                    func.coalesce(func.sum(OutboxPage.size), 0),
                )
            ).one()
        return int(count) + int(in_pages), int(size) + int(page_size)

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
