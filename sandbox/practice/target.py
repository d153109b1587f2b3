"""Where a practice is built: an SQLite file or a MariaDB database.

``parse_target`` accepts a path ending in ``.sqlite3``, ``.sqlite`` or
``.db`` (SQLite, the embedded default) or a URL
``mariadb://user[:password]@host[:port]/dbname`` (user and password may be
percent-encoded). Each target knows the ODBC connection string that reads
it; the password is never part of that string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import unquote, urlsplit

SQLITE_DRIVER = "SQLite3"
MARIADB_DRIVER = "MariaDB Unicode"
SQLITE_SUFFIXES = (".sqlite3", ".sqlite", ".db")
DEFAULT_TARGET = Path("var/demo/opendental.sqlite3")
_DATABASE_NAME = re.compile(r"[A-Za-z0-9_]{1,64}\Z")


class PracticeError(Exception):
    """A sample practice cannot be built (bad target, existing target, ...)."""


class TargetExistsError(PracticeError):
    """The target already exists and ``replace`` was not asked for."""


@dataclass(frozen=True)
class SqliteTarget:
    path: Path  # absolute

    kind: ClassVar[Literal["sqlite"]] = "sqlite"

    @property
    def connection_string(self) -> str:
        return f"Driver={{{SQLITE_DRIVER}}};Database={self.path}"

    def describe(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class MariaDbTarget:
    host: str
    port: int
    user: str
    database: str
    password: str = field(default="", repr=False)

    kind: ClassVar[Literal["mariadb"]] = "mariadb"

    @property
    def connection_string(self) -> str:
        return (
            f"Driver={{{MARIADB_DRIVER}}};Server={self.host};Port={self.port};"
            f"Database={self.database};User={self.user}"
        )

    def server_connection_string(self, database: str = "") -> str:
        """With the password, for the builder's own sessions only."""
        text = (
            f"Driver={{{MARIADB_DRIVER}}};Server={self.host};Port={self.port};"
            f"User={self.user};Password={{{self.password.replace('}', '}}')}}}"
        )
        return f"{text};Database={database}" if database else text

    def describe(self) -> str:
        return f"mariadb://{self.user}@{self.host}:{self.port}/{self.database}"


Target = SqliteTarget | MariaDbTarget


def parse_target(target: str | Path) -> Target:
    """Read a ``--target`` value; raises :class:`PracticeError` when unusable."""
    text = str(target)
    if text.startswith("mariadb://"):
        url = urlsplit(text)
        database = url.path.lstrip("/")
        if not url.hostname or not url.username:
            raise PracticeError(f"{text!r}: expected mariadb://user[:password]@host[:port]/dbname")
        if not _DATABASE_NAME.match(database):
            raise PracticeError(
                f"{text!r}: the database name must be 1-64 letters, digits or underscores"
            )
        try:
            port = url.port or 3306
        except ValueError as exc:
            raise PracticeError(f"{text!r}: bad port") from exc
        return MariaDbTarget(
            url.hostname, port, unquote(url.username), database, unquote(url.password or "")
        )
    if "://" in text:
        raise PracticeError(f"{text!r}: only mariadb:// URLs or SQLite file paths are supported")
    path = Path(text).expanduser()
    if path.suffix.lower() not in SQLITE_SUFFIXES:
        raise PracticeError(f"{text!r}: an SQLite target must end in {', '.join(SQLITE_SUFFIXES)}")
    return SqliteTarget(path.resolve())
