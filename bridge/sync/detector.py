"""Change detection for one entity: first sync, then deltas.

One :class:`EntitySync` per entity, driven by the PMS sync loop. Each call
to :meth:`EntitySync.step` does a bounded amount of work and commits it in
one local transaction together with the cursor, so a crash resumes exactly
where the last commit left off.

* **First sync** (``phase = initial``): a keyed scan ``WHERE key > last_key``
  in key order (integer keys, as every Open Dental table has),
  ``chunk_rows`` records per transaction, children embedded; progress (rows
  done, total) is kept in the cursor for ``bridge status``. Before the scan
  each probe records where it starts (the stamp's maximum, the PMS clock,
  the largest key), so every row edited *during* the scan is caught by the
  first deltas.
* **timestamp** deltas: the entity's probes (:mod:`bridge.sync.probes`) name
  the keys that may have changed: the stamp (indexed: since the watermark
  minus an overlap; unindexed: a budgeted sweep), new rows by key range,
  each child table's new and re-stamped rows (mapped to their parent),
  tombstones, signal logs such as ``securitylog``, keys named by a related
  entity's changes (:meth:`hint`) and keys asked for on demand. Those rows
  are re-read by key; the outbox drops the unchanged ones, and a key that
  is no longer there (deleted, or now outside the entity's filter) becomes
  a delete.
* **snapshot** deltas (tables with no change column): a full keyed read
  compared with the stored hashes; keys no longer present are staged as
  deletes.

The ODBC connection is used by one thread (the sync loop); :meth:`hint` and
:meth:`request` may be called from any thread.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.crashpoints import crashpoint
from bridge.pms.odbc import PmsConnection
from bridge.pms.source import pms_now
from bridge.state import StateStore
from bridge.state.models import RowState, SyncCursor
from bridge.sync.outbox import BULK, Outbox
from bridge.sync.probes import KeyRangeProbe, Probe, StampProbe, State
from bridge.sync.records import Record, RecordReader

log = logging.getLogger(__name__)

DEFAULT_OVERLAP = timedelta(seconds=10)
DEFAULT_SWEEP_ROWS = 1_000  # key slice per pass of an unindexed stamp sweep


@dataclass(frozen=True)
class StepResult:
    phase: str
    read: int
    staged: int
    done: bool  # True when the initial scan has finished (or for any delta step)
    examined: int = 0  # rows the PMS examined (estimate, see bridge.sync.probes)
    changed: tuple[Record, ...] = ()  # records read this step (for related hints)


def probes_for(reader: RecordReader, overlap: timedelta) -> list[Probe]:
    """Every probe that names changed keys of the reader's entity."""
    spec, entity, profile = reader.spec, reader.entity, reader.profile
    key = spec.key[0]
    probes: list[Probe] = []
    if spec.change.strategy == "snapshot":
        return probes
    column = spec.change.column
    assert column is not None
    probes.append(
        StampProbe(
            "stamp", spec.table, key, column, key, indexed=spec.change.indexed, overlap=overlap
        )
    )
    if not spec.change.indexed:  # new rows would wait for the sweep otherwise
        probes.append(KeyRangeProbe("new", spec.table, key, key))
    for name, child in spec.children.items():
        child_key = child.key[0]
        probes.append(KeyRangeProbe(f"{name}.new", child.table, child_key, child.parent_column))
        if child.change.column:
            probes.append(
                StampProbe(
                    f"{name}.stamp",
                    child.table,
                    child_key,
                    child.change.column,
                    child.parent_column,
                    indexed=child.change.indexed,
                    overlap=overlap,
                )
            )
    for signal in spec.signals:
        probes.append(
            KeyRangeProbe(
                f"signal.{signal.table}",
                signal.table,
                signal.key,
                signal.points_to,
                where=f"{signal.points_to} > 0",
            )
        )
    tomb = profile.tombstones
    if tomb is not None:
        for number, target in sorted(tomb.types.items()):
            if target == entity:
                probes.append(
                    KeyRangeProbe(
                        f"tombstones.{number}",
                        tomb.table,
                        tomb.key,
                        tomb.object_column,
                        where=f"{tomb.type_column} = {int(number)}",
                    )
                )
    return probes


class EntitySync:
    def __init__(
        self,
        reader: RecordReader,
        outbox: Outbox,
        store: StateStore,
        *,
        chunk_rows: int = 5_000,
        overlap: timedelta = DEFAULT_OVERLAP,
        sweep_rows: int = DEFAULT_SWEEP_ROWS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.reader = reader
        self.outbox = outbox
        self.store = store
        self.entity = reader.entity
        self.spec = reader.spec
        self.chunk_rows = chunk_rows
        self.overlap = overlap
        self.sweep_rows = sweep_rows
        self._clock = clock
        self.probes = probes_for(reader, overlap)
        self._lock = threading.Lock()
        self._hinted: set[str] = set()

    # -- requests from other threads -------------------------------------------

    def hint(self, keys: Iterable[str]) -> None:
        """Re-read these keys on the next delta step (related changes, sync now)."""
        with self._lock:
            self._hinted.update(k for k in keys if k)

    def _take_hints(self) -> set[str]:
        with self._lock:
            keys, self._hinted = self._hinted, set()
        return keys

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
        return self._probe_delta(conn, cursor)

    # -- first sync ------------------------------------------------------------

    def _begin_initial(self, conn: PmsConnection) -> SyncCursor:
        table, where = self.spec.table, self.spec.where
        suffix = f" WHERE {where}" if where else ""
        total = int(conn.execute(f"SELECT COUNT(*) FROM {table}{suffix}")[0][0])
        now_pms = pms_now(conn)
        probe_state = {p.name: p.start(conn, now_pms) for p in self.probes}
        stamp = probe_state.get("stamp", {})
        now = self._clock()
        with self.store.write() as session:
            cursor = SyncCursor(
                entity=self.entity,
                phase="initial",
                watermark=stamp.get("watermark") or stamp.get("since"),
                last_key=None,
                rows_done=0,
                rows_total=total,
                started_at=now,
                updated_at=now,
                strategy_state=json.dumps(probe_state),
                rows_examined=1 + len(self.probes),
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
            result = self.outbox.stage(session, records, lane=BULK)
            row = session.get(SyncCursor, self.entity)
            assert row is not None
            if records:
                row.last_key = records[-1].key
            row.rows_done += len(records)
            row.rows_examined += len(records)
            row.updated_at = self._clock()
            row.last_success_at = row.updated_at
            if done:
                row.phase = "delta"
                row.finished_at = row.updated_at
            crashpoint("detector.staged")
        crashpoint("detector.committed")
        if done:
            log.info("first sync finished", extra={"entity": self.entity})
        return StepResult("initial", len(records), result.staged, done, len(records))

    # -- deltas ----------------------------------------------------------------------

    def _probe_delta(self, conn: PmsConnection, cursor: SyncCursor) -> StepResult:
        states: dict[str, State] = json.loads(cursor.strategy_state or "{}")
        if "stamp" not in states and cursor.watermark is not None and self.spec.change.indexed:
            states["stamp"] = {"watermark": cursor.watermark}  # cursor from before probes
        now_pms = pms_now(conn)
        keys = self._take_hints()
        examined = 0
        try:
            for probe in self.probes:
                state = states.get(probe.name)
                if state is None:
                    state = probe.start(conn, now_pms)
                found_keys = probe.poll(conn, state, now_pms, self.sweep_rows)
                keys |= found_keys.keys
                examined += found_keys.examined
                states[probe.name] = found_keys.state
            records = self.reader.read_keys(conn, keys) if keys else []
        except BaseException:
            self.hint(keys)  # asked-for keys are not lost with a failed step
            raise
        examined += len(records)
        found = {r.key for r in records}
        missing = sorted(keys - found)
        with self.store.write() as session:
            result = self.outbox.stage(session, records)
            deleted = self._stage_deletes(session, missing)
            row = session.get(SyncCursor, self.entity)
            assert row is not None
            row.strategy_state = json.dumps(states)
            stamp = states.get("stamp", {})
            row.watermark = stamp.get("watermark") or stamp.get("since") or row.watermark
            row.rows_examined += examined
            row.updated_at = self._clock()
            row.last_success_at = row.updated_at
            crashpoint("detector.staged")
        crashpoint("detector.committed")
        return StepResult(
            "delta", len(records), result.staged + deleted, True, examined, tuple(records)
        )

    def _stage_deletes(self, session: Session, keys: list[str]) -> int:
        """Deletes for keys the cloud was sent and the PMS no longer has."""
        if not keys:
            return 0
        live = set(
            session.scalars(
                select(RowState.key).where(
                    RowState.entity == self.entity,
                    RowState.key.in_(keys),
                    RowState.deleted.is_(False),
                )
            ).all()
        )
        return self.outbox.stage_delete(session, self.entity, sorted(live))

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
            row.rows_examined += len(records)
            row.updated_at = self._clock()
            row.last_success_at = row.updated_at
            crashpoint("detector.staged")
        crashpoint("detector.committed")
        return StepResult("delta", len(records), result.staged + deleted, True, len(records))


__all__ = ["DEFAULT_OVERLAP", "EntitySync", "StepResult", "probes_for"]
