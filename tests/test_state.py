"""The local state store: durability settings, migrations, one writer."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, text

from bridge.errors import StateError
from bridge.state import head_revision, open_state
from bridge.state.models import Base, EngineRun, MetaValue


def test_new_store_is_migrated_to_head_with_wal_and_full_sync(tmp_path: Path) -> None:
    store = open_state(tmp_path / "state.sqlite3")
    try:
        assert store.revision() == head_revision()
        assert store.pragma("journal_mode") == "wal"
        assert store.pragma("synchronous") == 2  # FULL
        assert store.pragma("foreign_keys") == 1
    finally:
        store.close()


def test_models_match_the_newest_migration(tmp_path: Path) -> None:
    store = open_state(tmp_path / "state.sqlite3")
    try:
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
    finally:
        store.close()


def test_write_commits_atomically_and_rolls_back_on_error(tmp_path: Path) -> None:
    store = open_state(tmp_path / "state.sqlite3")
    try:
        with store.write() as session:
            session.add(MetaValue(key="a", value="1"))
        with pytest.raises(RuntimeError), store.write() as session:
            session.add(MetaValue(key="b", value="2"))
            session.flush()
            raise RuntimeError("boom")
        with store.read() as session:
            keys = session.scalars(select(MetaValue.key)).all()
        assert keys == ["a"]
    finally:
        store.close()


def test_constraint_violation_surfaces_as_state_error(tmp_path: Path) -> None:
    store = open_state(tmp_path / "state.sqlite3")
    try:
        with store.write() as session:
            session.add(MetaValue(key="a", value="1"))
        with pytest.raises(StateError, match="local state write failed"), store.write() as s:
            s.add(MetaValue(key="a", value="again"))
    finally:
        store.close()


def test_naive_datetimes_are_refused(tmp_path: Path) -> None:
    store = open_state(tmp_path / "state.sqlite3")
    try:
        with pytest.raises((StateError, ValueError)), store.write() as session:
            now = datetime.now()  # deliberately naive
            session.add(
                EngineRun(pid=1, version="x", started_at=now, heartbeat_at=now, state="running")
            )
        with store.write() as session:
            aware = datetime.now(UTC)
            session.add(
                EngineRun(pid=1, version="x", started_at=aware, heartbeat_at=aware, state="running")
            )
        with store.read() as session:
            row = session.scalars(select(EngineRun)).one()
        assert row.started_at.tzinfo is UTC
        assert abs((row.started_at - aware).total_seconds()) < 1e-3
    finally:
        store.close()


def test_a_store_from_a_newer_bridge_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    open_state(path).close()
    store = open_state(path)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    store.close()
    with pytest.raises(StateError, match="newer bridge"):
        open_state(path)


def test_only_one_process_may_hold_the_writer_lock(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = open_state(path)
    try:
        store.acquire_writer_lock()
        probe = (
            "import sys; from pathlib import Path; from bridge.state import open_state\n"
            "from bridge.errors import StateError\n"
            f"s = open_state(Path({str(path)!r}))\n"
            "print('held' if s.writer_lock_held_elsewhere() else 'free')\n"
            "try:\n    s.acquire_writer_lock()\nexcept StateError as e:\n    print('refused')\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        )
        assert out.stdout.split() == ["held", "refused"]
    finally:
        store.close()
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "free"
