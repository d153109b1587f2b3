"""Component health: the engine's record of what works and what does not.

Each component (``pms``, ``state`` ...) has one row in the state store with
its latest status, a plain-words message and fix (never personal data) and
when it last was ok. The engine writes it; ``bridge status`` and the panel
read it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from bridge.errors import BridgeError
from bridge.state import StateStore
from bridge.state.models import ComponentHealth

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Health:
    component: str
    status: Status
    message: str
    fix: str = ""
    error_kind: str | None = None
    details: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def from_error(cls, component: str, error: BridgeError) -> Health:
        return cls(component, "fail", error.message, error.fix, error.kind.value)


def record_health(store: StateStore, health: Health, now: datetime | None = None) -> None:
    """Upsert the component's row; ``last_ok_at`` moves only on ``ok``."""
    now = now or datetime.now(UTC)
    with store.write() as session:
        row = session.get(ComponentHealth, health.component)
        if row is None:
            row = ComponentHealth(component=health.component)
            session.add(row)
        row.status = health.status
        row.message = health.message
        row.fix = health.fix
        row.error_kind = health.error_kind
        row.details = json.dumps(dict(health.details), sort_keys=True, default=str)
        row.checked_at = now
        if health.status == "ok":
            row.last_ok_at = now
