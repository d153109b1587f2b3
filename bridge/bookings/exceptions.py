"""The front desk's queue: booking decisions the bridge will not take alone.

An exception is opened by the booking pipeline (in the same state-store
transaction that records the booking's stage) when a patient match is in
doubt, a slot conflicted, or the policy holds a booking for approval. It
carries what a person needs to decide (:class:`ExceptionView`): the request
as the cloud sent it, the patient candidates, the alternative slots, the
hold already written. It is resolved by one :class:`Resolution` through the
:class:`ExceptionDesk` (the CLI now, the panel through the control channel),
and the resolution flows back to the cloud as the item's result.

Actions per reason (:func:`actions_for`):

* patient doubts (``ambiguous_patient``, ``near_match``,
  ``unconfirmed_match``): ``choose_patient`` (a candidate's id),
  ``new_patient``, ``reject``;
* ``slot_taken`` and the other slot reasons: ``choose_alternative`` (an
  index into the alternatives), ``reject``;
* ``approval_required`` (the policy holds this type for the front desk)
  and ``late_change`` (a cancel or move inside the minimum notice):
  ``approve``, ``reject``;
* ``double_booked`` (someone put an appointment on top of a bridge
  booking after it was verified): ``approve`` keeps both, ``reject``
  takes the bridge's booking out of the diary;
* ``pms_refused`` (the PMS refused the write; book by hand if wanted):
  ``reject``.

The context may name patients: it stays in this local database and the
panel, and is never logged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.state import StateStore
from bridge.state.models import BookingException

OPEN = "open"
RESOLVED = "resolved"

Action = Literal["approve", "choose_alternative", "choose_patient", "new_patient", "reject"]
ACTIONS: tuple[Action, ...] = (
    "approve",
    "choose_alternative",
    "choose_patient",
    "new_patient",
    "reject",
)
PATIENT_REASONS = frozenset({"ambiguous_patient", "near_match", "unconfirmed_match"})
APPROVAL_REASONS = frozenset({"approval_required", "late_change", "double_booked"})
REVIEW_ONLY_REASONS = frozenset({"pms_refused"})


def actions_for(reason_code: str) -> tuple[Action, ...]:
    """The actions that resolve an exception with this reason, in menu order."""
    if reason_code in PATIENT_REASONS:
        return ("choose_patient", "new_patient", "reject")
    if reason_code in APPROVAL_REASONS:
        return ("approve", "reject")
    if reason_code in REVIEW_ONLY_REASONS:
        return ("reject",)
    return ("choose_alternative", "reject")


@dataclass(frozen=True)
class ExceptionView:
    """One exception as the front desk sees it (may hold personal data)."""

    id: int
    item_id: str
    reason_code: str
    state: str
    created_at: datetime
    context: Mapping[str, Any]
    actions: tuple[Action, ...]
    resolved_at: datetime | None = None
    resolution: str | None = None
    resolution_detail: Mapping[str, Any] = field(default_factory=dict)
    resolved_by: str = ""

    @property
    def candidates(self) -> list[Mapping[str, Any]]:
        return list(self.context.get("candidates", []))

    @property
    def alternatives(self) -> list[Mapping[str, Any]]:
        return list(self.context.get("alternatives", []))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "item_id": self.item_id,
            "reason_code": self.reason_code,
            "state": self.state,
            "created_at": self.created_at.isoformat(),
            "context": dict(self.context),
            "actions": list(self.actions),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "resolution": self.resolution,
            "resolution_detail": dict(self.resolution_detail),
            "resolved_by": self.resolved_by,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ExceptionView:
        resolved_at = obj.get("resolved_at")
        return cls(
            id=int(obj["id"]),
            item_id=str(obj["item_id"]),
            reason_code=str(obj["reason_code"]),
            state=str(obj["state"]),
            created_at=datetime.fromisoformat(obj["created_at"]),
            context=dict(obj.get("context", {})),
            actions=tuple(a for a in ACTIONS if a in obj.get("actions", ())),
            resolved_at=datetime.fromisoformat(resolved_at) if resolved_at else None,
            resolution=obj.get("resolution"),
            resolution_detail=dict(obj.get("resolution_detail", {})),
            resolved_by=str(obj.get("resolved_by", "")),
        )


@dataclass(frozen=True)
class Resolution:
    """A person's decision on one exception.

    ``choice`` is the candidate's patient id for ``choose_patient`` and the
    alternative's index (as a string) for ``choose_alternative``; ``message``
    is an optional note for the cloud on ``reject`` (it must carry no
    personal data: it is sent as the result's reason message). ``by`` names
    who decided (an operator name or ``cli``), for the audit trail.
    """

    action: Action
    choice: str | None = None
    message: str = ""
    by: str = ""


@dataclass(frozen=True)
class ResolveOutcome:
    """What resolving did: the result status sent to the cloud and the PMS ids."""

    exception_id: int
    status: str
    reason_code: str
    message: str
    pms_ids: Mapping[str, str] = field(default_factory=dict)


class ExceptionDesk(Protocol):
    """Resolves exceptions; implemented by the booking pipeline, used by CLI and panel."""

    def resolve(self, exception_id: int, resolution: Resolution) -> ResolveOutcome:
        """Act on the decision and queue the item's new result; raises
        :class:`ExceptionNotOpen` or :class:`InvalidResolution`."""


class ExceptionNotOpen(LookupError):
    """No open exception has this id (never existed, or already resolved)."""


class InvalidResolution(ValueError):
    """The action does not fit the exception (wrong action, unknown choice)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _view(row: BookingException) -> ExceptionView:
    return ExceptionView(
        id=row.id,
        item_id=row.item_id,
        reason_code=row.reason_code,
        state=row.state,
        created_at=row.created_at,
        context=json.loads(row.context),
        actions=actions_for(row.reason_code) if row.state == OPEN else (),
        resolved_at=row.resolved_at,
        resolution=row.resolution,
        resolution_detail=json.loads(row.resolution_detail),
        resolved_by=row.resolved_by,
    )


def open_exception(
    session: Session, item_id: str, reason_code: str, context: Mapping[str, Any]
) -> int:
    """Open an exception inside the caller's write transaction; returns its id.

    An item has at most one open exception: opening again (a retried
    attempt) returns the open one unchanged.
    """
    existing = session.scalars(
        select(BookingException).where(
            BookingException.item_id == item_id, BookingException.state == OPEN
        )
    ).first()
    if existing is not None:
        return existing.id
    row = BookingException(
        item_id=item_id,
        reason_code=reason_code,
        state=OPEN,
        context=json.dumps(context, sort_keys=True, default=str),
        created_at=_now(),
        resolution_detail="{}",
        resolved_by="",
    )
    session.add(row)
    session.flush()
    return row.id


def mark_resolved(
    session: Session,
    exception_id: int,
    resolution: Resolution,
    detail: Mapping[str, Any],
) -> None:
    """Close an open exception inside the caller's write transaction."""
    row = session.get(BookingException, exception_id)
    if row is None or row.state != OPEN:
        raise ExceptionNotOpen(f"exception {exception_id} is not open")
    row.state = RESOLVED
    row.resolved_at = _now()
    row.resolution = resolution.action
    row.resolution_detail = json.dumps(dict(detail), sort_keys=True, default=str)
    row.resolved_by = resolution.by[:100]


def get_exception(store: StateStore, exception_id: int) -> ExceptionView | None:
    with store.read() as session:
        row = session.get(BookingException, exception_id)
        return _view(row) if row is not None else None


def list_exceptions(
    store: StateStore, *, state: str | None = OPEN, limit: int = 200
) -> list[ExceptionView]:
    """Exceptions, oldest first; ``state=None`` lists every state (newest ``limit``)."""
    with store.read() as session:
        query = select(BookingException)
        if state is not None:
            query = query.where(BookingException.state == state).order_by(BookingException.id)
        else:
            query = query.order_by(BookingException.id.desc())
        rows = session.scalars(query.limit(limit)).all()
        views = [_view(row) for row in rows]
    return views if state is not None else list(reversed(views))
