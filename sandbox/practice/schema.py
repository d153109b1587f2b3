"""The Open Dental schema, read from the vendored DDL.

``opendental-subset.sql`` (beside this module, a copy of the one in
``/work/shared/pms``) is the single source of table and column names:

* MariaDB runs its statements as they are (:func:`mariadb_statements`);
* SQLite gets a schema *derived* from it here (:func:`sqlite_table_ddl`,
  :func:`sqlite_index_ddl`, :func:`sqlite_trigger_ddl`), so names can never
  drift between the two targets.

SQLite derivation rules (chosen so the SQLite3 ODBC driver reports sensible
SQL types and behaves like MariaDB where it matters):

* declared types stay close to MariaDB's: ``BIGINT``, ``INT``, ``SMALLINT``,
  ``TINYINT``, ``DOUBLE``, ``VARCHAR(n)``, ``CHAR(n)``, ``TEXT``, ``DATE``,
  ``DATETIME``, ``TIMESTAMP``, ``TIME`` (display widths and ``UNSIGNED``
  dropped);
* the ``AUTO_INCREMENT`` primary key becomes ``INTEGER PRIMARY KEY
  AUTOINCREMENT`` (ids are never reused, as with MyISAM);
* text columns get ``COLLATE NOCASE`` (MariaDB's ``utf8mb3_general_ci`` is
  case-insensitive) except those declared ``utf8mb3_bin`` (``ProcCode``);
* defaults are kept; ``current_timestamp()`` becomes local time
  (``datetime('now','localtime')``, MariaDB stamps are server local time) and
  the legacy ``'0000-00-00'`` defaults become ``'0001-01-01'`` (SQLite has no
  zero dates; the ODBC driver would read them as NULL);
* secondary indexes are created under the name ``<table>_<index>`` (SQLite
  index names are global); prefix lengths such as ``LName(10)`` are dropped;
* each ``ON UPDATE current_timestamp()`` column gets an ``AFTER UPDATE``
  trigger that sets it to local now when another column changed and the
  update did not change the stamp itself -- MariaDB's rule. (One difference:
  MariaDB also leaves the stamp alone when an update assigns it its current
  value explicitly; the trigger cannot see that and bumps it.)

The parser is strict: a clause it does not understand raises
:class:`SchemaError`, so a change to the DDL cannot be silently mistranslated.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DDL_PATH = Path(__file__).with_name("opendental-subset.sql")

SQLITE_NOW = "datetime('now','localtime')"

_SQLITE_TYPES = {
    "bigint": "BIGINT",
    "int": "INT",
    "smallint": "SMALLINT",
    "tinyint": "TINYINT",
    "double": "DOUBLE",
    "varchar": "VARCHAR",
    "char": "CHAR",
    "text": "TEXT",
    "date": "DATE",
    "datetime": "DATETIME",
    "timestamp": "TIMESTAMP",
    "time": "TIME",
}
_TEXT_TYPES = frozenset({"varchar", "char", "text"})
_SIZED_TYPES = frozenset({"varchar", "char"})


class SchemaError(ValueError):
    """The vendored DDL contains something this module cannot translate."""


@dataclass(frozen=True)
class Column:
    """One column as declared in the DDL."""

    name: str
    base_type: str  # lower-case MariaDB type name: "bigint", "varchar", ...
    length: int | None  # n of varchar(n)/char(n); None for other types
    nullable: bool
    default: str | None  # the SQL literal as written, or None when absent
    auto_increment: bool
    on_update_now: bool
    binary_collation: bool


@dataclass(frozen=True)
class Index:
    name: str
    columns: tuple[str, ...]
    unique: bool


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    indexes: tuple[Index, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @property
    def stamp_columns(self) -> tuple[str, ...]:
        """Columns MariaDB bumps on update (``ON UPDATE current_timestamp()``)."""
        return tuple(column.name for column in self.columns if column.on_update_now)


def split_statements(sql: str) -> list[str]:
    """Split an SQL script on ``;`` outside quotes, dropping ``--`` comments."""
    statements: list[str] = []
    current: list[str] = []
    quote = ""
    i = 0
    while i < len(sql):
        char = sql[i]
        if quote:
            current.append(char)
            if char == quote:
                quote = ""
        elif char in "'`\"":
            quote = char
            current.append(char)
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = len(sql) if end < 0 else end
            continue
        elif char == ";":
            statements.append("".join(current).strip())
            current = []
        else:
            current.append(char)
        i += 1
    statements.append("".join(current).strip())
    return [statement for statement in statements if statement]


def _split_top_level(body: str) -> Iterator[str]:
    depth, start = 0, 0
    for i, char in enumerate(body):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            yield body[start:i].strip()
            start = i + 1
    yield body[start:].strip()


_CREATE = re.compile(r"CREATE\s+TABLE\s+`?(\w+)`?\s*\((.*)\)\s*([^()]*)\Z", re.I | re.S)
_KEY = re.compile(r"(UNIQUE\s+)?(?:KEY|INDEX)\s+`?(\w+)`?\s*\((.*)\)\Z", re.I | re.S)
_PRIMARY = re.compile(r"PRIMARY\s+KEY\s*\((.*)\)\Z", re.I | re.S)
_COLUMN_HEAD = re.compile(r"`?(\w+)`?\s+(\w+)(?:\((\d+)(?:,\d+)?\))?", re.S)
_LITERAL = r"('(?:[^']|'')*'|-?\d+(?:\.\d+)?|NULL|current_timestamp\(\))"
_CLAUSES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("unsigned", re.compile(r"\s*UNSIGNED\b", re.I)),
    ("charset", re.compile(r"\s*CHARACTER\s+SET\s+(\w+)", re.I)),
    ("collate", re.compile(r"\s*COLLATE\s+(\w+)", re.I)),
    ("not_null", re.compile(r"\s*NOT\s+NULL\b", re.I)),
    ("null", re.compile(r"\s*NULL\b", re.I)),
    ("default", re.compile(r"\s*DEFAULT\s+" + _LITERAL, re.I)),
    ("auto_increment", re.compile(r"\s*AUTO_INCREMENT\b", re.I)),
    ("on_update", re.compile(r"\s*ON\s+UPDATE\s+current_timestamp(?:\(\))?", re.I)),
)


def _key_columns(text: str) -> tuple[str, ...]:
    # "LName(10)" is a prefix index in MariaDB; the column is what matters.
    return tuple(re.sub(r"\(\d+\)", "", part).strip(" `") for part in text.split(","))


def _parse_column(table: str, text: str) -> Column:
    head = _COLUMN_HEAD.match(text)
    if head is None:
        raise SchemaError(f"{table}: cannot read column definition {text!r}")
    name, base_type, size = head.group(1), head.group(2).lower(), head.group(3)
    if base_type not in _SQLITE_TYPES:
        raise SchemaError(f"{table}.{name}: type {base_type!r} has no SQLite mapping")
    found: dict[str, str] = {}
    rest = text[head.end() :]
    while rest.strip():
        for clause, pattern in _CLAUSES:
            match = pattern.match(rest)
            if match:
                found[clause] = match.group(1) if match.groups() else ""
                rest = rest[match.end() :]
                break
        else:
            raise SchemaError(f"{table}.{name}: cannot read {rest.strip()!r}")
    return Column(
        name=name,
        base_type=base_type,
        length=int(size) if size and base_type in _SIZED_TYPES else None,
        nullable="not_null" not in found,
        default=found.get("default"),
        auto_increment="auto_increment" in found,
        on_update_now="on_update" in found,
        binary_collation=found.get("collate", "").lower().endswith("_bin"),
    )


def parse_create_table(statement: str) -> Table:
    match = _CREATE.match(statement.strip())
    if match is None:
        raise SchemaError(f"not a CREATE TABLE statement: {statement[:60]!r}")
    name, body = match.group(1), match.group(2)
    columns: list[Column] = []
    primary: tuple[str, ...] = ()
    indexes: list[Index] = []
    for item in _split_top_level(body):
        if primary_match := _PRIMARY.match(item):
            primary = _key_columns(primary_match.group(1))
        elif key_match := _KEY.match(item):
            unique = bool(key_match.group(1))
            indexes.append(Index(key_match.group(2), _key_columns(key_match.group(3)), unique))
        else:
            columns.append(_parse_column(name, item))
    if not primary:
        raise SchemaError(f"{name}: no PRIMARY KEY")
    return Table(name, tuple(columns), primary, tuple(indexes))


@cache
def ddl_text() -> str:
    return DDL_PATH.read_text(encoding="utf-8")


def mariadb_statements() -> list[str]:
    """The vendored DDL's statements, in order, exactly as written."""
    return split_statements(ddl_text())


def mariadb_session_statements() -> list[str]:
    """The DDL's ``SET`` statements (sql_mode, names), for every loading session."""
    return [s for s in mariadb_statements() if s.upper().startswith("SET ")]


@cache
def load_schema() -> dict[str, Table]:
    """Every table of the vendored DDL by name, in file order."""
    tables = [
        parse_create_table(statement)
        for statement in mariadb_statements()
        if statement.upper().startswith("CREATE TABLE")
    ]
    return {table.name: table for table in tables}


def _sqlite_default(column: Column) -> str:
    literal = column.default
    if literal is None:
        return ""
    if literal.lower() == "current_timestamp()":
        return f" DEFAULT ({SQLITE_NOW})"
    if literal.startswith("'0000-00-00"):
        literal = literal.replace("0000-00-00", "0001-01-01")
    return f" DEFAULT {literal}"


def _sqlite_column(table: Table, column: Column) -> str:
    if column.auto_increment:
        if table.primary_key != (column.name,):
            raise SchemaError(f"{table.name}.{column.name}: AUTO_INCREMENT outside the key")
        return f"{column.name} INTEGER PRIMARY KEY AUTOINCREMENT"
    sql_type = _SQLITE_TYPES[column.base_type]
    if column.length is not None:
        sql_type += f"({column.length})"
    parts = [column.name, sql_type]
    if not column.nullable:
        parts.append("NOT NULL")
    text = " ".join(parts) + _sqlite_default(column)
    if column.base_type in _TEXT_TYPES and not column.binary_collation:
        text += " COLLATE NOCASE"
    return text


def sqlite_table_ddl(table: Table) -> str:
    lines = [_sqlite_column(table, column) for column in table.columns]
    if not any(column.auto_increment for column in table.columns):
        lines.append(f"PRIMARY KEY ({', '.join(table.primary_key)})")
    body = ",\n  ".join(lines)
    return f"CREATE TABLE {table.name} (\n  {body}\n)"


def sqlite_index_ddl(table: Table) -> list[str]:
    return [
        f"CREATE {'UNIQUE ' if index.unique else ''}INDEX {table.name}_{index.name} "
        f"ON {table.name} ({', '.join(index.columns)})"
        for index in table.indexes
    ]


def sqlite_trigger_ddl(table: Table) -> list[str]:
    """One AFTER UPDATE trigger per auto-updated stamp column (see module doc)."""
    triggers = []
    key = table.primary_key[0]
    for stamp in table.stamp_columns:
        others = [name for name in table.column_names if name != stamp]
        changed = " OR ".join(f"NEW.{name} IS NOT OLD.{name}" for name in others)
        triggers.append(
            f"CREATE TRIGGER {table.name}_{stamp}_on_update AFTER UPDATE ON {table.name}\n"
            f"FOR EACH ROW WHEN NEW.{stamp} IS OLD.{stamp} AND ({changed})\n"
            f"BEGIN UPDATE {table.name} SET {stamp} = {SQLITE_NOW} "
            f"WHERE {key} = NEW.{key}; END"
        )
    return triggers
