"""Cloud API v1 wire models (docs/cloud-api.yaml, ``components/schemas``).

Frozen dataclasses, one per schema the agent sends or reads: :class:`Change`,
:class:`ChangeBatch`, :class:`ChangeAck`, :class:`InboxItem`,
:class:`InboxPage`, :class:`Alternative`, :class:`Reason`,
:class:`InboxResult`, :class:`InboxResultAck`, :class:`HeartbeatError`,
:class:`Heartbeat`, :class:`HeartbeatAck`; for reconciliation
:class:`KeyRange`, :class:`RangeChecksum`, :class:`ChecksumPage`,
:class:`KeyHash`, :class:`KeyList`, with the checksum definitions
(:func:`key_order`, :class:`RangeDigest`).

Contract:

* ``to_json()`` gives the JSON object the spec asks for; times are aware
  :class:`~datetime.datetime` values sent as ISO 8601 with an offset (a naive
  datetime is refused at construction, :class:`ValueError`).
* ``from_json()`` reads the cloud's answer, ignores unknown extra fields (the
  contract allows either side to add fields) and raises
  :class:`ProtocolError` for a missing field or a wrong type. A
  :class:`ProtocolError` message names the field, never a value.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar

JsonObject = dict[str, Any]
Op = Literal["upsert", "delete"]
Status = Literal["confirmed", "held", "conflict", "needs_review", "rejected"]
STATUSES: frozenset[str] = frozenset(("confirmed", "held", "conflict", "needs_review", "rejected"))
REASON_REQUIRED: frozenset[str] = frozenset(("conflict", "needs_review", "rejected"))

_T = TypeVar("_T")


class ProtocolError(ValueError):
    """A body from the cloud that does not match the contract (names the field)."""


def format_time(value: datetime) -> str:
    """ISO 8601 with an offset (``...+00:00``)."""
    return value.isoformat()


def _aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")


def _get(obj: Mapping[str, Any], name: str, kind: type[_T]) -> _T:
    if name not in obj:
        raise ProtocolError(f"field '{name}' is missing")
    value = obj[name]
    if kind is int and isinstance(value, bool):
        raise ProtocolError(f"field '{name}' must be an integer")
    if not isinstance(value, kind):
        raise ProtocolError(f"field '{name}' must be {kind.__name__}")
    return value


def _time(obj: Mapping[str, Any], name: str) -> datetime:
    raw = _get(obj, name, str)
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ProtocolError(f"field '{name}' is not an ISO 8601 date-time") from None
    if value.tzinfo is None:
        raise ProtocolError(f"field '{name}' has no offset")
    return value


def _object(value: object, name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ProtocolError(f"'{name}' must be an object")
    return value


@dataclass(frozen=True)
class Change:
    """One change (delta) of one PMS record; ``data`` is required for upserts."""

    entity: str
    op: Op
    key: str
    version: str
    observed_at: datetime
    data: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        _aware(self.observed_at, "observed_at")
        if self.op not in ("upsert", "delete"):
            raise ValueError("op must be 'upsert' or 'delete'")
        if self.op == "upsert" and self.data is None:
            raise ValueError("an upsert needs data")

    def to_json(self) -> JsonObject:
        return {
            "entity": self.entity,
            "op": self.op,
            "key": self.key,
            "version": self.version,
            "observed_at": format_time(self.observed_at),
            "data": dict(self.data) if self.data is not None else None,
        }


@dataclass(frozen=True)
class ChangeBatch:
    """A batch of changes; ``batch_id`` is also the ``Idempotency-Key``."""

    agent_id: str
    batch_id: str
    seq: int
    changes: tuple[Change, ...]

    def __post_init__(self) -> None:
        if not self.changes:
            raise ValueError("a batch needs at least one change")

    def to_json(self) -> JsonObject:
        return {
            "agent_id": self.agent_id,
            "batch_id": self.batch_id,
            "seq": self.seq,
            "changes": [c.to_json() for c in self.changes],
        }


@dataclass(frozen=True)
class ChangeAck:
    """The cloud's answer to a batch: all ``accepted`` changes are recorded."""

    batch_id: str
    accepted: int
    duplicate: bool
    applied: int
    stale: int
    received_at: datetime

    @classmethod
    def from_json(cls, obj: object) -> ChangeAck:
        o = _object(obj, "ChangeAck")
        return cls(
            batch_id=_get(o, "batch_id", str),
            accepted=_get(o, "accepted", int),
            duplicate=_get(o, "duplicate", bool),
            applied=_get(o, "applied", int),
            stale=_get(o, "stale", int),
            received_at=_time(o, "received_at"),
        )


@dataclass(frozen=True)
class InboxItem:
    """One command from the cloud; ``type`` is e.g. ``booking.request``."""

    id: str
    type: str
    created_at: datetime
    payload: Mapping[str, Any]
    deliveries: int | None = None

    @classmethod
    def from_json(cls, obj: object) -> InboxItem:
        o = _object(obj, "InboxItem")
        deliveries = o.get("deliveries")
        if deliveries is not None and (
            isinstance(deliveries, bool) or not isinstance(deliveries, int)
        ):
            raise ProtocolError("field 'deliveries' must be an integer")
        return cls(
            id=_get(o, "id", str),
            type=_get(o, "type", str),
            created_at=_time(o, "created_at"),
            payload=dict(_get(o, "payload", dict)),
            deliveries=deliveries,
        )


@dataclass(frozen=True)
class InboxPage:
    """Items after a cursor; pass ``cursor`` back as ``after``; ``more``: poll again now."""

    items: tuple[InboxItem, ...]
    cursor: str
    more: bool

    @classmethod
    def from_json(cls, obj: object) -> InboxPage:
        o = _object(obj, "InboxPage")
        return cls(
            items=tuple(InboxItem.from_json(i) for i in _get(o, "items", list)),
            cursor=_get(o, "cursor", str),
            more=_get(o, "more", bool),
        )


@dataclass(frozen=True)
class Alternative:
    """A free slot offered instead of the one asked for."""

    start: datetime
    end: datetime
    provider_id: str
    operatory_id: str

    def __post_init__(self) -> None:
        _aware(self.start, "start")
        _aware(self.end, "end")
        if self.end <= self.start:
            raise ValueError("an alternative must end after it starts")

    def to_json(self) -> JsonObject:
        return {
            "start": format_time(self.start),
            "end": format_time(self.end),
            "provider_id": self.provider_id,
            "operatory_id": self.operatory_id,
        }


@dataclass(frozen=True)
class Reason:
    """Why an item was not simply confirmed; ``message`` holds no personal data."""

    code: str
    message: str

    def to_json(self) -> JsonObject:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class InboxResult:
    """The outcome of an inbox item; ``reason`` is required for conflict,
    needs_review and rejected."""

    status: Status
    pms_ids: Mapping[str, str] = field(default_factory=dict)
    alternatives: tuple[Alternative, ...] = ()
    reason: Reason | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown result status {self.status!r}")
        if self.status in REASON_REQUIRED and self.reason is None:
            raise ValueError(f"a {self.status} result needs a reason")

    def to_json(self) -> JsonObject:
        return {
            "status": self.status,
            "pms_ids": dict(self.pms_ids),
            "alternatives": [a.to_json() for a in self.alternatives],
            "reason": self.reason.to_json() if self.reason is not None else None,
        }


@dataclass(frozen=True)
class InboxResultAck:
    id: str
    status: str
    duplicate: bool
    received_at: datetime

    @classmethod
    def from_json(cls, obj: object) -> InboxResultAck:
        o = _object(obj, "InboxResultAck")
        return cls(
            id=_get(o, "id", str),
            status=_get(o, "status", str),
            duplicate=_get(o, "duplicate", bool),
            received_at=_time(o, "received_at"),
        )


@dataclass(frozen=True)
class HeartbeatError:
    """One current error of one component (message without personal data)."""

    component: str
    message: str
    kind: str | None = None
    since: datetime | None = None

    def to_json(self) -> JsonObject:
        return {
            "component": self.component,
            "message": self.message,
            "kind": self.kind,
            "since": format_time(self.since) if self.since is not None else None,
        }


@dataclass(frozen=True)
class Heartbeat:
    """The agent's health report (the cloud keeps the latest, with history)."""

    agent_id: str
    version: str
    queue_depths: Mapping[str, int] = field(default_factory=dict)
    last_sync: Mapping[str, datetime | None] = field(default_factory=dict)
    lag_seconds: Mapping[str, float] = field(default_factory=dict)
    errors: tuple[HeartbeatError, ...] = ()

    def to_json(self) -> JsonObject:
        return {
            "agent_id": self.agent_id,
            "version": self.version,
            "queue_depths": dict(self.queue_depths),
            "last_sync": {
                k: format_time(v) if v is not None else None for k, v in self.last_sync.items()
            },
            "lag_seconds": dict(self.lag_seconds),
            "errors": [e.to_json() for e in self.errors],
        }


@dataclass(frozen=True)
class HeartbeatAck:
    """``received_at`` is the cloud's clock (to spot a skewed local clock)."""

    received_at: datetime

    @classmethod
    def from_json(cls, obj: object) -> HeartbeatAck:
        return cls(received_at=_time(_object(obj, "HeartbeatAck"), "received_at"))


# -- reconciliation checksums (docs/cloud-api.yaml, "Reconciliation checksums") --

EMPTY_DIGEST = "0" * 64
_DIGEST = re.compile(r"[0-9a-f]{64}")
_ROW_HASH = re.compile(r"[0-9a-f]{32}")


def key_order(key: str) -> tuple[int, str]:
    """Sort key of the contract's key order: shortlex (shorter first, then by
    code point); numeric order for unpadded non-negative decimal integers."""
    return (len(key), key)


class RangeDigest:
    """Count and digest of one key range, built row by row in any order.

    The digest is the XOR of SHA-256(``"<key>:<row hash>"``) over the rows,
    as 64 hex digits; all zeros for no rows. Not thread-safe.
    """

    __slots__ = ("_value", "count")

    def __init__(self) -> None:
        self.count = 0
        self._value = 0

    def add(self, key: str, row_hash: str) -> None:
        term = hashlib.sha256(f"{key}:{row_hash}".encode()).digest()
        self._value ^= int.from_bytes(term, "big")
        self.count += 1

    @property
    def digest(self) -> str:
        return f"{self._value:064x}"


@dataclass(frozen=True)
class KeyRange:
    """The keys ``k`` with ``after < k <= upto`` in key order; None is unbounded."""

    after: str | None
    upto: str | None

    def __post_init__(self) -> None:
        if (
            self.after is not None
            and self.upto is not None
            and key_order(self.upto) <= key_order(self.after)
        ):
            raise ValueError("a key range's upto must come after its after")

    def contains(self, key: str) -> bool:
        order = key_order(key)
        return (self.after is None or order > key_order(self.after)) and (
            self.upto is None or order <= key_order(self.upto)
        )

    def to_json(self) -> JsonObject:
        return {"after": self.after, "upto": self.upto}


def _bound(obj: Mapping[str, Any], name: str) -> str | None:
    if obj.get(name) is None:
        if name not in obj:
            raise ProtocolError(f"field '{name}' is missing")
        return None
    return _get(obj, name, str)


def _pattern(obj: Mapping[str, Any], name: str, pattern: re.Pattern[str]) -> str:
    value = _get(obj, name, str)
    if not pattern.fullmatch(value):
        raise ProtocolError(f"field '{name}' is not in the expected form")
    return value


@dataclass(frozen=True)
class RangeChecksum:
    """The cloud's count and digest of its live rows in one range."""

    range: KeyRange
    count: int
    digest: str

    @classmethod
    def from_json(cls, obj: object) -> RangeChecksum:
        o = _object(obj, "RangeChecksum")
        try:
            span = KeyRange(_bound(o, "after"), _bound(o, "upto"))
        except ValueError:
            raise ProtocolError("field 'upto' must come after 'after'") from None
        return cls(span, _get(o, "count", int), _pattern(o, "digest", _DIGEST))


@dataclass(frozen=True)
class ChecksumPage:
    """The answer to ``POST /v1/checksums``: one checksum per range asked, in order."""

    entity: str
    ranges: tuple[RangeChecksum, ...]

    @classmethod
    def from_json(cls, obj: object) -> ChecksumPage:
        o = _object(obj, "ChecksumPage")
        return cls(
            entity=_get(o, "entity", str),
            ranges=tuple(RangeChecksum.from_json(r) for r in _get(o, "ranges", list)),
        )


@dataclass(frozen=True)
class KeyHash:
    key: str
    hash: str


@dataclass(frozen=True)
class KeyList:
    """A page of ``POST /v1/checksums/keys``: rows in key order; ``more``:
    continue after the last key."""

    entity: str
    range: KeyRange
    rows: tuple[KeyHash, ...]
    more: bool

    @classmethod
    def from_json(cls, obj: object) -> KeyList:
        o = _object(obj, "KeyList")
        rows = []
        for item in _get(o, "rows", list):
            row = _object(item, "KeyList.rows[]")
            rows.append(KeyHash(_get(row, "key", str), _pattern(row, "hash", _ROW_HASH)))
        try:
            span = KeyRange(_bound(o, "after"), _bound(o, "upto"))
        except ValueError:
            raise ProtocolError("field 'upto' must come after 'after'") from None
        return cls(_get(o, "entity", str), span, tuple(rows), _get(o, "more", bool))
