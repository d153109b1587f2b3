"""Checks of single setting values, used by the declarations in
:mod:`bridge.config.model` (and by ``bridge secret`` for secret names).

Every check raises :class:`SettingValueError` with a message that starts
after the setting name ("must be ..."), so the loader can prefix the dotted
key. Messages never echo a value that could hold a secret or personal data:
connection strings and URLs are described, not quoted.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from pydantic import ValidationInfo

SECRET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
AGENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


class SettingValueError(ValueError):
    """A setting's value is wrong.

    ``key`` (a field of the same section) names the setting the message
    belongs to when that is not the field being validated.
    """

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """``" — did you mean 'x'?"`` for the closest choice, or ``""``."""
    options = list(choices)
    by_lower = {c.lower(): c for c in options}
    if value.lower() in by_lower and by_lower[value.lower()] != value:
        return f" — did you mean '{by_lower[value.lower()]}'?"
    close = difflib.get_close_matches(value, options, n=1, cutoff=0.6)
    return f" — did you mean '{close[0]}'?" if close else ""


def check_secret_name(name: str) -> str:
    """Return ``name`` if it is a valid keyring secret name."""
    if not SECRET_NAME.fullmatch(name):
        raise SettingValueError(
            "must be a secret name of letters, digits, '.', '_' or '-' "
            "(at most 64, starting with a letter or digit)"
        )
    return name


def check_agent_id(value: str) -> str:
    if not AGENT_ID.fullmatch(value):
        raise SettingValueError(
            "must be letters, digits, '.', '_', ':' or '-' (at most 128, starting with a "
            "letter or digit)"
        )
    return value


def odbc_keys(connection_string: str) -> list[str]:
    """Lower-cased attribute names of an ODBC connection string.

    Understands ``{...}`` quoting (a value may contain ``;`` inside braces).
    Raises, without echoing the text, when a part is not ``Name=value``.
    """
    keys: list[str] = []
    for number, part in enumerate(_odbc_parts(connection_string), start=1):
        if not part.strip():
            continue
        name, sep, _ = part.partition("=")
        if not sep or not name.strip():
            raise SettingValueError(
                f"is not an ODBC connection string: part {number} is not 'Name=value'"
            )
        keys.append(name.strip().lower())
    return keys


def _odbc_parts(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    in_braces = False
    for char in text:
        if char == "{":
            in_braces = True
        elif char == "}":
            in_braces = False
        if char == ";" and not in_braces:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_url(value: str, schemes: tuple[str, ...]) -> SplitResult:
    """Parse a URL whose scheme must be one of ``schemes`` and which needs a host."""
    example = f"{schemes[0]}://host.example.com"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise SettingValueError(f"is not a valid URL (expected e.g. '{example}')") from None
    if parts.scheme.lower() not in schemes or not parts.hostname:
        allowed = ", ".join(f"{s}://" for s in schemes)
        raise SettingValueError(f"must be a URL starting with {allowed} (e.g. '{example}')")
    return parts


def resolve_path(value: Path | None, info: ValidationInfo) -> Path | None:
    """Expand ``~`` and anchor a relative path at ``info.context['base_dir']``."""
    if value is None:
        return None
    value = value.expanduser()
    base = info.context.get("base_dir") if isinstance(info.context, dict) else None
    if not value.is_absolute() and isinstance(base, Path):
        value = base / value
    return value
