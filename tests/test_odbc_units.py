"""Unit tests of the ODBC layer's pure parts: connection strings, driver
messages, value converters, rows, grants. No database needed."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal

import pyodbc
import pytest
from hypothesis import given
from hypothesis import strategies as st

import bridge.pms.odbc as odbc
from bridge.errors import (
    ConfigError,
    DataSourceNotFoundError,
    DriverNotFoundError,
    LoginFailedError,
    PmsError,
    QueryTimeoutError,
    ReadOnlyViolationError,
    SchemaMismatchError,
    ServerUnreachableError,
)
from bridge.pms import odbc_connstr as connstr
from bridge.pms.odbc import DriverFamily, OdbcSettings
from bridge.pms.odbc_catalog import Grant, parse_grant, write_grants
from bridge.pms.odbc_errors import Diagnostic, connect_error, is_row_data_error, query_error
from bridge.pms.odbc_stream import KeyedQuery, plain_identifier, quote_identifier
from bridge.pms.odbc_values import BadValue, BadValueCounter, Columns, Row, converters
from bridge.secrets import Secret


def test_public_names_are_exactly_the_intended_ones() -> None:
    assert set(odbc.__all__) == {
        "ColumnInfo",
        "DriverFamily",
        "OdbcSettings",
        "PmsConnection",
        "Row",
        "WriteCapability",
        "connect",
        "defined_data_sources",
        "installed_drivers",
    }
    for name in odbc.__all__:
        assert getattr(odbc, name) is not None


# -- settings ------------------------------------------------------------------


def test_settings_need_exactly_one_source() -> None:
    with pytest.raises(ConfigError):
        OdbcSettings()
    with pytest.raises(ConfigError):
        OdbcSettings(connection_string="Driver={SQLite3}", dsn="x")
    with pytest.raises(ConfigError) as info:
        OdbcSettings(connection_string="Driver={SQLite3};PWD={oops")
    assert "oops" not in str(info.value)
    with pytest.raises(ConfigError):
        OdbcSettings(dsn="x", query_timeout_seconds=0)


def test_settings_repr_hides_the_password() -> None:
    settings = OdbcSettings(dsn="x", password=Secret("hunter2-long", "pms-password"))
    assert "hunter2-long" not in repr(settings)


# -- connection strings ----------------------------------------------------------


def test_parse_and_render_with_brace_escaping() -> None:
    text = "Driver={MariaDB Unicode};Server=db;PWD={a;b}}c={d};Port=3306;"
    pairs = connstr.parse(text)
    assert pairs == [
        ("Driver", "MariaDB Unicode"),
        ("Server", "db"),
        ("PWD", "a;b}c={d"),
        ("Port", "3306"),
    ]
    assert connstr.render(pairs) == "Driver={MariaDB Unicode};Server=db;PWD={a;b}}c={d};Port=3306"
    assert connstr.redacted(pairs) == "Driver={MariaDB Unicode};Server=db;PWD=***;Port=3306"


@pytest.mark.parametrize("bad", ["abc", "a=1;zz;b=2", "a={unclosed", "a={x}y;b=1", "=v"])
def test_parse_rejects_malformed_parts_without_echoing(bad: str) -> None:
    with pytest.raises(ValueError, match="part") as info:
        connstr.parse(bad)
    assert bad not in str(info.value)


_keys = st.from_regex(r"[A-Za-z][A-Za-z0-9 _]{0,15}", fullmatch=True).map(str.strip)
_values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@given(st.lists(st.tuples(_keys.filter(bool), _values), max_size=6))
def test_render_then_parse_is_identity(pairs: list[tuple[str, str]]) -> None:
    # Unbraced values are stripped by ODBC; render braces any value with
    # leading or trailing spaces, so every value survives exactly.
    assert connstr.parse(connstr.render(pairs)) == pairs


@given(_values.filter(lambda v: len(v) >= 4))
def test_redaction_never_shows_the_password(password: str) -> None:
    pairs = [("Driver", "X"), ("PWD", password)]
    assert password not in connstr.redacted(pairs)
    assert password not in connstr.redact_text(f"failed: {connstr.render(pairs)}", [password])


def test_redact_text_masks_password_attributes() -> None:
    text = "Password=s3cret;PWD={x;y}};z} Server=1 TLSKEYPWD=abc rest"
    assert connstr.redact_text(text) == "Password=***;PWD=*** Server=1 TLSKEYPWD=*** rest"


@pytest.mark.parametrize(
    ("names", "family"),
    [
        (("MariaDB Unicode",), DriverFamily.MARIADB),
        (("/usr/lib/x86_64-linux-gnu/odbc/libmaodbc.so",), DriverFamily.MARIADB),
        (("MySQL ODBC 8.0 Unicode Driver",), DriverFamily.MYSQL),
        (("SQLite3",), DriverFamily.SQLITE),
        (("ODBC Driver 18 for SQL Server",), DriverFamily.SQLSERVER),
        (("SQL Server Native Client 11.0",), DriverFamily.SQLSERVER),
        (("SQL Anywhere 17",), DriverFamily.SQLANYWHERE),
        (("Adaptive Server Anywhere 9.0",), DriverFamily.SQLANYWHERE),
        (("PostgreSQL Unicode",), DriverFamily.OTHER),
        ((None, "libmaodbc.so"), DriverFamily.MARIADB),
    ],
)
def test_family_of_driver_names(names: tuple[str | None, ...], family: DriverFamily) -> None:
    assert connstr.family_of(*names) is family
    assert family in ("mariadb", "mysql", "sqlite", "sqlserver", "sqlanywhere", "other")


# -- driver messages -----------------------------------------------------------------


def _drv(state: str, text: str, native: int = 0, call: str = "SQLExecDirectW") -> pyodbc.Error:
    """A pyodbc error as drivers format them: ``[state] text (native) (call)``."""
    return pyodbc.Error(state, f"[{state}] {text} ({native}) ({call})")


def test_diagnostic_takes_the_last_native_number() -> None:
    d = Diagnostic.of(
        _drv("HY000", "[ma-3.1.15]Can't connect to server on 'h' (115)", 2002, "SQLDriverConnect")
    )
    assert (d.sqlstate, d.native, d.text) == ("HY000", 2002, "Can't connect to server on 'h'")
    d = Diagnostic.of(_drv("HY000", "[SQLite]no such table: x (1)", 1))
    assert (d.native, d.text) == (1, "no such table: x")


def test_diagnostic_withholds_texts_that_may_quote_values() -> None:
    d = Diagnostic.of(_drv("23000", "Duplicate entry 'Smith' for key 'x'", 1062))
    assert "Smith" not in d.safe_text
    d = Diagnostic.of(_drv("HY000", "Invalid utf8mb3 character string: 'FF41'", 1300))
    assert "FF41" not in d.safe_text


def _connect_error(error: pyodbc.Error, **kw: object) -> PmsError:
    args: dict[str, object] = {
        "driver": None,
        "dsn": None,
        "user": "u",
        "database": "db",
        "family": DriverFamily.OTHER,
        "installed": ["A"],
        "defined": {},
    }
    args.update(kw)
    return connect_error(error, **args)  # type: ignore[arg-type]


def test_connect_errors_from_driver_managers_and_other_drivers() -> None:
    # Windows' driver manager says IM002 for a missing driver too.
    windows = _drv("IM002", "[Microsoft][ODBC Driver Manager] Data source name not found")
    assert isinstance(_connect_error(windows, driver="X"), DriverNotFoundError)
    assert isinstance(_connect_error(windows, dsn="X"), DataSourceNotFoundError)
    dsn_without_driver = _connect_error(windows, dsn="od", defined={"OD": "Gone"})
    assert isinstance(dsn_without_driver, DriverNotFoundError)
    assert dsn_without_driver.driver == "Gone"
    # SQL Server wording (from its documentation; no SQL Server here).
    login = _drv("28000", "[Microsoft]Login failed for user 'u'.", 18456, "SQLDriverConnect")
    assert isinstance(_connect_error(login), LoginFailedError)
    timeout = _drv("HYT00", "[Microsoft]Login timeout expired", 0, "SQLDriverConnect")
    assert type(_connect_error(timeout)) is PmsError
    network = _drv("08001", "[Microsoft]TCP Provider: No such host is known.", 11001)
    assert isinstance(_connect_error(network), ServerUnreachableError)


def _query_error(error: pyodbc.Error, **kw: object) -> PmsError:
    args: dict[str, object] = {
        "family": DriverFamily.SQLSERVER,
        "entity": "patient",
        "table": "patient",
        "timed_out": False,
        "timeout_seconds": 5,
    }
    args.update(kw)
    return query_error(error, **args)  # type: ignore[arg-type]


def test_query_errors_of_other_drivers_by_their_documented_wording() -> None:
    missing = _query_error(_drv("42S02", "[Microsoft]Invalid object name 'dbo.pat'.", 208))
    assert isinstance(missing, SchemaMismatchError)
    assert (missing.entity, missing.table, missing.column) == ("patient", "pat", None)
    column = _query_error(_drv("42S22", "[Microsoft]Invalid column name 'LName'.", 207))
    assert isinstance(column, SchemaMismatchError)
    assert (column.table, column.column) == ("patient", "LName")
    anywhere = _query_error(_drv("42S02", "[SAP][ODBC Driver]Table 'pat' not found", -141))
    assert isinstance(anywhere, SchemaMismatchError)
    timeout = _query_error(_drv("HYT00", "[Microsoft]Query timeout expired"))
    assert isinstance(timeout, QueryTimeoutError)
    read_only = _query_error(_drv("25006", "read-only transaction"))
    assert isinstance(read_only, ReadOnlyViolationError)
    lost = _query_error(_drv("08S01", "[Microsoft]Communication link failure", 10054))
    assert isinstance(lost, ServerUnreachableError)


def test_row_data_errors_are_told_apart_from_statement_errors() -> None:
    assert is_row_data_error(ValueError("month must be in 1..12"))
    assert is_row_data_error(_drv("22007", "Invalid datetime format", 0, "SQLGetData"))
    assert is_row_data_error(
        _drv("HY000", "Ansi to Unicode conversion error occurred", 84, "SQLGetData")
    )
    assert not is_row_data_error(_drv("08S01", "Lost connection", 2013, "SQLFetch"))
    assert not is_row_data_error(_drv("42S02", "Table 'x' doesn't exist", 1146))


# -- values ------------------------------------------------------------------------


def _convert(family: DriverFamily, sql_type: int, raw: bytes | None) -> object:
    counter = BadValueCounter()
    funcs = dict(converters(family, counter))
    value = funcs[sql_type](raw)
    assert counter.count == (1 if isinstance(value, BadValue) else 0)
    return value


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"2024-01-02", date(2024, 1, 2)),
        (b"0001-01-01", date(1, 1, 1)),  # Open Dental's "no date": kept
        (b"0000-00-00", None),  # MySQL zero date: null, not an error
        (b"2024-01-02 10:00:00", date(2024, 1, 2)),
        (None, None),
    ],
)
def test_date_converter_accepts(raw: bytes | None, expected: object) -> None:
    assert _convert(DriverFamily.MARIADB, pyodbc.SQL_TYPE_DATE, raw) == expected


@pytest.mark.parametrize("raw", [b"2024-02-30", b"2024-00-10", b"2024-02-00", b"abc", b"12345"])
def test_date_converter_marks_garbage(raw: bytes) -> None:
    value = _convert(DriverFamily.MARIADB, pyodbc.SQL_TYPE_DATE, raw)
    assert isinstance(value, BadValue)
    assert value.problem == "invalid date"


def test_timestamp_time_and_decimal_converters() -> None:
    m = DriverFamily.MARIADB
    assert _convert(m, pyodbc.SQL_TYPE_TIMESTAMP, b"2024-01-02 03:04:05.123456") == datetime(
        2024, 1, 2, 3, 4, 5, 123456
    )
    assert _convert(m, pyodbc.SQL_TYPE_TIMESTAMP, b"0000-00-00 00:00:00") is None
    assert isinstance(_convert(m, pyodbc.SQL_TYPE_TIMESTAMP, b"2024-01-00 00:00:00"), BadValue)
    assert isinstance(_convert(m, pyodbc.SQL_TYPE_TIMESTAMP, b"2024-01-02T03:04Z"), BadValue)
    assert _convert(m, pyodbc.SQL_TYPE_TIME, b"10:11:12") == time(10, 11, 12)
    assert isinstance(_convert(m, pyodbc.SQL_TYPE_TIME, b"838:59:59"), BadValue)
    assert isinstance(_convert(m, pyodbc.SQL_TYPE_TIME, b"-10:00:00"), BadValue)
    assert _convert(m, pyodbc.SQL_DECIMAL, b"1.50") == Decimal("1.50")
    assert isinstance(_convert(m, pyodbc.SQL_DECIMAL, b"NaN"), BadValue)
    assert isinstance(_convert(m, pyodbc.SQL_DECIMAL, b"qq"), BadValue)


def test_sqlite_only_converters_for_numbers_flags_and_text() -> None:
    s = DriverFamily.SQLITE
    assert _convert(s, pyodbc.SQL_INTEGER, b"42") == 42
    assert isinstance(_convert(s, pyodbc.SQL_INTEGER, b"1.0e+20"), BadValue)
    assert isinstance(_convert(s, pyodbc.SQL_BIGINT, b"abc"), BadValue)
    assert _convert(s, pyodbc.SQL_DOUBLE, b"1.5") == 1.5
    assert isinstance(_convert(s, pyodbc.SQL_DOUBLE, b"Inf"), BadValue)
    assert _convert(s, pyodbc.SQL_BIT, b"1") is True
    assert isinstance(_convert(s, pyodbc.SQL_BIT, b"maybe"), BadValue)
    assert _convert(s, pyodbc.SQL_WVARCHAR, "héllo".encode()) == "héllo"
    assert isinstance(_convert(s, pyodbc.SQL_WVARCHAR, b"\xffA"), BadValue)
    # Other families keep the driver's own text decoding.
    assert pyodbc.SQL_WVARCHAR not in dict(converters(DriverFamily.MARIADB, BadValueCounter()))


def test_row_is_a_mapping_indexable_by_position_that_hides_values() -> None:
    columns = Columns(["PatNum", "LName"])
    row = Row(columns, (7, "Smith"))
    assert row["PatNum"] == 7
    assert row["lname"] == "Smith"  # falls back to ignoring case
    assert row[1] == "Smith"
    assert dict(row) == {"PatNum": 7, "LName": "Smith"}
    assert row == {"PatNum": 7, "LName": "Smith"}
    assert row.as_tuple() == (7, "Smith")
    assert "LNAME" in row
    assert "Smith" not in repr(row)
    assert "7" not in repr(row)
    with pytest.raises(KeyError):
        row["nope"]


# -- SQL building ----------------------------------------------------------------------


def test_keyset_pages_for_one_and_two_key_columns() -> None:
    one = KeyedQuery(DriverFamily.MARIADB, "SELECT * FROM t WHERE a = ?;", (5,), ("Id",))
    assert one.page(None, 10) == (
        "SELECT * FROM (SELECT * FROM t WHERE a = ?) AS bridge_page ORDER BY `Id` LIMIT 10",
        [5],
    )
    two = KeyedQuery(DriverFamily.SQLSERVER, "SELECT * FROM t", (), ("A", "B"))
    sql, params = two.page((1, 2), 3)
    assert sql == (
        "SELECT TOP 3 * FROM (SELECT * FROM t) AS bridge_page "
        "WHERE ([A] > ?) OR ([A] = ? AND [B] > ?) ORDER BY [A], [B]"
    )
    assert params == [1, 1, 2]


def test_identifiers_are_quoted_or_refused() -> None:
    assert quote_identifier(DriverFamily.MARIADB, "a`b") == "`a``b`"
    assert quote_identifier(DriverFamily.SQLITE, 'a"b') == '"a""b"'
    assert quote_identifier(DriverFamily.SQLSERVER, "a]b") == "[a]]b]"
    with pytest.raises(ValueError):
        plain_identifier("Id; DROP TABLE x", "key column")


# -- grants --------------------------------------------------------------------------


def test_grant_lines_are_parsed() -> None:
    assert parse_grant("GRANT SELECT, INSERT (`a`, `b`), UPDATE ON `od`.* TO `u`@`%`") == Grant(
        ("SELECT", "INSERT", "UPDATE"), "od", "*"
    )
    assert parse_grant("GRANT DELETE ON `od`.`patient` TO `u`@`%`") == Grant(
        ("DELETE",), "od", "patient"
    )
    assert parse_grant("GRANT `reader`, `writer` TO `u`@`%`") == ("reader", "writer")
    hashed = "GRANT USAGE ON *.* TO `u`@`%` IDENTIFIED BY PASSWORD '*E0D1D14D36FE'"
    assert parse_grant(hashed) == Grant(("USAGE",), "*", "*")
    routine = parse_grant("GRANT EXECUTE, ALTER ROUTINE ON PROCEDURE `od`.`p` TO `u`@`%`")
    assert isinstance(routine, Grant) and routine.routine


def test_write_grants_follow_database_patterns() -> None:
    grants = [
        Grant(("SELECT",), "*", "*"),
        Grant(("INSERT",), "od\\_prod", "*"),
        Grant(("UPDATE",), "od%", "*"),
        Grant(("DELETE",), "other", "*"),
        Grant(("ALL PRIVILEGES",), "od_prod", "patient"),
    ]
    found = [p for p, _ in write_grants(grants, "od_prod")]
    assert found == ["INSERT", "UPDATE", "ALL PRIVILEGES"]
    assert [p for p, _ in write_grants(grants, "odXprod")] == ["UPDATE"]
