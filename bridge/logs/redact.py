"""Masking of secrets and personal data in log records.

:class:`RedactionFilter` is attached to every handler :func:`setup_logging`
installs (file and console), so every record is redacted *before* any
handler writes it. It rewrites the record in place, once:

* the message is formatted (``msg % args``) and then masked; ``args`` are
  dropped;
* exception and stack text are formatted, masked and kept in ``exc_text``
  (``exc_info`` is dropped so no later formatter re-renders the raw
  traceback); the exception type is kept in ``bridge_exc``;
* extra fields (``extra={...}``) whose names mean personal data
  (:data:`PERSONAL_FIELD_NAMES`, compared case-insensitively and ignoring
  ``_`` and ``-``) become ``"[redacted]"``; other extras are converted to
  JSON values and masked recursively. Integers, floats and booleans are kept
  as they are (ids, counts), so a number is only masked under a personal
  field name.

Text masking (:meth:`Redactor.text`) replaces with ``[redacted]``: every
secret value this process has handled (:func:`bridge.secrets.known_secrets`),
``PWD=``/``Password=`` values of connection strings, passwords in URLs,
``Bearer``/``ODFHIR`` credentials, e-mail addresses, US social security
numbers (``ddd-dd-dddd``, and bare 9-digit numbers that are valid SSNs),
and phone-number-like runs of 7 or more digits with separators. Dates,
times, IP addresses, UUIDs, decimals and plain integers are kept, so ids,
counts and timestamps stay readable.

The filter never raises: an extra field that cannot be converted becomes
``"[unloggable value]"``; if the record itself cannot be redacted (say its
``msg % args`` fails), it is replaced by ``"[unloggable record]"`` with its
level and logger kept.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import traceback
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any

from bridge.secrets import known_secrets

REDACTED = "[redacted]"
UNLOGGABLE = "[unloggable record]"
UNLOGGABLE_VALUE = "[unloggable value]"

PERSONAL_FIELD_NAMES: frozenset[str] = frozenset(
    {
        "first_name", "last_name", "name", "fname", "lname", "preferred", "birthdate",
        "date_of_birth", "dob", "phone", "hmphone", "wkphone", "wirelessphone", "email",
        "ssn", "address", "address2", "zip", "postcode", "note", "notes",
        "middle_name", "middlei", "full_name", "patient_name", "birth_date", "zip_code",
        "postal_code", "phone_number", "mobile", "email_address", "street",
    }
)  # fmt: skip
"""Extra-field names whose values are personal data (matched normalised)."""

_PERSONAL_SUFFIXES = (
    "phone", "email", "ssn", "birthdate", "dateofbirth", "firstname", "lastname",
    "fullname", "address", "address2", "zipcode", "postcode", "postalcode", "note", "notes",
)  # fmt: skip
_CREDENTIAL_WORDS = ("password", "passwd", "pwd", "secret", "token", "authorization", "apikey")


def _normalise(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


_PERSONAL_NORMALISED = frozenset(_normalise(n) for n in PERSONAL_FIELD_NAMES)


def is_personal_field(name: str) -> bool:
    """True if an extra field called ``name`` holds personal data or a credential."""
    norm = _normalise(name)
    return (
        norm in _PERSONAL_NORMALISED
        or norm.endswith(_PERSONAL_SUFFIXES)
        or any(word in norm for word in _CREDENTIAL_WORDS)
    )


_CREDENTIALS = re.compile(
    # PWD=...; in connection strings (a {...} value may hold ';')
    r"(?i)(?P<odbc>\b(?:pwd|password|passwd)\s*=\s*)(?:\{(?:[^}]|\}\})*\}|[^;\r\n]*)"
    # password: x, "password": "x"
    r"|(?P<pair>\b(?:pwd|password|passwd)[\"']?\s*:\s*[\"']?)[^\s\"',;]+"
    # scheme://user:password@host
    r"|(?P<url>(?<![a-z0-9+.-])[a-z][a-z0-9+.-]{0,30}://)[^/\s:@]+:[^/\s@]+(?=@)"
    # Authorization header values
    r"|(?P<auth>\b(?:Bearer|Basic|ODFHIR)\s+)[^\s,;\"']+"
)
# RFC 5322 local parts, except "=" and "'" (so "email=a@b.org" keeps "email=")
# (the look-behind starts a match only at the start of a run: linear time)
_LOCAL = r"[A-Za-z0-9!#$%&*+/?^_`{|}~.-]"
_EMAIL = re.compile(rf"(?<!{_LOCAL}){_LOCAL}+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_NUMBERS = re.compile(
    r"(?P<keep>"
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
    r"|\b\d{1,2}[/-]\d{1,2}[/-]\d{4}\b"
    r"|\b\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
    r"|\b\d{1,3}(?:\.\d{1,3}){3}\b(?!\.\d)"
    r"|\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
    r")"
    r"|(?P<ssn>(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-]))"
    r"|(?P<phone>(?<![\w.+-])(?:\+\d{1,3}[ \t.-]?)?(?:\(\d{1,4}\)[ \t.-]?)?\d{1,5}"
    r"(?:[ \t.-]\d{1,5})+(?![\w-])|\+\d{7,15}\b)"
    r"|(?P<bare>(?<![\w.-])\d{9}(?![\w.-]))"
)


def _is_ssn(digits: str) -> bool:
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _mask_number(match: re.Match[str]) -> str:
    text = match.group(0)
    if match.group("keep"):
        return text
    if match.group("ssn"):
        return REDACTED
    if match.group("bare"):
        return REDACTED if _is_ssn(text) else text
    digits = sum(c.isdigit() for c in text)
    separators = [c for c in text if not c.isdigit()]
    if separators == ["."]:  # a decimal number
        return text
    if separators == ["-"] and not re.fullmatch(r"\d{3}-\d{4}", text):  # a range: 1001-1050
        return text
    return REDACTED if digits >= 7 else text


class Redactor:
    """Masks secrets and personal data in text and JSON-able values.

    Thread-safe; the known-secrets pattern is rebuilt only when the set of
    known secrets changes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()
        self._secret_re: re.Pattern[str] | None = None

    def _secret_pattern(self) -> re.Pattern[str] | None:
        current = known_secrets()
        with self._lock:
            if current != self._secrets:
                ordered = sorted(current, key=len, reverse=True)
                self._secret_re = re.compile("|".join(map(re.escape, ordered))) if ordered else None
                self._secrets = current
            return self._secret_re

    def text(self, text: str) -> str:
        """``text`` with every secret and personal-data pattern masked."""
        pattern = self._secret_pattern()
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
        text = _CREDENTIALS.sub(_mask_credential, text)
        text = _EMAIL.sub(REDACTED, text)
        return _NUMBERS.sub(_mask_number, text)

    def value(self, name: str | None, value: object, depth: int = 0) -> Any:
        """A JSON-able, masked copy of an extra field's value."""
        if name is not None and is_personal_field(name):
            return REDACTED
        if value is None or isinstance(value, bool | int):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else str(value)
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, datetime | date | time):
            return value.isoformat()
        if depth < 4 and isinstance(value, Mapping):
            items = list(value.items())[:100]
            return {str(k): self.value(str(k), v, depth + 1) for k, v in items}
        if depth < 4 and isinstance(value, list | tuple | set | frozenset):
            return [self.value(None, v, depth + 1) for v in list(value)[:100]]
        return self.text(str(value))


def _mask_credential(match: re.Match[str]) -> str:
    lead = next(g for g in match.groups() if g is not None)
    return lead + REDACTED


# Attributes every LogRecord has; anything else on a record is an extra field.
STANDARD_ATTRS: frozenset[str] = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName"}
INTERNAL_ATTRS: frozenset[str] = frozenset({"bridge_exc", "bridge_redacted"})


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's extra fields (``extra={...}``), in insertion order."""
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in STANDARD_ATTRS and key not in INTERNAL_ATTRS
    }


_default = Redactor()


def redact_record(record: logging.LogRecord, redactor: Redactor = _default) -> None:
    """Mask ``record`` in place, once; never raises (see module docstring)."""
    if getattr(record, "bridge_redacted", False):
        return
    try:
        _redact(record, redactor)
    except Exception:
        _make_unloggable(record)
    record.__dict__["bridge_redacted"] = True


def _redact(record: logging.LogRecord, redactor: Redactor) -> None:
    message = redactor.text(record.getMessage())
    exc_text = record.exc_text
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        exc_text = "".join(traceback.format_exception(exc))
        record.__dict__["bridge_exc"] = {
            "type": f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins."),
            "message": redactor.text(str(exc)),
        }
    extras = {key: _safe_value(redactor, key, value) for key, value in extra_fields(record).items()}
    record.msg = message
    record.args = None
    record.exc_info = None
    record.exc_text = redactor.text(exc_text) if exc_text else None
    if record.stack_info:
        record.stack_info = redactor.text(record.stack_info)
    for key, value in extras.items():
        setattr(record, key, value)


def _safe_value(redactor: Redactor, key: str, value: object) -> Any:
    try:
        return redactor.value(key, value)
    except Exception:  # e.g. a __str__ that raises: lose the field, keep the record
        return UNLOGGABLE_VALUE


def _make_unloggable(record: logging.LogRecord) -> None:
    for key in extra_fields(record):
        delattr(record, key)
    record.__dict__.pop("bridge_exc", None)
    record.msg = UNLOGGABLE
    record.args = None
    record.exc_info = None
    record.exc_text = None
    record.stack_info = None


class RedactionFilter(logging.Filter):
    """Redacts every record that passes (see :func:`redact_record`); never
    drops one."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self._redactor = redactor or _default

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record, self._redactor)
        return True
