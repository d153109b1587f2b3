"""Tables of the local state store.

The schema is owned by Alembic migrations in ``migrations/versions``; these
declarations must match the newest migration (a test compares them). Add a
table here *and* a numbered migration, never one without the other.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as naive UTC (SQLite keeps no offset).

    Binding a naive datetime is a programming error and raises.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class MetaValue(Base):
    """Small key/value facts about this installation (install id, ...)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class EngineRun(Base):
    """One start of the engine; the newest row is the engine's heartbeat.

    ``state`` is one of ``starting``, ``running``, ``degraded``, ``stopping``,
    ``stopped``, ``crashed``. ``heartbeat_at`` is refreshed by the running
    engine; a stale heartbeat with no ``stopped_at`` means it died.
    """

    __tablename__ = "engine_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pid: Mapped[int] = mapped_column(Integer, nullable=False)
    version: Mapped[str] = mapped_column(String(40), nullable=False)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    stopped_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    state: Mapped[str] = mapped_column(String(20), nullable=False)


class ComponentHealth(Base):
    """The latest health of one engine component (``pms``, ``state``, ...).

    ``status`` is ``ok``, ``warn`` or ``fail``; ``error_kind`` is a
    :class:`bridge.errors.ErrorKind` value when failing; ``message`` and
    ``fix`` are plain words with no personal data; ``details`` is JSON.
    """

    __tablename__ = "component_health"

    component: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(10), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False, default="")
    fix: Mapped[str] = mapped_column(Text, nullable=False, default="")
    error_kind: Mapped[str | None] = mapped_column(String(40))
    details: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    last_ok_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class SyncCursor(Base):
    """Where reading one entity stands.

    ``phase`` is ``initial`` (first sync, a keyed scan resuming after
    ``last_key``) or ``delta`` (change detection after ``watermark``).
    ``watermark`` is the change column's value as ISO text. Moved only in the
    same transaction that stores the changes it covers.
    """

    __tablename__ = "sync_cursor"

    entity: Mapped[str] = mapped_column(String(60), primary_key=True)
    phase: Mapped[str] = mapped_column(String(10), nullable=False)
    watermark: Mapped[str | None] = mapped_column(String(40))
    last_key: Mapped[str | None] = mapped_column(String(100))
    rows_done: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    rows_total: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    # JSON owned by the change strategy (e.g. the patient rolling slice).
    strategy_state: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    last_success_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    rows_examined: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class RowState(Base):
    """The content hash of the last version of each row handed to the outbox.

    Used to drop re-read rows that did not change (overlap windows), to find
    deletes in snapshot diffs, and for reconciliation checksums.
    """

    __tablename__ = "row_state"

    entity: Mapped[str] = mapped_column(String(60), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    hash: Mapped[str] = mapped_column(String(32), nullable=False)
    version: Mapped[str] = mapped_column(String(40), nullable=False)
    deleted: Mapped[bool] = mapped_column(nullable=False, default=False)


class OutboxChange(Base):
    """One change waiting for the cloud's acknowledgement.

    ``seq`` orders everything; ``batch_id`` is set when the change is put into
    a batch, and the batch is then re-sent as recorded until acknowledged (a
    rebuilt batch keeps its idempotency key). Acknowledged rows are deleted.
    """

    __tablename__ = "outbox"
    # AUTOINCREMENT: a seq is never reused, even after the outbox drains.
    __table_args__ = (
        Index("ix_outbox_lane_seq", "lane", "seq"),
        Index("ix_outbox_entity_key", "entity", "key"),
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entity: Mapped[str] = mapped_column(String(60), nullable=False)
    key: Mapped[str] = mapped_column(String(100), nullable=False)
    op: Mapped[str] = mapped_column(String(10), nullable=False)
    version: Mapped[str] = mapped_column(String(40), nullable=False)
    observed_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    payload: Mapped[str] = mapped_column(Text, nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    batch_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # 0 live (deltas), 1 bulk (first sync, reconciliation): live goes first.
    lane: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class OutboxPage(Base):
    """A page of first-sync changes, stored as the request body that sends it.

    During a first sync the detector stores each page of records as one row
    (the whole ``POST /v1/changes`` body, gzip-compressed) in the same
    transaction that advances its cursor, instead of one outbox row per
    record. The body is built once and never changes, so a re-sent page
    keeps its idempotency key and its content. Acknowledged pages are
    deleted; a page the cloud refuses as too large is turned back into
    ordinary outbox rows (:meth:`bridge.sync.outbox.Outbox.explode`).
    """

    __tablename__ = "outbox_page"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    entity: Mapped[str] = mapped_column(String(60), nullable=False)
    first_key: Mapped[str] = mapped_column(String(100), nullable=False)
    last_key: Mapped[str] = mapped_column(String(100), nullable=False)
    changes: Mapped[int] = mapped_column(Integer, nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)  # uncompressed body bytes
    body: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)  # gzip
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)


class ReconcileRun(Base):
    """One reconciliation sweep of one entity: what "% in sync" is read from.

    ``trigger`` is ``schedule`` or ``request`` (a cloud ``reconcile.request``
    or ``bridge reconcile``); ``status`` is ``running``, ``ok`` or ``failed``.
    """

    __tablename__ = "reconcile_run"
    __table_args__ = (
        Index("ix_reconcile_run_entity", "entity", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entity: Mapped[str] = mapped_column(String(60), nullable=False)
    trigger: Mapped[str] = mapped_column(String(20), nullable=False)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(10), nullable=False)
    rows_pms: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    rows_cloud: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    rows_matched: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    resent: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    deleted: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error: Mapped[str] = mapped_column(Text, nullable=False, default="")


class InboxItem(Base):
    """A cloud inbox item, stored before anything acts on it.

    ``state``: ``received`` -> ``done`` (handled, result stored) ->
    result posted (``result_posted_at`` set); ``waiting`` for item types
    whose handler is not available in this engine (kept, not rejected).
    ``result`` is the JSON result body, posted idempotently per ``id``.
    """

    __tablename__ = "inbox_item"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)  # the API allows 128
    type: Mapped[str] = mapped_column(String(40), nullable=False)
    payload: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[str] = mapped_column(String(40), nullable=False)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    state: Mapped[str] = mapped_column(String(20), nullable=False, index=True)
    result: Mapped[str | None] = mapped_column(Text)
    result_posted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)


class Booking(Base):
    """A booking inbox item's progress through the pipeline, one row per item.

    ``stage`` moves ``received`` -> ``matched`` -> ``held`` -> ``verified``
    -> ``confirmed``; or ends in ``undone`` (hold taken back after a
    conflict), ``exception`` (waiting for the front desk) or ``rejected``.
    Each stage is stored before the next PMS write, so a crash resumes (or
    undoes) from what was recorded, never writing twice. ``detail`` is JSON
    without personal data (slot, provider, operatory, type, PMS ids).
    """

    __tablename__ = "booking"

    item_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    type: Mapped[str] = mapped_column(String(40), nullable=False)
    stage: Mapped[str] = mapped_column(String(20), nullable=False, index=True)
    patient_id: Mapped[str | None] = mapped_column(String(40))
    patient_created: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    appointment_id: Mapped[str | None] = mapped_column(String(40))
    outcome: Mapped[str | None] = mapped_column(String(20))
    reason_code: Mapped[str] = mapped_column(String(60), nullable=False, default="")
    detail: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)


class BookingException(Base):
    """A booking decision routed to the front desk.

    ``state`` is ``open`` or ``resolved``. ``context`` is JSON with what is
    needed to decide (patient candidates, alternative slots, the policy that
    held it); it may name patients, so it stays in this local database and
    never reaches a log. ``resolution`` is ``approved``, ``chose_alternative``,
    ``chose_patient``, ``new_patient`` or ``rejected``.
    """

    __tablename__ = "booking_exception"
    __table_args__ = (
        Index("ix_booking_exception_state", "state", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(String(128), nullable=False, index=True)
    reason_code: Mapped[str] = mapped_column(String(60), nullable=False)
    state: Mapped[str] = mapped_column(String(20), nullable=False)
    context: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    resolution: Mapped[str | None] = mapped_column(String(40))
    resolution_detail: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    resolved_by: Mapped[str] = mapped_column(String(100), nullable=False, default="")


class AuditEntry(Base):
    """One entry of the append-only, hash-chained audit trail.

    ``hash`` = SHA-256 over ``prev_hash`` and the entry's canonical JSON
    (seq, recorded_at, kind, actor, subject, data); the first entry's
    ``prev_hash`` is 64 zeros. ``data`` holds ids and codes, never personal
    data. See :mod:`bridge.audit`.
    """

    __tablename__ = "audit_entry"
    __table_args__ = ({"sqlite_autoincrement": True},)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    kind: Mapped[str] = mapped_column(String(60), nullable=False)
    actor: Mapped[str] = mapped_column(String(100), nullable=False)
    subject: Mapped[str] = mapped_column(String(200), nullable=False)
    data: Mapped[str] = mapped_column(Text, nullable=False)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)


class ExportFile(Base):
    """One file found in an export folder, and how far it got (:mod:`bridge.files`).

    One row per ``(folder, path)``: ``folder`` is the folder's label, ``path``
    the file's path below the folder with ``/`` separators. ``state`` is
    ``waiting`` (settling, held open, or retrying), ``sending`` (hashed and
    being uploaded: after a crash the cloud is asked whether it arrived),
    ``uploaded``, ``duplicate`` (the cloud already had the content) or
    ``quarantined``; ``reason_code`` and ``reason`` say why a file waits or
    is quarantined (no personal data: file names are shown, never content).
    ``size`` and ``mtime_ns`` are the file as last seen; a file seen again
    with the same pair after ``uploaded`` or ``duplicate`` is not sent
    again. ``after_done`` is ``kept``, ``moved`` or ``deleted`` once the
    folder's after-upload action ran.
    """

    __tablename__ = "export_file"
    __table_args__ = (
        Index("ix_export_file_folder_path", "folder", "path", unique=True),
        Index("ix_export_file_state", "state"),
        Index("ix_export_file_updated_at", "updated_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    folder: Mapped[str] = mapped_column(String(40), nullable=False)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    state: Mapped[str] = mapped_column(String(20), nullable=False)
    reason_code: Mapped[str] = mapped_column(String(40), nullable=False, default="")
    reason: Mapped[str] = mapped_column(Text, nullable=False, default="")
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    mtime_ns: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str | None] = mapped_column(String(20))
    format: Mapped[str | None] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    uploaded_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    after_done: Mapped[str | None] = mapped_column(String(10))
    archived_to: Mapped[str | None] = mapped_column(Text)
