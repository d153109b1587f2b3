"""Change detection for one entity: first sync, then deltas.

One :class:`EntitySync` per entity, driven by the entity's loop. Each call to
:meth:`EntitySync.step` does a bounded amount of work and commits it in one
local transaction together with the cursor, so a crash resumes exactly
where the last commit left off.

* **First sync** (``phase = initial``): a keyed scan ``WHERE key > last_key``
  in key order (integer keys, as every Open Dental table has),
  ``chunk_rows`` records per transaction; progress (rows done,
  total) is kept in the cursor for ``bridge status``. Before the scan the
  change column's maximum is taken as the starting watermark, so every row
  edited *during* the scan is caught by the first delta.
* **timestamp** deltas: re-read ``stamp >= watermark - overlap`` and let the
  outbox drop rows whose content hash did not change. The overlap window
  catches same-second edits and writes that commit late; the watermark moves
  to the largest stamp seen, in the same transaction as the staged changes.
* **snapshot** deltas (tables with no change column): a full keyed read
  compared with the stored hashes; keys no longer present are staged as
  deletes.

The ODBC connection is used by one thread (the entity's loop).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice

from sqlalchemy import select

from bridge.crashpoints import crashpoint
from bridge.pms.odbc import PmsConnection
from bridge.state import StateStore
from bridge.state.models import RowState, SyncCursor
from bridge.sync.outbox import Outbox
from bridge.sync.records import RecordReader

log = logging.getLogger(__name__)

DEFAULT_OVERLAP = timedelta(seconds=10)


@dataclass(frozen=True)
class StepResult:
    phase: str
    read: int
    staged: int
    done: bool  # True when the initial scan has finished (or for any delta step)


class EntitySync:
    def __init__(
        self,
        reader: RecordReader,
        outbox: Outbox,
        store: StateStore,
        *,
        chunk_rows: int = 5_000,
        overlap: timedelta = DEFAULT_OVERLAP,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.reader = reader
        self.outbox = outbox
        self.store = store
        self.entity = reader.entity
        self.spec = reader.spec
        self.chunk_rows = chunk_rows
        self.overlap = overlap
        self._clock = clock

    def cursor(self) -> SyncCursor | None:
        with self.store.read() as session:
            return session.get(SyncCursor, self.entity)

    def step(self, conn: PmsConnection) -> StepResult:
        cursor = self.cursor()
        if cursor is None:
            cursor = self._begin_initial(conn)
        if cursor.phase == "initial":
            return self._initial_chunk(conn, cursor)
        if self.spec.change.strategy == "snapshot":
            return self._snapshot(conn)
        return self._timestamp_delta(conn, cursor)

    # -- first sync ------------------------------------------------------------

    def _begin_initial(self, conn: PmsConnection) -> SyncCursor:
        table, where = self.spec.table, self.spec.where
        suffix = f" WHERE {where}" if where else ""
        total = int(conn.execute(f"SELECT COUNT(*) FROM {table}{suffix}")[0][0])
        watermark: str | None = None
        if self.spec.change.column:
            top = conn.execute(f"SELECT MAX({self.spec.change.column}) FROM {table}")[0][0]
            watermark = _stamp_text(top)
        now = self._clock()
        with self.store.write() as session:
            cursor = SyncCursor(
                entity=self.entity,
                phase="initial",
                watermark=watermark,
                last_key=None,
                rows_done=0,
                rows_total=total,
                started_at=now,
                updated_at=now,
            )
            session.add(cursor)
        log.info("first sync started", extra={"entity": self.entity, "rows_total": total})
        return cursor

    def _initial_chunk(self, conn: PmsConnection, cursor: SyncCursor) -> StepResult:
        key_column = self.spec.key[0]
        condition: str | None = None
        params: tuple[object, ...] = ()
        if cursor.last_key is not None:
            condition, params = f"{key_column} > ?", (int(cursor.last_key),)
        stream = self.reader.read(conn, condition, params)
        try:
            records = list(islice(stream, self.chunk_rows))
        finally:
            stream.close()  # release the driver's cursor mid-result
        done = len(records) < self.chunk_rows
        with self.store.write() as session:
            result = self.outbox.stage(session, records)
            row = session.get(SyncCursor, self.entity)
            assert row is not None
            if records:
                row.last_key = records[-1].key
            row.rows_done += len(records)
            row.updated_at = self._clock()
            if done:
                row.phase = "delta"
                row.finished_at = row.updated_at
            crashpoint("detector.staged")
        crashpoint("detector.committed")
        if done:
            log.info("first sync finished", extra={"entity": self.entity})
        return StepResult("initial", len(records), result.staged, done)

    # -- deltas ----------------------------------------------------------------------

    def _timestamp_delta(self, conn: PmsConnection, cursor: SyncCursor) -> StepResult:
        column = self.spec.change.column
        assert column is not None
        condition: str | None = None
        params: tuple[object, ...] = ()
        if cursor.watermark is not None:
            since = datetime.fromisoformat(cursor.watermark) - self.overlap
            condition, params = f"{column} >= ?", (since,)
        records = list(self.reader.read(conn, condition, params))
        stamps = [_stamp_text(r.stamp) for r in records if r.stamp is not None]
        newest = max((s for s in stamps if s is not None), default=None)
        with self.store.write() as session:
            result = self.outbox.stage(session, records)
            row = session.get(SyncCursor, self.entity)
            assert row is not None
            if newest is not None and (row.watermark is None or newest > row.watermark):
                row.watermark = newest
            row.updated_at = self._clock()
            crashpoint("detector.staged")
        crashpoint("detector.committed")
        return StepResult("delta", len(records), result.staged, True)

    def _snapshot(self, conn: PmsConnection) -> StepResult:
        records = list(self.reader.read(conn))
        seen = {r.key for r in records}
        with self.store.write() as session:
            known = session.scalars(
                select(RowState.key).where(
                    RowState.entity == self.entity, RowState.deleted.is_(False)
                )
            ).all()
            result = self.outbox.stage(session, records)
            deleted = self.outbox.stage_delete(
                session, self.entity, sorted(k for k in known if k not in seen)
            )
            row = session.get(SyncCursor, self.entity)
            assert row is not None
            row.updated_at = self._clock()
            crashpoint("detector.staged")
        crashpoint("detector.committed")
        return StepResult("delta", len(records), result.staged + deleted, True)


def _stamp_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat(sep=" ")
    return str(value)
