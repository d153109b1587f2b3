"""Load the practice into a new MariaDB database, as Open Dental has it.

The database is created ``utf8mb3``/``utf8mb3_general_ci`` and the vendored
DDL's statements run as they are (MyISAM tables, the DDL's own session
``sql_mode`` that allows legacy zero dates). The one exception: MariaDB
Connector/ODBC refuses ``SET NAMES``, so the DDL's ``SET NAMES x`` becomes
the connection option ``Charset=x`` of every session.

Every session sends and reads text as UTF-8 bytes (pyodbc ``setencoding`` /
``setdecoding`` with ``SQL_C_CHAR``): MariaDB Connector/ODBC 3.1's UTF-16
path takes U+00D8..U+00DB (Ø, Ù, Ú, Û) for surrogate halves and corrupts
statements and values holding an odd number of them.

Then, per table, ``ALTER TABLE ... DISABLE KEYS``; rows arrive in chunks and
are loaded by a background thread with its own connection while the
generator produces the next chunk (pyodbc releases the GIL while the driver
works, so generation and loading use both cores); finally ``ENABLE KEYS``
rebuilds the secondary indexes by sorting, two tables at a time, and the row
counts are checked against what was generated.

Two load methods, measured in ``bench/README.md``:

* ``infile`` (default, fastest): each chunk is written as a CSV file and
  sent with ``LOAD DATA LOCAL INFILE`` over ODBC;
* ``insert``: multi-row ``INSERT`` statements of about 1 MB each.

Any warning MariaDB raises while loading (truncation, bad value) fails the
build: the data must arrive exactly as generated. A failed build drops the
database it created.
"""

from __future__ import annotations

import csv
import queue
import re
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyodbc

from sandbox.practice.rows import Row, Value
from sandbox.practice.schema import (
    Table,
    mariadb_session_statements,
    mariadb_statements,
)
from sandbox.practice.target import MariaDbTarget, PracticeError, TargetExistsError

METHODS = ("infile", "insert")
INSERT_BYTES = 1 << 20
SORT_BUFFER = 1 << 30  # myisam_sort_buffer_size for ENABLE KEYS
# LOAD DATA with ENCLOSED BY reads an unquoted NULL as SQL NULL. (A string
# value "NULL" would load as NULL too; the generator never writes one.)
_NULL = "NULL"

Job = tuple[str, str, tuple[str, ...], str]  # (method, table, columns, file path or SQL)


_SET_NAMES = re.compile(r"SET\s+NAMES\s+'?(\w+)'?\Z", re.I)


def _charset() -> str:
    found = [m.group(1) for s in mariadb_statements() if (m := _SET_NAMES.match(s))]
    return found[-1] if found else "utf8mb4"


def _connect(target: MariaDbTarget, database: str = "") -> pyodbc.Connection:
    """A connection in the DDL's session settings (sql_mode, character set)."""
    try:
        conn = pyodbc.connect(
            f"{target.server_connection_string(database)};Charset={_charset()}",
            autocommit=True,
            timeout=10,
        )
    except pyodbc.Error as exc:
        raise PracticeError(f"cannot connect to {target.describe()}: {exc}") from exc
    conn.setencoding(encoding="utf-8")
    for sql_type in (pyodbc.SQL_CHAR, pyodbc.SQL_WCHAR):
        conn.setdecoding(sql_type, encoding="utf-8", ctype=pyodbc.SQL_CHAR)
    for statement in mariadb_session_statements():
        if not _SET_NAMES.match(statement):
            conn.execute(statement)
    return conn


def _literal(value: Value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    return repr(value)


def _check_warnings(conn: pyodbc.Connection, what: str) -> None:
    count = conn.execute("SELECT @@warning_count").fetchone()[0]
    if count:
        shown = "; ".join(str(row[2]) for row in conn.execute("SHOW WARNINGS LIMIT 3"))
        raise PracticeError(f"{what}: MariaDB reported {count} warning(s): {shown}")


class MariaDbLoader:
    """Builds ``target``; call :meth:`finish` to complete or :meth:`abort` to drop it."""

    def __init__(
        self,
        target: MariaDbTarget,
        schema: dict[str, Table],
        *,
        replace: bool,
        method: str = "infile",
    ) -> None:
        if method not in METHODS:
            raise PracticeError(f"unknown MariaDB load method {method!r}; use one of {METHODS}")
        self.target, self.schema, self.method = target, schema, method
        self.admin = _connect(target)
        exists = self.admin.execute(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            target.database,
        ).fetchone()[0]
        if exists and not replace:
            self.admin.close()
            raise TargetExistsError(
                f"database {target.database!r} already exists on "
                f"{target.host}:{target.port}; pass --replace "
                f"(replace=True) to drop and rebuild it"
            )
        name = f"`{target.database}`"
        self.admin.execute(f"DROP DATABASE IF EXISTS {name}")
        self.admin.execute(
            f"CREATE DATABASE {name} CHARACTER SET utf8mb3 COLLATE utf8mb3_general_ci"
        )
        try:
            conn = _connect(target, target.database)
            for statement in mariadb_statements():
                if not _SET_NAMES.match(statement):
                    conn.execute(statement)
            for table in schema:
                conn.execute(f"ALTER TABLE `{table}` DISABLE KEYS")
            conn.close()
        except BaseException:
            self.admin.execute(f"DROP DATABASE IF EXISTS {name}")
            self.admin.close()
            raise
        self.workdir = tempfile.TemporaryDirectory(prefix="practice-load-")
        self.chunk = 0
        self.jobs: queue.Queue[Job | None] = queue.Queue(maxsize=3)
        self.error: BaseException | None = None
        self.worker = threading.Thread(target=self._work, name="mariadb-loader", daemon=True)
        self.worker.start()

    # -- producer side (generator thread) ------------------------------------

    def write(self, table: str, columns: tuple[str, ...], rows: Sequence[Row]) -> None:
        if self.error is not None:
            raise PracticeError(f"loading into MariaDB failed: {self.error}") from self.error
        if self.method == "infile":
            self.chunk += 1
            path = Path(self.workdir.name) / f"{self.chunk:06d}-{table}.csv"
            with path.open("w", encoding="utf-8", newline="") as handle:
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerows(
                    row if None not in row else tuple(_NULL if v is None else v for v in row)
                    for row in rows
                )
            self._put(("infile", table, columns, str(path)))
            return
        head = f"INSERT INTO `{table}` ({', '.join(columns)}) VALUES "
        values: list[str] = []
        size = 0
        for row in rows:
            text = "(" + ",".join(map(_literal, row)) + ")"
            values.append(text)
            size += len(text)
            if size >= INSERT_BYTES:
                self._put(("insert", table, columns, head + ",".join(values)))
                values, size = [], 0
        if values:
            self._put(("insert", table, columns, head + ",".join(values)))

    def _put(self, job: Job) -> None:
        while True:
            try:
                self.jobs.put(job, timeout=1)
                return
            except queue.Full:
                if self.error is not None or not self.worker.is_alive():
                    raise PracticeError(f"loading into MariaDB failed: {self.error}") from None

    # -- consumer side (loader thread) ---------------------------------------

    def _work(self) -> None:
        try:
            conn = _connect(self.target, self.target.database)
            while (job := self.jobs.get()) is not None:
                method, table, columns, payload = job
                if method == "infile":
                    conn.execute(
                        f"LOAD DATA LOCAL INFILE '{payload}' INTO TABLE `{table}` "
                        "CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' "
                        "OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' "
                        f"LINES TERMINATED BY '\\n' ({', '.join(columns)})"
                    )
                    Path(payload).unlink()
                else:
                    conn.execute(payload)
                _check_warnings(conn, f"loading {table}")
            conn.close()
        except BaseException as exc:  # reported to the producer, which raises it
            self.error = exc
            while self.jobs.get() is not None:  # unblock the producer until it stops
                pass

    # -- completion ----------------------------------------------------------

    def _enable_keys(self, table: str) -> None:
        conn = _connect(self.target, self.target.database)
        conn.execute(f"SET SESSION myisam_sort_buffer_size = {SORT_BUFFER}")
        conn.execute(f"ALTER TABLE `{table}` ENABLE KEYS")
        _check_warnings(conn, f"indexing {table}")
        conn.close()

    def finish(self, expected: dict[str, int]) -> None:
        """Wait for the loads, rebuild indexes, and check every table's row count."""
        self._put_end()
        if self.error is not None:
            raise PracticeError(f"loading into MariaDB failed: {self.error}") from self.error
        biggest_first = sorted(self.schema, key=lambda t: -expected.get(t, 0))
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(self._enable_keys, biggest_first))
        conn = _connect(self.target, self.target.database)
        for table in self.schema:
            found = conn.execute(f"SELECT COUNT(*) FROM `{table}`").fetchone()[0]
            if found != expected.get(table, 0):
                raise PracticeError(
                    f"{table}: {found} rows loaded, {expected.get(table, 0)} generated"
                )
        conn.close()
        self.admin.close()
        self.workdir.cleanup()

    def _put_end(self) -> None:
        if self.worker.is_alive():
            self.jobs.put(None)
            self.worker.join()

    def abort(self) -> None:
        """Stop loading and drop the half-built database."""
        if self.worker.is_alive():
            self.error = self.error or PracticeError("aborted")
            try:
                while True:
                    self.jobs.get_nowait()
            except queue.Empty:
                pass
            self._put_end()
        try:
            self.admin.execute(f"DROP DATABASE IF EXISTS `{self.target.database}`")
        finally:
            self.admin.close()
            self.workdir.cleanup()
