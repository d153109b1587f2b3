"""Rows, and defensive conversion of raw column values.

Rows
    :class:`Row` is a read-only mapping from column name to value that is
    also indexable by position (``row["PatNum"]``, ``row[0]``). It wraps the
    driver's row without copying; all rows of one result share one
    :class:`Columns` index. Building one costs about a third of ``dict(zip())``
    (see ``docs/odbc.md``). Its ``repr`` lists column names only, never values,
    so a row that ends up in a log or a traceback shows no personal data.

Defensive conversion
    pyodbc converts dates, times and numbers in C and raises ``ValueError``
    for an impossible value (MariaDB's ``2024-02-30``, ``2024-00-10`` or
    ``838:59:59``), which loses the whole ``fetchmany`` batch. The SQLite ODBC
    driver instead turns garbage into ``None``, ``0`` or a truncated string
    without saying so. The converters below are installed with
    ``add_output_converter``: pyodbc then hands them the driver's text for the
    value and they parse it themselves. A value that cannot be parsed becomes
    a :class:`BadValue` marker (never an exception) naming the kind of problem;
    the streamer replaces it with ``None`` and reports it. Zero dates
    (``0000-00-00``) are "no date" in MySQL-family databases and become
    ``None`` without a report; Open Dental's own "no date", ``0001-01-01``, is
    a real date and is kept for the profile layer to map.

Every converter counts the markers it hands out in a shared
:class:`BadValueCounter`, so a reader scans a batch for markers only when the
count moved: clean data costs nothing extra.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import pyodbc

from bridge.pms.odbc_connstr import DriverFamily


class BadValue:
    """Marker for a value that could not be converted; ``problem`` says why."""

    __slots__ = ("problem",)

    def __init__(self, problem: str) -> None:
        self.problem = problem

    def __repr__(self) -> str:
        return f"BadValue({self.problem!r})"


INVALID_DATE: Final = BadValue("invalid date")
INVALID_TIMESTAMP: Final = BadValue("invalid date and time")
ZONED_TIMESTAMP: Final = BadValue("date and time carries a time zone")
INVALID_TIME: Final = BadValue("invalid or out-of-range time of day")
INVALID_NUMBER: Final = BadValue("invalid number")
NON_FINITE: Final = BadValue("number is infinite or not a number")
INVALID_INTEGER: Final = BadValue("not an integer")
INVALID_BOOLEAN: Final = BadValue("invalid true/false value")
INVALID_TEXT: Final = BadValue("text is not valid UTF-8")


class BadValueCounter:
    """How many :class:`BadValue` markers the converters have produced."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


Converter = Callable[[bytes | None], object]

_DATE_TYPES = (pyodbc.SQL_TYPE_DATE, 9)
_TIME_TYPES = (pyodbc.SQL_TYPE_TIME, 10)
_TIMESTAMP_TYPES = (pyodbc.SQL_TYPE_TIMESTAMP, 11)
_DECIMAL_TYPES = (pyodbc.SQL_DECIMAL, pyodbc.SQL_NUMERIC)
_FLOAT_TYPES = (pyodbc.SQL_DOUBLE, pyodbc.SQL_FLOAT, pyodbc.SQL_REAL)
_INT_TYPES = (pyodbc.SQL_INTEGER, pyodbc.SQL_SMALLINT, pyodbc.SQL_TINYINT, pyodbc.SQL_BIGINT)
_TEXT_TYPES = (
    pyodbc.SQL_CHAR,
    pyodbc.SQL_VARCHAR,
    pyodbc.SQL_LONGVARCHAR,
    pyodbc.SQL_WCHAR,
    pyodbc.SQL_WVARCHAR,
    pyodbc.SQL_WLONGVARCHAR,
)


def converters(family: DriverFamily, counter: BadValueCounter) -> list[tuple[int, Converter]]:
    """The defensive converters for ``family``, as (SQL type, function) pairs.

    Dates, times, timestamps and decimals for every family. For SQLite also
    integers, floats, booleans and text, because its driver hides garbage in
    those instead of reporting it. Text is not converted for other families:
    pyodbc would then fetch it as narrow characters, which some drivers
    (SQL Server's) re-encode lossily to the client code page.
    """

    def bad(marker: BadValue) -> BadValue:
        counter.count += 1
        return marker

    def to_date(raw: bytes | None) -> object:
        if raw is None:
            return None
        text = raw.decode("latin-1").strip()
        if text.startswith("0000-00-00"):
            return None
        try:
            if len(text) == 10:
                return date.fromisoformat(text)
            return datetime.fromisoformat(text).date()
        except ValueError:
            return bad(INVALID_DATE)

    def to_timestamp(raw: bytes | None) -> object:
        if raw is None:
            return None
        text = raw.decode("latin-1").strip()
        if text.startswith("0000-00-00"):
            return None
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            return bad(INVALID_TIMESTAMP)
        return bad(ZONED_TIMESTAMP) if value.tzinfo is not None else value

    def to_time(raw: bytes | None) -> object:
        if raw is None:
            return None
        try:
            value = time.fromisoformat(raw.decode("latin-1").strip())
        except ValueError:
            return bad(INVALID_TIME)
        return bad(ZONED_TIMESTAMP) if value.tzinfo is not None else value

    def to_decimal(raw: bytes | None) -> object:
        if raw is None:
            return None
        try:
            value = Decimal(raw.decode("latin-1").strip())
        except InvalidOperation:
            return bad(INVALID_NUMBER)
        return value if value.is_finite() else bad(NON_FINITE)

    found: list[tuple[int, Converter]] = []
    found += [(t, to_date) for t in _DATE_TYPES]
    found += [(t, to_time) for t in _TIME_TYPES]
    found += [(t, to_timestamp) for t in _TIMESTAMP_TYPES]
    found += [(t, to_decimal) for t in _DECIMAL_TYPES]
    if family is not DriverFamily.SQLITE:
        return found

    def to_float(raw: bytes | None) -> object:
        if raw is None:
            return None
        try:
            value = float(raw)
        except ValueError:
            return bad(INVALID_NUMBER)
        return value if math.isfinite(value) else bad(NON_FINITE)

    def to_int(raw: bytes | None) -> object:
        if raw is None:
            return None
        try:
            return int(raw)
        except ValueError:
            return bad(INVALID_INTEGER)

    def to_bool(raw: bytes | None) -> object:
        if raw is None:
            return None
        try:
            return int(raw) != 0
        except ValueError:
            return bad(INVALID_BOOLEAN)

    def to_text(raw: bytes | None) -> object:
        if raw is None:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return bad(INVALID_TEXT)

    found += [(t, to_float) for t in _FLOAT_TYPES]
    found += [(t, to_int) for t in _INT_TYPES]
    found += [(pyodbc.SQL_BIT, to_bool)]
    found += [(t, to_text) for t in _TEXT_TYPES]
    return found


class Columns:
    """The column names of one result, with a name -> position index."""

    __slots__ = ("_folded", "index", "names")

    def __init__(self, names: Sequence[str]) -> None:
        self.names: tuple[str, ...] = tuple(names)
        self.index: dict[str, int] = {}
        self._folded: dict[str, int] = {}
        for position, name in enumerate(self.names):
            self.index.setdefault(name, position)
            self._folded.setdefault(name.lower(), position)

    @classmethod
    def of(cls, description: Sequence[Sequence[Any]]) -> Columns:
        return cls([str(column[0]) for column in description])

    def position(self, name: str) -> int:
        """Position of ``name``, exact match first, then ignoring case."""
        found = self.index.get(name)
        if found is None:
            found = self._folded.get(name.lower())
        if found is None:
            raise KeyError(name)
        return found


class Row(Mapping[str, Any]):
    """One result row: column name -> value, also indexable by position.

    Iterating yields column names (it is a mapping); use :meth:`as_tuple`
    for the values in column order. Lookup by name tries the exact name,
    then the name ignoring case.
    """

    __slots__ = ("_columns", "_values")

    def __init__(self, columns: Columns, values: Sequence[Any]) -> None:
        self._columns = columns
        self._values = values

    def __getitem__(self, key: str | int) -> Any:
        position = self._columns.index.get(key) if isinstance(key, str) else None
        if position is None:
            if isinstance(key, int):
                return self._values[key]
            position = self._columns.position(key)
        return self._values[position]

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns.names)

    def __len__(self) -> int:
        return len(self._columns.names)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        try:
            self._columns.position(key)
        except KeyError:
            return False
        return True

    @property
    def columns(self) -> tuple[str, ...]:
        return self._columns.names

    @property
    def raw_values(self) -> Sequence[Any]:
        """The values in column order (the row's own sequence, not a copy)."""
        return self._values

    @property
    def layout(self) -> Columns:
        """The columns this row shares with the rest of its result."""
        return self._columns

    def as_tuple(self) -> tuple[Any, ...]:
        return tuple(self._values)

    def as_dict(self) -> dict[str, Any]:
        return dict(zip(self._columns.names, self._values, strict=True))

    def __repr__(self) -> str:
        return f"Row(columns={list(self._columns.names)!r}, values=<hidden>)"
