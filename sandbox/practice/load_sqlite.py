"""Load the practice into a new SQLite file (built aside, then moved in place).

The schema comes from :mod:`schema` (derived from the vendored DDL). Rows go
in through the ``sqlite3`` module in one transaction with the journal off;
indexes and the stamp triggers are created after the rows, which is much
faster than maintaining them row by row. The file is written next to the
target under a temporary name and renamed over it only when complete, so a
failed or interrupted build never leaves a half-built practice at the target.
Reading the result is the ODBC driver's job (``Driver={SQLite3}``).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from sandbox.practice.rows import Row
from sandbox.practice.schema import (
    Table,
    sqlite_index_ddl,
    sqlite_table_ddl,
    sqlite_trigger_ddl,
)
from sandbox.practice.target import PracticeError, SqliteTarget, TargetExistsError

SIDE_FILES = ("-journal", "-wal", "-shm")


class SqliteLoader:
    """Builds ``target``; call :meth:`finish` to publish or :meth:`abort` to discard."""

    def __init__(self, target: SqliteTarget, schema: dict[str, Table], *, replace: bool) -> None:
        self.target = target
        self.schema = schema
        if target.path.exists() and not replace:
            raise TargetExistsError(
                f"{target.path} already exists; pass --replace (replace=True) to overwrite it"
            )
        target.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = target.path.with_name(f".{target.path.name}.partial-{os.getpid()}")
        self._remove(self.partial)
        self.db = sqlite3.connect(self.partial, isolation_level=None)
        for pragma in (
            "journal_mode = OFF",
            "synchronous = OFF",
            "temp_store = MEMORY",
            "cache_size = -262144",
            "locking_mode = EXCLUSIVE",
        ):
            self.db.execute(f"PRAGMA {pragma}")
        self.db.execute("BEGIN")
        for table in schema.values():
            self.db.execute(sqlite_table_ddl(table))
        self._inserts: dict[tuple[str, tuple[str, ...]], str] = {}

    def write(self, table: str, columns: tuple[str, ...], rows: Sequence[Row]) -> None:
        key = (table, columns)
        sql = self._inserts.get(key)
        if sql is None:
            sql = (
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})"
            )
            self._inserts[key] = sql
        self.db.executemany(sql, rows)

    def finish(self, expected: dict[str, int]) -> None:
        """Check row counts, add indexes and triggers, commit, move the file into place."""
        for name in self.schema:
            found = self.db.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0]
            if found != expected.get(name, 0):
                raise PracticeError(
                    f"{name}: {found} rows stored, {expected.get(name, 0)} generated"
                )
        for table in self.schema.values():
            for statement in sqlite_index_ddl(table) + sqlite_trigger_ddl(table):
                self.db.execute(statement)
        self.db.execute("COMMIT")
        self.db.execute("PRAGMA locking_mode = NORMAL")
        self.db.execute("PRAGMA journal_mode = DELETE")
        self.db.execute("PRAGMA optimize")
        self.db.close()
        for suffix in SIDE_FILES:
            self._remove(self.target.path.with_name(self.target.path.name + suffix))
        os.replace(self.partial, self.target.path)

    def abort(self) -> None:
        self.db.close()
        self._remove(self.partial)

    @staticmethod
    def _remove(path: Path) -> None:
        path.unlink(missing_ok=True)
