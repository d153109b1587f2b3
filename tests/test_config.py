"""Settings: loading, every kind of error naming its key, checks beyond the
file, the template, and the generated docs."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.config import (
    ConfigProblem,
    Settings,
    check_settings,
    iter_settings,
    load_settings,
    render_default_config,
    render_settings,
    resolve_secret,
    secret_ref_keys,
)
from bridge.config.docs import splice
from bridge.config.spec import toml_value
from bridge.errors import ConfigError, SecretError
from bridge.secrets import MemorySecretStore, Secret

VALID = """\
[practice]
name = "Riverside Dental"
timezone = "America/New_York"

[pms]
profile = "opendental"
connection_string = "Driver={MariaDB Unicode};Server=127.0.0.1;Port=3306;Database=opendental"
user = "bridge_ro"
password_secret = "pms-password"

[cloud]
url = "https://cloud.example.com/"
agent_id = "agent-0001"
"""

SECRETS = {"pms-password": "db-pass-7781", "cloud-token": "tok-AbCdEf-123456"}


def write(tmp_path: Path, text: str, name: str = "bridge.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def replace(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new)


def load_error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text))
    return info.value


# --- valid files --------------------------------------------------------------------


def test_valid_config_loads_with_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, VALID))
    assert settings.practice.timezone == "America/New_York"
    assert settings.practice.zone.key == "America/New_York"
    assert settings.practice.country == "US"
    assert settings.pms.dsn is None
    assert settings.pms.query_timeout_seconds == 30
    assert settings.pms.read_only is True
    assert settings.cloud.url == "https://cloud.example.com"  # trailing slash dropped
    assert settings.cloud.token_secret == "cloud-token"
    assert settings.engine.poll_interval_seconds == 2.0
    assert settings.logging.max_bytes == 10 * 1024 * 1024
    assert settings.logging.max_total_bytes == 11 * 10 * 1024 * 1024
    assert settings.state.path is None
    assert check_settings(tmp_path / "bridge.toml", MemorySecretStore(SECRETS)) == []


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, VALID))
    with pytest.raises(ValueError, match="frozen"):
        settings.pms.read_only = False  # type: ignore[misc]


def test_byte_order_mark_and_case_are_accepted(tmp_path: Path) -> None:
    text = VALID + '\n[logging]\nlevel = "debug"\n'
    zone = 'timezone = "Europe/London"\ncountry = "gb"'
    text = replace(text, 'timezone = "America/New_York"', zone)
    path = tmp_path / "bridge.toml"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    settings = load_settings(path)
    assert settings.practice.country == "GB"
    assert settings.logging.level == "DEBUG"


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
    text = VALID + "ca_bundle = 'ca.pem'\n\n[state]\npath = 'data/state.sqlite3'\n"
    settings = load_settings(write(tmp_path, text))
    assert settings.cloud.ca_bundle == tmp_path.resolve() / "ca.pem"
    assert settings.state.path == tmp_path.resolve() / "data" / "state.sqlite3"
    assert check_settings(tmp_path / "bridge.toml", MemorySecretStore(SECRETS)) == []


def test_http_is_allowed_for_loopback_with_a_warning(tmp_path: Path) -> None:
    for url in ("http://127.0.0.1:8080", "http://localhost:8080/", "http://[::1]:9000"):
        path = write(tmp_path, replace(VALID, "https://cloud.example.com/", url))
        assert load_settings(path).cloud.url == url.rstrip("/")
        problems = check_settings(path, MemorySecretStore(SECRETS))
        assert [(p.key, p.severity) for p in problems] == [("cloud.url", "warning")]


# --- each kind of error names its key --------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "password_secret",
            "query_timeout_seconds = 0\npassword_secret",
            "pms.query_timeout_seconds: must be between 1 and 3600 (got 0)",
        ),
        (
            "password_secret",
            'query_timeout_seconds = "thirty"\npassword_secret',
            'pms.query_timeout_seconds: must be a whole number (got "thirty")',
        ),
        (
            "password_secret",
            'read_only = "maybe"\npassword_secret',
            'pms.read_only: must be true or false (got "maybe")',
        ),
        (
            "connection_string",
            'conection_string = "x"\nconnection_string',
            "pms.conection_string: unknown key 'pms.conection_string' — "
            "did you mean 'pms.connection_string'?",
        ),
        (
            'agent_id = "agent-0001"',
            'agent_id = "agent-0001"\nquery_timeout_seconds = 5',
            "cloud.query_timeout_seconds: unknown key 'cloud.query_timeout_seconds' — "
            "did you mean 'cloud.timeout_seconds'?",
        ),
        (
            "[cloud]",
            "[practise]\nname = 'x'\n\n[cloud]",
            "practise: unknown section [practise] — did you mean 'practice'?",
        ),
        (
            'timezone = "America/New_York"',
            'timezone = "America/New_Yrok"',
            "practice.timezone: unknown time zone 'America/New_Yrok' — "
            "did you mean 'America/New_York'?",
        ),
        (
            'timezone = "America/New_York"',
            'timezone = "America/New_York"\ncountry = "UK"',
            "practice.country: must be an ISO 3166 alpha-2 country code",
        ),
        (
            'profile = "opendental"',
            'profile = "dentrx"',
            "pms.profile: unknown PMS profile 'dentrx'",
        ),
        (
            'profile = "opendental"\n',
            "",
            "pms.profile: required setting is missing",
        ),
        (
            'url = "https://cloud.example.com/"',
            'url = "http://cloud.example.com/"',
            "cloud.url: must use https://",
        ),
        (
            'url = "https://cloud.example.com/"',
            'url = "ftp://cloud.example.com/"',
            "cloud.url: must be a URL starting with https://",
        ),
    ],
)
def test_each_error_names_the_key(tmp_path: Path, old: str, new: str, expected: str) -> None:
    error = load_error(tmp_path, replace(VALID, old, new))
    assert str(error).startswith(expected), str(error)
    assert error.key == expected.split(":", maxsplit=1)[0]


def test_suggestion_for_unknown_country(tmp_path: Path) -> None:
    error = load_error(tmp_path, replace(VALID, "[pms]", 'country = "UK"\n\n[pms]'))
    assert "did you mean 'GB'?" in str(error)


def test_logging_limits(tmp_path: Path) -> None:
    error = load_error(tmp_path, VALID + "\n[logging]\nmax_bytes = 1000\nbackup_count = 0\n")
    assert "logging.max_bytes: must be between 65536 (64 KiB) and" in str(error)
    assert "logging.backup_count: must be between 1 and 1000 (got 0)" in str(error)
    error = load_error(tmp_path, VALID + '\n[logging]\nlevel = "chatty"\n')
    assert str(error).startswith("logging.level: must be one of 'DEBUG', 'INFO'")


def test_section_given_as_a_value(tmp_path: Path) -> None:
    error = load_error(tmp_path, "engine = 5\n" + VALID)
    assert str(error) == "engine: must be a section ([engine]), not a single value"


def test_missing_required_section(tmp_path: Path) -> None:
    text = VALID.split("[cloud]", maxsplit=1)[0]
    error = load_error(tmp_path, text)
    assert str(error) == "cloud: required section [cloud] is missing"


@pytest.mark.parametrize(
    "fragment",
    ["PWD=s3cret-Value", "Password=s3cret-Value", "pwd = s3cret-Value", "PWD={s3cret;Value}"],
)
def test_password_in_connection_string_is_rejected_without_echo(
    tmp_path: Path, fragment: str
) -> None:
    text = replace(VALID, "Database=opendental", f"Database=opendental;{fragment}")
    error = load_error(tmp_path, text)
    assert str(error).startswith("pms.connection_string: must not contain a password")
    assert "bridge secret set pms-password" in str(error)
    assert "s3cret" not in str(error) and "s3cret" not in error.fix


def test_connection_string_xor_dsn(tmp_path: Path) -> None:
    both = replace(VALID, 'user = "bridge_ro"', 'dsn = "OpenDental"')
    error = load_error(tmp_path, both)
    assert str(error) == (
        "pms.connection_string: set exactly one of pms.connection_string or pms.dsn (both are set)"
    )
    neither = "\n".join(line for line in VALID.splitlines() if "connection_string" not in line)
    error = load_error(tmp_path, neither)
    assert str(error) == (
        "pms.connection_string: set exactly one of pms.connection_string or pms.dsn "
        "(neither is set)"
    )
    dsn_only = replace(neither, 'user = "bridge_ro"', 'dsn = "OpenDental"')
    assert load_settings(write(tmp_path, dsn_only)).pms.dsn == "OpenDental"


def test_user_is_named_in_one_place(tmp_path: Path) -> None:
    text = replace(VALID, "Database=opendental", "Database=opendental;UID=other")
    assert str(load_error(tmp_path, text)).startswith("pms.user: pms.connection_string already")


def test_credentials_in_urls_are_rejected_without_echo(tmp_path: Path) -> None:
    text = replace(VALID, "https://cloud.example.com/", "https://me:hunter22@cloud.example.com/")
    text += 'proxy = "http://proxyuser:hunter22@proxy.local:3128"\n'
    message = str(load_error(tmp_path, text))
    assert "cloud.url: must not contain a user name or password" in message
    assert "cloud.proxy: must not contain a password" in message
    assert "hunter22" not in message


def test_sensitive_values_are_not_echoed_on_type_errors(tmp_path: Path) -> None:
    text = replace(VALID, '"https://cloud.example.com/"', "12345")
    assert str(load_error(tmp_path, text)) == "cloud.url: must be text in quotes"


def test_toml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    error = load_error(tmp_path, VALID.replace('user = "bridge_ro"', "user = bridge_ro"))
    assert str(error).startswith("bridge.toml: TOML syntax error at line 8, column 8:")


def test_windows_path_in_double_quotes_gets_a_hint(tmp_path: Path) -> None:
    error = load_error(tmp_path, VALID + 'ca_bundle = "C:\\certs\\ca.pem"\n')
    assert "TOML syntax error at line" in str(error)
    assert "single quotes" in error.fix


def test_missing_file_says_where_and_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "bridge.toml"
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(path) in str(info.value)
    assert "bridge config init" in info.value.fix
    [problem] = check_settings(path, MemorySecretStore())
    assert problem.key == "bridge.toml" and "bridge config init" in problem.fix


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    text = (
        VALID.replace('timezone = "America/New_York"', 'timezone = "Nowhere/City"').replace(
            'user = "bridge_ro"', "query_timeout_seconds = 0\nconection_string = 'x'"
        )
    ) + "\n[engine]\npoll_interval_seconds = 0.1\n"
    path = write(tmp_path, text)
    keys = [p.key for p in check_settings(path, MemorySecretStore())]
    assert keys == [
        "practice.timezone",
        "pms.query_timeout_seconds",
        "pms.conection_string",
        "engine.poll_interval_seconds",
        # [cloud] is valid, so its secret is checked although other sections are not
        "cloud.token_secret",
    ]
    error = load_error(tmp_path, text)
    assert len(str(error).splitlines()) == 4
    assert error.key == "practice.timezone"


# --- checks beyond the file ----------------------------------------------------------


def test_referenced_secrets_are_checked_without_revealing(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + 'proxy = "http://proxy.local:3128"\n'
                 'proxy_password_secret = "proxy-password"\n')  # fmt: skip
    problems = check_settings(path, MemorySecretStore({"pms-password": "db-pass-7781"}))
    assert [(p.key, p.severity) for p in problems] == [
        ("cloud.token_secret", "error"),
        ("cloud.proxy_password_secret", "error"),
    ]
    assert "bridge secret set cloud-token" in problems[0].fix
    assert all("db-pass-7781" not in p.line() for p in problems)


def test_a_broken_secret_store_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    class Broken(MemorySecretStore):
        def get(self, name: str) -> Secret:
            raise RuntimeError("dbus exploded")

    problems = check_settings(write(tmp_path, VALID), Broken())
    assert {p.key for p in problems} == {"pms.password_secret", "cloud.token_secret"}
    assert all("RuntimeError" in p.message for p in problems)


def test_ca_bundle_must_exist_and_hold_a_certificate(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "ca_bundle = 'missing.pem'\n")
    [problem] = check_settings(path, MemorySecretStore(SECRETS))
    assert problem.key == "cloud.ca_bundle" and "file not found" in problem.message
    (tmp_path / "empty.pem").write_text("nothing here")
    path = write(tmp_path, VALID + "ca_bundle = 'empty.pem'\n")
    [problem] = check_settings(path, MemorySecretStore(SECRETS))
    assert problem.message.endswith("holds no PEM certificate")


def test_read_only_off_is_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, replace(VALID, 'user = "bridge_ro"', "read_only = false"))
    [problem] = check_settings(path, MemorySecretStore(SECRETS))
    assert problem == ConfigProblem(
        "pms.read_only",
        "reading sessions may write to the PMS",
        "warning",
        "Keep read_only = true unless support asked you to change it.",
    )
    assert problem.line().startswith("warning: pms.read_only: reading sessions")


def test_resolve_secret(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, VALID))
    store = MemorySecretStore(SECRETS)
    token = resolve_secret(settings, "cloud.token_secret", store)
    assert token.reveal() == SECRETS["cloud-token"]
    assert SECRETS["cloud-token"] not in repr(token)
    with pytest.raises(SecretError) as info:
        resolve_secret(settings, "pms.password_secret", MemorySecretStore())
    assert info.value.key == "pms.password_secret"
    assert str(info.value).startswith("pms.password_secret: secret 'pms-password' is not stored")
    with pytest.raises(SecretError, match=r"cloud.proxy_password_secret is not set"):
        resolve_secret(settings, "cloud.proxy_password_secret", store)
    with pytest.raises(ValueError, match="not a secret setting"):
        resolve_secret(settings, "cloud.url", store)


def test_no_secret_in_show_or_repr(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    store = MemorySecretStore(SECRETS)
    settings = load_settings(path)
    resolve_secret(settings, "pms.password_secret", store)
    shown = render_settings(settings) + repr(settings) + str(settings)
    shown += "".join(p.line() for p in check_settings(path, store))
    for value in SECRETS.values():
        assert value not in shown
    assert 'password_secret = "pms-password"  # name of a secret' in render_settings(settings)


# --- declarations, template, docs ----------------------------------------------------


def test_every_setting_is_documented() -> None:
    specs = list(iter_settings())
    assert len({spec.key for spec in specs}) == len(specs)
    for spec in specs:
        assert spec.description.endswith("."), spec.key
        assert spec.required or spec.default is not None or spec.example is not None, spec.key
    assert secret_ref_keys() == [
        "pms.password_secret",
        "cloud.token_secret",
        "cloud.proxy_password_secret",
        "writer.developer_key_secret",
        "writer.customer_key_secret",
        "writer.password_secret",
    ]


def test_template_lists_every_setting_and_validates_once_filled(tmp_path: Path) -> None:
    template = render_default_config()
    for spec in iter_settings():
        assert f"# {spec.name} = " in template, spec.key
        assert spec.description.split()[0] in template
    path = write(tmp_path, template)
    missing = {p.key for p in check_settings(path, MemorySecretStore(SECRETS))}
    assert missing == {
        "practice.name",
        "practice.timezone",
        "pms.profile",
        "pms.connection_string",
        "cloud.url",
        "cloud.agent_id",
    }
    values = {
        "practice.name": "Riverside Dental",
        "practice.timezone": "America/Chicago",
        "pms.profile": "opendental",
        "pms.dsn": "OpenDental",
        "cloud.url": "https://cloud.example.com",
        "cloud.agent_id": "agent-0001",
        "cloud.ca_bundle": Path("C:\\certs\\ca.pem"),
    }
    settings = tomllib.loads(render_default_config(values))
    assert settings["cloud"]["ca_bundle"] == "C:\\certs\\ca.pem"
    del values["cloud.ca_bundle"]
    loaded = load_settings(write(tmp_path, render_default_config(values)))
    defaults = Settings.model_validate(
        {
            "practice": {"name": "Riverside Dental", "timezone": "America/Chicago"},
            "pms": {"profile": "opendental", "dsn": "OpenDental"},
            "cloud": {"url": "https://cloud.example.com", "agent_id": "agent-0001"},
        }
    )
    assert loaded == defaults
    with pytest.raises(KeyError):
        render_default_config({"pms.nope": 1})


@given(st.text())
def test_toml_strings_round_trip(text: str) -> None:
    assert tomllib.loads(f"x = {toml_value(text)}")["x"] == text


@given(st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans()))
def test_toml_scalars_round_trip(value: object) -> None:
    assert tomllib.loads(f"x = {toml_value(value)}")["x"] == value


def test_docs_configuration_md_is_up_to_date() -> None:
    path = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
    text = path.read_text(encoding="utf-8")
    assert splice(text) == text, "run: python -m bridge.config.docs docs/configuration.md"
