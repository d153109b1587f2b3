"""``bridge --version`` and ``bridge doctor`` against real sample practices,
through the SQLite3 ODBC driver and MariaDB Connector/ODBC."""

from __future__ import annotations

import secrets
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pyodbc
import pytest
from click.testing import CliRunner, Result
from conftest import MARIADB_HOST, MARIADB_PORT

from bridge import __version__
from bridge.cli import cli
from bridge.paths import BridgePaths
from bridge.secrets import MemorySecretStore
from sandbox.practice import BuildReport, build_practice


@pytest.fixture(scope="module")
def sqlite_practice(tmp_path_factory: pytest.TempPathFactory) -> BuildReport:
    return build_practice(tmp_path_factory.mktemp("practice") / "od.sqlite3", size="demo")


def write_config(home: Path, pms_lines: list[str]) -> BridgePaths:
    paths = BridgePaths(home / "config", home / "data", home / "logs").ensure()
    paths.config_file.write_text(
        "\n".join(
            [
                "[practice]",
                'name = "Test Dental"',
                'timezone = "America/Los_Angeles"',
                "",
                "[pms]",
                'profile = "opendental"',
                *pms_lines,
                "",
                "[cloud]",
                'url = "https://127.0.0.1:8443"',
                'agent_id = "agent-1"',
                "",
            ]
        ),
        encoding="utf-8",
    )
    return paths


def doctor(paths: BridgePaths, store: MemorySecretStore | None = None) -> Result:
    store = store or MemorySecretStore()
    store.set("cloud-token", "test-token-123")
    obj = {"paths": paths, "secret_store": store}
    return CliRunner().invoke(cli, ["doctor"], obj=obj, catch_exceptions=False)


def lines_by_check(output: str) -> dict[str, str]:
    checks: dict[str, str] = {}
    last = ""
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("OK", "WARN", "FAIL", "SKIP"):
            last = parts[1]
            checks[last] = line
        elif last and line.strip().startswith("fix:"):
            checks[last] += "\n" + line.strip()
    return checks


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith(f"bridge {__version__} (Python 3.")


def test_doctor_passes_on_the_sqlite_demo_practice(
    tmp_path: Path, sqlite_practice: BuildReport
) -> None:
    paths = write_config(tmp_path, [f"connection_string = '{sqlite_practice.connection_string}'"])
    result = doctor(paths)
    checks = lines_by_check(result.output)
    assert result.exit_code == 0, result.output
    assert list(checks) == [
        "config",
        "odbc-driver",
        "pms-connect",
        "read-only",
        "profile",
        "keyring",
        "disk",
        "clock",
        "state",
    ]
    for name in ("config", "odbc-driver", "pms-connect", "profile", "keyring", "state"):
        assert checks[name].startswith("OK"), checks[name]
    assert "'SQLite3' is installed" in checks["odbc-driver"]
    assert "session is read-only" in checks["read-only"]
    assert "entities of 'opendental' found" in checks["profile"]


def test_doctor_names_a_missing_driver_and_lists_the_installed(tmp_path: Path) -> None:
    db = tmp_path / "x.sqlite3"
    paths = write_config(tmp_path, [f"connection_string = 'Driver={{NoSuchDriver}};Database={db}'"])
    result = doctor(paths)
    checks = lines_by_check(result.output)
    assert result.exit_code == 1
    assert checks["odbc-driver"].startswith("FAIL")
    assert "'NoSuchDriver' is not installed" in checks["odbc-driver"]
    assert "SQLite3" in checks["odbc-driver"] and "fix:" in checks["odbc-driver"]
    assert checks["pms-connect"].startswith("FAIL")
    assert checks["profile"].startswith("SKIP")


def test_doctor_names_a_missing_table_and_its_entity(
    tmp_path: Path, sqlite_practice: BuildReport
) -> None:
    copy = tmp_path / "broken.sqlite3"
    source = sqlite_practice.connection_string.split("Database=", 1)[1]
    shutil.copy(source, copy)
    with sqlite3.connect(copy) as conn:
        conn.execute("DROP TABLE recall")
    paths = write_config(tmp_path, [f"connection_string = 'Driver={{SQLite3}};Database={copy}'"])
    result = doctor(paths)
    checks = lines_by_check(result.output)
    assert result.exit_code == 1
    assert checks["profile"].startswith("FAIL")
    assert "table 'recall' needed by profile entity 'recall' is missing" in checks["profile"]
    assert "fix:" in checks["profile"]


def test_doctor_reports_an_invalid_config_and_skips_what_depends_on_it(tmp_path: Path) -> None:
    paths = write_config(
        tmp_path, ["connection_string = 'Driver={SQLite3};Database=x'", "bogus = 1"]
    )
    result = doctor(paths)
    checks = lines_by_check(result.output)
    assert result.exit_code == 1
    assert checks["config"].startswith("FAIL") and "pms.bogus" in checks["config"]
    assert checks["pms-connect"].startswith("SKIP")


@pytest.fixture(scope="module")
def mariadb_practice() -> Iterator[BuildReport]:
    name = f"bridge_doctor_{secrets.token_hex(4)}"
    report = build_practice(f"mariadb://root@{MARIADB_HOST}:{MARIADB_PORT}/{name}", size="demo")
    yield report
    admin = pyodbc.connect(report.connection_string, autocommit=True)
    admin.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


@pytest.fixture
def reader_login(mariadb_practice: BuildReport, mariadb_admin: pyodbc.Connection) -> Iterator[str]:
    user = f"bridge_ro_{secrets.token_hex(3)}"
    database = mariadb_practice.connection_string.split("Database=", 1)[1].split(";")[0]
    mariadb_admin.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'Right-Pw;1'")
    mariadb_admin.execute(f"GRANT SELECT ON `{database}`.* TO '{user}'@'%'")
    yield user
    mariadb_admin.execute(f"DROP USER IF EXISTS '{user}'@'%'")


def _mariadb_lines(report: BuildReport, user: str) -> list[str]:
    base = ";".join(p for p in report.connection_string.split(";") if not p.startswith("User="))
    return [f"connection_string = '{base}'", f'user = "{user}"', 'password_secret = "pms-password"']


@pytest.mark.mariadb
def test_doctor_passes_on_mariadb_with_a_read_only_login(
    tmp_path: Path, mariadb_practice: BuildReport, reader_login: str
) -> None:
    paths = write_config(tmp_path, _mariadb_lines(mariadb_practice, reader_login))
    result = doctor(paths, MemorySecretStore({"pms-password": "Right-Pw;1"}))
    checks = lines_by_check(result.output)
    assert result.exit_code == 0, result.output
    assert checks["pms-connect"].startswith("OK") and "mariadb" in checks["pms-connect"]
    assert checks["read-only"].startswith("OK"), checks["read-only"]
    assert checks["profile"].startswith("OK")
    assert checks["clock"].split()[0] in ("OK", "WARN")  # server zone may differ from LA
    assert "Right-Pw" not in result.output


@pytest.mark.mariadb
def test_doctor_warns_when_the_login_can_write(
    tmp_path: Path, mariadb_practice: BuildReport
) -> None:
    paths = write_config(tmp_path, [f"connection_string = '{mariadb_practice.connection_string}'"])
    checks = lines_by_check(doctor(paths).output)
    assert checks["read-only"].startswith("WARN")
    assert "login itself can write" in checks["read-only"]
    assert "SELECT rights only" in checks["read-only"]


@pytest.mark.mariadb
def test_doctor_names_a_wrong_password_with_the_fix(
    tmp_path: Path, mariadb_practice: BuildReport, reader_login: str
) -> None:
    paths = write_config(tmp_path, _mariadb_lines(mariadb_practice, reader_login))
    result = doctor(paths, MemorySecretStore({"pms-password": "Wrong-Pw"}))
    checks = lines_by_check(result.output)
    assert result.exit_code == 1
    assert checks["pms-connect"].startswith("FAIL")
    assert "bridge secret set pms-password" in checks["pms-connect"]
    assert "Wrong-Pw" not in result.output
