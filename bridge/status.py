"""The engine's status as an immutable snapshot read from local state.

:func:`read_status` is the truth the CLI (and later the panel) shows: it is
rebuilt from the state store on every call, so it never depends on having
seen an event. An engine counts as *running* when its newest run has no stop
time and its heartbeat is fresh; a stale heartbeat without a stop time means
the engine died (``crashed``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select

from bridge.control.pause import read_pause
from bridge.files.records import folder_counts
from bridge.inbox.summary import read_inbox_summary
from bridge.state import StateStore
from bridge.state.models import ComponentHealth, EngineRun, OutboxChange, ReconcileRun, SyncCursor

EngineState = Literal["never-started", "running", "stopped", "crashed"]
HEARTBEAT_STALE_AFTER = timedelta(seconds=30)


@dataclass(frozen=True)
class ComponentStatus:
    component: str
    status: str
    message: str
    fix: str
    error_kind: str | None
    checked_at: datetime
    last_ok_at: datetime | None
    details: dict[str, object]


@dataclass(frozen=True)
class EntityStatus:
    """Where reading one entity stands, and how well the cloud matches it."""

    entity: str
    phase: str  # "initial" (first sync) or "delta"
    rows_done: int
    rows_total: int | None
    last_success_at: datetime | None
    lag_seconds: float | None
    rows_examined: int
    in_sync_percent: float | None  # latest finished reconciliation
    verified_at: datetime | None


@dataclass(frozen=True)
class QueueStatus:
    outbox_changes: int
    outbox_bytes: int
    inbox_pending: int
    inbox_waiting: dict[str, int]


@dataclass(frozen=True)
class FolderFilesStatus:
    """Files of one export folder by state (:mod:`bridge.files`)."""

    folder: str
    waiting: int  # settling, held open by another program, or retrying
    sending: int  # being uploaded (or the upload was interrupted)
    uploaded: int
    duplicate: int  # the cloud already had the content
    quarantined: int  # see ``bridge files --state quarantined`` for reasons


@dataclass(frozen=True)
class StatusSnapshot:
    engine: EngineState
    pid: int | None
    version: str | None
    started_at: datetime | None
    heartbeat_at: datetime | None
    stopped_at: datetime | None
    components: tuple[ComponentStatus, ...]
    taken_at: datetime
    entities: tuple[EntityStatus, ...] = ()
    queue: QueueStatus | None = None
    paused: bool = False  # paused through the control channel (persisted in state)
    paused_since: datetime | None = None
    paused_by: str = ""
    files: tuple[FolderFilesStatus, ...] = ()  # export folders (bridge.files), by label

    def component(self, name: str) -> ComponentStatus | None:
        return next((c for c in self.components if c.component == name), None)

    @property
    def healthy(self) -> bool:
        return self.engine == "running" and all(c.status != "fail" for c in self.components)

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=_json_default, indent=2)

    @classmethod
    def from_json(cls, data: str | Mapping[str, Any]) -> StatusSnapshot:
        """The snapshot :meth:`to_json` wrote (text or parsed); raises ValueError,
        KeyError or TypeError if it is not one."""
        obj: Mapping[str, Any] = json.loads(data) if isinstance(data, str) else data
        queue = obj.get("queue")
        return cls(
            engine=obj["engine"],
            pid=obj.get("pid"),
            version=obj.get("version"),
            started_at=_time(obj.get("started_at")),
            heartbeat_at=_time(obj.get("heartbeat_at")),
            stopped_at=_time(obj.get("stopped_at")),
            components=tuple(
                ComponentStatus(
                    c["component"],
                    c["status"],
                    c["message"],
                    c["fix"],
                    c.get("error_kind"),
                    _required_time(c["checked_at"]),
                    _time(c.get("last_ok_at")),
                    dict(c.get("details") or {}),
                )
                for c in obj.get("components", ())
            ),
            taken_at=_required_time(obj["taken_at"]),
            entities=tuple(
                EntityStatus(
                    entity=e["entity"],
                    phase=e["phase"],
                    rows_done=int(e["rows_done"]),
                    rows_total=e.get("rows_total"),
                    last_success_at=_time(e.get("last_success_at")),
                    lag_seconds=e.get("lag_seconds"),
                    rows_examined=int(e["rows_examined"]),
                    in_sync_percent=e.get("in_sync_percent"),
                    verified_at=_time(e.get("verified_at")),
                )
                for e in obj.get("entities", ())
            ),
            queue=QueueStatus(
                int(queue["outbox_changes"]),
                int(queue["outbox_bytes"]),
                int(queue["inbox_pending"]),
                {str(k): int(v) for k, v in dict(queue["inbox_waiting"]).items()},
            )
            if queue is not None
            else None,
            paused=bool(obj.get("paused", False)),
            paused_since=_time(obj.get("paused_since")),
            paused_by=str(obj.get("paused_by") or ""),
            files=tuple(
                FolderFilesStatus(**{k: f[k] for k in FolderFilesStatus.__dataclass_fields__})
                for f in obj.get("files", ())
            ),
        )


def _time(value: object) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None


def _required_time(value: object) -> datetime:
    return datetime.fromisoformat(str(value))


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def read_status(store: StateStore, now: datetime | None = None) -> StatusSnapshot:
    now = now or datetime.now(UTC)
    with store.read() as session:
        run = session.scalars(select(EngineRun).order_by(EngineRun.id.desc()).limit(1)).first()
        rows = session.scalars(select(ComponentHealth).order_by(ComponentHealth.component)).all()
        components = tuple(
            ComponentStatus(
                r.component,
                r.status,
                r.message,
                r.fix,
                r.error_kind,
                r.checked_at,
                r.last_ok_at,
                json.loads(r.details or "{}"),
            )
            for r in rows
        )
    entities = _entities(store, now)
    queue = _queue(store)
    pause = read_pause(store)
    files = _files(store)
    if run is None:
        return StatusSnapshot(
            "never-started", None, None, None, None, None, components, now, entities, queue,
            paused=pause.paused, paused_since=pause.since, paused_by=pause.by, files=files,
        )  # fmt: skip
    state: EngineState
    if run.stopped_at is not None:
        state = "stopped"
    elif now - run.heartbeat_at > HEARTBEAT_STALE_AFTER:
        state = "crashed"
    else:
        state = "running"
    return StatusSnapshot(
        state,
        run.pid,
        run.version,
        run.started_at,
        run.heartbeat_at,
        run.stopped_at,
        components,
        now,
        entities,
        queue,
        paused=pause.paused,
        paused_since=pause.since,
        paused_by=pause.by,
        files=files,
    )


def _files(store: StateStore) -> tuple[FolderFilesStatus, ...]:
    counts = sorted(folder_counts(store).items())
    return tuple(FolderFilesStatus(folder, **by_state) for folder, by_state in counts)


def _entities(store: StateStore, now: datetime) -> tuple[EntityStatus, ...]:
    with store.read() as session:
        cursors = session.scalars(select(SyncCursor).order_by(SyncCursor.entity)).all()
        latest = (
            select(func.max(ReconcileRun.id))
            .where(ReconcileRun.status == "ok")
            .group_by(ReconcileRun.entity)
        )
        runs = {
            r.entity: r
            for r in session.scalars(select(ReconcileRun).where(ReconcileRun.id.in_(latest)))
        }
    out = []
    for c in cursors:
        run = runs.get(c.entity)
        percent = None
        if run is not None:
            base = max(run.rows_pms, run.rows_cloud)
            percent = round(100.0 * run.rows_matched / base, 2) if base else 100.0
        out.append(
            EntityStatus(
                entity=c.entity,
                phase=c.phase,
                rows_done=c.rows_done,
                rows_total=c.rows_total,
                last_success_at=c.last_success_at,
                lag_seconds=(
                    round((now - c.last_success_at).total_seconds(), 1)
                    if c.last_success_at is not None
                    else None
                ),
                rows_examined=c.rows_examined,
                in_sync_percent=percent,
                verified_at=run.finished_at if run is not None else None,
            )
        )
    return tuple(out)


def _queue(store: StateStore) -> QueueStatus:
    with store.read() as session:
        changes, size = session.execute(
            select(func.count(), func.coalesce(func.sum(OutboxChange.size), 0))
        ).one()
    inbox = read_inbox_summary(store, limit=0)
    return QueueStatus(int(changes), int(size), inbox.pending, dict(inbox.waiting_types))
