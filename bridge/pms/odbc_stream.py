"""Streaming reads: key-ordered pages, ``fetchmany`` batches, bad values isolated.

:func:`stream_batches` reads the rows of one query, in two modes, as
:class:`RowBatch` es (a ``fetchmany`` batch each; :func:`rows_of` gives
them one :class:`Row` at a time):

Paged (``page_size`` set, the default): bounded memory
    The query is wrapped as a derived table and read one page at a time in
    key order (``SELECT * FROM (<sql>) AS bridge_page WHERE <key> > ?
    ORDER BY <key> LIMIT <page_size>``), each page in ``fetchmany`` batches.
    Memory is bounded by one page even where the driver buffers a whole
    result (MariaDB Connector/ODBC before 3.1.17 always does, and so does
    the SQLite ODBC driver unless ``StepAPI=1``). Each page is a short
    statement: a MyISAM read (Open Dental's engine) holds a table lock for as
    long as its statement runs, which stalls the practice's own writes. Rows
    come in key order, so an interrupted read can resume after the last key,
    and a page can be re-read from a known key. The query must return the
    key columns and must not itself limit its rows (``LIMIT``/``TOP``; SQL
    Server also refuses an ``ORDER BY`` inside); keys must be unique and not
    null (primary keys are).
Single statement (``page_size=None``)
    For a query that cannot be wrapped. Memory then depends on the driver:
    MariaDB Connector/ODBC 3.1.15 and the SQLite driver buffer the whole
    result. Values are converted defensively from the start (there is no
    page to re-read).

Bad values never abort a read. A value the converters cannot parse
(:mod:`bridge.pms.odbc_values`) becomes ``None``. When a fetch fails because
of one row (pyodbc's ``ValueError`` for an impossible date, a driver's
conversion error), the rows of that batch are lost to the cursor, so the page
is re-read from the last delivered key with defensive converters, one row at
a time; a row that still fails is located by reading its key alone and then
each of its columns alone, and is delivered with ``None`` in the columns that
cannot be read. Each bad value is reported once: a
:class:`~bridge.errors.BadValueError` naming table, key and column (never
the value) goes to ``on_bad_value`` and to a warning log record. In
single-statement mode a failed batch cannot be re-read; its loss is reported
with the key after which it happened, and the rest is read row by row.

Threading: the iterator uses its connection exclusively until it is
exhausted or closed; do not run other statements on the same connection
meanwhile (some drivers cannot, and the open page would be disturbed).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import pyodbc

from bridge.errors import BadValueError, PmsError
from bridge.pms.odbc_connstr import DriverFamily
from bridge.pms.odbc_session import RowDataError, Runner
from bridge.pms.odbc_values import BadValue, Columns, Row

log = logging.getLogger(__name__)

_PLAIN_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$#]*$")
_MAX_CONSECUTIVE_FAILURES = 100

BadValueHandler = Callable[[BadValueError], None]


def plain_identifier(name: str, what: str) -> str:
    """``name`` if it is a plain SQL identifier, else :class:`ValueError`."""
    if not _PLAIN_IDENTIFIER.match(name):
        raise ValueError(f"{what} {name!r} is not a plain SQL identifier")
    return name


def quote_identifier(family: DriverFamily, name: str) -> str:
    """``name`` quoted for ``family`` (embedded quote characters doubled)."""
    if family.is_mysql_like:
        return "`" + name.replace("`", "``") + "`"
    if family is DriverFamily.SQLSERVER:
        return "[" + name.replace("]", "]]") + "]"
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class KeyedQuery:
    """A query plus its key columns, and the SQL that pages and probes it."""

    family: DriverFamily
    sql: str
    params: tuple[object, ...]
    keys: tuple[str, ...]

    def page(
        self, after: tuple[Any, ...] | None, limit: int, *, select: str = "*"
    ) -> tuple[str, list[object]]:
        """Up to ``limit`` rows with keys after ``after``, in key order."""
        where, params = self._after(after)
        order = ", ".join(self._q(k) for k in self.keys)
        body = f"({self._inner}) AS bridge_page{where} ORDER BY {order}"
        if self.family in (DriverFamily.SQLSERVER, DriverFamily.SQLANYWHERE):
            return f"SELECT TOP {int(limit)} {select} FROM {body}", [*self.params, *params]
        return f"SELECT {select} FROM {body} LIMIT {int(limit)}", [*self.params, *params]

    def next_key(self, after: tuple[Any, ...] | None) -> tuple[str, list[object]]:
        """The key of the first row after ``after``, and nothing else."""
        return self.page(after, 1, select=", ".join(self._q(k) for k in self.keys))

    def probe(self, column: str, key: tuple[Any, ...]) -> tuple[str, list[object]]:
        """One column of the row with key ``key``."""
        match = " AND ".join(f"{self._q(k)} = ?" for k in self.keys)
        sql = f"SELECT {self._q(column)} FROM ({self._inner}) AS bridge_probe WHERE {match}"
        return sql, [*self.params, *key]

    @property
    def _inner(self) -> str:
        return self.sql.strip().rstrip(";").strip()

    def _q(self, name: str) -> str:
        return quote_identifier(self.family, name)

    def _after(self, after: tuple[Any, ...] | None) -> tuple[str, list[object]]:
        if after is None:
            return "", []
        terms: list[str] = []
        params: list[object] = []
        for i, key in enumerate(self.keys):
            equal = [f"{self._q(k)} = ?" for k in self.keys[:i]]
            terms.append("(" + " AND ".join([*equal, f"{self._q(key)} > ?"]) + ")")
            params.extend(after[: i + 1])
        return " WHERE " + " OR ".join(terms), params


class _Reporter:
    def __init__(self, table: str, handler: BadValueHandler | None) -> None:
        self.table = table
        self.handler = handler

    def report(self, key: object, column: str, problem: str) -> None:
        error = BadValueError(self.table, key, column, problem)
        log.warning(
            "bad value in %s.%s for key %s: %s",
            self.table,
            column,
            key,
            problem,
            extra={"table": self.table, "column": column, "key": str(key), "problem": problem},
        )
        if self.handler is not None:
            self.handler(error)


class _Reader:
    """State of one :func:`stream_batches` call."""

    def __init__(
        self,
        runner: Runner,
        query: KeyedQuery,
        *,
        table: str,
        entity: str | None,
        batch_size: int,
        reporter: _Reporter,
    ) -> None:
        self.runner = runner
        self.query = query
        self.table = table
        self.entity = entity
        self.batch_size = batch_size
        self.reporter = reporter

    # -- helpers ---------------------------------------------------------

    def execute(self, sql: str, params: Sequence[object]) -> pyodbc.Cursor:
        return self.runner.execute(sql, params, entity=self.entity, table=self.table)

    def key_positions(self, columns: Columns) -> tuple[int, ...]:
        try:
            return tuple(columns.position(k) for k in self.query.keys)
        except KeyError as exc:
            raise PmsError(
                f"key column '{exc.args[0]}' is not in the result of the query for "
                f"table '{self.table}'",
                fix="The profile's query must select its key columns; report this as a bug.",
            ) from None

    def key_of(self, values: Sequence[Any], positions: tuple[int, ...]) -> tuple[Any, ...]:
        key = tuple(values[p] for p in positions)
        if any(part is None or isinstance(part, BadValue) for part in key):
            raise PmsError(
                f"a key of table '{self.table}' is null or unreadable; the read cannot "
                "continue past it",
                fix="Check the table's primary key in the PMS; report this to support.",
            )
        return key

    def shown(self, key: tuple[Any, ...]) -> object:
        return key[0] if len(key) == 1 else key

    def clean(self, batch: Sequence[Any], columns: Columns, positions: tuple[int, ...]) -> None:
        """Replace markers by None and report them (only called when the count moved)."""
        for values in batch:
            for i, value in enumerate(values):
                if isinstance(value, BadValue):
                    values[i] = None
                    key = tuple(values[p] for p in positions)
                    self.reporter.report(self.shown(key), columns.names[i], value.problem)

    # -- paged mode --------------------------------------------------------

    def paged(self, page_size: int) -> Generator[RowBatch, None, None]:
        after: tuple[Any, ...] | None = None
        careful = False
        while True:
            self.runner.set_careful(careful)
            cursor = self.execute(*self.query.page(after, page_size))
            got, failed = 0, False
            try:
                columns = Columns.of(cursor.description)
                positions = self.key_positions(columns)
                while True:
                    seen = self.runner.bad_values.count
                    try:
                        batch = self.runner.fetchmany(
                            cursor, self.batch_size, entity=self.entity, table=self.table
                        )
                    except RowDataError:
                        failed = True
                        break
                    if not batch:
                        break
                    if self.runner.bad_values.count != seen:
                        self.clean(batch, columns, positions)
                    yield RowBatch(columns, batch)
                    got += len(batch)
                    after = self.key_of(batch[-1], positions)
            finally:
                cursor.close()
            if failed:
                careful = True
                after, recovered = yield from self.recover(after, page_size - got)
                got += recovered
            if got < page_size:
                return

    def recover(
        self, after: tuple[Any, ...] | None, limit: int
    ) -> Generator[RowBatch, None, tuple[tuple[Any, ...] | None, int]]:
        """Re-read up to ``limit`` rows after ``after`` one by one, isolating bad rows.

        Returns the last key read and how many rows were read.
        """
        self.runner.set_careful(True)
        read = 0
        while read < limit:
            cursor = self.execute(*self.query.page(after, limit - read))
            problem: str | None = None
            try:
                columns = Columns.of(cursor.description)
                positions = self.key_positions(columns)
                while read < limit:
                    seen = self.runner.bad_values.count
                    try:
                        values = self.runner.fetchone(cursor, entity=self.entity, table=self.table)
                    except RowDataError as exc:
                        problem = exc.problem
                        break
                    if values is None:
                        return after, read
                    if self.runner.bad_values.count != seen:
                        self.clean([values], columns, positions)
                    yield RowBatch(columns, [values])
                    after = self.key_of(values, positions)
                    read += 1
            finally:
                cursor.close()
            if problem is None:
                break
            key = self.next_key(after)
            if key is None:
                return after, read
            yield RowBatch(columns, [self.probe_row(columns, key, problem)])
            after = key
            read += 1
        return after, read

    def next_key(self, after: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
        cursor = self.execute(*self.query.next_key(after))
        try:
            values = self.runner.fetchone(cursor, entity=self.entity, table=self.table)
        except RowDataError:
            raise PmsError(
                f"a key of table '{self.table}' cannot be read; the read cannot continue",
                fix="Check the table's primary key in the PMS; report this to support.",
            ) from None
        finally:
            cursor.close()
        return None if values is None else self.key_of(values, tuple(range(len(values))))

    def probe_row(self, columns: Columns, key: tuple[Any, ...], problem: str) -> list[Any]:
        """Read each column of one failing row alone; None where it fails."""
        values: list[Any] = []
        bad = 0
        for name in columns.names:
            cursor = self.execute(*self.query.probe(name, key))
            try:
                row = self.runner.fetchone(cursor, entity=self.entity, table=self.table)
                value = None if row is None else row[0]
                reason = value.problem if isinstance(value, BadValue) else None
            except RowDataError as exc:
                value, reason = None, exc.problem
            finally:
                cursor.close()
            if reason is not None:
                bad += 1
                value = None
                self.reporter.report(self.shown(key), name, reason)
            values.append(value)
        if not bad:
            log.warning(
                "a row of %s failed to fetch (%s) but each column read alone; kept it",
                self.table,
                problem,
                extra={"table": self.table, "key": str(self.shown(key))},
            )
        return values

    # -- single-statement mode ----------------------------------------------

    def single(self) -> Generator[RowBatch, None, None]:
        self.runner.set_careful(True)
        cursor = self.execute(self.query.sql, self.query.params)
        try:
            columns = Columns.of(cursor.description)
            positions = self.key_positions(columns)
            after: object = "(start)"
            one_by_one, failures = False, 0
            while True:
                seen = self.runner.bad_values.count
                try:
                    if one_by_one:
                        values = self.runner.fetchone(cursor, entity=self.entity, table=self.table)
                        batch = [] if values is None else [values]
                    else:
                        batch = self.runner.fetchmany(
                            cursor, self.batch_size, entity=self.entity, table=self.table
                        )
                    failures = 0
                except RowDataError as exc:
                    failures += 1
                    if failures > _MAX_CONSECUTIVE_FAILURES:
                        raise PmsError(
                            f"reading table '{self.table}' failed on {failures} rows in a row",
                            fix="Check the table in the PMS; report this to support.",
                        ) from None
                    lost = (
                        "one row"
                        if one_by_one or self.batch_size == 1
                        else f"up to {self.batch_size} rows"
                    )
                    self.reporter.report(
                        f"unknown (after key {after})",
                        "(unknown)",
                        f"{exc.problem}; {lost} could not be read",
                    )
                    one_by_one = True
                    continue
                if not batch:
                    return
                if self.runner.bad_values.count != seen:
                    self.clean(batch, columns, positions)
                yield RowBatch(columns, batch)
                after = self.shown(self.key_of(batch[-1], positions))
        finally:
            cursor.close()


@dataclass(frozen=True)
class RowBatch:
    """Rows as the driver returned them, in key order: value sequences
    sharing one :class:`Columns` (no per-row objects)."""

    columns: Columns
    rows: Sequence[Sequence[Any]]


def stream_batches(
    runner: Runner,
    sql: str,
    params: Sequence[object],
    *,
    table: str,
    key_columns: Sequence[str],
    entity: str | None,
    batch_size: int,
    page_size: int | None,
    on_bad_value: BadValueHandler | None,
) -> Generator[RowBatch, None, None]:
    """Batches of the rows of ``sql`` (see the module docstring for the contract)."""
    if not key_columns:
        raise ValueError("stream() needs at least one key column")
    if batch_size < 1 or (page_size is not None and page_size < 1):
        raise ValueError("batch_size and page_size must be positive")
    keys = tuple(plain_identifier(k, "key column") for k in key_columns)
    query = KeyedQuery(runner.family, sql, tuple(params), keys)
    reader = _Reader(
        runner,
        query,
        table=table,
        entity=entity,
        batch_size=batch_size,
        reporter=_Reporter(table, on_bad_value),
    )
    return reader.single() if page_size is None else reader.paged(page_size)


def rows_of(batches: Generator[RowBatch, None, None]) -> Generator[Row, None, None]:
    """The rows of :func:`stream_batches`, one at a time."""
    try:
        for batch in batches:
            columns = batch.columns
            for values in batch.rows:
                yield Row(columns, values)
    finally:
        batches.close()
