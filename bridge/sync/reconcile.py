"""Reconciliation: a keyed checksum sweep proving the cloud's copy equals the PMS.

Change detection can miss a change: a transaction that commits after the
watermark passed its stamp, a row deleted without a tombstone, a row the
cloud lost. :class:`Reconciler` finds and repairs every such difference for
one entity, using the checksum operations of the Cloud API
(docs/cloud-api.yaml, "Reconciliation checksums"):

1. **Plan** - stream the entity's PMS records in key order and cut them into
   contiguous key ranges of ``range_rows`` records: ``(None, k1]``,
   ``(k1, k2]`` ... ``(kn, None)``, so the ranges cover the whole key space
   and a cloud row outside the PMS's keys still falls into one. Only each
   range's bounds, count and digest are kept (memory is bounded by the
   number of ranges, not rows), and nothing else runs on the connection
   while the stream is open.
2. **Compare** - ask the cloud for the same ranges' counts and digests,
   ``ranges_per_request`` at a time; equal ranges are in sync.
3. **Repair** - for each range that differs: list the cloud's keys and row
   hashes (paged), re-read the PMS rows of that span (a short keyed query),
   and diff. A PMS row missing from the cloud or different there is staged
   again (``force``: the local row state may believe the cloud has it); a
   key the cloud has and the PMS does not is staged as a delete.

Contracts:

* **Pending is not drift.** A key with a change still waiting in the outbox
  is on its way: it is counted as pending (in sync), never staged twice.
  Likewise a key whose row state moved while the span was being compared
  (the change detector staged it meanwhile) is left to the detector, so a
  re-read by the sweep can never overwrite a newer change with an older one.
* **What is counted.** ``rows_pms`` (planned), ``rows_cloud`` (the cloud's
  counts), ``rows_matched`` (equal, or pending) are the state *at the time of
  the check*, before anything is re-sent: "% in sync" is
  ``rows_matched / max(rows_pms, rows_cloud)``. ``resent`` and ``deleted``
  say what was staged. Each sweep is one :class:`ReconcileRun` row.
* **Keys.** The span re-read needs a single key column with non-negative
  integer values (every Open Dental table); the sweep refuses anything else
  with :class:`UnreconcilableKeysError` rather than guess.
* **Bad data** never stops a sweep: unreadable values arrive as ``None``
  (the record reader reports them), and a range the cloud refuses is
  counted and skipped; the run then ends ``failed`` with the count.
* **Privacy.** Logs carry entity names and counts only.

:class:`ReconcileLoop` runs sweeps in the engine: every entity on a schedule
and, at once, the entities a ``reconcile.request`` names (repeated requests
merge). :func:`reconcile_summary` reads the latest results for status and
the heartbeat.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from bridge.backoff import Backoff
from bridge.cloud.client import CloudClient
from bridge.cloud.protocol import KeyRange, RangeDigest, key_order
from bridge.cloud.retry import send_with_retry
from bridge.config import Settings
from bridge.errors import BridgeError, CloudRejectedError, PmsError
from bridge.health import Health, record_health
from bridge.pms.odbc import PmsConnection
from bridge.pms.profile import Profile
from bridge.pms.source import connect_pms
from bridge.secrets import SecretStore
from bridge.state import StateStore
from bridge.state.models import OutboxChange, ReconcileRun, RowState, SyncCursor
from bridge.sync.outbox import Outbox
from bridge.sync.records import Record, RecordReader

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 6 * 3600.0
RANGE_ROWS = 1_000
RANGES_PER_REQUEST = 100
KEYS_PAGE = 1_000
CLOUD_RETRY_SECONDS = 300.0
_IN_CHUNK = 500
_INTEGER_KEY = re.compile(r"0|[1-9][0-9]*")

T = TypeVar("T")
Clock = Callable[[], datetime]


class UnreconcilableKeysError(PmsError):
    """The entity's keys cannot be swept in ranges (not one integer column)."""

    default_fix = (
        "Reconciliation needs a single integer key column; check the PMS profile for this entity."
    )


class SweepStopped(BridgeError):
    """The engine is stopping; the sweep was abandoned (its run is marked failed)."""


def percent_in_sync(rows_matched: int, rows_pms: int, rows_cloud: int) -> float:
    """``rows_matched / max(rows_pms, rows_cloud)`` as a percentage (100 when both are empty)."""
    total = max(rows_pms, rows_cloud)
    if total == 0:
        return 100.0
    return round(100.0 * min(rows_matched, total) / total, 2)


@dataclass(frozen=True)
class ReconcileResult:
    """One finished sweep of one entity (see the module doc for the counts)."""

    run_id: int
    entity: str
    trigger: str
    status: str
    rows_pms: int
    rows_cloud: int
    rows_matched: int
    pending: int
    resent: int
    deleted: int
    ranges: int
    ranges_differing: int
    started_at: datetime
    finished_at: datetime
    error: str = ""

    @property
    def percent_in_sync(self) -> float:
        return percent_in_sync(self.rows_matched, self.rows_pms, self.rows_cloud)


@dataclass(frozen=True)
class EntityReconcile:
    """The reconciliation state of one entity, for status and the heartbeat.

    ``status``, ``error`` and ``last_run_at`` are from the latest sweep
    (``running``, ``ok`` or ``failed``); the figures and ``verified_at`` are
    from the latest sweep that finished ``ok`` (None/0 when there is none).
    """

    entity: str
    status: str
    percent_in_sync: float | None
    verified_at: datetime | None
    resent: int
    deleted: int
    rows_pms: int
    rows_cloud: int
    last_run_at: datetime
    error: str = ""


@dataclass
class _Range:
    span: KeyRange
    count: int
    digest: str


@dataclass
class _Tally:
    rows_pms: int = 0
    rows_cloud: int = 0
    rows_matched: int = 0
    pending: int = 0
    resent: int = 0
    deleted: int = 0
    ranges: int = 0
    differing: int = 0
    refused: int = 0
    errors: list[str] = field(default_factory=list)


class Reconciler:
    """Sweeps one entity (module doc). One thread at a time; the connection
    and client are the caller's."""

    def __init__(
        self,
        reader: RecordReader,
        outbox: Outbox,
        store: StateStore,
        *,
        range_rows: int = RANGE_ROWS,
        ranges_per_request: int = RANGES_PER_REQUEST,
        keys_page: int = KEYS_PAGE,
        on_staged: Callable[[], None] | None = None,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        if range_rows < 1 or ranges_per_request < 1 or keys_page < 1:
            raise ValueError("range_rows, ranges_per_request and keys_page must be at least 1")
        self.reader = reader
        self.entity = reader.entity
        self.outbox = outbox
        self.store = store
        self.range_rows = range_rows
        self.ranges_per_request = ranges_per_request
        self.keys_page = keys_page
        self._on_staged = on_staged
        self._clock = clock
        self._key_column = reader.spec.key[0]

    # -- the sweep ---------------------------------------------------------------

    def sweep(
        self,
        conn: PmsConnection,
        client: CloudClient,
        trigger: str = "schedule",
        *,
        stop: threading.Event | None = None,
    ) -> ReconcileResult:
        """Sweep the entity once and record the run.

        Raises what ends the sweep early (the PMS or the cloud unavailable,
        the outbox full, :class:`SweepStopped`) after marking the run failed.
        """
        stop = stop or threading.Event()
        started = self._clock()
        run_id = self._start_run(trigger, started)
        tally = _Tally()
        try:
            if len(self.reader.spec.key) != 1:
                raise UnreconcilableKeysError(
                    f"entity '{self.entity}' has a composite key; it cannot be swept in ranges"
                )
            ranges = self._plan(conn, tally, stop)
            for start in range(0, len(ranges), self.ranges_per_request):
                self._check_stop(stop)
                batch = ranges[start : start + self.ranges_per_request]
                differing = self._compare(client, batch, stop)
                tally.differing += len(differing)
                differ = {id(planned) for planned, _ in differing}
                for planned in batch:
                    if id(planned) not in differ:
                        tally.rows_cloud += planned.count
                        tally.rows_matched += planned.count
                for planned, cloud_count in differing:
                    tally.rows_cloud += cloud_count
                    try:
                        self._repair(conn, client, planned.span, tally, stop)
                    except CloudRejectedError as exc:
                        tally.refused += 1
                        tally.errors.append(exc.message)
                        log.warning(
                            "reconciliation: the cloud refused a range; skipped",
                            extra={"entity": self.entity, "kind": exc.kind.value},
                        )
        except Exception as exc:  # the run is closed whatever ended it
            failure = exc.message if isinstance(exc, BridgeError) else type(exc).__name__
            self._finish_run(run_id, tally, "failed", failure)
            log.warning(
                "reconciliation failed",
                extra={
                    "entity": self.entity,
                    "kind": exc.kind.value if isinstance(exc, BridgeError) else "internal",
                    "resent": tally.resent,
                },
            )
            raise
        status = "failed" if tally.refused else "ok"
        error = ""
        if tally.refused:
            error = f"{tally.refused} range(s) could not be checked: {tally.errors[0]}"
        result = self._finish_run(run_id, tally, status, error)
        log.info(
            "reconciliation finished",
            extra={
                "entity": self.entity,
                "trigger": trigger,
                "status": status,
                "rows_pms": tally.rows_pms,
                "rows_cloud": tally.rows_cloud,
                "rows_matched": tally.rows_matched,
                "pending": tally.pending,
                "resent": tally.resent,
                "deleted": tally.deleted,
                "percent_in_sync": result.percent_in_sync,
            },
        )
        return result

    @staticmethod
    def _check_stop(stop: threading.Event) -> None:
        if stop.is_set():
            raise SweepStopped("the engine stopped before the sweep finished")

    # -- 1. plan: stream the PMS into ranges ----------------------------------------

    def _plan(self, conn: PmsConnection, tally: _Tally, stop: threading.Event) -> list[_Range]:
        ranges: list[_Range] = []
        digest = RangeDigest()
        after: str | None = None
        previous: tuple[int, str] | None = None
        # Drained (or closed) before anything else touches the connection.
        with contextlib.closing(self.reader.read(conn)) as records:
            for record in records:
                self._check_key(record, previous)
                previous = key_order(record.key)
                digest.add(record.key, record.hash)
                tally.rows_pms += 1
                if digest.count == self.range_rows:
                    ranges.append(_Range(KeyRange(after, record.key), digest.count, digest.digest))
                    after, digest = record.key, RangeDigest()
                    self._check_stop(stop)
        ranges.append(_Range(KeyRange(after, None), digest.count, digest.digest))
        tally.ranges = len(ranges)
        return ranges

    def _check_key(self, record: Record, previous: tuple[int, str] | None) -> None:
        if not _INTEGER_KEY.fullmatch(record.key) or (
            previous is not None and key_order(record.key) <= previous
        ):
            raise UnreconcilableKeysError(
                f"entity '{self.entity}' has keys that are not ascending non-negative "
                "integers; it cannot be swept in ranges"
            )

    # -- 2. compare range checksums ---------------------------------------------------

    def _compare(
        self, client: CloudClient, ranges: list[_Range], stop: threading.Event
    ) -> list[tuple[_Range, int]]:
        """The ranges whose cloud checksum differs, with the cloud's count."""
        page = self._cloud(lambda: client.checksums(self.entity, [r.span for r in ranges]), stop)
        return [
            (planned, cloud.count)
            for planned, cloud in zip(ranges, page.ranges, strict=True)
            if (cloud.count, cloud.digest) != (planned.count, planned.digest)
        ]

    # -- 3. repair one differing range ------------------------------------------------

    def _repair(
        self,
        conn: PmsConnection,
        client: CloudClient,
        span: KeyRange,
        tally: _Tally,
        stop: threading.Event,
    ) -> None:
        """Diff ``span`` page by page of the cloud's key list: each page covers
        the sub-span up to its last key (the whole rest when it is the last)."""
        after = span.after
        while True:
            self._check_stop(stop)
            ask = functools.partial(
                client.checksum_keys, self.entity, KeyRange(after, span.upto), self.keys_page
            )
            keys = self._cloud(ask, stop)
            upto = keys.rows[-1].key if keys.more and keys.rows else span.upto
            cloud = {row.key: row.hash for row in keys.rows}
            self._repair_part(conn, KeyRange(after, upto), span, cloud, tally)
            if not keys.more or not keys.rows:
                return
            after = upto

    def _repair_part(
        self,
        conn: PmsConnection,
        part: KeyRange,
        span: KeyRange,
        cloud: dict[str, str],
        tally: _Tally,
    ) -> None:
        before = self._row_versions(part)
        pms = self._read_span(conn, part, span)
        stale: list[Record] = []
        for record in pms:
            if cloud.get(record.key) == record.hash:
                tally.rows_matched += 1
            else:
                stale.append(record)
        present = {r.key for r in pms}
        gone = [key for key in cloud if key not in present]
        if not stale and not gone:
            return
        with self.store.write() as session:
            candidates = [r.key for r in stale] + gone
            busy = self._pending(session, candidates)
            now = self._row_versions_of(session, candidates)
            busy |= {k for k in candidates if now.get(k) != before.get(k)}
            send = [r for r in stale if r.key not in busy]
            drop = [k for k in gone if k not in busy]
            if send:
                self.outbox.stage(session, send, force=True)
            if drop:
                self.outbox.stage_delete(session, self.entity, drop, force=True)
        tally.pending += len(busy)
        tally.rows_matched += len(busy)
        tally.resent += len(send)
        tally.deleted += len(drop)
        if (send or drop) and self._on_staged is not None:
            self._on_staged()

    def _read_span(self, conn: PmsConnection, part: KeyRange, span: KeyRange) -> list[Record]:
        """The PMS records in ``part``, a piece of the planned range ``span``.

        The bounds of ``span`` are PMS keys (integers); a bound of ``part``
        may be any key the cloud holds, so the query is widened to integer
        bounds (never past ``span``) and the records filtered in key order.
        """
        lower = _max_bound(_after_bound(part.after), _after_bound(span.after))
        upper = _min_bound(_upto_bound(part.upto), _upto_bound(span.upto))
        conditions: list[str] = []
        params: list[object] = []
        if lower is not None:
            conditions.append(f"{self._key_column} > ?")
            params.append(lower)
        if upper is not None:
            conditions.append(f"{self._key_column} <= ?")
            params.append(upper)
        condition = " AND ".join(conditions) or None
        return [r for r in self.reader.read(conn, condition, params) if part.contains(r.key)]

    # -- local state --------------------------------------------------------------

    def _row_versions(self, part: KeyRange) -> dict[str, tuple[str, bool]]:
        """key -> (version, deleted) of the local row states in ``part``."""
        key = RowState.key
        conditions = [RowState.entity == self.entity]
        if part.after is not None:
            n = len(part.after)
            conditions.append(
                or_(func.length(key) > n, and_(func.length(key) == n, key > part.after))
            )
        if part.upto is not None:
            n = len(part.upto)
            conditions.append(
                or_(func.length(key) < n, and_(func.length(key) == n, key <= part.upto))
            )
        with self.store.read() as session:
            rows = session.execute(
                select(RowState.key, RowState.version, RowState.deleted).where(*conditions)
            )
            return {r.key: (r.version, r.deleted) for r in rows}

    def _row_versions_of(self, session: Session, keys: list[str]) -> dict[str, tuple[str, bool]]:
        found: dict[str, tuple[str, bool]] = {}
        for part in _chunks(keys):
            rows = session.execute(
                select(RowState.key, RowState.version, RowState.deleted).where(
                    RowState.entity == self.entity, RowState.key.in_(part)
                )
            )
            found.update({r.key: (r.version, r.deleted) for r in rows})
        return found

    def _pending(self, session: Session, keys: list[str]) -> set[str]:
        pending: set[str] = set()
        for part in _chunks(keys):
            pending.update(
                session.scalars(
                    select(OutboxChange.key).where(
                        OutboxChange.entity == self.entity, OutboxChange.key.in_(part)
                    )
                )
            )
        return pending

    def _start_run(self, trigger: str, started: datetime) -> int:
        with self.store.write() as session:
            run = ReconcileRun(
                entity=self.entity,
                trigger=trigger,
                started_at=started,
                status="running",
                rows_pms=0,
                rows_cloud=0,
                rows_matched=0,
                resent=0,
                deleted=0,
                error="",
            )
            session.add(run)
            session.flush()
            return run.id

    def _finish_run(self, run_id: int, tally: _Tally, status: str, error: str) -> ReconcileResult:
        finished = self._clock()
        with self.store.write() as session:
            run = session.get(ReconcileRun, run_id)
            assert run is not None
            run.finished_at = finished
            run.status = status
            run.rows_pms = tally.rows_pms
            run.rows_cloud = tally.rows_cloud
            run.rows_matched = min(tally.rows_matched, max(tally.rows_pms, tally.rows_cloud))
            run.resent = tally.resent
            run.deleted = tally.deleted
            run.error = error[:1000]
            started = run.started_at
            trigger = run.trigger
            matched = run.rows_matched
        return ReconcileResult(
            run_id=run_id,
            entity=self.entity,
            trigger=trigger,
            status=status,
            rows_pms=tally.rows_pms,
            rows_cloud=tally.rows_cloud,
            rows_matched=matched,
            pending=tally.pending,
            resent=tally.resent,
            deleted=tally.deleted,
            ranges=tally.ranges,
            ranges_differing=tally.differing,
            started_at=started,
            finished_at=finished,
            error=error,
        )

    @staticmethod
    def _cloud(call: Callable[[], T], stop: threading.Event) -> T:
        def sleep(seconds: float) -> None:
            if stop.wait(seconds):
                raise SweepStopped("the engine stopped before the sweep finished")

        return send_with_retry(
            call, backoff=Backoff(base=1.0, cap=30.0), sleep=sleep, max_elapsed=CLOUD_RETRY_SECONDS
        )


_MAX_DIGITS = 18  # 10**18 - 1 still fits a signed 64-bit SQL integer


def _after_bound(key: str | None) -> int | None:
    """An integer ``b`` with every integer key after ``key`` (key order) above ``b``."""
    if key is None:
        return None
    if _INTEGER_KEY.fullmatch(key):
        return int(key)
    if len(key) == 1 or len(key) > _MAX_DIGITS + 1:
        return None  # no useful integer bound: rely on the other one
    return int("9" * (len(key) - 1))  # keys after it have at least as many digits


def _upto_bound(key: str | None) -> int | None:
    """An integer ``b`` with every integer key up to ``key`` (key order) at or below ``b``."""
    if key is None:
        return None
    if _INTEGER_KEY.fullmatch(key):
        return int(key)
    if len(key) > _MAX_DIGITS:
        return None
    return int("9" * len(key))  # keys up to it have at most as many digits


def _max_bound(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _min_bound(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _chunks(keys: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(keys), _IN_CHUNK):
        yield keys[start : start + _IN_CHUNK]


# -- the engine's loop -------------------------------------------------------------


class ReconcileLoop:
    """Sweeps entities on a schedule and on request; a supervised engine loop.

    * **Schedule**: each entity is due ``interval_seconds`` after its last
      successful sweep (persisted, so a restart keeps the rhythm); an entity
      never swept is first due ``interval_seconds`` after its first sync
      finished, so a sweep does not race the first upload.
    * **Requests**: :meth:`request` (thread-safe; ``[]`` = every entity)
      sweeps the named entities at once; repeated requests merge, and a
      request arriving during a sweep of that entity leads to one more.
    * Only entities whose first sync has finished are swept; a request for
      another waits until it can run.
    * A failed sweep is retried after a capped backoff (a request stays
      queued meanwhile); a run left ``running`` by a crash is marked failed
      at start.
    * Anything staged sets ``wake_uplink``. The ``reconcile`` component
      health says what the last pass found.
    """

    def __init__(
        self,
        settings: Settings,
        profile: Profile,
        store: StateStore,
        secret_store: SecretStore,
        outbox: Outbox,
        wake_uplink: threading.Event,
        *,
        interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
        client_factory: Callable[[], CloudClient] | None = None,
        range_rows: int = RANGE_ROWS,
        poll_seconds: float = 30.0,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.store = store
        self.secret_store = secret_store
        self.wake_uplink = wake_uplink
        self.interval = timedelta(seconds=interval_seconds)
        self.poll_seconds = poll_seconds
        self._clock = clock
        self._client_factory = client_factory or (lambda: CloudClient(settings.cloud, secret_store))
        zone = settings.practice.zone
        self.reconcilers = {
            name: Reconciler(
                RecordReader(profile, name, zone),
                outbox,
                store,
                range_rows=range_rows,
                on_staged=wake_uplink.set,
                clock=clock,
            )
            for name in profile.entities
        }
        self._lock = threading.Lock()
        self._requested: set[str] = set()
        self._retry_at: dict[str, datetime] = {}
        self._backoff = Backoff(base=30.0, cap=1800.0)
        self._wake = threading.Event()

    def request(self, entities: Sequence[str]) -> None:
        """Sweep these entities (all when empty) as soon as possible; unknown
        names are ignored. Thread-safe; repeated requests merge."""
        names = set(entities) & set(self.reconcilers) if entities else set(self.reconcilers)
        ignored = len(set(entities) - set(self.reconcilers))
        if ignored:
            log.warning("reconcile request names unknown entities", extra={"ignored": ignored})
        with self._lock:
            self._requested |= names
            for name in names:  # asked for now: no backoff from an earlier failure
                self._retry_at.pop(name, None)
        self._wake.set()

    def requested(self) -> set[str]:
        """Entities requested and not swept yet."""
        with self._lock:
            return set(self._requested)

    def __call__(self, stop: threading.Event) -> None:
        self._close_interrupted_runs()
        try:
            client = self._client_factory()
        except BridgeError as exc:
            record_health(self.store, Health.from_error("reconcile", exc))
            raise  # the supervisor retries with backoff
        with client:
            while not stop.is_set():
                todo, next_at = self._due()
                if todo:
                    self._pass(client, todo, stop)
                    continue
                self._sleep(next_at, stop)

    def _sleep(self, until: datetime, stop: threading.Event) -> None:
        """Until ``until``, a request, or ``stop`` (checked twice a second)."""
        while not stop.is_set():
            left = (until - self._clock()).total_seconds()
            if left <= 0 or self._wake.wait(min(left, 0.5)):
                break
        self._wake.clear()

    def _due(self) -> tuple[list[tuple[str, str]], datetime]:
        """(entity, trigger) to sweep now, requested ones first, and when to
        look again if there is none."""
        now = self._clock()
        ready, last_done = self._ready_entities()
        with self._lock:
            requested = self._requested & ready
            retry_at = dict(self._retry_at)
        todo: list[tuple[str, str]] = []
        next_at = now + timedelta(seconds=self.poll_seconds)
        for name in sorted(ready):
            due = retry_at.get(name, now)
            if name not in requested:
                due = max(due, last_done[name] + self.interval)
            if due <= now:
                todo.append((name, "request" if name in requested else "schedule"))
            else:
                next_at = min(next_at, due)
        todo.sort(key=lambda item: item[1] != "request")
        return todo, next_at

    def _ready_entities(self) -> tuple[set[str], dict[str, datetime]]:
        """Entities past their first sync, and when each was last verified
        (or, never verified, when its first sync finished)."""
        with self.store.read() as session:
            cursors = {
                c.entity: c
                for c in session.scalars(select(SyncCursor).where(SyncCursor.phase == "delta"))
            }
            verified: dict[str, datetime | None] = {
                entity: finished
                for entity, finished in session.execute(
                    select(ReconcileRun.entity, func.max(ReconcileRun.finished_at))
                    .where(ReconcileRun.status == "ok")
                    .group_by(ReconcileRun.entity)
                )
            }
        last_done: dict[str, datetime] = {}
        for name, cursor in cursors.items():
            if name not in self.reconcilers:
                continue
            finished = verified.get(name)
            if finished is not None and finished.tzinfo is None:
                finished = finished.replace(tzinfo=UTC)
            last_done[name] = finished or cursor.finished_at or cursor.updated_at
        return set(last_done), last_done

    def _pass(
        self, client: CloudClient, todo: list[tuple[str, str]], stop: threading.Event
    ) -> None:
        try:
            conn = connect_pms(self.settings, self.secret_store)
        except BridgeError as exc:
            self._failed(exc, [name for name, _ in todo])
            return
        results: list[ReconcileResult] = []
        try:
            for name, trigger in todo:
                if stop.is_set():
                    return
                with self._lock:
                    self._requested.discard(name)
                try:
                    results.append(self.reconcilers[name].sweep(conn, client, trigger, stop=stop))
                except SweepStopped:
                    return
                except UnreconcilableKeysError as exc:  # recorded; retrying cannot help
                    record_health(self.store, Health.from_error("reconcile", exc))
                    continue
                except BridgeError as exc:
                    self._failed(exc, [name])
                    if trigger == "request":  # stays queued, after the backoff
                        with self._lock:
                            self._requested.add(name)
                    if isinstance(exc, PmsError):
                        return  # the connection is suspect: reconnect on the next pass
                    continue
                with self._lock:
                    self._retry_at.pop(name, None)
        finally:
            conn.close()
        if results:
            self._backoff.reset()
            self._report(results)

    def _failed(self, exc: BridgeError, names: list[str]) -> None:
        retry_at = self._clock() + timedelta(seconds=self._backoff.next())
        with self._lock:
            for name in names:
                self._retry_at[name] = retry_at
        record_health(self.store, Health.from_error("reconcile", exc))
        log.warning(
            "reconciliation will be retried",
            extra={"kind": exc.kind.value, "entities": len(names)},
        )

    def _close_interrupted_runs(self) -> None:
        """Runs left ``running`` by a crash or a kill end as failed."""
        with self.store.write() as session:
            for run in session.scalars(
                select(ReconcileRun).where(ReconcileRun.status == "running")
            ):
                run.status = "failed"
                run.error = "interrupted: the engine stopped during the sweep"
                run.finished_at = run.finished_at or self._clock()

    def _report(self, results: list[ReconcileResult]) -> None:
        worst = min(results, key=lambda r: r.percent_in_sync)
        failed = [r for r in results if r.status != "ok"]
        message = (
            f"{len(results)} entit{'y' if len(results) == 1 else 'ies'} verified; "
            f"lowest {worst.percent_in_sync:g}% in sync ({worst.entity}); "
            f"{sum(r.resent for r in results)} re-sent, {sum(r.deleted for r in results)} deleted"
        )
        if failed:
            message += f"; {len(failed)} incomplete"
        record_health(
            self.store,
            Health(
                "reconcile",
                "warn" if failed else "ok",
                message,
                details={r.entity: r.percent_in_sync for r in results},
            ),
        )


def reconcile_summary(store: StateStore) -> list[EntityReconcile]:
    """The latest reconciliation of each entity that has one, by entity name."""
    with store.read() as session:
        latest_ids = select(func.max(ReconcileRun.id)).group_by(ReconcileRun.entity)
        latest_ok_ids = (
            select(func.max(ReconcileRun.id))
            .where(ReconcileRun.status == "ok")
            .group_by(ReconcileRun.entity)
        )
        latest = {
            r.entity: r
            for r in session.scalars(select(ReconcileRun).where(ReconcileRun.id.in_(latest_ids)))
        }
        ok = {
            r.entity: r
            for r in session.scalars(select(ReconcileRun).where(ReconcileRun.id.in_(latest_ok_ids)))
        }
    summary = []
    for entity in sorted(latest):
        run, good = latest[entity], ok.get(entity)
        summary.append(
            EntityReconcile(
                entity=entity,
                status=run.status,
                percent_in_sync=(
                    percent_in_sync(good.rows_matched, good.rows_pms, good.rows_cloud)
                    if good is not None
                    else None
                ),
                verified_at=good.finished_at if good is not None else None,
                resent=good.resent if good is not None else 0,
                deleted=good.deleted if good is not None else 0,
                rows_pms=good.rows_pms if good is not None else 0,
                rows_cloud=good.rows_cloud if good is not None else 0,
                last_run_at=run.started_at,
                error=run.error,
            )
        )
    return summary
