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
    the keys that existed when it began; the next cycle looks for stamps at
    or after the PMS clock at the start of this one, minus the overlap, so
    an edit at any moment is found by the cycle after it at the latest.

Probe state is a small JSON object kept in the entity's cursor and written
in the same local transaction as the changes it led to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from bridge.pms.odbc import PmsConnection

State = dict[str, Any]

MAX_KEYS_PER_POLL = 5_000


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

    def start(self, conn: PmsConnection, pms_now: datetime) -> State:
        top = _max(conn, self.key, self.table, self.where)
        return {"after": int(top) if top is not None else 0}  # type: ignore[call-overload]

    def poll(
        self, conn: PmsConnection, state: State, pms_now: datetime, budget: int
    ) -> ProbeResult:
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
    """Rows whose change stamp moved (see module doc)."""

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
    ) -> None:
        self.name, self.table, self.key, self.stamp, self.emit = name, table, key, stamp, emit
        self.indexed = indexed
        self.overlap = overlap

    def start(self, conn: PmsConnection, pms_now: datetime) -> State:
        if self.indexed:
            return {"watermark": stamp_text(_max(conn, self.stamp, self.table))}
        return self._new_cycle(conn, since=pms_now - self.overlap, pms_now=pms_now)

    def poll(
        self, conn: PmsConnection, state: State, pms_now: datetime, budget: int
    ) -> ProbeResult:
        if self.indexed:
            return self._poll_indexed(conn, state)
        return self._poll_sweep(conn, state, pms_now, budget)

    # -- indexed: stamp >= watermark - overlap --------------------------------

    def _poll_indexed(self, conn: PmsConnection, state: State) -> ProbeResult:
        watermark = state.get("watermark")
        columns = ", ".join(dict.fromkeys([self.key, self.emit, self.stamp]))
        sql = f"SELECT {columns} FROM {self.table}"
        params: Sequence[object] = ()
        if watermark is not None:
            sql += f" WHERE {self.stamp} >= ?"
            params = (datetime.fromisoformat(watermark) - self.overlap,)
        rows = list(
            conn.stream(sql, params, table=self.table, key_columns=(self.key,), page_size=10_000)
        )
        keys = {k for k in (_key_text(r[self.emit]) for r in rows) if k is not None}
        stamps = [s for s in (stamp_text(r[self.stamp]) for r in rows) if s is not None]
        newest = max(stamps, default=None)
        if newest is not None and (watermark is None or newest > watermark):
            watermark = newest
        return ProbeResult(keys, len(rows) + 1, {"watermark": watermark})

    # -- unindexed: a budgeted sweep over key ranges ---------------------------

    def _new_cycle(self, conn: PmsConnection, *, since: datetime, pms_now: datetime) -> State:
        top = _max(conn, self.key, self.table)
        return {
            "since": stamp_text(since),
            "cycle_started": stamp_text(pms_now),
            "position": 0,
            "end": int(top) if top is not None else 0,  # type: ignore[call-overload]
            "cycles": 0,
        }

    def _poll_sweep(
        self, conn: PmsConnection, state: State, pms_now: datetime, budget: int
    ) -> ProbeResult:
        if "since" not in state:  # a cursor written before sweeps existed
            state = self._new_cycle(conn, since=pms_now - self.overlap, pms_now=pms_now)
        low = int(state["position"])
        end = int(state["end"])
        high = min(low + max(budget, 1), end)
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
            state = self._new_cycle(conn, since=started - self.overlap, pms_now=pms_now)
            state["cycles"] = cycles
        else:
            state = {**state, "position": high}
        return ProbeResult(keys, examined, state)


Probe = KeyRangeProbe | StampProbe
