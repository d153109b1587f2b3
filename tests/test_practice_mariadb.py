"""The sample practice on MariaDB (MyISAM, utf8mb3), read back through ODBC.

The MariaDB build must hold exactly the SQLite build's data, apart from the
legacy ``0000-00-00`` dates that only MariaDB can store; every property the
SQLite tests prove therefore holds here too.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path
from urllib.parse import quote

import pyodbc
import pytest
from click.testing import CliRunner
from conftest import (
    MARIADB_HOST,
    MARIADB_PASSWORD,
    MARIADB_PORT,
    MARIADB_USER,
    mariadb_connection_string,
)

from sandbox.__main__ import main
from sandbox.practice import BuildReport, TargetExistsError, build_practice
from sandbox.practice.schema import load_schema

pytestmark = pytest.mark.mariadb

TODAY = date(2026, 11, 23)
LEGACY = {
    ("payment", "PayDate"): date(1, 1, 1),
    ("paysplit", "ProcDate"): date(1, 1, 1),
    ("commlog", "CommDateTime"): datetime(1, 1, 1),
}


def url(database: str) -> str:
    return (
        f"mariadb://{quote(MARIADB_USER)}:{quote(MARIADB_PASSWORD)}@{MARIADB_HOST}:"
        f"{MARIADB_PORT}/{database}"
    )


def settings(connection_string: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in connection_string.split(";"))


@pytest.fixture(scope="module")
def practice_database() -> Iterator[str]:
    """One demo practice for the module (the shared fixtures are per test)."""
    name = f"practice_test_{secrets.token_hex(4)}"
    admin = pyodbc.connect(
        f"{mariadb_connection_string()};Password={MARIADB_PASSWORD}", autocommit=True
    )
    try:
        yield name
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture(scope="module")
def built(practice_database: str) -> BuildReport:
    return build_practice(url(practice_database), today=TODAY)


def connect(report: BuildReport) -> pyodbc.Connection:
    """A reading connection that gets every stored character back.

    MariaDB Connector/ODBC 3.1 (Unicode driver) takes U+00D8..U+00DB (Ø, Ù,
    Ú, Û) for UTF-16 surrogates and drops a character of such strings when
    pyodbc uses UTF-16 (its default); sending and fetching UTF-8 bytes
    (SQL_C_CHAR) avoids that. See test_names_with_o_slash_are_stored_intact.
    """
    conn = pyodbc.connect(f"{report.connection_string};Password={report.password}", autocommit=True)
    conn.setencoding(encoding="utf-8")
    conn.setdecoding(pyodbc.SQL_WCHAR, encoding="utf-8", ctype=pyodbc.SQL_CHAR)
    return conn


@pytest.fixture
def odbc(built: BuildReport) -> Iterator[pyodbc.Connection]:
    conn = connect(built)
    yield conn
    conn.close()


def table_contents(conn: pyodbc.Connection) -> dict[str, list[tuple[object, ...]]]:
    contents = {}
    for table in load_schema().values():
        cursor = conn.execute(f"SELECT * FROM {table.name} ORDER BY {table.primary_key[0]}")
        names = [d[0] for d in cursor.description]
        found = []
        for row in cursor.fetchall():
            values = list(row)
            for (legacy_table, column), none in LEGACY.items():
                if legacy_table == table.name and values[names.index(column)] is None:
                    values[names.index(column)] = none  # a zero date, read as NULL
            found.append(tuple(values))
        contents[table.name] = found
    return contents


def test_report_and_read_back(
    built: BuildReport, practice_database: str, odbc: pyodbc.Connection
) -> None:
    assert built.kind == "mariadb"
    assert built.connection_string.startswith("Driver={MariaDB Unicode};")
    assert settings(built.connection_string) == settings(
        mariadb_connection_string(practice_database)
    )
    assert "Password" not in built.connection_string
    assert built.password == MARIADB_PASSWORD
    got = odbc.execute(
        "SELECT AptNum, PatNum, AptDateTime, Pattern, Op, ProvNum, AptStatus, "
        "DateTStamp FROM appointment ORDER BY AptNum"
    ).fetchall()
    assert len(got) == built.counts["appointment"] > 3_000
    assert isinstance(got[0][2], datetime) and isinstance(got[0][7], datetime)


def test_tables_are_myisam_utf8mb3_like_open_dental(
    built: BuildReport, practice_database: str, mariadb_admin: pyodbc.Connection
) -> None:
    found = mariadb_admin.execute(
        "SELECT TABLE_NAME, ENGINE, TABLE_COLLATION, TABLE_ROWS FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = ?",
        practice_database,
    ).fetchall()
    assert {row[0] for row in found} == set(load_schema())
    for name, engine, collation, count in found:
        assert (engine, collation) == ("MyISAM", "utf8mb3_general_ci"), name
        assert count == built.counts[name], name
    collation = mariadb_admin.execute(
        "SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
        practice_database,
    ).fetchone()[0]
    assert collation == "utf8mb3_general_ci"


def test_legacy_zero_dates_exist_only_on_mariadb(odbc: pyodbc.Connection) -> None:
    for sql in (
        "SELECT COUNT(*) FROM payment WHERE PayDate = '0000-00-00'",
        "SELECT COUNT(*) FROM paysplit WHERE ProcDate = '0000-00-00'",
        "SELECT COUNT(*) FROM commlog WHERE CommDateTime = '0000-00-00 00:00:00'",
    ):
        assert odbc.execute(sql).fetchone()[0] > 0, sql


def test_same_data_as_the_sqlite_build(odbc: pyodbc.Connection, tmp_path: Path) -> None:
    sqlite = build_practice(tmp_path / "twin.sqlite3", today=TODAY)
    lite = pyodbc.connect(sqlite.connection_string, autocommit=True)
    mine, theirs = table_contents(odbc), table_contents(lite)
    lite.close()
    for table in mine:
        assert mine[table] == theirs[table], table


def test_on_update_stamp_and_awkward_names_survive(odbc: pyodbc.Connection) -> None:
    # Edit a copy, so the other tests see the practice as built.
    odbc.execute("CREATE TABLE apt_copy LIKE appointment")
    try:
        odbc.execute("INSERT INTO apt_copy SELECT * FROM appointment WHERE AptNum = 1")
        before = odbc.execute("SELECT DateTStamp FROM apt_copy").fetchone()[0]
        assert before < datetime.combine(TODAY, time())
        odbc.execute("UPDATE apt_copy SET Note = 'moved'")
        assert odbc.execute("SELECT DateTStamp FROM apt_copy").fetchone()[0] > before
    finally:
        odbc.execute("DROP TABLE apt_copy")
    names = {tuple(r) for r in odbc.execute("SELECT FName, LName FROM patient").fetchall()}
    assert {
        ("Siân", "O'Brien"),
        ("Minh", "Nguyễn"),
        ("Pádraig", "Ó Súilleabháin"),
        ("Jürgen", "Müller"),
        ("José", "García-López"),
    } <= names
    note = odbc.execute(
        "SELECT Note FROM appointment WHERE Note LIKE 'Ins verified%' LIMIT 1"
    ).fetchone()[0]
    assert note == "Ins verified.\r\nCopay due at visit."


def test_names_with_o_slash_are_stored_intact(odbc: pyodbc.Connection) -> None:
    stored = odbc.execute(
        "SELECT HEX(LName), LName FROM patient WHERE FName = ?", "Øyvind"
    ).fetchone()
    assert stored[0] == "Ødegaard".encode().hex().upper()
    assert stored[1] == "Ødegaard"
    assert (
        odbc.execute("SELECT COUNT(*) FROM patient WHERE LName = ?", "Ødegaard").fetchone()[0] >= 2
    )


def test_existing_database_is_refused(
    mariadb_database: str, mariadb_admin: pyodbc.Connection
) -> None:
    with pytest.raises(TargetExistsError, match="already exists"):
        build_practice(url(mariadb_database), today=TODAY)
    result = CliRunner().invoke(main, ["practice", "--target", url(mariadb_database)])
    assert result.exit_code != 0 and "--replace" in result.output
    tables = mariadb_admin.execute(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", mariadb_database
    ).fetchone()[0]
    assert tables == 0
