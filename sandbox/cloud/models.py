"""What the reference cloud shows to tests, and the admin interface to it.

The same frozen dataclasses come back from the in-process API
(:class:`sandbox.cloud.server.ReferenceCloud`) and from the HTTP admin
client (:class:`sandbox.cloud.admin_client.AdminClient`). Both implement
:class:`CloudAdmin`, so a test, the demo or a benchmark drives a cloud in its
own process or in another one the same way. Times are ISO 8601 strings with
an offset, exactly as the cloud stored them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar, get_args

JsonObject = dict[str, Any]

FaultKind = Literal["error", "throttle", "unavailable", "delay", "drop_before", "drop_after"]
"""``error``: 500. ``throttle``: 429 with Retry-After. ``unavailable``: 503
with Retry-After. ``delay``: answer normally, ``delay_ms`` late (the request
is processed first, so a client that times out may find it applied).
``drop_before``: close the connection without reading the body or answering.
``drop_after``: process the request (apply the batch), then close the
connection without answering."""

FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
Outcome = Literal["applied", "stale"]


@dataclass(frozen=True)
class Fault:
    """A fault rule. It matches requests to ``/v1`` whose path starts with
    ``path_prefix`` (and whose method is ``method``, when given) and fires for
    the next ``count`` matching requests, or with ``probability`` on each,
    or on every one when neither is given. ``id`` and ``fired`` are filled in
    by the cloud."""

    kind: FaultKind
    count: int | None = None
    probability: float | None = None
    path_prefix: str = "/v1/"
    method: str | None = None
    retry_after: int = 1
    delay_ms: int = 0
    id: str = ""
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"kind: must be one of {', '.join(FAULT_KINDS)}")
        if self.count is not None and self.probability is not None:
            raise ValueError("give count or probability, not both")
        if self.count is not None and self.count < 1:
            raise ValueError("count: must be at least 1")
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability: must be between 0 and 1")
        if not self.path_prefix.startswith("/"):
            raise ValueError("path_prefix: must start with '/'")
        if self.retry_after < 0 or self.delay_ms < 0:
            raise ValueError("retry_after and delay_ms: must not be negative")

    @property
    def active(self) -> bool:
        return self.count is None or self.fired < self.count


@dataclass(frozen=True)
class Limits:
    """Caps the cloud enforces; 413 above them (``max_wait_seconds`` caps long-polls)."""

    max_body_bytes: int = 8 * 1024 * 1024
    max_changes: int = 1000
    max_file_bytes: int = 64 * 1024**3
    max_wait_seconds: float = 30.0

    def __post_init__(self) -> None:
        if min(self.max_body_bytes, self.max_changes, self.max_file_bytes) < 1:
            raise ValueError("limits must be at least 1")
        if self.max_wait_seconds < 0:
            raise ValueError("max_wait_seconds: must not be negative")


@dataclass(frozen=True)
class MirrorRow:
    """The cloud's copy of one PMS record; a tombstone has ``deleted`` and no data."""

    key: str
    data: JsonObject | None
    version: str
    deleted: bool
    observed_at: str
    batch_id: str
    updated_at: str


@dataclass(frozen=True)
class LogEntry:
    """One change as received, in arrival order (``id`` increases); append-only."""

    id: int
    agent_id: str
    batch_id: str
    seq: int
    position: int
    entity: str
    key: str
    op: str
    version: str
    observed_at: str
    data: JsonObject | None
    outcome: Outcome
    received_at: str


@dataclass(frozen=True)
class BatchRecord:
    agent_id: str
    batch_id: str
    seq: int
    received_at: str
    changes: int
    applied: int
    stale: int
    body_bytes: int
    duplicates: int


@dataclass(frozen=True)
class InboxRecord:
    id: str
    seq: int
    agent_id: str
    type: str
    payload: JsonObject
    created_at: str
    deliveries: int
    resulted: bool


@dataclass(frozen=True)
class ResultRecord:
    id: str
    agent_id: str
    status: str
    result: JsonObject
    received_at: str
    repeats: int


@dataclass(frozen=True)
class FileRecord:
    sha256: str
    size: int
    name: str
    kind: str
    source_folder: str
    agent_id: str
    stored_at: str


@dataclass(frozen=True)
class HeartbeatRecord:
    agent_id: str
    received_at: str
    body: JsonObject


@dataclass(frozen=True)
class Stats:
    """Totals from the database, plus counters since this server started."""

    batches: int
    duplicate_batches: int
    changes_received: int
    changes_applied: int
    changes_stale: int
    batch_bytes: int
    inbox_items: int
    inbox_pending: int
    results: int
    files: int
    file_bytes: int
    heartbeats: int
    requests_by_status: dict[str, int] = field(default_factory=dict)
    faults_fired: dict[str, int] = field(default_factory=dict)
    uploads_rejected: int = 0
    bytes_received: int = 0


class CloudAdmin(Protocol):
    """Drive and inspect a reference cloud (tests, demo, benchmarks).

    Where a method acts on one agent's data (``enqueue``, ``mirror``,
    ``heartbeat``, ``heartbeats``), ``agent_id=None`` means the only
    configured agent; with several it must be given (``ValueError``). Where it
    lists (``inbox``, ``results``, ``change_log``, ``batches``), None means all
    agents. Arguments the cloud refuses raise ``ValueError`` on both paths.
    """

    def enqueue(
        self,
        type: str,
        payload: Mapping[str, Any],
        *,
        agent_id: str | None = None,
        item_id: str | None = None,
    ) -> InboxRecord: ...

    def inbox(self, *, agent_id: str | None = None) -> list[InboxRecord]: ...

    def results(self, *, agent_id: str | None = None) -> list[ResultRecord]: ...

    def set_fault(self, fault: Fault) -> Fault: ...

    def faults(self) -> list[Fault]: ...

    def clear_faults(self, fault_id: str | None = None) -> int: ...

    def set_limits(
        self,
        *,
        max_body_bytes: int | None = None,
        max_changes: int | None = None,
        max_file_bytes: int | None = None,
        max_wait_seconds: float | None = None,
    ) -> Limits: ...

    def limits(self) -> Limits: ...

    def mirror(self, entity: str, *, agent_id: str | None = None) -> dict[str, MirrorRow]: ...

    def set_mirror_row(
        self, entity: str, key: str, data: Mapping[str, Any], *, agent_id: str | None = None
    ) -> MirrorRow:
        """Tamper (tests): alter a mirror row's data or add a phantom row, with no
        change-log entry; an existing row keeps its version, a new one gets ``0``."""
        ...

    def drop_mirror_row(self, entity: str, key: str, *, agent_id: str | None = None) -> bool:
        """Tamper (tests): lose a mirror row (no tombstone); True if it existed."""
        ...

    def change_log(
        self,
        *,
        agent_id: str | None = None,
        entity: str | None = None,
        key: str | None = None,
        batch_id: str | None = None,
    ) -> list[LogEntry]: ...

    def batches(self, *, agent_id: str | None = None) -> list[BatchRecord]: ...

    def stats(self) -> Stats: ...

    def files(self) -> list[FileRecord]: ...

    def heartbeat(self, *, agent_id: str | None = None) -> HeartbeatRecord | None: ...

    def heartbeats(self, *, agent_id: str | None = None) -> list[HeartbeatRecord]: ...

    def set_token(self, agent_id: str, token: str | None) -> None: ...

    def reset(self) -> None: ...


T = TypeVar("T")


def to_json(record: object) -> JsonObject:
    """A record (dataclass) as a JSON-ready dict."""
    if not dataclasses.is_dataclass(record) or isinstance(record, type):
        raise TypeError(f"not a record: {type(record).__name__}")
    return dataclasses.asdict(record)


def from_json(cls: type[T], data: Mapping[str, Any]) -> T:
    """The record of type ``cls`` from its :func:`to_json` form; unknown keys are ignored."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})
