"""``bridge config check | init | show`` through click's test runner."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from test_config import SECRETS, VALID, write

from bridge.commands.config_cmd import config
from bridge.config import load_settings
from bridge.paths import BridgePaths, default_paths
from bridge.secrets import MemorySecretStore


def run(args: list[str], store: MemorySecretStore | None = None, **obj: object) -> Result:
    context = {"secret_store": store or MemorySecretStore(SECRETS), **obj}
    return CliRunner().invoke(config, args, obj=context, catch_exceptions=False)


def test_check_valid_file_exits_zero(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    result = run(["check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output == f"{path}: no problems\n"


def test_check_lists_problems_one_per_line(tmp_path: Path) -> None:
    text = VALID.replace('user = "bridge_ro"', "read_only = false")
    path = write(tmp_path, text + "\n[engine]\nstatus_interval_seconds = 1\n")
    result = run(["check", "--config", str(path)], MemorySecretStore())
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == "error: engine.status_interval_seconds: must be between 5 and 3600 (got 1)"
    assert lines[1].startswith("error: pms.password_secret: secret 'pms-password' is not stored")
    assert lines[2].startswith("error: cloud.token_secret: secret 'cloud-token' is not stored")
    assert lines[3].startswith("warning: pms.read_only:")
    assert lines[4] == f"{path}: 3 error(s), 1 warning(s)"


def test_check_warnings_fail_only_when_strict(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace('user = "bridge_ro"', "read_only = false"))
    assert run(["check", "--config", str(path)]).exit_code == 0
    assert run(["check", "--config", str(path), "--strict"]).exit_code == 1


def test_check_uses_the_path_from_the_context(tmp_path: Path) -> None:
    path = write(tmp_path, VALID, name="other.toml")
    result = run(["check"], config_path=path)
    assert result.exit_code == 0 and str(path) in result.output


def test_check_missing_file(bridge_home: Path) -> None:
    result = run(["check"])
    assert result.exit_code == 1
    assert result.output.startswith("error: bridge.toml: configuration file not found: ")
    assert str(bridge_home) in result.output and "bridge config init" in result.output


def test_init_writes_a_private_template_and_refuses_to_overwrite(tmp_path: Path) -> None:
    paths = BridgePaths(tmp_path / "conf", tmp_path / "data", tmp_path / "logs")
    args = [
        "init", "--practice-name", "Riverside Dental", "--timezone", "America/Denver",
        "--dsn", "OpenDental", "--password-secret", "pms-password",
    ]  # fmt: skip
    result = run(args, paths=paths)
    assert result.exit_code == 0, result.output
    path = paths.config_file
    assert f"wrote {path}" in result.output
    assert "cloud.url: required setting is missing" in result.output
    if sys.platform != "win32":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list(path.parent.glob(".*.tmp"))
    text = path.read_text()
    assert 'timezone = "America/Denver"' in text and "# REQUIRED" in text

    again = run(["init"], paths=paths)
    assert again.exit_code == 1 and "already exists" in again.output
    assert path.read_text() == text
    forced = run(["init", "--force", "--practice-name", "X"], paths=paths)
    assert forced.exit_code == 0 and 'name = "X"' in path.read_text()


def test_init_rejects_bad_values_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "bridge.toml"
    result = run(
        ["init", "--config", str(path), "--timezone", "Mars/Olympus",
         "--connection-string", "Driver=x;PWD=open-sesame"]
    )  # fmt: skip
    assert result.exit_code == 1
    assert "practice.timezone: unknown time zone 'Mars/Olympus'" in result.output
    assert "pms.connection_string: must not contain a password" in result.output
    assert "open-sesame" not in result.output
    assert not path.exists()


def test_init_then_fill_in_gives_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "bridge.toml"
    args = [
        "init", "--config", str(path), "--practice-name", "Riverside Dental",
        "--timezone", "America/New_York", "--country", "ca", "--dsn", "OpenDental",
        "--cloud-url", "https://cloud.example.com", "--agent-id", "agent-9",
    ]  # fmt: skip
    assert run(args).exit_code == 0
    settings = load_settings(path)
    assert settings.practice.country == "CA"
    assert settings.pms.profile == "opendental"
    assert run(["check", "--config", str(path)]).exit_code == 0


def test_show_prints_effective_settings_without_secrets(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    store = MemorySecretStore(SECRETS)
    for name in SECRETS:
        store.get(name)  # revealed in this process, as the engine would
    result = run(["show", "--config", str(path)], store)
    assert result.exit_code == 0
    assert 'password_secret = "pms-password"  # name of a secret' in result.output
    assert "query_timeout_seconds = 30  # default" in result.output
    as_json = run(["show", "--config", str(path), "--json"], store)
    data = json.loads(as_json.output)
    assert data["cloud"]["token_secret"] == "cloud-token"
    for value in SECRETS.values():
        assert value not in result.output + as_json.output


def test_show_reports_an_invalid_file(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("30", "0").replace('user = "bridge_ro"', "dsn = 'x'"))
    result = run(["show", "--config", str(path)])
    assert result.exit_code == 1
    assert "pms.connection_string: set exactly one of" in result.output


@pytest.mark.usefixtures("bridge_home")
def test_default_path_comes_from_bridge_paths() -> None:
    result = run(["init"])
    assert result.exit_code == 0
    assert default_paths().config_file.exists()
