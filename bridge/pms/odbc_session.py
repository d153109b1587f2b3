"""Per-driver session setup, query timeouts, and the guarded statement runner.

Session setup (:func:`open_session`) runs right after connecting:

* MariaDB/MySQL: ``SET SESSION TRANSACTION READ ONLY`` (writes then fail
  with SQLSTATE 25006) and a server-side statement time limit
  (``max_statement_time`` on MariaDB, ``max_execution_time`` on MySQL
  5.7.8+). MariaDB Connector/ODBC 3.1 ignores ``SQL_ATTR_QUERY_TIMEOUT``
  (measured: ``SELECT SLEEP(5)`` with a 1 s timeout ran 5 s), and a limit
  kept by the server also stops a runaway query when the bridge dies.
* SQLite: ``PRAGMA query_only=1``. The SQLite ODBC driver ignores
  ``SQL_ATTR_QUERY_TIMEOUT`` too, but its ``SQLCancel`` interrupts a running
  statement, so a :class:`Watchdog` thread cancels statements that overrun.
* Other drivers: ``SQL_ATTR_QUERY_TIMEOUT``, with the watchdog as a backstop a
  few seconds later; no session read-only mode exists, so the read-only
  guarantee rests on the login (``bridge doctor`` checks it).

Both settings are set explicitly either way (``READ WRITE`` when
``read_only`` is off), so a pooled connection never keeps a previous mode.

:class:`Runner` wraps the raw pyodbc connection: every execute, fetch and
catalog call goes through it, under the watchdog where there is one, and
every driver error leaves it translated (:mod:`bridge.pms.odbc_errors`).
Row data errors at fetch are raised as :class:`RowDataError` for the
streamer to recover from.

Threading: a Runner is used by one thread at a time (its PmsConnection's);
only the watchdog's own thread touches it otherwise, and only to call
``Cursor.cancel`` (ODBC's ``SQLCancel``, which is meant for that).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pyodbc

from bridge.errors import PmsError, ServerUnreachableError
from bridge.pms.odbc_connstr import DriverFamily
from bridge.pms.odbc_errors import is_row_data_error, query_error, row_problem
from bridge.pms.odbc_values import BadValueCounter, converters

log = logging.getLogger(__name__)

WATCHDOG_BACKSTOP_SECONDS = 5
"""Extra time given to a driver's own query timeout before the watchdog cancels."""

_T = TypeVar("_T")


class RowDataError(Exception):
    """A fetch lost a row to a bad value (internal: the streamer recovers)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True)
class Session:
    """What :func:`open_session` set up, in words for doctor and support."""

    read_only_enforced: bool
    read_only_method: str
    timeout_method: str
    watchdog_seconds: float | None  # None: no watchdog needed


class Watchdog:
    """Cancels a statement that runs past its deadline, from its own thread.

    ``arm`` before a driver call, ``disarm`` after it; ``disarm`` says
    whether the watchdog cancelled that call. The cancel happens under the
    same lock ``disarm`` takes, so once ``disarm`` returns, no cancel for
    that call can still arrive and hit a later statement.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._cond = threading.Condition()
        self._armed: tuple[int, float, pyodbc.Cursor] | None = None
        self._token = 0
        self._fired = -1
        self._stopping = False
        self._thread: threading.Thread | None = None

    def arm(self, cursor: pyodbc.Cursor) -> int:
        with self._cond:
            self._token += 1
            self._armed = (self._token, time.monotonic() + self.seconds, cursor)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="bridge-odbc-watchdog", daemon=True
                )
                self._thread.start()
            self._cond.notify()
            return self._token

    def disarm(self, token: int) -> bool:
        with self._cond:
            if self._armed is not None and self._armed[0] == token:
                self._armed = None
            return self._fired == token

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._armed = None
            self._cond.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)

    def _run(self) -> None:
        with self._cond:
            while not self._stopping:
                if self._armed is None:
                    self._cond.wait()
                    continue
                token, deadline, cursor = self._armed
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                self._armed = None
                self._fired = token
                try:
                    cursor.cancel()
                except pyodbc.Error as exc:  # the statement may have just ended
                    log.debug("watchdog cancel failed: %s", type(exc).__name__)


def open_session(
    raw: pyodbc.Connection, family: DriverFamily, *, read_only: bool, timeout_seconds: int
) -> Session:
    """Make the session read-only and bounded in time, as far as the driver allows.

    Raises ``pyodbc.Error`` (the caller translates it).
    """
    if family.is_mysql_like:
        return _mysql_session(raw, read_only=read_only, timeout_seconds=timeout_seconds)
    if family is DriverFamily.SQLITE:
        raw.execute("SELECT count(*) FROM sqlite_master").close()  # is it a database?
        raw.execute(f"PRAGMA query_only={1 if read_only else 0}").close()
        state = raw.execute("PRAGMA query_only").fetchone()
        # (With StepAPI=1 the driver returns the value as text.)
        enforced = bool(read_only and state is not None and str(state[0]) == "1")
        return Session(
            enforced,
            "PRAGMA query_only=1 (writes fail with 'attempt to write a readonly database')"
            if enforced
            else "not read-only (read_only is off)",
            f"watchdog thread cancels a statement after {timeout_seconds} s "
            "(the SQLite ODBC driver ignores SQL_ATTR_QUERY_TIMEOUT)",
            float(timeout_seconds),
        )
    raw.timeout = timeout_seconds
    return Session(
        False,
        f"no session read-only mode for {family.value}; rely on a read-only login",
        f"SQL_ATTR_QUERY_TIMEOUT = {timeout_seconds} s, watchdog cancel "
        f"{WATCHDOG_BACKSTOP_SECONDS} s later as a backstop",
        float(timeout_seconds + WATCHDOG_BACKSTOP_SECONDS),
    )


def _mysql_session(raw: pyodbc.Connection, *, read_only: bool, timeout_seconds: int) -> Session:
    version = str(raw.execute("SELECT VERSION()").fetchone()[0])
    mode = "READ ONLY" if read_only else "READ WRITE"
    try:
        raw.execute(f"SET SESSION TRANSACTION {mode}").close()
        enforced = read_only
        how = (
            "SET SESSION TRANSACTION READ ONLY (writes fail with SQLSTATE 25006)"
            if read_only
            else "not read-only (read_only is off)"
        )
    except pyodbc.Error as exc:
        enforced = False
        how = f"the server refused SET SESSION TRANSACTION {mode} ({type(exc).__name__})"
    numbers = [int(n) for n in re.findall(r"\d+", version)[:3]]
    if "mariadb" in version.lower():  # MariaDB 10.1+
        limit = f"max_statement_time = {timeout_seconds}"
        said = f"server-side max_statement_time = {timeout_seconds} s"
    elif numbers >= [5, 7, 8]:  # MySQL: milliseconds, SELECT only
        limit = f"max_execution_time = {timeout_seconds * 1000}"
        said = f"server-side max_execution_time = {timeout_seconds} s (SELECT only)"
    else:
        limit = said = ""
    try:
        if limit:
            raw.execute(f"SET SESSION {limit}").close()
            return Session(enforced, how, said, None)
    except pyodbc.Error as exc:
        log.info("server refused a statement time limit: %s", type(exc).__name__)
    timeouts = f"watchdog thread cancels a statement after {timeout_seconds} s"
    return Session(enforced, how, timeouts, float(timeout_seconds))


class Runner:
    """Runs statements on one raw connection: guarded, translated, converted."""

    def __init__(
        self,
        raw: pyodbc.Connection,
        family: DriverFamily,
        session: Session,
        *,
        timeout_seconds: int,
        secrets: Iterable[str],
    ) -> None:
        self.raw = raw
        self.family = family
        self.timeout_seconds = timeout_seconds
        self.bad_values = BadValueCounter()
        self.closed = False
        self._secrets = tuple(secrets)
        self._converters = converters(family, self.bad_values)
        self._careful: bool | None = None
        self._watchdog = (
            Watchdog(session.watchdog_seconds) if session.watchdog_seconds is not None else None
        )
        # SQLite's driver hides bad values instead of failing, so conversion
        # is always defensive there.
        self.always_careful = family is DriverFamily.SQLITE

    def set_careful(self, careful: bool) -> None:
        """Install (or remove) the defensive output converters."""
        careful = careful or self.always_careful
        if careful == self._careful:
            return
        self.raw.clear_output_converters()
        if careful:
            for sql_type, func in self._converters:
                self.raw.add_output_converter(sql_type, func)
        self._careful = careful

    def execute(
        self,
        sql: str,
        params: Sequence[object] = (),
        *,
        entity: str | None = None,
        table: str | None = None,
    ) -> pyodbc.Cursor:
        """Run ``sql``; the caller closes the returned cursor."""
        cursor = self._cursor()
        try:
            self._guarded(cursor, lambda: cursor.execute(sql, *params), entity, table)
        except BaseException:
            cursor.close()
            raise
        return cursor

    def catalog(
        self, call: Callable[[pyodbc.Cursor], Any], *, table: str | None = None
    ) -> list[Any]:
        """Run a catalog function (``cursor.tables(...)``) and read its rows."""
        cursor = self._cursor()
        try:
            self._guarded(cursor, lambda: call(cursor), None, table)
            rows: list[Any] = []
            while batch := self._guarded(cursor, lambda: cursor.fetchmany(500), None, table):
                rows.extend(batch)
            return rows
        finally:
            cursor.close()

    def fetchmany(
        self,
        cursor: pyodbc.Cursor,
        size: int,
        *,
        entity: str | None = None,
        table: str | None = None,
    ) -> list[Any]:
        rows: list[Any] = self._guarded(
            cursor, lambda: cursor.fetchmany(size), entity, table, row_errors=True
        )
        return rows

    def fetchone(
        self, cursor: pyodbc.Cursor, *, entity: str | None = None, table: str | None = None
    ) -> Any:
        return self._guarded(cursor, cursor.fetchone, entity, table, row_errors=True)

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.stop()
        if not self.closed:
            self.closed = True
            try:
                self.raw.close()
            except pyodbc.Error as exc:
                log.debug("closing the PMS connection failed: %s", type(exc).__name__)

    def _cursor(self) -> pyodbc.Cursor:
        if self.closed:
            raise PmsError("the PMS connection is closed", fix="Open a new connection.")
        try:
            return self.raw.cursor()
        except pyodbc.Error as exc:
            failure = self._translate(exc, False, None, None)
        raise failure

    def _guarded(
        self,
        cursor: pyodbc.Cursor,
        call: Callable[[], _T],
        entity: str | None,
        table: str | None,
        *,
        row_errors: bool = False,
    ) -> _T:
        token = self._watchdog.arm(cursor) if self._watchdog is not None else None
        try:
            try:
                return call()
            except (pyodbc.Error, ValueError, OverflowError) as exc:
                fired = False
                if token is not None and self._watchdog is not None:
                    fired = self._watchdog.disarm(token)
                    token = None
                failure: Exception = (
                    RowDataError(row_problem(exc))
                    if row_errors and not fired and is_row_data_error(exc)
                    else self._translate(exc, fired, entity, table)
                )
        finally:
            if token is not None and self._watchdog is not None:
                self._watchdog.disarm(token)
        # Raised outside the handler, so the driver's exception (whose text
        # may quote a value) is not chained as __context__ either.
        raise failure

    def _translate(
        self, exc: BaseException, fired: bool, entity: str | None, table: str | None
    ) -> PmsError:
        error = query_error(
            exc,
            family=self.family,
            entity=entity,
            table=table,
            timed_out=fired,
            timeout_seconds=self.timeout_seconds,
            secrets=self._secrets,
        )
        if isinstance(error, ServerUnreachableError):
            log.warning("PMS connection lost", extra={"family": self.family.value})
        return error
