"""The practice database behind the stand-in: one ODBC connection, one request at a time.

The stand-in writes the sample practice (:mod:`sandbox.practice`) the way
Open Dental's API Service writes its own database: through the real ODBC
drivers (``SQLite3`` for a ``.sqlite3`` file, MariaDB Connector/ODBC for a
``mariadb://`` target), with Open Dental's table and column names.

Every request runs inside :meth:`PracticeDb.transaction`, under one lock,
so requests never interleave. On SQLite the request is one transaction
(rolled back on any error). On MariaDB the tables are MyISAM, as in Open
Dental: each statement stands on its own and a rollback undoes nothing, so
request handlers check everything before their first write.

Change stamps are never written here: SQLite's triggers and MariaDB's
``ON UPDATE CURRENT_TIMESTAMP`` keep ``DateTStamp`` as Open Dental's own
database does. Entry stamps (``SecDateTEntry``, ``SecDateEntry``) are the
server's local time, as Open Dental sets them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pyodbc

from sandbox.practice.target import MariaDbTarget, Target

Row = dict[str, Any]


class Tx:
    """Statements inside one request (see :meth:`PracticeDb.transaction`)."""

    def __init__(self, conn: pyodbc.Connection, mysql_like: bool) -> None:
        self._conn = conn
        self.mysql_like = mysql_like

    def all(self, sql: str, *params: object) -> list[Row]:
        cursor = self._conn.execute(sql, *params)
        try:
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def one(self, sql: str, *params: object) -> Row | None:
        rows = self.all(sql, *params)
        return rows[0] if rows else None

    def run(self, sql: str, *params: object) -> int:
        """Run a statement; returns the driver's row count (not relied upon)."""
        cursor = self._conn.execute(sql, *params)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def insert(self, table: str, values: dict[str, object]) -> int:
        """INSERT one row; returns its new auto-increment key."""
        columns = ", ".join(values)
        marks = ", ".join("?" * len(values))
        self.run(f"INSERT INTO {table} ({columns}) VALUES ({marks})", *values.values())
        last = "SELECT LAST_INSERT_ID()" if self.mysql_like else "SELECT last_insert_rowid()"
        row = self._conn.execute(last).fetchone()
        return int(row[0])

    @staticmethod
    def now() -> str:
        """The server's local time, as Open Dental's entry stamps hold it."""
        return datetime.now().strftime("%Y-%m-%d %H:%M:%S")

    @staticmethod
    def today() -> str:
        return datetime.now().strftime("%Y-%m-%d")


class PracticeDb:
    """The practice database at ``target``; thread-safe (one request at a time)."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.mysql_like = isinstance(target, MariaDbTarget)
        if isinstance(target, MariaDbTarget):
            text = target.server_connection_string(target.database)
        else:
            if not target.path.exists():
                raise FileNotFoundError(f"no practice database at {target.path}")
            text = target.connection_string + ";NoCreat=1;Timeout=10000"
        self._conn = pyodbc.connect(text, autocommit=False, timeout=15)
        if self.mysql_like:
            # Text as UTF-8 bytes (MariaDB Connector/ODBC's UTF-16 path mangles some letters).
            self._conn.setencoding(encoding="utf-8")
            for sql_type in (pyodbc.SQL_CHAR, pyodbc.SQL_WCHAR):
                self._conn.setdecoding(sql_type, encoding="utf-8", ctype=pyodbc.SQL_CHAR)
        self._lock = threading.Lock()

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """One request's statements: committed at the end, rolled back on error."""
        with self._lock:
            try:
                yield Tx(self._conn, self.mysql_like)
            except BaseException:
                self._conn.rollback()
                raise
            self._conn.commit()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
