"""What the PMS database holds, and what the login may do to it.

Tables and columns come from the ODBC catalog functions (``SQLTables``,
``SQLColumns`` through ``cursor.tables`` and ``cursor.columns``), which
work on MariaDB Connector/ODBC and the SQLite ODBC driver alike. Where the
catalog has nothing to say (a driver whose catalog is incomplete, a view it
does not list), a ``SELECT * FROM <table> WHERE 1=0`` probe decides, so a
table is never reported missing on the catalog's word alone. On MariaDB the
catalog is asked about the connection's database only: without that it
also answers from other databases (``user`` would be found as
``mysql.user``).

:func:`login_can_write` answers ``bridge doctor``'s "is the login
read-only?": on MariaDB/MySQL from ``SHOW GRANTS`` (the login's own grants,
those of its active role, and of every role granted to it, since it may
switch to any of them); on SQLite from whether this process may write the
database file. Grant lines are parsed, never shown: they can carry a
password hash.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pyodbc

from bridge.errors import PmsError, QueryTimeoutError, SchemaMismatchError, ServerUnreachableError
from bridge.pms.odbc_connstr import DriverFamily
from bridge.pms.odbc_session import Runner
from bridge.pms.odbc_stream import plain_identifier, quote_identifier
from bridge.pms.odbc_values import Row


@dataclass(frozen=True)
class ColumnInfo:
    """One column of a table as the catalog (or a probe) describes it."""

    name: str
    type_name: str
    sql_type: int | None  # ODBC SQL type code; None when only a probe could tell
    size: int | None
    nullable: bool | None
    position: int  # 1-based


@dataclass(frozen=True)
class WriteCapability:
    """Whether the login can change the PMS database (None: cannot tell)."""

    can_write: bool | None
    detail: str


class Catalog:
    """Catalog questions for one connection (used through PmsConnection)."""

    def __init__(self, runner: Runner, database: str | None) -> None:
        self.runner = runner
        self.family = runner.family
        # MariaDB's catalog answers across databases unless told which one.
        self.catalog = database if runner.family.is_mysql_like and database else None
        self._escape: str | None = None

    def has_table(self, name: str) -> bool:
        wanted = name.rpartition(".")[2].lower()
        rows = self._catalog_rows(
            lambda c: c.tables(table=self._pattern(name), catalog=self.catalog)
        )
        if any(str(row.table_name).lower() == wanted for row in rows or ()):
            return True
        return self._probe(name) is not None

    def columns(self, table: str) -> list[ColumnInfo]:
        wanted = table.rpartition(".")[2].lower()
        rows = self._catalog_rows(
            lambda c: c.columns(table=self._pattern(table), catalog=self.catalog)
        )
        found = [
            ColumnInfo(
                name=str(row.column_name),
                type_name=str(row.type_name),
                sql_type=int(row.data_type),
                size=None if row.column_size is None else int(row.column_size),
                nullable=None if row.nullable not in (0, 1) else bool(row.nullable),
                position=int(row.ordinal_position),
            )
            for row in rows or ()
            if str(row.table_name).lower() == wanted
        ]
        if found:
            return sorted(found, key=lambda c: c.position)
        described = self._probe(table)
        return [
            ColumnInfo(
                name=str(column[0]),
                type_name=getattr(column[1], "__name__", str(column[1])),
                sql_type=None,
                size=column[3] if isinstance(column[3], int) else None,
                nullable=column[6] if isinstance(column[6], bool) else None,
                position=i,
            )
            for i, column in enumerate(described or (), start=1)
        ]

    def check_entity(
        self, entity: str, table: str, columns: Iterable[str]
    ) -> list[SchemaMismatchError]:
        if not self.has_table(table):
            return [SchemaMismatchError(entity, table)]
        have = {c.name.lower() for c in self.columns(table)}
        return [SchemaMismatchError(entity, table, c) for c in columns if c.lower() not in have]

    def _catalog_rows(self, call: Callable[..., object]) -> list[Any] | None:
        try:
            return self.runner.catalog(call)
        except (ServerUnreachableError, QueryTimeoutError):
            raise
        except PmsError:
            return None  # a driver without this catalog function: the probe decides

    def _probe(self, table: str) -> list[tuple[object, ...]] | None:
        """The result description of an empty select, or None if the table is missing."""
        parts = [plain_identifier(p, "table name") for p in table.split(".")]
        quoted = ".".join(quote_identifier(self.family, p) for p in parts)
        try:
            cursor = self.runner.execute(f"SELECT * FROM {quoted} WHERE 1=0", table=table)
        except SchemaMismatchError:
            return None
        try:
            return [tuple(column) for column in cursor.description or ()]
        finally:
            cursor.close()

    def _pattern(self, name: str) -> str:
        """``name`` as a catalog search pattern that matches only itself."""
        if self._escape is None:
            try:
                self._escape = str(self.runner.raw.getinfo(pyodbc.SQL_SEARCH_PATTERN_ESCAPE) or "")
            except pyodbc.Error:  # a driver without the attribute: no escaping
                self._escape = ""
        name = name.rpartition(".")[2]
        esc = self._escape
        if not esc:
            return name
        return name.replace(esc, esc + esc).replace("_", esc + "_").replace("%", esc + "%")


# -- can the login write? ---------------------------------------------------

_WRITE_PRIVILEGES = frozenset(
    {"ALL", "ALL PRIVILEGES", "INSERT", "UPDATE", "DELETE", "DROP", "ALTER", "CREATE",
     "DELETE HISTORY"}
)  # fmt: skip
_IDENT = r"(?:`(?:[^`]|``)*`|\*|[^\s.`]+)"
_GRANT_ON = re.compile(
    r"^\s*GRANT\s+(?P<privs>.+?)\s+ON\s+"
    r"(?:(?P<kind>TABLE|FUNCTION|PROCEDURE|PACKAGE\s+BODY|PACKAGE)\s+)?"
    rf"(?P<db>{_IDENT})(?:\.(?P<table>{_IDENT}))?\s+TO\s",
    re.IGNORECASE | re.DOTALL,
)
_GRANT_ROLE = re.compile(r"^\s*GRANT\s+(?P<roles>.+?)\s+TO\s", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Grant:
    """One ``GRANT ... ON db.table`` line, reduced to what matters here."""

    privileges: tuple[str, ...]
    database: str  # "*" for every database; may be a LIKE pattern
    table: str  # "*" for every table
    routine: bool = False


def parse_grant(line: str) -> Grant | tuple[str, ...] | None:
    """A :class:`Grant`, the role names of a role grant, or None if not understood."""
    match = _GRANT_ON.match(line)
    if match:
        privileges = tuple(
            " ".join(part.split("(")[0].split()).upper()
            for part in _split_top_level(match.group("privs"))
        )
        return Grant(
            privileges,
            _unquote(match.group("db")),
            _unquote(match.group("table") or "*"),
            routine=match.group("kind") is not None
            and match.group("kind").upper() not in ("TABLE",),
        )
    match = _GRANT_ROLE.match(line)
    if match:
        return tuple(_unquote(r.strip()) for r in _split_top_level(match.group("roles")))
    return None


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def _unquote(name: str) -> str:
    if len(name) >= 2 and name[0] == name[-1] == "`":
        return name[1:-1].replace("``", "`")
    if len(name) >= 2 and name[0] == name[-1] == "'":
        return name[1:-1]
    return name


def _like(pattern: str, value: str) -> bool:
    """MySQL LIKE semantics for database-level grants (``_``, ``%``, ``\\`` escapes)."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        i += 1
    return re.fullmatch("".join(out), value, re.IGNORECASE | re.DOTALL) is not None


def write_grants(grants: Iterable[Grant], database: str | None) -> list[tuple[str, Grant]]:
    """The write privileges (name, grant) that reach ``database`` (any, if None)."""
    found: list[tuple[str, Grant]] = []
    for grant in grants:
        if grant.routine:
            continue
        reaches = (
            database is None
            or grant.database == "*"
            or (grant.table == "*" and _like(grant.database, database))
            or grant.database.lower() == database.lower()
        )
        if reaches:
            found.extend((p, grant) for p in grant.privileges if p in _WRITE_PRIVILEGES)
    return found


def mysql_write_capability(conn_execute: Callable[[str], list[Row]]) -> WriteCapability:
    """Inspect ``SHOW GRANTS`` (and every granted role's) for write privileges.

    MariaDB lets a login read a role's grants only while the role is active,
    so each granted role is activated in turn (``SET ROLE``) and the
    session's role is restored afterwards.
    """
    user = str(conn_execute("SELECT CURRENT_USER()")[0][0])
    database_value = conn_execute("SELECT DATABASE()")[0][0]
    database = None if database_value is None else str(database_value)
    lines = _grant_lines(conn_execute("SHOW GRANTS"))
    parsed_lines = [parse_grant(line) for line in lines]
    roles = [role for parsed in parsed_lines if isinstance(parsed, tuple) for role in parsed]
    uninspected: list[str] = []
    seen = {role.lower() for role in roles}
    while roles:
        role = roles.pop(0)
        found = _role_grant_lines(conn_execute, role)
        if found is None:
            uninspected.append(role)
            continue
        lines += found
        for line in found:
            parsed = parse_grant(line)
            if isinstance(parsed, tuple):
                roles += [r for r in parsed if r.lower() not in seen]
                seen.update(r.lower() for r in parsed)
    where = f"database '{database}'" if database else "any database (none selected)"
    writes: dict[str, None] = {}
    for line in lines:
        grant = parse_grant(line)
        if not isinstance(grant, Grant):
            continue
        grantee = _GRANTEE.search(line)
        via = f" through role {_unquote(grantee.group(1))}" if grantee else ""
        for privilege, _ in write_grants([grant], database):
            writes[f"{privilege} on {grant.database}.{grant.table}{via}"] = None
    if writes:
        return WriteCapability(True, f"login {user} can change {where}: {'; '.join(writes)}")
    if uninspected:
        return WriteCapability(
            None,
            f"login {user} has no write privilege of its own on {where}, but the grants of "
            f"role {', '.join(uninspected)} could not be read",
        )
    return WriteCapability(
        False, f"login {user} has no INSERT, UPDATE, DELETE or ALL privilege on {where}"
    )


_GRANTEE = re.compile(r"\sTO\s+(`(?:[^`]|``)*`)\s*(?:$|\s(?:WITH|IDENTIFIED)\b)", re.I)
"""The grantee of a grant to a role (a role has no ``@host`` part)."""


def _grant_lines(rows: list[Row]) -> list[str]:
    return [str(row[0]) for row in rows]


def _role_grant_lines(conn_execute: Callable[[str], list[Row]], role: str) -> list[str] | None:
    quoted = "`" + role.replace("`", "``") + "`"
    try:
        return _grant_lines(conn_execute(f"SHOW GRANTS FOR {quoted}"))
    except PmsError:
        pass  # MariaDB: only an active role's grants are visible to the login
    try:
        current = conn_execute("SELECT CURRENT_ROLE()")[0][0]
        conn_execute(f"SET ROLE {quoted}")
    except PmsError:
        return None
    try:
        return _grant_lines(conn_execute("SHOW GRANTS"))
    except PmsError:
        return None
    finally:
        restore = "NONE" if current is None else "`" + str(current).replace("`", "``") + "`"
        conn_execute(f"SET ROLE {restore}")


def sqlite_write_capability(conn_execute: Callable[[str], list[Row]]) -> WriteCapability:
    """Whether this process may write the SQLite database file."""
    files = [str(row[2] or "") for row in conn_execute("PRAGMA database_list") if row[1] == "main"]
    path = files[0] if files else ""
    if not path:
        return WriteCapability(None, "the SQLite database is in memory or temporary")
    if os.access(path, os.W_OK):
        return WriteCapability(True, f"the database file {path} is writable by this process")
    return WriteCapability(False, f"the database file {path} is not writable by this process")


def login_can_write(
    family: DriverFamily, conn_execute: Callable[[str], list[Row]]
) -> WriteCapability:
    if family.is_mysql_like:
        return mysql_write_capability(conn_execute)
    if family is DriverFamily.SQLITE:
        return sqlite_write_capability(conn_execute)
    return WriteCapability(
        None,
        f"whether the login can write is not checked for {family.value}; "
        "use a login with read rights only",
    )
