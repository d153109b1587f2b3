"""Change detection for one entity: first sync, then deltas.

One :class:`EntitySync` per entity, driven by the PMS sync loop. Each call
to :meth:`EntitySync.step` does a bounded amount of work and commits it in
one local transaction together with the cursor, so a crash resumes exactly
where the last commit left off.

* **First sync** (``phase = initial``): a keyed scan ``WHERE key > last_key``
  in key order (integer keys, as every Open Dental table has),
  ``chunk_rows`` records per transaction, children embedded, staged as
  first-sync pages (:meth:`~bridge.sync.outbox.Outbox.stage_pages`); the
  scan waits while the cloud is several pages behind. Progress (rows
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

Bookkeeping when nothing changed: the cursor is loaded once and kept in
memory (this object is its only writer). A delta step that found nothing
to stage writes nothing: its probe states, the rows it examined and its
time of success stay in memory and are saved at most every
``save_seconds`` (10 s), or with the next step that stages a change, or by
:meth:`EntitySync.flush`. A crash loses at most that much bookkeeping:
the probes then resume from an older state, which only makes them look at
some rows again (no change is lost), and ``rows_examined`` misses the
unsaved estimate. :meth:`EntitySync.view` gives the in-memory figures.

The ODBC connection is used by one thread (the sync loop); :meth:`hint` and
:meth:`request` may be called from any thread.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from bridge.crashpoints import crashpoint
from bridge.pms.odbc import PmsConnection
from bridge.pms.source import PmsClock
from bridge.state import StateStore
from bridge.state.models import RowState, SyncCursor
from bridge.sync.outbox import Outbox
from bridge.sync.probes import Clock, KeyRangeProbe, PollContext, Probe, StampProbe, State
from bridge.sync.records import Record, RecordReader

log = logging.getLogger(__name__)

DEFAULT_OVERLAP = timedelta(seconds=10)
DEFAULT_SWEEP_ROWS = 1_000  # key slice per pass of an unindexed stamp sweep
SAVE_SECONDS = 10.0  # how long idle bookkeeping may stay in memory only

_CURSORS = cast(Table, SyncCursor.__table__)
_UPDATE_CURSOR = _CURSORS.update().where(_CURSORS.c.entity == bindparam("cursor_entity"))


@dataclass(frozen=True)
class StepResult:
    phase: str
    read: int
    staged: int
    done: bool  # True when the initial scan has finished (or for any delta step)
    examined: int = 0  # rows the PMS examined (estimate, see bridge.sync.probes)
    changed: tuple[Record, ...] = ()  # records read this step (for related hints)


@dataclass(frozen=True)
class CursorView:
    """An entity's cursor as the detector knows it, unsaved bookkeeping included."""

    entity: str
    phase: str  # "initial" or "delta"
    rows_done: int
    rows_total: int | None
    rows_examined: int
    last_success_at: datetime | None
    unsaved: bool  # True while some of it exists in memory only


@dataclass(frozen=True)
class _Cursor:
    """The fields of a SyncCursor row the detector reads and writes."""

    phase: str
    last_key: str | None
    rows_done: int
    rows_total: int | None
    states: dict[str, State]
    watermark: str | None
    rows_examined: int
    last_success_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: SyncCursor) -> _Cursor:
        return cls(
            phase=row.phase,
            last_key=row.last_key,
            rows_done=row.rows_done,
            rows_total=row.rows_total,
            states=json.loads(row.strategy_state or "{}"),
            watermark=row.watermark,
            rows_examined=row.rows_examined,
            last_success_at=row.last_success_at,
            finished_at=row.finished_at,
        )

    def values(self, now: datetime) -> dict[str, object]:
        """The row's columns for an UPDATE or INSERT."""
        return {
            "phase": self.phase,
            "last_key": self.last_key,
            "rows_done": self.rows_done,
            "rows_total": self.rows_total,
            "strategy_state": json.dumps(self.states),
            "watermark": self.watermark,
            "rows_examined": self.rows_examined,
            "last_success_at": self.last_success_at,
            "finished_at": self.finished_at,
            "updated_at": now,
        }


def probes_for(reader: RecordReader, overlap: timedelta) -> list[Probe]:
    """Every probe that names changed keys of the reader's entity."""
    spec, entity, profile = reader.spec, reader.entity, reader.profile
    key = spec.key[0]
    probes: list[Probe] = []
    if spec.change.strategy == "snapshot":
        return probes
    column = spec.change.column
    assert column is not None
    indexed = spec.change.indexed
    probes.append(
        StampProbe(
            "stamp",
            spec.table,
            key,
            column,
            key,
            indexed=indexed,
            overlap=overlap,
            top_from=None if indexed else "new",  # the sweep ends where "new" has seen
        )
    )
    if not indexed:  # new rows would wait for the sweep otherwise
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
        save_seconds: float | None = SAVE_SECONDS,
        pages_ahead: int | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reader = reader
        self.outbox = outbox
        self.store = store
        self.entity = reader.entity
        self.spec = reader.spec
        self.chunk_rows = chunk_rows
        self.overlap = overlap
        self.sweep_rows = sweep_rows
        self.save_seconds = save_seconds
        # first-sync pages stored ahead of the cloud before the scan waits (None: never)
        self.pages_ahead = pages_ahead
        self._clock = clock
        self._monotonic = monotonic
        self.probes = probes_for(reader, overlap)
        self._lock = threading.Lock()
        self._hinted: set[str] = set()
        self._cursor: _Cursor | None = None  # as committed, or ahead when _unsaved
        self._loaded = False
        self._unsaved = False
        self._saved_at = 0.0

    # -- requests from other threads -------------------------------------------

    def hint(self, keys: Iterable[str]) -> None:
        """Re-read these keys on the next delta step (related changes, sync now)."""
        with self._lock:
            self._hinted.update(k for k in keys if k)

    def _take_hints(self) -> set[str]:
        with self._lock:
            keys, self._hinted = self._hinted, set()
        return keys

    # -- the cursor -------------------------------------------------------------------

    def cursor(self) -> SyncCursor | None:
        """The cursor row as saved in local state (see :meth:`view` for the latest)."""
        with self.store.read() as session:
            return session.get(SyncCursor, self.entity)

    def view(self) -> CursorView | None:
        """The cursor as this detector knows it, including unsaved bookkeeping."""
        cursor = self._current()
        if cursor is None:
            return None
        return CursorView(
            self.entity,
            cursor.phase,
            cursor.rows_done,
            cursor.rows_total,
            cursor.rows_examined,
            cursor.last_success_at,
            self._unsaved,
        )

    def flush(self) -> bool:
        """Save bookkeeping kept in memory now; True if there was any."""
        return save_bookkeeping(self.store, [self]) > 0

    def _pending(self) -> _Cursor | None:
        """The in-memory cursor if it has not been saved yet."""
        return self._cursor if self._unsaved else None

    def _current(self) -> _Cursor | None:
        if not self._loaded:
            row = self.cursor()
            self._cursor = _Cursor.of(row) if row is not None else None
            self._loaded = True
            self._saved_at = self._monotonic()
        return self._cursor

    def _commit(self, cursor: _Cursor, stage: Callable[[Session], None] | None = None) -> None:
        """Write ``cursor`` (and whatever ``stage`` adds) in one transaction; then
        it is the in-memory cursor. On failure memory keeps the previous one."""
        with self.store.write() as session:
            if stage is not None:
                stage(session)
            self._write(session, cursor)
            crashpoint("detector.staged")
        crashpoint("detector.committed")
        self._saved(cursor)

    def _write(self, session: Session, cursor: _Cursor) -> None:
        """One UPDATE of the cursor row (an INSERT the first time).

        Core statements on the session's connection: a third of the CPU of
        loading and flushing the ORM object, which idle saves pay every few
        seconds.
        """
        now = self._clock()
        values = cursor.values(now)
        connection = session.connection()
        done = connection.execute(_UPDATE_CURSOR, {"cursor_entity": self.entity, **values})
        if not done.rowcount:
            connection.execute(
                _CURSORS.insert(), {"entity": self.entity, "started_at": now, **values}
            )

    def _saved(self, cursor: _Cursor) -> None:
        """``cursor`` is committed: it is the in-memory cursor, nothing unsaved."""
        self._cursor, self._unsaved, self._saved_at = cursor, False, self._monotonic()

    def _remember(self, cursor: _Cursor) -> None:
        """Keep ``cursor`` in memory only; save it once ``save_seconds`` have
        passed (never by itself when ``save_seconds`` is None)."""
        self._cursor, self._unsaved = cursor, True
        seconds = self.save_seconds
        if seconds is not None and self._monotonic() - self._saved_at >= seconds:
            self._commit(cursor)

    # -- steps ------------------------------------------------------------------------

    def step(self, conn: PmsConnection, clock: Clock | None = None) -> StepResult:
        """One bounded piece of work (see module doc).

        ``clock`` is the PMS clock shared by a pass over several entities (a
        :class:`~bridge.pms.source.PmsClock`); by default this step reads it
        at most once, and only if a probe needs it.
        """
        pms_clock = clock or PmsClock(conn)
        cursor = self._current()
        if cursor is None:
            cursor = self._begin_initial(conn, pms_clock)
        if cursor.phase == "initial":
            return self._initial_chunk(conn, cursor)
        if self.spec.change.strategy == "snapshot":
            return self._snapshot(conn, cursor)
        return self._probe_delta(conn, cursor, pms_clock)

    # -- first sync ------------------------------------------------------------

    def _begin_initial(self, conn: PmsConnection, clock: Clock) -> _Cursor:
        table, where = self.spec.table, self.spec.where
        suffix = f" WHERE {where}" if where else ""
        total = int(conn.execute(f"SELECT COUNT(*) FROM {table}{suffix}")[0][0])
        probe_state = {p.name: p.start(conn, clock) for p in self.probes}
        stamp = probe_state.get("stamp", {})
        cursor = _Cursor(
            phase="initial",
            last_key=None,
            rows_done=0,
            rows_total=total,
            states=probe_state,
            watermark=stamp.get("watermark") or stamp.get("since"),
            rows_examined=1 + len(self.probes),
            last_success_at=None,
            finished_at=None,
        )
        self._commit(cursor)
        log.info("first sync started", extra={"entity": self.entity, "rows_total": total})
        return cursor

    def _initial_chunk(self, conn: PmsConnection, cursor: _Cursor) -> StepResult:
        if self.pages_ahead is not None and not self.outbox.wait_for_pages(self.pages_ahead):
            return StepResult("initial", 0, 0, False)  # the cloud is behind: read later
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
        now = self._clock()
        staged: list[int] = []

        def stage(session: Session) -> None:
            staged.append(self.outbox.stage_pages(session, records).staged)

        self._commit(
            replace(
                cursor,
                last_key=records[-1].key if records else cursor.last_key,
                rows_done=cursor.rows_done + len(records),
                rows_examined=cursor.rows_examined + len(records),
                last_success_at=now,
                phase="delta" if done else cursor.phase,
                finished_at=now if done else cursor.finished_at,
            ),
            stage,
        )
        if done:
            log.info("first sync finished", extra={"entity": self.entity})
        return StepResult("initial", len(records), staged[0], done, len(records))

    # -- deltas ----------------------------------------------------------------------

    def _probe_delta(self, conn: PmsConnection, cursor: _Cursor, clock: Clock) -> StepResult:
        states = dict(cursor.states)
        if "stamp" not in states and cursor.watermark is not None and self.spec.change.indexed:
            states["stamp"] = {"watermark": cursor.watermark}  # cursor from before probes
        keys = self._take_hints()
        examined = 0
        context = PollContext(clock, self.sweep_rows, states)
        try:
            for probe in self.probes:
                state = states.get(probe.name)
                if state is None:
                    state = probe.start(conn, clock)
                found_keys = probe.poll(conn, state, context)
                keys |= found_keys.keys
                examined += found_keys.examined
                states[probe.name] = found_keys.state
            records = self.reader.read_keys(conn, keys) if keys else []
            examined += len(records)
            stamp = states.get("stamp", {})
            after = replace(
                cursor,
                states=states,
                watermark=stamp.get("watermark") or stamp.get("since") or cursor.watermark,
                rows_examined=cursor.rows_examined + examined,
                last_success_at=self._clock(),
            )
            if not keys:  # nothing to stage or delete: bookkeeping only
                self._remember(after)
                return StepResult("delta", 0, 0, True, examined)
            missing = sorted(keys - {r.key for r in records})
            counts: list[int] = []

            def stage(session: Session) -> None:
                result = self.outbox.stage(session, records)
                counts.append(result.staged + self._stage_deletes(session, missing))

            self._commit(after, stage)
        except BaseException:
            self.hint(keys)  # asked-for keys are not lost with a failed step
            raise
        return StepResult("delta", len(records), counts[0], True, examined, tuple(records))

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

    def _snapshot(self, conn: PmsConnection, cursor: _Cursor) -> StepResult:
        records = list(self.reader.read(conn))
        seen = {r.key for r in records}
        counts: list[int] = []

        def stage(session: Session) -> None:
            known = session.scalars(
                select(RowState.key).where(
                    RowState.entity == self.entity, RowState.deleted.is_(False)
                )
            ).all()
            result = self.outbox.stage(session, records)
            deleted = self.outbox.stage_delete(
                session, self.entity, sorted(k for k in known if k not in seen)
            )
            counts.append(result.staged + deleted)

        self._commit(
            replace(
                cursor,
                rows_examined=cursor.rows_examined + len(records),
                last_success_at=self._clock(),
            ),
            stage,
        )
        return StepResult("delta", len(records), counts[0], True, len(records))


def save_bookkeeping(store: StateStore, syncs: Iterable[EntitySync]) -> int:
    """Save every detector's unsaved bookkeeping in one local transaction.

    Returns how many cursors were written. On failure nothing is marked
    saved (the bookkeeping stays in memory for the next try).
    """
    pending = [(sync, cursor) for sync in syncs if (cursor := sync._pending()) is not None]
    if not pending:
        return 0
    with store.write() as session:
        for sync, cursor in pending:
            sync._write(session, cursor)
    for sync, cursor in pending:
        sync._saved(cursor)
    return len(pending)


__all__ = [
    "DEFAULT_OVERLAP",
    "SAVE_SECONDS",
    "CursorView",
    "EntitySync",
    "StepResult",
    "probes_for",
    "save_bookkeeping",
]
