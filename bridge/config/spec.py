"""A flat, read-only view of the setting declarations.

:func:`iter_settings` walks the section models of :mod:`bridge.config.model`
in file order and yields one :class:`SettingSpec` per setting: dotted key,
type label, default (or required), help text, example, and whether the
setting names a keyring secret. The template, the docs table, ``config
show``, unknown-key suggestions and a future settings page are built from
this view, so nothing about a setting is written twice.

:func:`toml_value` renders a Python value as TOML (used by the template and
``config show``); Windows paths come out as literal strings so backslashes
survive unescaped.
"""

from __future__ import annotations

import math
import types
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from bridge.config.model import Settings


@dataclass(frozen=True)
class SettingSpec:
    """One declared setting."""

    section: str
    name: str
    type_label: str
    required: bool
    default: object  # None when unset or required
    description: str
    example: object | None
    secret_ref: bool
    sensitive: bool

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"


def section_models() -> dict[str, type[BaseModel]]:
    """Section name to model, in file order (a repeated section, ``tuple[Model, ...]``
    such as ``[[folders]]``, maps to the model of one of its tables)."""
    sections: dict[str, type[BaseModel]] = {}
    for name, field in Settings.model_fields.items():
        model = field.annotation
        if get_origin(model) is tuple:
            model = get_args(model)[0]
        assert isinstance(model, type) and issubclass(model, BaseModel)
        sections[name] = model
    return sections


def repeated_sections() -> frozenset[str]:
    """Sections written as arrays of tables (``[[folders]]``), zero or more times."""
    return frozenset(
        name
        for name, field in Settings.model_fields.items()
        if get_origin(field.annotation) is tuple
    )


def iter_settings() -> Iterator[SettingSpec]:
    """Every setting, section by section, in declaration order."""
    yield from _all_settings()


@cache
def _all_settings() -> tuple[SettingSpec, ...]:
    specs: list[SettingSpec] = []
    for section, model in section_models().items():
        for name, field in model.model_fields.items():
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            label = extra.get("type_label")
            specs.append(
                SettingSpec(
                    section=section,
                    name=name,
                    type_label=type_label(field, str(label) if label else None),
                    required=field.is_required(),
                    default=None if field.is_required() else field.get_default(),
                    description=field.description or "",
                    example=field.examples[0] if field.examples else None,
                    secret_ref=bool(extra.get("secret_ref")),
                    sensitive=bool(extra.get("sensitive")),
                )
            )
    return tuple(specs)


def setting(key: str) -> SettingSpec:
    """The declaration of one dotted key; KeyError if there is none."""
    for spec in _all_settings():
        if spec.key == key:
            return spec
    raise KeyError(key)


def setting_keys() -> list[str]:
    """Every dotted key, in declaration order."""
    return [spec.key for spec in _all_settings()]


def secret_ref_keys() -> list[str]:
    """Dotted keys of the settings that name a keyring secret."""
    return [spec.key for spec in _all_settings() if spec.secret_ref]


def _bounds(field: FieldInfo) -> tuple[object | None, object | None]:
    low: object | None = None
    high: object | None = None
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            low = item.ge
        elif isinstance(item, annotated_types.Le):
            high = item.le
    return low, high


def bounds(key: str) -> tuple[object | None, object | None]:
    """``(minimum, maximum)`` of a numeric setting, each None if unbounded."""
    section, _, name = key.partition(".")
    return _bounds(section_models()[section].model_fields[name])


_TYPE_NAMES: dict[object, str] = {
    int: "integer",
    float: "number",
    bool: "true/false",
    str: "text",
    Path: "path",
}


def type_label(field: FieldInfo, base: str | None = None) -> str:
    """A short human description of a field's type (or ``base``) and bounds."""
    annotation: Any = field.annotation
    optional = False
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        optional = len(args) < len(get_args(annotation))
        annotation = args[0] if len(args) == 1 else annotation
    if base is not None:
        label = base
    elif get_origin(annotation) is Literal:
        label = "one of: " + ", ".join(str(a) for a in get_args(annotation))
    else:
        label = _TYPE_NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))
    low, high = (format_number(b) if b is not None else None for b in _bounds(field))
    if low is not None and high is not None:
        label += f", {low} to {high}"
    elif low is not None:
        label += f", at least {low}"
    elif high is not None:
        label += f", at most {high}"
    return label + (", optional" if optional else "")


def format_number(value: object) -> str:
    """A bound for people: ``2.0`` -> ``2``, ``65536`` -> ``65536 (64 KiB)``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int) and value >= 1024 and value % 1024 == 0:
        return f"{value} ({format_bytes(value)})"
    return str(value)


def format_bytes(value: int) -> str:
    """``10485760`` -> ``"10 MiB"`` (exact multiples of 1024 only)."""
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value and value % size == 0:
            return f"{value // size} {unit}"
    return str(value)


def toml_value(value: object) -> str:
    """Render a value as TOML: strings, paths, numbers, booleans, inline tables, arrays."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        if "\\" in value and "'" not in value and value.isprintable():
            return f"'{value}'"
        return _basic_string(value)
    if isinstance(value, dict):
        items = ", ".join(f"{_basic_string(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot render {type(value).__name__} as a TOML setting")


def _basic_string(value: str) -> str:
    escapes = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
    out = []
    for char in value:
        if char in escapes:
            out.append(escapes[char])
        elif not char.isprintable():
            out.append(f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
