"""ODBC connection strings: parse, build and redact them; tell the driver family.

A connection string is ``Key=value`` pairs joined by ``;``. A value that
holds ``;``, ``{``, ``}`` or ``=`` (or starts or ends with a space) is
wrapped in braces, and a ``}`` inside braces is doubled: the password
``a;b}c`` is written ``PWD={a;b}}c}``. Keys compare case-insensitively.

:func:`parse` and :func:`render` are exact inverses for well-formed input, so
the layer can take the configured string apart, replace or add attributes
(user, password, driver options) and put it back together without ever
concatenating raw text. :func:`redacted` renders with every password-like
value replaced, and :func:`redact_text` masks secrets in free text (driver
messages). Neither function ever returns a secret value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from enum import StrEnum

from bridge.secrets import known_secrets

Pairs = list[tuple[str, str]]
"""Parsed connection string: (key, value) in order, keys as written."""

MASK = "***"

_NEEDS_BRACES = re.compile(r"[;{}=]|^\s|\s$")
_SECRET_KEY = re.compile(r"pwd|password|passwd", re.IGNORECASE)
_SECRET_IN_TEXT = re.compile(
    r"(?i)(\b\w*(?:pwd|password|passwd)\w*\s*=\s*)(\{(?:[^}]|\}\})*\}|[^;\s]*)"
)


class DriverFamily(StrEnum):
    """Which kind of database and driver a connection talks to.

    The value decides how the layer opens sessions (read-only mode, query
    timeouts, driver options) and parses driver messages.
    """

    MARIADB = "mariadb"  # MariaDB Connector/ODBC, to a MariaDB or MySQL server
    MYSQL = "mysql"  # MySQL Connector/ODBC, to a MySQL or MariaDB server
    SQLITE = "sqlite"  # Christian Werner's SQLite ODBC driver
    SQLSERVER = "sqlserver"  # Microsoft ODBC Driver for SQL Server, SQL Native Client
    SQLANYWHERE = "sqlanywhere"  # SAP SQL Anywhere (Eaglesoft)
    OTHER = "other"

    @property
    def is_mysql_like(self) -> bool:
        """MariaDB or MySQL (either driver): the Open Dental family."""
        return self in (DriverFamily.MARIADB, DriverFamily.MYSQL)


_FAMILY_HINTS: tuple[tuple[str, DriverFamily], ...] = (
    ("mariadb", DriverFamily.MARIADB),
    ("maodbc", DriverFamily.MARIADB),
    ("mysql", DriverFamily.MYSQL),
    ("myodbc", DriverFamily.MYSQL),
    ("sqlite", DriverFamily.SQLITE),
    ("sql server", DriverFamily.SQLSERVER),
    ("sqlserver", DriverFamily.SQLSERVER),
    ("sqlncli", DriverFamily.SQLSERVER),
    ("msodbcsql", DriverFamily.SQLSERVER),
    ("sqlsrv", DriverFamily.SQLSERVER),
    ("sql anywhere", DriverFamily.SQLANYWHERE),
    ("adaptive server anywhere", DriverFamily.SQLANYWHERE),
    ("dbodbc", DriverFamily.SQLANYWHERE),
)


def family_of(*names: str | None) -> DriverFamily:
    """The family named by the first of ``names`` that gives one away.

    Pass the driver name from the connection string or the DSN, and after
    connecting the driver's file name and the DBMS name. Unknown names give
    :attr:`DriverFamily.OTHER`.
    """
    for name in names:
        lowered = (name or "").lower()
        for hint, family in _FAMILY_HINTS:
            if hint in lowered:
                return family
    return DriverFamily.OTHER


def parse(text: str) -> Pairs:
    """Split a connection string into (key, value) pairs.

    Raises :class:`ValueError` naming the position of a malformed part, never
    echoing the text (it may hold a password).
    """
    pairs: Pairs = []
    i, n, part = 0, len(text), 0
    while i < n:
        part += 1
        end_key = text.find("=", i)
        semicolon = text.find(";", i)
        if end_key < 0 or (0 <= semicolon < end_key):
            stray = text[i : semicolon if semicolon >= 0 else n]
            if stray.strip():
                raise ValueError(f"part {part} of the connection string is not 'Name=value'")
            i = n if semicolon < 0 else semicolon + 1
            continue
        key = text[i:end_key].strip()
        if not key:
            raise ValueError(f"part {part} of the connection string has no name")
        j = end_key + 1
        while j < n and text[j] == " ":
            j += 1
        if j < n and text[j] == "{":
            value, j = _read_braced(text, j + 1, part)
            while j < n and text[j] == " ":
                j += 1
            if j < n and text[j] != ";":
                raise ValueError(f"part {part} of the connection string has text after '}}'")
        else:
            end = text.find(";", j)
            end = n if end < 0 else end
            value, j = text[j:end].strip(), end
        pairs.append((key, value))
        i = j + 1
    return pairs


def _read_braced(text: str, start: int, part: int) -> tuple[str, int]:
    chars: list[str] = []
    j = start
    while j < len(text):
        char = text[j]
        if char == "}":
            if j + 1 < len(text) and text[j + 1] == "}":
                chars.append("}")
                j += 2
                continue
            return "".join(chars), j + 1
        chars.append(char)
        j += 1
    raise ValueError(f"part {part} of the connection string has an unclosed '{{'")


def quote(value: str, *, always: bool = False) -> str:
    """A value as it must appear in a connection string."""
    if always or _NEEDS_BRACES.search(value):
        return "{" + value.replace("}", "}}") + "}"
    return value


def render(pairs: Iterable[tuple[str, str]]) -> str:
    """Join pairs into a connection string (passwords and drivers in braces)."""
    out = []
    for key, value in pairs:
        braced = key.lower() == "driver" or (bool(value) and is_secret_key(key))
        out.append(f"{key}={quote(value, always=braced)}")
    return ";".join(out)


def redacted(pairs: Iterable[tuple[str, str]]) -> str:
    """Render with every password-like value replaced by ``***``."""
    return ";".join(f"{k}={MASK}" if is_secret_key(k) else render([(k, v)]) for k, v in pairs)


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def get(pairs: Sequence[tuple[str, str]], *keys: str) -> str | None:
    """The value of the first pair whose key is one of ``keys`` (any case)."""
    wanted = {k.lower() for k in keys}
    for key, value in pairs:
        if key.lower() in wanted:
            return value
    return None


def without(pairs: Iterable[tuple[str, str]], *keys: str) -> Pairs:
    """Pairs minus those whose key is one of ``keys`` (any case)."""
    unwanted = {k.lower() for k in keys}
    return [(k, v) for k, v in pairs if k.lower() not in unwanted]


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask ``PWD=...``-style values and every known secret value in ``text``."""
    text = _SECRET_IN_TEXT.sub(lambda m: m.group(1) + MASK, text)
    for secret in sorted({*secrets, *known_secrets()}, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, MASK)
    return text
