"""Tables of the local state store.

The schema is owned by Alembic migrations in ``migrations/versions``; these
declarations must match the newest migration (a test compares them). Add a
table here *and* a numbered migration, never one without the other.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, Dialect, Integer, String, Text
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
