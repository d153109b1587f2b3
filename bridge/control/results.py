"""Typed values that cross the control channel, with their JSON forms.

Each has ``to_json()`` (what the engine sends) and ``from_json()`` (what the
client builds; raises ValueError, KeyError or TypeError on a malformed body,
which the client reports as a protocol error). The snapshot, exception and
event types live with their owners: :class:`bridge.status.StatusSnapshot`,
:mod:`bridge.bookings.exceptions`, :mod:`bridge.control.events`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bridge.bookings.exceptions import ACTIONS, Action, Resolution, ResolveOutcome
from bridge.logs.jsonl import format_human


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None


@dataclass(frozen=True)
class SyncScheduled:
    """The answer to "sync now".

    ``entities`` are the entities the sync covers (all of the profile's when
    none were named); ``keys`` how many record keys will be re-read;
    ``merged`` is true when every entity was already waiting for a sync that
    had not started (this press added nothing); ``paused`` that the sync will
    run only when the bridge is resumed.
    """

    entities: tuple[str, ...]
    keys: int
    merged: bool
    paused: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "entities": list(self.entities),
            "keys": self.keys,
            "merged": self.merged,
            "paused": self.paused,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> SyncScheduled:
        return cls(
            tuple(str(e) for e in obj["entities"]),
            int(obj["keys"]),
            bool(obj["merged"]),
            bool(obj["paused"]),
        )


@dataclass(frozen=True)
class PauseState:
    """Whether the bridge is paused, since when and by whom (persisted in state).

    ``settled`` (answers to pause/resume only) is true once every paused loop
    has actually stopped (after a pause) or been released (after a resume);
    a loop finishing a step or a cloud long-poll can take a few seconds.
    """

    paused: bool
    since: datetime | None = None
    by: str = ""
    settled: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "paused": self.paused,
            "since": self.since.isoformat() if self.since else None,
            "by": self.by,
            "settled": self.settled,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> PauseState:
        return cls(
            bool(obj["paused"]),
            _time(obj.get("since")),
            str(obj.get("by") or ""),
            bool(obj.get("settled", True)),
        )


@dataclass(frozen=True)
class VersionInfo:
    """The engine's versions, for the panel's about box and support."""

    bridge: str
    python: str
    platform: str
    protocol: str
    pid: int

    def to_json(self) -> dict[str, Any]:
        return {
            "bridge": self.bridge,
            "python": self.python,
            "platform": self.platform,
            "protocol": self.protocol,
            "pid": self.pid,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> VersionInfo:
        return cls(
            str(obj["bridge"]),
            str(obj["python"]),
            str(obj["platform"]),
            str(obj["protocol"]),
            int(obj["pid"]),
        )


@dataclass(frozen=True)
class LogRecord:
    """One record of the engine's log (already masked when it was written).

    ``raw`` is the stored JSON object (``ts``, ``level``, ``logger``, ``msg``
    and extra fields); ``cursor`` marks the position just after this record.
    """

    ts: datetime
    level: str
    logger: str
    msg: str
    cursor: str
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    def human(self) -> str:
        """One line as ``bridge logs`` prints it (local time, extras as key=value)."""
        return format_human(dict(self.raw))

    def to_json(self) -> dict[str, Any]:
        return {"cursor": self.cursor, "record": dict(self.raw)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> LogRecord:
        raw = dict(obj["record"])
        return cls(
            datetime.fromisoformat(str(raw["ts"])),
            str(raw["level"]),
            str(raw["logger"]),
            str(raw["msg"]),
            str(obj["cursor"]),
            raw,
        )


@dataclass(frozen=True)
class LogPage:
    """Log records oldest first, and the cursor to ask for what comes after.

    Iterating a page iterates its records. ``cursor`` moves past records the
    filters skipped too, so polling with it never reads them again.
    """

    records: tuple[LogRecord, ...]
    cursor: str

    def __iter__(self) -> Iterator[LogRecord]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def to_json(self) -> dict[str, Any]:
        return {"records": [r.to_json() for r in self.records], "cursor": self.cursor}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> LogPage:
        return cls(tuple(LogRecord.from_json(r) for r in obj["records"]), str(obj["cursor"]))


# -- exceptions: the desk's dataclasses have no JSON form of their own ----------------


def resolution_to_json(exception_id: int, resolution: Resolution) -> dict[str, Any]:
    return {
        "id": exception_id,
        "action": resolution.action,
        "choice": resolution.choice,
        "message": resolution.message,
        "by": resolution.by,
    }


def action_of(value: object) -> Action:
    """``value`` as an :data:`~bridge.bookings.exceptions.Action`; ValueError if it is none."""
    for action in ACTIONS:
        if value == action:
            return action
    raise ValueError(f"action must be one of {', '.join(ACTIONS)}")


def outcome_to_json(outcome: ResolveOutcome) -> dict[str, Any]:
    return {
        "exception_id": outcome.exception_id,
        "status": outcome.status,
        "reason_code": outcome.reason_code,
        "message": outcome.message,
        "pms_ids": {str(k): str(v) for k, v in outcome.pms_ids.items()},
    }


def outcome_from_json(obj: Mapping[str, Any]) -> ResolveOutcome:
    return ResolveOutcome(
        exception_id=int(obj["exception_id"]),
        status=str(obj["status"]),
        reason_code=str(obj["reason_code"]),
        message=str(obj["message"]),
        pms_ids={str(k): str(v) for k, v in dict(obj.get("pms_ids") or {}).items()},
    )
