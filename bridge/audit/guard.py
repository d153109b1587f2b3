"""What may be written into the audit trail: ids, codes and slot times, never personal data.

The audit trail is kept for years and shown to support staff, so its
entries must not name patients. :func:`checked_data` enforces that on the
``data`` of every entry, and :func:`checked_subject` on its subject:

* **Keys** may not look like personal fields. A key is split into words
  (``first_name``, ``dateOfBirth``, ``HmPhone``) and refused when a word is
  one of :data:`DENIED_WORDS` (name, phone, email, dob, birth, note, ssn,
  address, zip, ...) or the key contains one of :data:`DENIED_FRAGMENTS`
  ("firstname", "emailaddress"). Free-text fields (message, comment,
  payload, request, text) are refused too: they are where names end up.
* **Values** are JSON scalars, lists and objects, nested at most
  :data:`MAX_DEPTH` deep. A string value is at most :data:`MAX_TEXT`
  characters, without spaces (names and sentences have them; ids, codes
  and ISO times do not), without ``@`` (emails), not a phone number
  (``+`` and digits) and not a bare ``YYYY-MM-DD`` date (a birth date looks
  exactly like that; slot times are full ISO date-times).

A refusal raises :class:`AuditDataError` naming the key path and the rule,
never the value. It is a programming error in the caller: the booking
pipeline builds ``data`` from ids and codes, so the first test run shows
any slip.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from bridge.errors import BridgeError, ErrorKind

DENIED_WORDS = frozenset(
    {
        "name", "names", "surname", "nickname",
        "phone", "phones", "mobile", "cell", "tel", "telephone", "fax",
        "email", "emails", "mail", "dob", "birth", "birthdate", "birthday", "born", "age",
        "note", "notes", "comment", "comments", "message", "text", "description", "payload",
        "request", "ssn", "address", "street", "city", "zip", "zipcode", "postcode", "postal",
        "gender", "sex",
    }
)  # fmt: skip
DENIED_FRAGMENTS = ("name", "phone", "mail", "birth", "note", "address", "postcode", "ssn")
MAX_TEXT = 120
MAX_DEPTH = 6
MAX_ITEMS = 1_000

_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_PHONE = re.compile(r"\+\d[\d().-]{5,}")
_BARE_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class AuditDataError(BridgeError):
    """An audit entry would carry personal data or a value of the wrong shape."""

    kind = ErrorKind.STATE
    default_fix = (
        "This is a bug in the bridge: audit entries hold ids, codes and slot times only. "
        "Report it with the support bundle."
    )


def key_words(key: str) -> list[str]:
    """The words of a key: ``dateOfBirth`` -> date, of, birth; ``HmPhone`` -> hm, phone."""
    return [w.lower() for w in _WORDS.findall(key)]


def _check_key(key: object, path: str) -> str:
    if not isinstance(key, str) or not key:
        raise AuditDataError(f"audit data key at '{path or '(top)'}' must be a non-empty string")
    where = f"{path}.{key}" if path else key
    words = key_words(key)
    compact = "".join(words)
    denied = next((w for w in words if w in DENIED_WORDS), None) or next(
        (f for f in DENIED_FRAGMENTS if f in compact), None
    )
    if denied is not None:
        raise AuditDataError(
            f"audit data key '{where}' looks like personal data ({denied}); "
            "record ids and codes only"
        )
    return where


def _check_text(value: str, where: str) -> None:
    if len(value) > MAX_TEXT:
        raise AuditDataError(f"audit data '{where}' is longer than {MAX_TEXT} characters")
    if any(ch.isspace() for ch in value):
        raise AuditDataError(
            f"audit data '{where}' contains spaces; free text may hold names: "
            "record ids and codes only"
        )
    if "@" in value:
        raise AuditDataError(f"audit data '{where}' contains '@' (an email address?)")
    if _PHONE.fullmatch(value):
        raise AuditDataError(f"audit data '{where}' looks like a phone number")
    if _BARE_DATE.fullmatch(value):
        raise AuditDataError(
            f"audit data '{where}' is a bare date, which looks like a birth date; "
            "record slot times as full ISO date-times"
        )


def _checked(value: object, where: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise AuditDataError(f"audit data '{where}' is nested more than {MAX_DEPTH} deep")
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AuditDataError(f"audit data '{where}' is not a finite number")
        return value
    if isinstance(value, str):
        _check_text(value, where)
        return value
    if isinstance(value, Mapping):
        if len(value) > MAX_ITEMS:
            raise AuditDataError(f"audit data '{where}' has more than {MAX_ITEMS} keys")
        checked: dict[str, Any] = {}
        for key, item in value.items():
            path = _check_key(key, where)
            checked[str(key)] = _checked(item, path, depth + 1)
        return checked
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        if len(value) > MAX_ITEMS:
            raise AuditDataError(f"audit data '{where}' has more than {MAX_ITEMS} items")
        return [_checked(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    raise AuditDataError(
        f"audit data '{where}' is a {type(value).__name__}; use strings, numbers, "
        "booleans, lists and objects"
    )


def checked_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """A plain-JSON copy of ``data``, or :class:`AuditDataError` (module docstring)."""
    if not isinstance(data, Mapping):
        raise AuditDataError("audit data must be an object (a mapping of keys to values)")
    result = _checked(data, "", 0)
    assert isinstance(result, dict)
    return result


def checked_subject(subject: str) -> str:
    """A subject such as ``inbox:<item id>`` or ``appointment:123``: a reference, not a name."""
    if not isinstance(subject, str) or not subject:
        raise AuditDataError("audit subject must be a non-empty string")
    if len(subject) > 200:
        raise AuditDataError("audit subject is longer than 200 characters")
    if any(ch.isspace() for ch in subject) or "@" in subject:
        raise AuditDataError(
            "audit subject must be a reference such as 'inbox:<id>' (no spaces, no '@')"
        )
    return subject
