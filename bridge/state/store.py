"""The local state store: one SQLite file, opened through SQLAlchemy 2.

Contracts:

* **Durability.** Every connection runs with ``journal_mode=WAL`` and
  ``synchronous=FULL``: a transaction that returned from commit survives a
  power cut. ``foreign_keys=ON`` and a ``busy_timeout`` are set too.
* **Migrations.** :func:`open_state` brings the schema to the newest Alembic
  revision before anything else touches it; a file from a *newer* bridge
  (unknown revision) is refused rather than damaged.
* **One writer.** Within a process all writes go through :meth:`StateStore.write`,
  which serialises them on a lock, so SQLite never sees two writers and
  never answers "database is locked" to the engine. Across processes the
  engine holds :meth:`StateStore.acquire_writer_lock` (a lock file beside the
  database) for as long as it runs; the CLI only reads while an engine runs.
* **Reads** may happen from any thread through :meth:`StateStore.read`; WAL
  lets them run beside the writer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import filelock
from alembic import command, util
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bridge.errors import StateError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Alembic narrates every start-up at INFO; support staff need only problems.
logging.getLogger("alembic").setLevel(logging.WARNING)
BUSY_TIMEOUT_MS = 10_000


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest migration this bridge knows."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class StateStore:
    """Handle on the state database; create it with :func:`open_state`."""

    def __init__(self, path: Path, engine: Engine) -> None:
        self.path = path
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._write_lock = threading.Lock()
        self._file_lock = filelock.FileLock(str(path) + ".lock")

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose work commits atomically when the block ends.

        Serialised within the process. An exception rolls everything back.
        SQLAlchemy and OS errors surface as :class:`StateError`.
        """
        with self._write_lock:
            session = self._sessions()
            try:
                yield session
                session.commit()
            except SQLAlchemyError as exc:
                session.rollback()
                raise StateError(f"local state write failed: {type(exc).__name__}: {exc}") from exc
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; anything it changes is discarded."""
        session = self._sessions()
        try:
            yield session
        except SQLAlchemyError as exc:
            raise StateError(f"local state read failed: {type(exc).__name__}: {exc}") from exc
        finally:
            session.close()  # ends the transaction; loaded objects stay readable

    def acquire_writer_lock(self, timeout: float = 0) -> None:
        """Claim the store for this process (the engine) until :meth:`close`.

        Raises :class:`StateError` if another process (a second engine) holds it.
        """
        try:
            self._file_lock.acquire(timeout=timeout)
        except filelock.Timeout as exc:
            raise StateError(
                f"another bridge engine is already running on {self.path}",
                fix="Stop the other engine (or the service) before starting a new one.",
            ) from exc

    def writer_lock_held_elsewhere(self) -> bool:
        """True if some other process holds the writer lock (an engine runs)."""
        if self._file_lock.is_locked:
            return False
        probe = filelock.FileLock(str(self.path) + ".lock")
        try:
            probe.acquire(timeout=0)
        except filelock.Timeout:
            return True
        probe.release()
        return False

    def pragma(self, name: str) -> Any:
        with self.engine.connect() as conn:
            return conn.exec_driver_sql(f"PRAGMA {name}").scalar()

    def revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def close(self) -> None:
        if self._file_lock.is_locked:
            self._file_lock.release(force=True)
        self.engine.dispose()


def open_state(path: Path) -> StateStore:
    """Open (creating if needed) the state database and migrate it to head."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(f"sqlite:///{path}", future=True)
        event.listen(engine, "connect", _on_connect)
        _migrate(engine)
    except StateError:
        raise
    except (SQLAlchemyError, OSError) as exc:
        raise StateError(f"cannot open local state at {path}: {type(exc).__name__}: {exc}") from exc
    return StateStore(path, engine)


def _migrate(engine: Engine) -> None:
    script = ScriptDirectory.from_config(_alembic_config())
    with engine.begin() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
        if current is not None and not _known_revision(script, current):
            raise StateError(
                f"local state was written by a newer bridge (schema revision {current})",
                fix="Install the newer bridge again, or move the state file aside to start fresh.",
            )
    with engine.begin() as conn:
        config = _alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def _known_revision(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except util.CommandError:
        return False
