"""Cheap questions to the PMS: which keys of an entity may have changed?

A delta pass asks an entity's probes for keys, then re-reads exactly those
rows by primary key (``IN (...)``) and lets the outbox drop the ones whose
content hash did not change. Every probe is bounded in what it makes the
PMS examine, and reports an estimate of it (``examined``): the figure
``bridge status`` shows as rows examined per minute.

:class:`KeyRangeProbe`
    Rows added after the last key seen, ``key > after`` in key order: a
    primary-key range read that examines only the new rows. Used for new
    rows of a table or of a child table, for append-only logs that name
    changed rows (Open Dental's ``securitylog.PatNum``) and for tombstones
    (``deletedobject.ObjectNum`` of one ``ObjectType``). Open Dental's
    tables are MyISAM, where an insert is visible at once and keys appear
    in order; a key that becomes visible late (an InnoDB transaction that
    commits after a larger key) is found by the stamp sweep or by
    reconciliation instead.

:class:`StampProbe`
    Rows whose change stamp moved. Where the PMS indexes the stamp
    (``appointment.DateTStamp``), ``stamp >= watermark - overlap``: the
    overlap re-reads the last seconds, so same-second edits and writes that
    commit late are not missed, and the outbox's hash check keeps them from
    being sent twice. Where it does not (``patient.DateTStamp``), reading
    ``stamp >= x`` would scan the whole table on every pass, so the probe
    *sweeps*: each pass examines the next slice of the primary key,
    ``key > lo AND key <= hi AND stamp >= since``, sized from a rows-per-
    minute budget, and only changed rows come back. A sweep *cycle* covers
    the keys up to the newest one known when it began; the next cycle looks
    for stamps at or after the PMS clock at the start of this one, minus the
    overlap, so an edit at any moment is found by the cycle after it at the
    latest.

What a pass costs when nothing changed (the common case: a practice is
idle most of the time, and realtime entities poll every 2 s):

* The PMS clock is a lazy clock shared by every entity, whose reading may
  be reused for a few seconds (:class:`~bridge.pms.source.PmsClock`: never
  later than the PMS's time, which is the cautious side for every use
  below), and asked only when a probe needs it: a sweep cycle that ends or
  starts, a probe that starts, or rows at an indexed watermark that have
  not settled yet.
* A sweep cycle's end is the largest key the entity's new-row probe has
  seen (``top_from``), not a ``MAX(key)`` per cycle: a key above it is a
  new row, which the new-row probe reads in full, and the next cycle
  covers it.
* An indexed stamp probe still asks for every row within the overlap
  behind its watermark on every pass (that is what catches late commits),
  but a row whose (key, stamp) it has already reported *after it settled*
  is not named again, so it is not re-read by key, converted and hashed on
  every pass. A row settles when the PMS clock has passed its stamp's
  second plus the overlap: no later edit can carry the same stamp (same
  second), and a write with that stamp that commits within the overlap has
  committed (the overlap's own assumption). A row named before it settled
  is named again on the first pass after, so the last read of any (key,
  stamp) comes after both hazards are over.

Probe state is a small JSON object kept in the entity's cursor and written
in the same local transaction as the changes it led to (a step that found
nothing saves it later: :mod:`bridge.sync.detector`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from bridge.pms.odbc import PmsConnection

State = dict[str, Any]
Clock = Callable[[], datetime]
"""The PMS clock, read lazily (:class:`bridge.pms.source.PmsClock`)."""

MAX_KEYS_PER_POLL = 5_000
STAMP_RESOLUTION = timedelta(seconds=1)  # Open Dental's stamps: whole seconds


@dataclass(frozen=True)
class PollContext:
    """What one step gives each of an entity's probes.

    ``clock`` is the PMS clock (call it only when the answer is needed: it
    may cost a statement); ``budget`` the key slice of a sweep; ``states``
    the other probes' states in this step (a sweep reads the new-row
    probe's largest key from it).
    """

    clock: Clock
    budget: int = 1_000
    states: Mapping[str, State] = field(default_factory=dict)


@dataclass
class ProbeResult:
    keys: set[str] = field(default_factory=set)
    examined: int = 0
    state: State = field(default_factory=dict)


def stamp_text(value: object) -> str | None:
    """A stamp as sortable ISO text (``YYYY-MM-DD HH:MM:SS``), or None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat(sep=" ")
    return str(value)


def _key_text(value: object) -> str | None:
    if value is None:
        return None
    text = str(int(value)) if isinstance(value, int | float) else str(value).strip()
    return text if text.isdigit() and text != "0" else None


def _max(conn: PmsConnection, column: str, table: str, where: str | None = None) -> object:
    suffix = f" WHERE {where}" if where else ""
    return conn.execute(f"SELECT MAX({column}) FROM {table}{suffix}")[0][0]


class KeyRangeProbe:
    """New rows after the last key seen (see module doc)."""

    def __init__(
        self,
        name: str,
        table: str,
        key: str,
        emit: str,
        where: str | None = None,
    ) -> None:
        self.name, self.table, self.key, self.emit, self.where = name, table, key, emit, where

    def start(self, conn: PmsConnection, clock: Clock) -> State:
        top = _max(conn, self.key, self.table, self.where)
        return {"after": int(top) if top is not None else 0}  # type: ignore[call-overload]

    def poll(self, conn: PmsConnection, state: State, ctx: PollContext) -> ProbeResult:
        after = int(state["after"])
        conditions = [f"{self.key} > ?"]
        if self.where:
            conditions.append(f"({self.where})")
        columns = ", ".join(dict.fromkeys([self.key, self.emit]))
        sql = f"SELECT {columns} FROM {self.table} WHERE {' AND '.join(conditions)}"
        stream = conn.stream(
            sql, (after,), table=self.table, key_columns=(self.key,), page_size=MAX_KEYS_PER_POLL
        )
        try:
            rows = list(islice(stream, MAX_KEYS_PER_POLL))
        finally:
            stream.close()
        keys = {k for k in (_key_text(r[self.emit]) for r in rows) if k is not None}
        if rows:
            after = int(rows[-1][self.key])
        return ProbeResult(keys, len(rows) + 1, {"after": after})


class StampProbe:
    """Rows whose change stamp moved (see module doc).

    ``top_from`` names the entity's new-row probe (a :class:`KeyRangeProbe`
    on the same table and key, without a condition): a sweep cycle then
    ends at the largest key it has seen instead of asking ``MAX(key)``.
    """

    def __init__(
        self,
        name: str,
        table: str,
        key: str,
        stamp: str,
        emit: str,
        *,
        indexed: bool,
        overlap: timedelta,
        top_from: str | None = None,
    ) -> None:
        self.name, self.table, self.key, self.stamp, self.emit = name, table, key, stamp, emit
        self.indexed = indexed
        self.overlap = overlap
        self.top_from = top_from

    def start(self, conn: PmsConnection, clock: Clock) -> State:
        if self.indexed:
            return {"watermark": stamp_text(_max(conn, self.stamp, self.table))}
        now = clock()
        return self._new_cycle(conn, since=now - self.overlap, started=now, top=None)

    def poll(self, conn: PmsConnection, state: State, ctx: PollContext) -> ProbeResult:
        if self.indexed:
            return self._poll_indexed(conn, state, ctx.clock)
        return self._poll_sweep(conn, state, ctx)

    # -- indexed: stamp >= watermark - overlap --------------------------------

    def _poll_indexed(self, conn: PmsConnection, state: State, clock: Clock) -> ProbeResult:
        watermark = state.get("watermark")
        settled: dict[str, str] = state.get("settled") or {}
        columns = ", ".join(dict.fromkeys([self.key, self.emit, self.stamp]))
        sql = f"SELECT {columns} FROM {self.table}"
        params: Sequence[object] = ()
        if watermark is not None:
            sql += f" WHERE {self.stamp} >= ?"
            params = (datetime.fromisoformat(watermark) - self.overlap,)
        rows = list(
            conn.stream(sql, params, table=self.table, key_columns=(self.key,), page_size=10_000)
        )
        keys: set[str] = set()
        still: dict[str, str] = {}  # settled rows still in the window
        fresh: list[tuple[str | None, str | None]] = []
        newest: str | None = None
        for row in rows:
            row_key, stamp = _key_text(row[self.key]), stamp_text(row[self.stamp])
            if stamp is not None and (newest is None or stamp > newest):
                newest = stamp
            if row_key is not None and stamp is not None and settled.get(row_key) == stamp:
                still[row_key] = stamp  # reported after it settled: nothing new
                continue
            emit = _key_text(row[self.emit])
            if emit is not None:
                keys.add(emit)
            fresh.append((row_key, stamp))
        if fresh:
            # Named now and re-read by key after this moment: settled ones
            # need not be named again while their stamp stays.
            limit = clock() - self.overlap - STAMP_RESOLUTION
            still.update(
                (row_key, stamp)
                for row_key, stamp in fresh
                if row_key is not None and stamp is not None and _at_or_before(stamp, limit)
            )
        if newest is not None and (watermark is None or newest > watermark):
            watermark = newest
        new_state: State = {"watermark": watermark}
        if still:
            new_state["settled"] = still
        return ProbeResult(keys, len(rows) + 1, new_state)

    # -- unindexed: a budgeted sweep over key ranges ---------------------------

    def _new_cycle(
        self, conn: PmsConnection, *, since: datetime, started: datetime, top: int | None
    ) -> State:
        if top is None:
            found = _max(conn, self.key, self.table)
            top = int(found) if found is not None else 0  # type: ignore[call-overload]
        return {
            "since": stamp_text(since),
            "cycle_started": stamp_text(started),
            "position": 0,
            "end": top,
            "cycles": 0,
        }

    def _top(self, ctx: PollContext) -> int | None:
        """The largest key the new-row probe has seen (None: ask the PMS)."""
        if self.top_from is None:
            return None
        after = ctx.states.get(self.top_from, {}).get("after")
        return int(after) if after is not None else None

    def _poll_sweep(self, conn: PmsConnection, state: State, ctx: PollContext) -> ProbeResult:
        if "since" not in state:  # a cursor written before sweeps existed
            now = ctx.clock()
            state = self._new_cycle(conn, since=now - self.overlap, started=now, top=None)
        low = int(state["position"])
        end = int(state["end"])
        high = min(low + max(ctx.budget, 1), end)
        keys: set[str] = set()
        examined = 1
        if high > low:
            columns = ", ".join(dict.fromkeys([self.key, self.emit]))
            sql = (
                f"SELECT {columns} FROM {self.table} "
                f"WHERE {self.key} > ? AND {self.key} <= ? AND {self.stamp} >= ?"
            )
            since = datetime.fromisoformat(state["since"])
            rows = list(
                conn.stream(
                    sql,
                    (low, high, since),
                    table=self.table,
                    key_columns=(self.key,),
                    page_size=10_000,
                )
            )
            keys = {k for k in (_key_text(r[self.emit]) for r in rows) if k is not None}
            examined = high - low
        if high >= end:  # cycle complete: the next one starts from this one's start
            started = datetime.fromisoformat(state["cycle_started"])
            cycles = int(state.get("cycles", 0)) + 1
            state = self._new_cycle(
                conn, since=started - self.overlap, started=ctx.clock(), top=self._top(ctx)
            )
            state["cycles"] = cycles
        else:
            state = {**state, "position": high}
        return ProbeResult(keys, examined, state)


def _at_or_before(stamp: str, limit: datetime) -> bool:
    try:
        return datetime.fromisoformat(stamp) <= limit
    except ValueError:  # not a stamp this probe wrote: never counts as settled
        return False


Probe = KeyRangeProbe | StampProbe
