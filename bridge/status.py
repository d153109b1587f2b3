"""The engine's status as an immutable snapshot read from local state.

:func:`read_status` is the truth the CLI (and later the panel) shows: it is
rebuilt from the state store on every call, so it never depends on having
seen an event. An engine counts as *running* when its newest run has no stop
time and its heartbeat is fresh; a stale heartbeat without a stop time means
the engine died (``crashed``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import select

from bridge.state import StateStore
from bridge.state.models import ComponentHealth, EngineRun

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
class StatusSnapshot:
    engine: EngineState
    pid: int | None
    version: str | None
    started_at: datetime | None
    heartbeat_at: datetime | None
    stopped_at: datetime | None
    components: tuple[ComponentStatus, ...]
    taken_at: datetime

    @property
    def healthy(self) -> bool:
        return self.engine == "running" and all(c.status != "fail" for c in self.components)

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=_json_default, indent=2)


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
    if run is None:
        return StatusSnapshot("never-started", None, None, None, None, None, components, now)
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
    )
