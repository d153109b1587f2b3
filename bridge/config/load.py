"""Reading ``bridge.toml`` into :class:`~bridge.config.model.Settings`.

* :func:`load_settings` is what the engine calls at start-up: it returns
  valid settings or raises :class:`~bridge.errors.ConfigError` whose message
  lists every problem, one ``key: what is wrong`` per line.
* :func:`check_settings` never raises: it returns every problem it can find
  (syntax, types, ranges, unknown keys, cross-field rules) plus checks
  outside the file: the referenced secrets exist in the secret store (their
  values are never shown) and the CA bundle exists. ``bridge config check``
  and ``bridge doctor`` use it.
* :func:`resolve_secret` turns a ``*_secret`` setting into a
  :class:`~bridge.secrets.Secret`, naming the setting when it cannot.

The file is UTF-8 (a byte-order mark from Windows Notepad is accepted);
relative paths inside it are relative to the file's folder.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from bridge.config.model import Settings
from bridge.config.problems import ConfigProblem, problems_from_validation
from bridge.config.spec import secret_ref_keys, section_models, setting
from bridge.errors import ConfigError, SecretError
from bridge.secrets import Secret, SecretStore

_TOML_POSITION = re.compile(r"^(?P<what>.*) \(at line (?P<line>\d+), column (?P<col>\d+)\)$")


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse the TOML file; ConfigError for a missing, unreadable or
    malformed file (naming line and column of a syntax error)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"configuration file not found: {path}",
            fix="Create it with 'bridge config init' (or pass --config with the right file).",
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"configuration file {path} cannot be read ({type(exc).__name__}: {exc.strerror})",
            fix="Check that the file exists and that this account may read it.",
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path.name}: not UTF-8 text (bad byte at offset {exc.start})",
            fix="Save the file as UTF-8.",
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(path, str(exc)) from None


def _syntax_error(path: Path, detail: str) -> ConfigError:
    match = _TOML_POSITION.match(detail)
    if match:
        where = f"line {match['line']}, column {match['col']}"
        detail = match["what"]
    else:
        where = "end of file" if "end of document" in detail else "somewhere"
        detail = detail.replace(" (at end of document)", "")
    fix = "Correct the TOML syntax."
    if "\\" in detail or "escape" in detail.lower():
        fix = (
            "Write Windows paths in single quotes, e.g. ca_bundle = 'C:\\certs\\ca.pem' "
            "(in double quotes a backslash starts an escape)."
        )
    return ConfigError(f"{path.name}: TOML syntax error at {where}: {detail}", fix=fix)


def validate_settings(
    data: Mapping[str, Any], *, base_dir: Path | None = None
) -> tuple[Settings | None, list[ConfigProblem]]:
    """Validate parsed TOML: ``(settings, [])`` or ``(None, problems)``."""
    try:
        settings = Settings.model_validate(dict(data), context={"base_dir": base_dir})
    except ValidationError as exc:
        return None, problems_from_validation(exc)
    return settings, []


def load_settings(path: Path) -> Settings:
    """Load and validate the configuration file.

    Raises ConfigError naming every problem (dotted key first); its ``key``
    is the first problem's key.
    """
    data = read_config_file(path)
    settings, problems = validate_settings(data, base_dir=path.parent.resolve())
    if settings is None:
        raise ConfigError(
            "\n".join(f"{p.key}: {p.message}" for p in problems),
            key=problems[0].key,
            fix=(problems[0].fix + " " if problems[0].fix else "")
            + f"Correct {path} and run 'bridge config check'.",
        )
    return settings


def check_settings(path: Path, secret_store: SecretStore) -> list[ConfigProblem]:
    """Every problem with the configuration, errors and warnings; never raises.

    Beyond the file itself it checks that each referenced secret is stored
    (without revealing it) and that ``cloud.ca_bundle`` exists. Sections with
    errors of their own are still checked for those where possible.
    """
    try:
        data = read_config_file(path)
    except ConfigError as exc:
        return [ConfigProblem(path.name, exc.message.removeprefix(f"{path.name}: "), fix=exc.fix)]
    base_dir = path.parent.resolve()
    settings, problems = validate_settings(data, base_dir=base_dir)
    sections = _valid_sections(settings, data, base_dir)
    problems += _secret_problems(sections, secret_store)
    problems += _file_problems(sections)
    problems += _warnings(sections)
    return problems


def _valid_sections(
    settings: Settings | None, data: Mapping[str, Any], base_dir: Path
) -> dict[str, BaseModel]:
    """Each section that validates on its own (all of them for valid settings)."""
    if settings is not None:
        return {name: getattr(settings, name) for name in section_models()}
    sections: dict[str, BaseModel] = {}
    for name, model in section_models().items():
        raw = data.get(name, {})
        if not isinstance(raw, dict):
            continue
        try:
            sections[name] = model.model_validate(raw, context={"base_dir": base_dir})
        except ValidationError:
            continue
    return sections


def _secret_problems(sections: dict[str, BaseModel], store: SecretStore) -> list[ConfigProblem]:
    problems = []
    for key in secret_ref_keys():
        section, _, field = key.partition(".")
        name = getattr(sections.get(section), field, None)
        if isinstance(name, str):
            problem = check_secret(store, name, key)
            if problem is not None:
                problems.append(problem)
    return problems


def check_secret(store: SecretStore, name: str, key: str) -> ConfigProblem | None:
    """None if the secret ``name`` is stored, else why not (never its value).

    Never raises: a broken keyring backend is reported as a problem too.
    """
    try:
        store.get(name)
    except SecretError as exc:
        fix = exc.fix if exc.fix != SecretError.default_fix else ""
        return ConfigProblem(
            key, exc.message, fix=fix or f"Store it with 'bridge secret set {name}'."
        )
    except Exception as exc:  # a broken keyring backend must not break the check
        return ConfigProblem(
            key,
            f"secret '{name}' could not be read from the secret store ({type(exc).__name__})",
            fix="Check the OS keyring ('bridge doctor' tests it).",
        )
    return None


def _file_problems(sections: dict[str, BaseModel]) -> list[ConfigProblem]:
    cloud = sections.get("cloud")
    bundle = getattr(cloud, "ca_bundle", None)
    if not isinstance(bundle, Path):
        return []
    try:
        head = bundle.read_bytes()[: 1024 * 1024]
    except FileNotFoundError:
        return [ConfigProblem("cloud.ca_bundle", f"file not found: {bundle}")]
    except OSError as exc:
        return [ConfigProblem("cloud.ca_bundle", f"cannot read {bundle} ({type(exc).__name__})")]
    if b"-----BEGIN CERTIFICATE-----" not in head:
        return [ConfigProblem("cloud.ca_bundle", f"{bundle} holds no PEM certificate")]
    return []


def _warnings(sections: dict[str, BaseModel]) -> list[ConfigProblem]:
    warnings = []
    if getattr(sections.get("pms"), "read_only", True) is False:
        warnings.append(
            ConfigProblem(
                "pms.read_only",
                "reading sessions may write to the PMS",
                "warning",
                "Keep read_only = true unless support asked you to change it.",
            )
        )
    cloud = sections.get("cloud")
    url = getattr(cloud, "url", "")
    if isinstance(url, str) and url.lower().startswith("http://"):
        warnings.append(
            ConfigProblem(
                "cloud.url", "plain http (no TLS): use only with a local test server", "warning"
            )
        )
    if getattr(cloud, "proxy_password_secret", None) and not getattr(cloud, "proxy", None):
        warnings.append(
            ConfigProblem(
                "cloud.proxy_password_secret",
                "is ignored because cloud.proxy is not set",
                "warning",
            )
        )
    return warnings


def resolve_secret(settings: Settings, key: str, store: SecretStore) -> Secret:
    """The secret named by the setting ``key`` (e.g. ``"pms.password_secret"``).

    Raises SecretError naming ``key`` when the setting is unset or the secret
    is not stored; ValueError when ``key`` is not a secret setting.
    """
    spec = setting(key)
    if not spec.secret_ref:
        raise ValueError(f"{key} is not a secret setting")
    name = getattr(getattr(settings, spec.section), spec.name)
    if name is None:
        raise SecretError(
            f"{key} is not set",
            key=key,
            fix=f"Set {key} in the configuration and store the secret with "
            "'bridge secret set <name>'.",
        )
    try:
        return store.get(name)
    except SecretError as exc:
        raise SecretError(f"{key}: {exc.message}", key=key, fix=exc.fix) from exc
