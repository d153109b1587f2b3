"""On-demand record sync: named records re-read and pushed now, even if unchanged.

A ``sync.request`` with ``keys`` (the cloud's), ``bridge sync patient 1234``
and the panel's "Sync one record" all end here. Unlike a delta step, which
drops a re-read row whose content hash is unchanged, an on-demand push
stages every named record with ``force=True``: the cloud asked for it, so it
gets it again (its copy may have been lost or edited on its side).

* :class:`RecordRequests` is the thread-safe hand-over between whoever asks
  (any thread: :meth:`RecordRequests.ask`) and the sync loop, which takes
  the keys (:meth:`RecordRequests.take`), pushes them on its own ODBC
  connection (:func:`push_records`) and reports each key's outcome
  (:meth:`RecordRequests.settle`). Keys asked for again before the loop
  took them merge.
* A record's **related records** come with it: the profile's ``related``
  declarations say which other entities point at this one
  (``patient.related = [{entity = "appointment", field = "patient_id"}]``),
  so a patient is pushed together with every appointment of that patient.
* A key **not in the PMS** is reported (``missing``), never silently
  dropped; if the cloud was sent that record earlier, a delete is staged
  too, because the cloud's copy is now wrong.

Waiting for an outcome (:meth:`RecordRequests.wait`) is by time: an outcome
counts for a request when the loop *took* the key after the request was
made, so the pushed data is at least as new as the request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.pms.odbc import PmsConnection
from bridge.state import StateStore
from bridge.state.models import RowState
from bridge.sync.outbox import Outbox
from bridge.sync.records import IN_LIST_SIZE, Record, RecordReader

RELATED_LIMIT = 5_000
"""At most this many related records per push (a patient's appointments)."""


@dataclass(frozen=True)
class RecordsOutcome:
    """What one on-demand push did for one entity.

    ``pushed``: keys re-read and staged (force); ``missing``: keys the PMS
    does not have; ``deleted``: those of them the cloud had been sent (a
    delete was staged); ``related``: records of other entities pushed with
    them (entity -> count). Keys only: no personal data.
    """

    entity: str
    pushed: tuple[str, ...]
    missing: tuple[str, ...]
    deleted: tuple[str, ...] = ()
    related: Mapping[str, int] | None = None

    @property
    def related_count(self) -> int:
        return sum((self.related or {}).values())

    def describe(self) -> str:
        """One line for people and for the cloud's result (ids, counts; no personal data)."""
        parts = []
        if self.pushed:
            parts.append(f"pushed {len(self.pushed)} {self.entity} record(s)")
        for entity, count in sorted((self.related or {}).items()):
            parts.append(f"{count} related {entity} record(s)")
        if self.missing:
            parts.append(
                f"{len(self.missing)} {self.entity} key(s) not in the PMS: "
                + ", ".join(self.missing[:20])
                + (" ..." if len(self.missing) > 20 else "")
            )
        return "; ".join(parts) or "nothing to push"


@dataclass(frozen=True)
class _Settled:
    taken_at: float  # monotonic time the loop took the key
    found: bool


class RecordRequests:
    """Keys waiting to be pushed, and what became of the pushed ones.

    ``on_settled`` is called (on the sync loop's thread) with each outcome,
    e.g. to emit a control-channel event. ``clock`` is monotonic.
    """

    def __init__(
        self,
        on_settled: Callable[[RecordsOutcome], None] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        keep: int = 10_000,
    ) -> None:
        self.on_settled = on_settled
        self._clock = clock
        self._keep = keep
        self._cond = threading.Condition()
        self._waiting: dict[str, set[str]] = {}
        self._settled: dict[tuple[str, str], _Settled] = {}

    def ask(self, entity: str, keys: Iterable[str]) -> float:
        """Queue ``keys`` of ``entity``; returns the request time for :meth:`wait`."""
        now = self._clock()
        with self._cond:
            self._waiting.setdefault(entity, set()).update(keys)
        return now

    def pending(self) -> bool:
        with self._cond:
            return any(self._waiting.values())

    def take(self) -> tuple[float, dict[str, set[str]]]:
        """Everything waiting (entity -> keys) and the time it was taken."""
        with self._cond:
            waiting, self._waiting = self._waiting, {}
            return self._clock(), {e: k for e, k in waiting.items() if k}

    def give_back(self, entity: str, keys: Iterable[str]) -> None:
        """The push failed (PMS lost, outbox full): ask for these keys again."""
        with self._cond:
            self._waiting.setdefault(entity, set()).update(keys)

    def settle(self, outcome: RecordsOutcome, taken_at: float) -> None:
        with self._cond:
            for key in outcome.pushed:
                self._settled[(outcome.entity, key)] = _Settled(taken_at, True)
            for key in outcome.missing:
                self._settled[(outcome.entity, key)] = _Settled(taken_at, False)
            if len(self._settled) > self._keep:  # forget the oldest outcomes
                ordered = sorted(self._settled.items(), key=lambda item: item[1].taken_at)
                for old, _ in ordered[: len(self._settled) - self._keep]:
                    del self._settled[old]
            self._cond.notify_all()
        if self.on_settled is not None:
            self.on_settled(outcome)

    def wait(
        self, entity: str, keys: Sequence[str], since: float, timeout: float
    ) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """(found keys, missing keys) once every key was pushed after ``since``;
        None if that did not happen within ``timeout`` seconds."""
        deadline = self._clock() + timeout
        with self._cond:
            while True:
                settled = [self._settled.get((entity, key)) for key in keys]
                if all(s is not None and s.taken_at >= since for s in settled):
                    found = tuple(k for k, s in zip(keys, settled, strict=True) if s and s.found)
                    missing = tuple(k for k in keys if k not in found)
                    return found, missing
                left = deadline - self._clock()
                if left <= 0:
                    return None
                self._cond.wait(left)


def related_readers(
    readers: Mapping[str, RecordReader], entity: str
) -> list[tuple[RecordReader, str]]:
    """(reader, column naming ``entity``'s key) for every entity declared related."""
    spec = readers[entity].spec
    found: list[tuple[RecordReader, str]] = []
    for rel in spec.related:
        reader = readers.get(rel.entity)
        field = reader.spec.fields.get(rel.field) if reader is not None else None
        if reader is not None and field is not None:
            found.append((reader, field.column))
    return found


def push_records(
    conn: PmsConnection,
    readers: Mapping[str, RecordReader],
    outbox: Outbox,
    store: StateStore,
    entity: str,
    keys: Iterable[str],
) -> RecordsOutcome:
    """Re-read ``keys`` of ``entity`` (and their related records) and stage
    them with ``force=True`` in one local transaction. Raises what the ODBC
    layer or the outbox raise (nothing is staged then)."""
    wanted = sorted(set(keys), key=lambda k: (len(k), k))
    reader = readers[entity]
    records = reader.read_keys(conn, wanted)
    found = {r.key for r in records}
    missing = [k for k in wanted if k not in found]
    related: list[Record] = []
    counts: dict[str, int] = {}
    numbers = [int(k) for k in wanted if k in found]
    for other, column in related_readers(readers, entity):
        rows: list[Record] = []
        for start in range(0, len(numbers), IN_LIST_SIZE):
            chunk = numbers[start : start + IN_LIST_SIZE]
            marks = ", ".join("?" * len(chunk))
            stream = other.read(conn, f"{column} IN ({marks})", chunk)
            try:
                for record in stream:
                    rows.append(record)
                    if len(rows) >= RELATED_LIMIT:
                        break
            finally:
                stream.close()
        related.extend(rows)
        if rows:
            counts[other.entity] = len(rows)
    deleted: list[str] = []
    with store.write() as session:
        outbox.stage(session, [*records, *related], force=True)
        deleted = _known(session, entity, missing)
        if deleted:
            outbox.stage_delete(session, entity, deleted, force=True)
    return RecordsOutcome(
        entity,
        tuple(k for k in wanted if k in found),
        tuple(missing),
        tuple(deleted),
        counts,
    )


def _known(session: Session, entity: str, keys: list[str]) -> list[str]:
    """The keys the cloud was sent as live records."""
    known: list[str] = []
    for start in range(0, len(keys), IN_LIST_SIZE):
        known += session.scalars(
            select(RowState.key).where(
                RowState.entity == entity,
                RowState.key.in_(keys[start : start + IN_LIST_SIZE]),
                RowState.deleted.is_(False),
            )
        ).all()
    return sorted(known)


__all__ = ["RecordRequests", "RecordsOutcome", "push_records", "related_readers"]
