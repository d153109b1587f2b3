"""Configuration problems, and pydantic's errors turned into them.

A :class:`ConfigProblem` names the dotted key (``pms.query_timeout_seconds``,
or the file name for a problem with the file itself), says what is wrong in
words a practice's IT person can act on, and may carry a ``fix``.
:func:`problems_from_validation` translates a pydantic ``ValidationError``
into one problem per mistake, in file order, suggesting the closest valid key
for an unknown one.

Messages never quote a value of a ``sensitive`` setting (connection strings,
URLs), so a password typed into the wrong place does not end up in a log,
a terminal scroll-back or a support bundle.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from bridge.config.spec import (
    bounds,
    format_number,
    section_models,
    setting,
    setting_keys,
    toml_value,
)
from bridge.config.values import SettingValueError, did_you_mean

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the configuration."""

    key: str
    message: str
    severity: Severity = "error"
    fix: str = ""

    def line(self) -> str:
        """``error: pms.dsn: message — fix`` on one line."""
        text = f"{self.severity}: {self.key}: {self.message}"
        return f"{text} — {self.fix}" if self.fix else text

    def __str__(self) -> str:
        return self.line()


def problems_from_validation(exc: ValidationError) -> list[ConfigProblem]:
    """One :class:`ConfigProblem` per error in ``exc`` (of ``Settings``)."""
    return [_problem(error) for error in exc.errors(include_url=False)]


def _problem(error: ErrorDetails) -> ConfigProblem:
    raw = error["loc"]
    if len(raw) >= 2 and isinstance(raw[1], int):  # in the n-th table of [[folders]]
        inner = _problem({**error, "loc": (raw[0], *raw[2:])})
        where = f"{raw[0]}[{raw[1] + 1}]"
        return replace(inner, key=where + inner.key.removeprefix(str(raw[0])))
    loc = tuple(str(part) for part in error["loc"][:2])
    context = error.get("ctx") or {}
    cause = context.get("error")
    if isinstance(cause, SettingValueError) and cause.key and len(loc) == 2:
        loc = (loc[0], cause.key)
    key = ".".join(loc)
    kind = error["type"]
    if kind == "missing":
        return _missing(loc)
    if kind == "extra_forbidden":
        return _unknown(loc)
    if isinstance(cause, ValueError):
        return ConfigProblem(key, str(cause))
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return ConfigProblem(key, f"must be a section ([{key}]), not a single value")
    return ConfigProblem(key, _describe(kind, key, context, error["input"], error["msg"]))


def _missing(loc: tuple[str, ...]) -> ConfigProblem:
    if len(loc) == 1:
        return ConfigProblem(
            loc[0], f"required section [{loc[0]}] is missing", fix="Add the section."
        )
    spec = setting(".".join(loc))
    fix = f"Add it to the [{loc[0]}] section"
    if spec.example is not None:
        fix += f", e.g. {loc[1]} = {toml_value(spec.example)}"
    return ConfigProblem(".".join(loc), "required setting is missing", fix=fix + ".")


def _unknown(loc: tuple[str, ...]) -> ConfigProblem:
    key = ".".join(loc)
    if len(loc) == 1:
        hint = did_you_mean(key, section_models())
        return ConfigProblem(key, f"unknown section [{key}]{hint}")
    hint = did_you_mean(key, setting_keys())
    if not hint and loc[0] in section_models():
        hint = did_you_mean(loc[1], [k.partition(".")[2] for k in setting_keys()])
    return ConfigProblem(key, f"unknown key '{key}'{hint}")


_MESSAGES = {
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be text in quotes",
    "path_type": "must be a path in quotes",
}


def _describe(kind: str, key: str, context: dict[str, Any], value: object, default: str) -> str:
    got = _got(key, value)
    if kind in _MESSAGES:
        return _MESSAGES[kind] + got
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        low, high = (None if b is None else format_number(b) for b in bounds(key))
        if low is not None and high is not None:
            return f"must be between {low} and {high}{got}"
        return f"must be at least {low}{got}" if low is not None else f"must be at most {high}{got}"
    if kind == "string_too_short":
        return "must not be empty (leave the line out to leave it unset)"
    if kind == "string_too_long":
        return f"must be at most {context.get('max_length')} characters"
    if kind == "literal_error":
        return f"must be one of {context.get('expected')}{got}"
    return default[:1].lower() + default[1:] + got


def _got(key: str, value: object) -> str:
    """`` (got 0)`` or ``""`` when the value must not be echoed."""
    try:
        if setting(key).sensitive:
            return ""
    except KeyError:
        return ""
    if isinstance(value, dict):
        return " (got a table)"
    if isinstance(value, list):
        return " (got a list)"
    if isinstance(value, bool | int | float):
        return f" (got {toml_value(value)})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f" (got {toml_value(shown)})"
    return f" (got {type(value).__name__})"
