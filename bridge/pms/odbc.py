"""The ODBC layer: the one way the bridge talks to a PMS database.

::

    settings = OdbcSettings(connection_string="Driver={MariaDB Unicode};Server=...;"
                            "Database=opendental", user="bridge_ro", password=secret)
    with connect(settings) as conn:
        for row in conn.stream("SELECT AptNum, PatNum, AptDateTime FROM appointment",
                               table="appointment", key_columns=["AptNum"]):
            ...

Contract
    * :func:`connect` opens a connection by DSN or connection string, with
      autocommit on, a read-only session where the driver has one
      (:attr:`PmsConnection.read_only_enforced` says whether it does, and
      :attr:`PmsConnection.read_only_method` how) and a time limit on every
      statement (:attr:`PmsConnection.timeout_method`). Per-driver details:
      :mod:`bridge.pms.odbc_session` and ``docs/odbc.md``.
    * :meth:`PmsConnection.stream` reads any number of rows in bounded
      memory (key-ordered pages, ``fetchmany`` batches, never ``fetchall``)
      and keeps going past bad values: see :mod:`bridge.pms.odbc_stream`.
    * Every failure is a :class:`~bridge.errors.PmsError` subclass:
      :class:`~bridge.errors.DriverNotFoundError` (lists installed drivers),
      :class:`~bridge.errors.DataSourceNotFoundError` (lists defined DSNs),
      :class:`~bridge.errors.LoginFailedError`,
      :class:`~bridge.errors.ServerUnreachableError` (also a missing SQLite
      file: the driver is told never to create one, and a lost connection),
      :class:`~bridge.errors.SchemaMismatchError` (names entity, table and
      column), :class:`~bridge.errors.QueryTimeoutError`,
      :class:`~bridge.errors.ReadOnlyViolationError` and, per value,
      :class:`~bridge.errors.BadValueError`.
    * No password appears in any message, log record, ``repr`` or
      traceback this layer produces: it is revealed only while the
      connection string is handed to the driver, and every driver message is
      masked. Row values never appear in messages or logs either; a
      :class:`Row`'s ``repr`` hides them.

Threading
    A :class:`PmsConnection` is used by one thread at a time, and a stream
    iterator holds it until exhausted or closed. Only the connection's own
    watchdog thread (where the driver needs one to enforce timeouts) touches
    it otherwise, to cancel an overrunning statement. After
    :class:`~bridge.errors.ServerUnreachableError` the connection is dead:
    close it and connect again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from types import TracebackType

import pyodbc

from bridge.errors import (
    BadValueError,
    ConfigError,
    PmsError,
    SchemaMismatchError,
    ServerUnreachableError,
)
from bridge.pms import odbc_connstr as connstr
from bridge.pms.odbc_catalog import Catalog, ColumnInfo, WriteCapability, login_can_write
from bridge.pms.odbc_connstr import DriverFamily
from bridge.pms.odbc_errors import connect_error, query_error
from bridge.pms.odbc_session import RowDataError, Runner, Session, open_session
from bridge.pms.odbc_stream import RowBatch, rows_of, stream_batches
from bridge.pms.odbc_values import BadValue, Columns, Row
from bridge.secrets import Secret

__all__ = [
    "ColumnInfo",
    "DriverFamily",
    "OdbcSettings",
    "PmsConnection",
    "Row",
    "WriteCapability",
    "connect",
    "defined_data_sources",
    "installed_drivers",
]

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 1000
DEFAULT_PAGE_SIZE = 10_000
_READ_TIMEOUT_GRACE_SECONDS = 30


@dataclass(frozen=True)
class OdbcSettings:
    """How to reach the PMS database.

    Exactly one of ``connection_string`` and ``dsn``. ``user`` and
    ``password`` replace any user or password the connection string names.
    Timeouts are whole seconds, at least 1.
    """

    connection_string: str | None = None
    dsn: str | None = None
    user: str | None = None
    password: Secret | None = None
    query_timeout_seconds: int = 30
    connect_timeout_seconds: int = 10
    read_only: bool = True

    def __post_init__(self) -> None:
        if (self.connection_string is None) == (self.dsn is None):
            raise ConfigError(
                "set exactly one of pms.connection_string or pms.dsn",
                key="pms.connection_string",
            )
        if self.connection_string is not None:
            try:
                connstr.parse(self.connection_string)
            except ValueError as exc:
                raise ConfigError(str(exc), key="pms.connection_string") from None
        for key in ("query_timeout_seconds", "connect_timeout_seconds"):
            if getattr(self, key) < 1:
                raise ConfigError(f"pms.{key} must be at least 1", key=f"pms.{key}")


def installed_drivers() -> list[str]:
    """Names of the ODBC drivers the driver manager knows."""
    try:
        return list(pyodbc.drivers())
    except pyodbc.Error as exc:
        raise PmsError(f"the ODBC driver manager could not list drivers ({exc.args[0]})") from None


def defined_data_sources() -> dict[str, str]:
    """Defined data sources (DSN name -> driver name), user and system."""
    try:
        return dict(pyodbc.dataSources())
    except pyodbc.Error as exc:
        raise PmsError(
            f"the ODBC driver manager could not list data sources ({exc.args[0]})"
        ) from None


def connect(settings: OdbcSettings) -> PmsConnection:
    """Open a connection to the PMS database (see the module docstring)."""
    if settings.connection_string is not None:
        pairs = connstr.parse(settings.connection_string)
    else:
        pairs = [("DSN", settings.dsn or "")]
    driver = connstr.get(pairs, "driver")
    dsn = connstr.get(pairs, "dsn")
    sources = defined_data_sources() if dsn is not None and driver is None else {}
    dsn_driver = {k.lower(): v for k, v in sources.items()}.get((dsn or "").lower())
    family = connstr.family_of(driver, dsn_driver)
    if settings.user is not None:
        pairs = [*connstr.without(pairs, "uid", "user", "user id"), ("UID", settings.user)]
    secrets: tuple[str, ...] = ()
    if settings.password is not None:
        pairs = connstr.without(pairs, "pwd", "password")
        pairs.append(("PWD", settings.password.reveal()))
        secrets = (settings.password.reveal(),)
    pairs = _driver_options(pairs, family, settings)
    database = connstr.get(pairs, "database", "db")
    if family is DriverFamily.SQLITE and _is_missing_file(database):
        raise ServerUnreachableError(f"the SQLite database file '{database}' does not exist")
    user = settings.user or connstr.get(pairs, "uid", "user", "user id")
    failure: PmsError | None
    try:
        raw = pyodbc.connect(
            connstr.render(pairs), autocommit=True, timeout=settings.connect_timeout_seconds
        )
    except pyodbc.Error as exc:
        failure = connect_error(
            exc,
            driver=driver,
            dsn=dsn,
            user=user,
            database=database,
            family=family,
            installed=installed_drivers(),
            defined=sources or defined_data_sources(),
            secrets=secrets,
        )
    else:
        failure = None
    if failure is not None:
        raise failure  # outside the handler: the driver's exception is not chained
    try:
        _use_utf8(raw, family)
        return PmsConnection._open(raw, family, settings, connstr.redacted(pairs), secrets)
    except BaseException:
        raw.close()
        raise


def _is_missing_file(database: str | None) -> bool:
    if not database or database == ":memory:" or database.startswith("file:"):
        return False
    return not os.path.exists(database)


def _driver_options(
    pairs: connstr.Pairs, family: DriverFamily, settings: OdbcSettings
) -> connstr.Pairs:
    """Add the driver options the layer relies on (unless the string sets them)."""
    pairs = list(pairs)

    def default(key: str, value: str) -> None:
        if connstr.get(pairs, key) is None:
            pairs.append((key, value))

    if family is DriverFamily.SQLITE:
        # Never create a missing database file. (StepAPI=1 would stream rows
        # instead of materialising each result, but then types every computed
        # column as text; paging bounds memory instead.)
        pairs = connstr.without(pairs, "nocreat")
        pairs.append(("NoCreat", "1"))
    elif family is DriverFamily.MARIADB:
        # The driver ignores SQL_ATTR_LOGIN_TIMEOUT; READ_TIMEOUT bounds a
        # stalled network (the server bounds the statement itself).
        default("CONN_TIMEOUT", str(settings.connect_timeout_seconds))
        grace = settings.query_timeout_seconds + _READ_TIMEOUT_GRACE_SECONDS
        default("READ_TIMEOUT", str(grace))
        default("WRITE_TIMEOUT", str(grace))
        # Text travels as UTF-8 bytes (see _use_utf8): the connection must
        # speak utf8mb4 for that.
        default("CHARSET", "utf8mb4")
    return pairs


def _use_utf8(raw: pyodbc.Connection, family: DriverFamily) -> None:
    """Send and read text as UTF-8 bytes on MariaDB/MySQL.

    MariaDB Connector/ODBC 3.1's UTF-16 path takes U+00D8..U+00DB (Ø, Ù, Ú,
    Û) for surrogate halves: 'Ødegaard' reads back as 'Ødegaar' and a
    parameter holding it matches nothing. The SQL_C_CHAR path is exact.
    """
    if family in (DriverFamily.MARIADB, DriverFamily.MYSQL):
        raw.setencoding(encoding="utf-8")
        for sql_type in (pyodbc.SQL_CHAR, pyodbc.SQL_WCHAR):
            raw.setdecoding(sql_type, encoding="utf-8", ctype=pyodbc.SQL_CHAR)


class PmsConnection:
    """An open connection to the PMS database; make one with :func:`connect`."""

    def __init__(
        self,
        runner: Runner,
        session: Session,
        *,
        description: str,
        driver_name: str,
        dbms_name: str,
        dbms_version: str,
        database: str | None,
    ) -> None:
        self._runner = runner
        self._session = session
        self._catalog = Catalog(runner, database)
        self.description = description
        """The connection string with the password masked."""
        self.driver_name = driver_name
        self.dbms_name = dbms_name
        self.dbms_version = dbms_version
        self.database = database

    @classmethod
    def _open(
        cls,
        raw: pyodbc.Connection,
        family: DriverFamily,
        settings: OdbcSettings,
        description: str,
        secrets: Sequence[str],
    ) -> PmsConnection:
        def info(code: int) -> str:
            try:
                return str(raw.getinfo(code) or "")
            except pyodbc.Error:
                return ""

        failure: PmsError | None
        driver_name = info(pyodbc.SQL_DRIVER_NAME)
        dbms_name = info(pyodbc.SQL_DBMS_NAME)
        if family is DriverFamily.OTHER:
            family = connstr.family_of(driver_name, dbms_name)
        try:
            session = open_session(
                raw,
                family,
                read_only=settings.read_only,
                timeout_seconds=settings.query_timeout_seconds,
            )
        except pyodbc.Error as exc:
            failure = query_error(
                exc,
                family=family,
                entity=None,
                table=None,
                timed_out=False,
                timeout_seconds=settings.query_timeout_seconds,
                secrets=secrets,
            )
        else:
            failure = None
        if failure is not None:
            raise failure
        runner = Runner(
            raw,
            family,
            session,
            timeout_seconds=settings.query_timeout_seconds,
            secrets=secrets,
        )
        conn = cls(
            runner,
            session,
            description=description,
            driver_name=driver_name,
            dbms_name=dbms_name,
            dbms_version=info(pyodbc.SQL_DBMS_VER),
            database=info(pyodbc.SQL_DATABASE_NAME) or None,
        )
        log.info(
            "PMS database connected",
            extra={
                "family": family.value,
                "driver": driver_name,
                "dbms": dbms_name,
                "read_only": session.read_only_method,
                "timeouts": session.timeout_method,
            },
        )
        return conn

    # -- facts -------------------------------------------------------------

    @property
    def family(self) -> DriverFamily:
        return self._runner.family

    @property
    def read_only_enforced(self) -> bool:
        """True when the session itself refuses writes (not just the login)."""
        return self._session.read_only_enforced

    @property
    def read_only_method(self) -> str:
        """How the session is kept read-only, or why it is not."""
        return self._session.read_only_method

    @property
    def timeout_method(self) -> str:
        """How statements are bounded in time."""
        return self._session.timeout_method

    @property
    def closed(self) -> bool:
        return self._runner.closed

    # -- statements ----------------------------------------------------------

    def execute(
        self, sql: str, params: Sequence[object] = (), *, entity: str | None = None
    ) -> list[Row]:
        """Run one statement and return all its rows (for small results).

        Statements that return no rows give ``[]``. Values that cannot be
        converted become ``None`` and are logged (key ``row N``); a row the
        driver cannot deliver at all raises :class:`BadValueError`. Use
        :meth:`stream` for tables.
        """
        runner = self._runner
        runner.set_careful(True)
        cursor = runner.execute(sql, params, entity=entity)
        try:
            if cursor.description is None:
                return []
            columns = Columns.of(cursor.description)
            rows: list[Row] = []
            while True:
                seen = runner.bad_values.count
                try:
                    batch = runner.fetchmany(cursor, DEFAULT_BATCH_SIZE, entity=entity)
                except RowDataError as exc:
                    raise BadValueError(
                        entity or "(query)", f"after row {len(rows)}", "(unknown)", exc.problem
                    ) from None
                if not batch:
                    return rows
                for values in batch:
                    if runner.bad_values.count != seen:
                        _clean_unkeyed(values, columns, entity, len(rows) + 1)
                    rows.append(Row(columns, values))
        finally:
            cursor.close()

    def stream(
        self,
        sql: str,
        params: Sequence[object] = (),
        *,
        table: str,
        key_columns: Sequence[str],
        entity: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        page_size: int | None = DEFAULT_PAGE_SIZE,
        on_bad_value: Callable[[BadValueError], None] | None = None,
    ) -> Generator[Row, None, None]:
        """Yield the rows of ``sql`` in key order, in bounded memory.

        ``table`` and ``key_columns`` name the rows in reports;
        ``key_columns`` must be columns of the result, unique and not null.
        ``page_size=None`` reads in one statement (for SQL that cannot be
        wrapped; memory then depends on the driver). Each bad value becomes
        ``None``, is logged and is passed to ``on_bad_value``. Errors before
        the first row (missing table or column, timeout) raise when the
        iteration starts; ``close()`` the generator to stop early.
        Contract: :mod:`bridge.pms.odbc_stream`.
        """
        return rows_of(
            self.stream_batches(
                sql,
                params,
                table=table,
                key_columns=key_columns,
                entity=entity,
                batch_size=batch_size,
                page_size=page_size,
                on_bad_value=on_bad_value,
            )
        )

    def stream_batches(
        self,
        sql: str,
        params: Sequence[object] = (),
        *,
        table: str,
        key_columns: Sequence[str],
        entity: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        page_size: int | None = DEFAULT_PAGE_SIZE,
        on_bad_value: Callable[[BadValueError], None] | None = None,
    ) -> Generator[RowBatch, None, None]:
        """:meth:`stream`, a ``fetchmany`` batch at a time: the values as the
        driver returned them, sharing one column description (for reads of
        millions of rows, where a :class:`Row` object per row is measurable)."""
        return stream_batches(
            self._runner,
            sql,
            params,
            table=table,
            key_columns=key_columns,
            entity=entity,
            batch_size=batch_size,
            page_size=page_size,
            on_bad_value=on_bad_value,
        )

    # -- catalog -------------------------------------------------------------

    def has_table(self, name: str) -> bool:
        """Whether the table (or view) exists in the connection's database."""
        return self._catalog.has_table(name)

    def columns(self, table: str) -> list[ColumnInfo]:
        """The table's columns in order; empty if the table does not exist."""
        return self._catalog.columns(table)

    def check_entity(
        self, entity: str, table: str, columns: Sequence[str]
    ) -> list[SchemaMismatchError]:
        """Every missing table or column a profile entity needs (empty: all there)."""
        return self._catalog.check_entity(entity, table, columns)

    def login_can_write(self) -> WriteCapability:
        """Whether the login itself could change the PMS database.

        MariaDB/MySQL: from its grants (a dedicated SELECT-only login is
        recommended); SQLite: whether this process may write the file;
        other drivers: unknown (``can_write`` is None).
        """
        return login_can_write(self.family, self.execute)

    # -- lifetime ------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._runner.close()

    def __enter__(self) -> PmsConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<PmsConnection {self.family.value} {state}: {self.description}>"


def _clean_unkeyed(values: pyodbc.Row, columns: Columns, entity: str | None, number: int) -> None:
    for i, value in enumerate(values):
        if isinstance(value, BadValue):
            values[i] = None
            log.warning(
                "bad value replaced by null in a query result: column %s of row %d: %s",
                columns.names[i],
                number,
                value.problem,
                extra={"entity": entity, "column": columns.names[i], "problem": value.problem},
            )
