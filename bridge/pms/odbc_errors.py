"""Translation of pyodbc errors into the bridge's exception tree.

Every ``pyodbc.Error`` raised while connecting, querying or fetching passes
through :func:`connect_error` or :func:`query_error` and comes out as one
:class:`~bridge.errors.PmsError` subclass. Translated errors are raised
``from None``: the driver's text survives only in redacted form inside the
new message, so no password (and no value from a patient row) reaches a
traceback or a log through the exception chain.

Drivers disagree on SQLSTATEs, so decisions use the SQLSTATE, the native
error number (the number in parentheses at the end of the driver message)
and, where drivers give nothing better, the message text. What each driver
was observed to return is listed in ``docs/odbc.md``.

Messages of SQLSTATE classes 22 (data exception) and 23 (integrity) and of a
few MariaDB errors that quote values are never copied: they may contain
personal data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pyodbc

from bridge.errors import (
    DataSourceNotFoundError,
    DriverNotFoundError,
    LoginFailedError,
    PmsError,
    QueryTimeoutError,
    ReadOnlyViolationError,
    SchemaMismatchError,
    ServerUnreachableError,
)
from bridge.pms.odbc_connstr import DriverFamily, redact_text

_NATIVE = re.compile(r"\((-?\d+)\)\s*\(SQL\w+\)\s*$")
_CALL = re.compile(r"\s*(?:\(-?\d+\)\s*)*\(SQL\w+\)\s*$")
_PREFIX = re.compile(r"^(?:\[[^\]]*\]\s*)+")

# MariaDB / MySQL native error numbers.
_ACCOUNT_LOCKED = 4151  # MariaDB ER_ACCOUNT_HAS_BEEN_LOCKED
_LOGIN = {1045, 1044, 1698, 1862, 18456}  # 18456: SQL Server login failed
_NO_DATABASE = {1049}
_UNREACHABLE = {2002, 2003, 2005, 2006, 2013, 2055, 1053, 1927}
_TIMEOUT = {1969, 3024}  # MariaDB max_statement_time, MySQL max_execution_time
_READ_ONLY = {1792, 1290, 1836}
_PRIVILEGE = {1142, 1143}
_VALUE_QUOTING = {1062, 1292, 1300, 1366, 1406}
_SQLITE_CANTOPEN = 14
_SQLITE_READONLY = 8
_SQLITE_NOTADB = 26

_MISSING_TABLE = (
    re.compile(r"Table '([^']+)' doesn't exist"),  # MariaDB / MySQL
    re.compile(r"no such table: (\S+)"),  # SQLite
    re.compile(r"Invalid object name '([^']+)'"),  # SQL Server
    re.compile(r"Table '([^']+)' not found"),  # SQL Anywhere
)
_MISSING_COLUMN = (
    re.compile(r"Unknown column '([^']+)'"),
    re.compile(r"no such column: (\S+)"),
    re.compile(r"Invalid column name '([^']+)'"),
    re.compile(r"Column '([^']+)' not found"),
)


@dataclass(frozen=True)
class Diagnostic:
    """What a driver said, with secrets masked."""

    sqlstate: str
    native: int | None
    text: str  # the driver message without its [vendor] prefixes and call suffix

    @classmethod
    def of(cls, exc: BaseException, secrets: Iterable[str] = ()) -> Diagnostic:
        args: tuple[object, ...] = tuple(getattr(exc, "args", ()))
        if len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
            state, raw = args[0], args[1]
        else:
            state, raw = "", str(args[0]) if args else type(exc).__name__
        match = _NATIVE.search(raw)
        native = int(match.group(1)) if match else None
        text = _PREFIX.sub("", _CALL.sub("", raw)).strip()
        return cls(state if len(state) == 5 else "", native, redact_text(text, secrets))

    @property
    def brief(self) -> str:
        parts = [f"SQLSTATE {self.sqlstate or 'unknown'}"]
        if self.native not in (None, 0):
            parts.append(f"native error {self.native}")
        return ", ".join(parts)

    @property
    def safe_text(self) -> str:
        """The driver text, or a placeholder where it may quote row values."""
        if self.sqlstate[:2] in ("22", "23") or self.native in _VALUE_QUOTING:
            return "the driver's message is withheld because it may quote a value"
        return self.text


def connect_error(
    exc: pyodbc.Error,
    *,
    driver: str | None,
    dsn: str | None,
    user: str | None,
    database: str | None,
    family: DriverFamily,
    installed: Sequence[str],
    defined: Mapping[str, str],
    secrets: Iterable[str] = (),
) -> PmsError:
    """Translate a failure of ``pyodbc.connect``."""
    d = Diagnostic.of(exc, secrets)
    lowered = d.text.lower()
    if d.sqlstate in ("IM002", "IM003") or (d.sqlstate == "01000" and "can't open lib" in lowered):
        by_name = {name.lower(): drv for name, drv in defined.items()}
        if dsn is not None and dsn.lower() not in by_name:
            return DataSourceNotFoundError(dsn, sorted(defined))
        missing = driver or (by_name.get(dsn.lower()) if dsn else None)
        if missing is not None:
            return DriverNotFoundError(missing, installed)
    who = f"user '{user}'" if user else "the configured user"
    if d.native == _ACCOUNT_LOCKED:
        return LoginFailedError(
            f"the database login ({who}) is locked ({d.brief})",
            fix="Ask the database administrator to unlock the bridge's login "
            "(ALTER USER ... ACCOUNT UNLOCK).",
        )
    if d.sqlstate == "28000" or d.native in _LOGIN:
        if d.native == 1044:
            return LoginFailedError(
                f"the database login ({who}) has no access to database '{database}' "
                f"or it does not exist ({d.brief})"
            )
        return LoginFailedError(
            f"the database refused the login for {who} ({d.brief}): {d.safe_text}"
        )
    if d.native in _NO_DATABASE:
        return ServerUnreachableError(
            f"the server has no database '{database}' ({d.brief})",
            fix="Correct the Database= name in pms.connection_string or the DSN.",
        )
    if family is DriverFamily.SQLITE and d.native == _SQLITE_CANTOPEN:
        where = f"'{database}'" if database else "named by the data source"
        return ServerUnreachableError(
            f"the SQLite database file {where} could not be opened: it does not exist "
            f"or this process may not read it ({d.brief})"
        )
    if _is_unreachable(d):
        return ServerUnreachableError(
            f"the PMS database server could not be reached ({d.brief}): {d.safe_text}"
        )
    return PmsError(f"could not connect to the PMS database ({d.brief}): {d.safe_text}")


def query_error(
    exc: BaseException,
    *,
    family: DriverFamily,
    entity: str | None,
    table: str | None,
    timed_out: bool,
    timeout_seconds: int,
    secrets: Iterable[str] = (),
) -> PmsError:
    """Translate a failure of execute, fetch or a catalog call."""
    d = Diagnostic.of(exc, secrets)
    what = f"table '{table}'" if table else "the PMS database"
    if timed_out or d.sqlstate in ("HYT00", "HYT01") or d.native in _TIMEOUT:
        return QueryTimeoutError(
            f"a query on {what} ran longer than {timeout_seconds} s and was cancelled ({d.brief})"
        )
    if (
        d.sqlstate == "25006"
        or d.native in _READ_ONLY
        or (family is DriverFamily.SQLITE and d.native == _SQLITE_READONLY)
    ):
        return ReadOnlyViolationError(
            f"a statement tried to change the PMS database through a read-only session ({d.brief})"
        )
    missing = missing_object(d)
    if missing is not None:
        kind, qualifier, name = missing
        label = entity or "(no entity: ad-hoc query)"
        if kind == "table":
            return SchemaMismatchError(label, name)
        return SchemaMismatchError(label, table or qualifier or "(query)", name)
    if d.sqlstate == "42S02":
        return SchemaMismatchError(entity or "(no entity: ad-hoc query)", table or "(unknown)")
    if family is DriverFamily.SQLITE and d.native == _SQLITE_NOTADB:
        return ServerUnreachableError(f"the file is not a SQLite database ({d.brief})")
    if _is_unreachable(d) or d.sqlstate == "08003":
        return ServerUnreachableError(
            f"the connection to the PMS database was lost ({d.brief}): {d.safe_text}"
        )
    if d.native in _PRIVILEGE:
        return LoginFailedError(
            f"the database login may not read {what} ({d.brief})",
            fix="Grant the bridge's read-only login SELECT on the PMS database.",
        )
    if d.native == 1317:
        return PmsError(f"the server interrupted a query on {what} ({d.brief})")
    on = f" on table '{table}'" if table else ""
    return PmsError(f"the PMS database reported an error{on} ({d.brief}): {d.safe_text}")


def _is_unreachable(d: Diagnostic) -> bool:
    return d.sqlstate.startswith("08") or d.native in _UNREACHABLE


def missing_object(d: Diagnostic) -> tuple[str, str | None, str] | None:
    """("table" | "column", qualifier, name) when the driver reports a missing object."""
    for kind, patterns in (("table", _MISSING_TABLE), ("column", _MISSING_COLUMN)):
        for pattern in patterns:
            match = pattern.search(d.text)
            if match:
                qualifier, _, name = match.group(1).strip('`"[]').rpartition(".")
                return kind, qualifier or None, name
    return None


def is_row_data_error(exc: BaseException) -> bool:
    """True when ``exc`` is about one value of one row, not the statement.

    Such errors (pyodbc's ``ValueError`` for an impossible date, a driver's
    conversion error at ``SQLGetData``) lose the row, not the connection; the
    streamer re-reads around them instead of giving up.
    """
    if isinstance(exc, (ValueError, OverflowError)):
        return True
    if isinstance(exc, pyodbc.Error):
        d = Diagnostic.of(exc)
        return d.sqlstate.startswith("22") or (
            d.sqlstate in ("HY000", "07006") and "conver" in d.text.lower()
        )
    return False


def row_problem(exc: BaseException) -> str:
    """Describe a row data error without quoting the value."""
    if isinstance(exc, pyodbc.Error):
        return f"the driver could not convert the value ({Diagnostic.of(exc).brief})"
    if isinstance(exc, UnicodeDecodeError):
        return "the text is not valid in the column's character set (UnicodeDecodeError)"
    return f"the value is out of range for its type ({type(exc).__name__})"
