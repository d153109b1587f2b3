"""Typed settings from ``bridge.toml``; secrets only by reference.

Public API (everything else in the package is internal)::

    load_settings(path) -> Settings              # raises ConfigError naming each key
    check_settings(path, secret_store) -> list[ConfigProblem]   # never raises
    check_secret(store, name, key) -> ConfigProblem | None      # stored? never raises
    resolve_secret(settings, "pms.password_secret", store) -> Secret
    render_default_config(values) -> str         # the 'config init' template
    render_settings(settings) -> str             # 'config show' (secrets by name)
    write_config_file(path, text, overwrite=False)
    iter_settings() -> Iterator[SettingSpec]     # the declarations, for UIs

Each setting is declared once in :mod:`bridge.config.model`; see that
module's docstring for the contracts.
"""

from __future__ import annotations

from bridge.config.load import (
    check_secret,
    check_settings,
    load_settings,
    read_config_file,
    resolve_secret,
)
from bridge.config.model import (
    KNOWN_PMS_PROFILES,
    Cloud,
    Engine,
    Logging,
    Pms,
    Practice,
    Settings,
    State,
)
from bridge.config.problems import ConfigProblem, Severity
from bridge.config.render import render_default_config, render_settings, write_config_file
from bridge.config.spec import SettingSpec, iter_settings, secret_ref_keys, setting_keys

__all__ = [
    "KNOWN_PMS_PROFILES",
    "Cloud",
    "ConfigProblem",
    "Engine",
    "Logging",
    "Pms",
    "Practice",
    "SettingSpec",
    "Settings",
    "Severity",
    "State",
    "check_secret",
    "check_settings",
    "iter_settings",
    "load_settings",
    "read_config_file",
    "render_default_config",
    "render_settings",
    "resolve_secret",
    "secret_ref_keys",
    "setting_keys",
    "write_config_file",
]
