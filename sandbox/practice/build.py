"""``build_practice``: generate the practice and load it into the target."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

from sandbox.practice.dates import TIMEZONE
from sandbox.practice.generate import generate
from sandbox.practice.load_mariadb import MariaDbLoader
from sandbox.practice.load_sqlite import SqliteLoader
from sandbox.practice.profiles import SIZES
from sandbox.practice.rows import Output
from sandbox.practice.schema import load_schema
from sandbox.practice.target import MariaDbTarget, PracticeError, parse_target


@dataclass(frozen=True)
class BuildReport:
    """What was built and how to read it.

    ``connection_string`` is an ODBC connection string for reading the result;
    it never contains the password, which is in ``password`` (empty for
    SQLite and for password-less MariaDB users).
    """

    kind: Literal["sqlite", "mariadb"]
    connection_string: str
    counts: dict[str, int]  # rows per table, every table of the schema
    seconds: float
    timezone: str
    today: date
    password: str = field(default="", repr=False)


def build_practice(
    target: str | Path,
    *,
    size: str = "demo",
    seed: int = 42,
    today: date | None = None,
    clinics: bool = False,
    replace: bool = False,
) -> BuildReport:
    """Build an Open Dental-shaped sample practice into ``target``.

    ``target`` is an SQLite file path (``.sqlite3``/``.sqlite``/``.db``) or
    ``mariadb://user[:password]@host[:port]/dbname``. An existing target is
    refused with :class:`TargetExistsError` unless ``replace``. The data is a
    pure function of ``size``, ``seed``, ``today`` (default: the current date)
    and ``clinics``. Raises :class:`PracticeError` for unusable arguments.
    """
    return build(target, size=size, seed=seed, today=today, clinics=clinics, replace=replace)


def build(
    target: str | Path,
    *,
    size: str,
    seed: int,
    today: date | None,
    clinics: bool,
    replace: bool,
    mariadb_method: str = "infile",
) -> BuildReport:
    """:func:`build_practice`, plus the MariaDB load method for benchmarks.

    ``mariadb_method`` ("infile" or "insert") only chooses how rows travel to
    MariaDB (see ``load_mariadb``); the database built is the same.
    """
    started = time.perf_counter()
    if size not in SIZES:
        raise PracticeError(f"unknown size {size!r}; use one of {', '.join(SIZES)}")
    profile = SIZES[size]
    anchor = today or date.today()
    where = parse_target(target)
    schema = load_schema()
    loader: SqliteLoader | MariaDbLoader
    if isinstance(where, MariaDbTarget):
        loader = MariaDbLoader(where, schema, replace=replace, method=mariadb_method)
    else:
        loader = SqliteLoader(where, schema, replace=replace)
    out = Output(loader, schema, profile.chunk_rows)
    try:
        generate(
            out,
            size=profile,
            seed=seed,
            today=anchor,
            clinics=clinics,
            legacy_zero_dates=isinstance(where, MariaDbTarget),
        )
        loader.finish(out.counts)
    except BaseException:
        loader.abort()
        raise
    return BuildReport(
        kind=where.kind,
        connection_string=where.connection_string,
        counts=dict(out.counts),
        seconds=round(time.perf_counter() - started, 3),
        timezone=TIMEZONE,
        today=anchor,
        password=where.password if isinstance(where, MariaDbTarget) else "",
    )
