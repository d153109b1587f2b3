"""The reference cloud's SQLite database: schema, connections, transactions.

One file in WAL mode, shared by every handler thread. Connections come from
a small pool. :meth:`Database.write` runs a ``BEGIN IMMEDIATE`` transaction:
SQLite lets one writer in at a time, so concurrent writers queue (up to the
busy timeout) and each sees everything committed before it. The idempotency
rules (a batch or a result recorded once) rest on that plus the primary
keys, not on any Python lock. :meth:`Database.read` gives a consistent
snapshot. The schema is created on open, so a file survives restarts.
"""

from __future__ import annotations

import queue
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    agent_id TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body_sha256 TEXT NOT NULL,
    received_at TEXT NOT NULL,
    changes INTEGER NOT NULL,
    applied INTEGER NOT NULL,
    stale INTEGER NOT NULL,
    body_bytes INTEGER NOT NULL,
    duplicates INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (agent_id, batch_id)
);
CREATE TABLE IF NOT EXISTS mirror (
    agent_id TEXT NOT NULL,
    entity TEXT NOT NULL,
    key TEXT NOT NULL,
    version TEXT NOT NULL,
    observed_at TEXT NOT NULL,
    data TEXT,
    deleted INTEGER NOT NULL,
    batch_id TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (agent_id, entity, key)
);
CREATE TABLE IF NOT EXISTS change_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    position INTEGER NOT NULL,
    entity TEXT NOT NULL,
    key TEXT NOT NULL,
    op TEXT NOT NULL,
    version TEXT NOT NULL,
    observed_at TEXT NOT NULL,
    data TEXT,
    outcome TEXT NOT NULL,
    received_at TEXT NOT NULL,
    UNIQUE (agent_id, batch_id, position)
);
CREATE INDEX IF NOT EXISTS change_log_key ON change_log (agent_id, entity, key);
CREATE TABLE IF NOT EXISTS inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    agent_id TEXT NOT NULL,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS results (
    item_id TEXT PRIMARY KEY REFERENCES inbox (id) ON DELETE CASCADE,
    agent_id TEXT NOT NULL,
    status TEXT NOT NULL,
    body TEXT NOT NULL,
    body_sha256 TEXT NOT NULL,
    received_at TEXT NOT NULL,
    repeats INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS result_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL REFERENCES inbox (id) ON DELETE CASCADE,
    body TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    source_folder TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    stored_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS heartbeats (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id TEXT NOT NULL,
    received_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS heartbeats_agent ON heartbeats (agent_id, id);
"""

DATA_TABLES = (
    "batches",
    "mirror",
    "change_log",
    "result_history",
    "results",
    "inbox",
    "files",
    "heartbeats",
)
"""Emptied by a reset, children first. ``meta`` and ``sqlite_sequence`` stay, so
ids and inbox cursors keep increasing across resets."""

BUSY_TIMEOUT_MS = 30_000
IDLE_CONNECTIONS = 8


class Database:
    """The cloud's SQLite file; thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all: set[sqlite3.Connection] = set()
        self._lock = threading.Lock()
        self._closed = False
        with self._connection() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)
            conn.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('instance', ?)",
                (secrets.token_hex(6),),
            )
            row = conn.execute("SELECT value FROM meta WHERE name = 'instance'").fetchone()
        self.instance_id: str = row[0]
        """Names this database; inbox cursors carry it."""

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on error."""
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read-only snapshot (a deferred transaction)."""
        with self._connection() as conn:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    def reset(self) -> None:
        with self.write() as conn:
            for table in DATA_TABLES:
                conn.execute(f"DELETE FROM {table}")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for conn in self._all:
                conn.close()
            self._all.clear()

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        conn = self._acquire()
        try:
            yield conn
        finally:
            self._release(conn)

    def _acquire(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError("the cloud database is closed")
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._closed:
                raise RuntimeError("the cloud database is closed")
            conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._all.add(conn)
            return conn

    def _release(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if self._closed or conn.in_transaction:
                if conn in self._all:
                    self._all.discard(conn)
                    conn.close()
                return
            if self._idle.qsize() >= IDLE_CONNECTIONS:
                self._all.discard(conn)
                conn.close()
                return
        self._idle.put(conn)
