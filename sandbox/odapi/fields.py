"""Open Dental API field conventions: JSON bodies, enums as words, strict values.

From opendental.com/site/apiimplementation.html: fields are PascalCase;
enumerations travel as their names ("Scheduled", "Male"); booleans are the
strings "true"/"false"; dates are "yyyy-MM-dd" and date-times
"yyyy-MM-dd HH:mm:ss"; foreign keys are numbers. :class:`Body` reads a
request body by those rules and raises :class:`ApiError` (400 with an
explanation) for anything else, naming the field, never echoing a value.

Chosen where the documentation is silent: a foreign key may also be sent as
a string of digits; a field the stand-in does not know is refused (so a
client's typo is caught rather than silently ignored).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

APT_STATUS = {
    "Scheduled": 1,
    "Complete": 2,
    "UnschedList": 3,
    "ASAP": 4,
    "Broken": 5,
    "Planned": 6,
    "PtNote": 7,
    "PtNoteCompleted": 8,
}
PRIORITY = {"Normal": 0, "ASAP": 1}
PAT_STATUS = {
    "Patient": 0,
    "NonPatient": 1,
    "Inactive": 2,
    "Archived": 3,
    "Deleted": 4,
    "Deceased": 5,
    "Prospective": 6,
}
GENDER = {"Male": 0, "Female": 1, "Unknown": 2, "Other": 3}
POSITION = {"Single": 0, "Married": 1, "Child": 2, "Widowed": 3, "Divorced": 4}
CONTACT_METHOD = {
    "None": 0,
    "DoNotCall": 1,
    "HmPhone": 2,
    "WkPhone": 3,
    "WirelessPh": 4,
    "Email": 5,
    "SeeNotes": 6,
    "Mail": 7,
    "TextMessage": 8,
}
YES_NO = {"Unknown": 0, "Yes": 1, "No": 2}
DEF_CATEGORY = {
    0: "AccountColors",
    1: "AdjTypes",
    2: "ApptConfirmed",
    3: "ApptProcsQuickAdd",
    4: "BillingTypes",
    10: "PaymentTypes",
    11: "ProcCodeCats",
    12: "ProgNoteColors",
    13: "RecallUnschedStatus",
    16: "Diagnosis",
    17: "AppointmentColors",
    18: "ImageCats",
    20: "TxPriorities",
    21: "MiscColors",
    25: "BlockoutTypes",
    26: "ProcButtonCats",
    27: "CommLogTypes",
    29: "PaySplitUnearnedType",
    30: "Prognosis",
    35: "ProviderSpecialties",
    55: "OperatoryTypes",
}
PATTERN = re.compile(r"[X/]+\Z")
MAX_PATTERN = 108  # 9 hours of 5-minute steps
_KEY = re.compile(r"[0-9]{1,18}\Z")


class ApiError(Exception):
    """An answer other than success: HTTP ``status`` with an explanation."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def name_of(mapping: Mapping[str, int], value: object, default: str = "") -> str:
    """The enum name of a stored number (``default`` when unknown)."""
    for name, number in mapping.items():
        if number == value:
            return name
    return default


def flag(value: object) -> str:
    return "true" if value else "false"


def date_text(value: object) -> str:
    """A stored date as ``yyyy-MM-dd`` (``0001-01-01`` for none)."""
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return value.isoformat()  # strftime drops the zeros of year 1 on some platforms
    return str(value or "0001-01-01")[:10]


def datetime_text(value: object) -> str:
    """A stored date-time as ``yyyy-MM-dd HH:mm:ss``."""
    if isinstance(value, datetime):
        return value.replace(microsecond=0).isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat() + " 00:00:00"
    return str(value or "0001-01-01 00:00:00")[:19]


class Body:
    """A JSON request body read field by field (see the module docstring).

    ``allowed`` is every field the call documents; ``unsupported`` those the
    stand-in does not store (refused with a 400 saying so).
    """

    def __init__(
        self, raw: object, allowed: Iterable[str], unsupported: Iterable[str] = ()
    ) -> None:
        if not isinstance(raw, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        self.raw: dict[str, Any] = raw
        allowed_set, unsupported_set = set(allowed), set(unsupported)
        for name in raw:
            if name in unsupported_set:
                raise ApiError(400, f"{name} is not supported by this stand-in of the API.")
            if name not in allowed_set:
                raise ApiError(400, f"{name} is not a field of this request.")

    def has(self, name: str) -> bool:
        return name in self.raw

    @property
    def names(self) -> list[str]:
        return list(self.raw)

    def text(self, name: str, *, limit: int = 255, required: bool = False) -> str | None:
        if name not in self.raw:
            if required:
                raise ApiError(400, f"{name} is required.")
            return None
        value = self.raw[name]
        if not isinstance(value, str):
            raise ApiError(400, f"{name} must be a string.")
        if required and not value.strip():
            raise ApiError(400, f"{name} is required.")
        if len(value) > limit:
            raise ApiError(400, f"{name} is longer than {limit} characters.")
        return value

    def key(self, name: str, *, required: bool = False) -> int | None:
        """A foreign key: a JSON number, or a string of digits."""
        if name not in self.raw:
            if required:
                raise ApiError(400, f"{name} is required.")
            return None
        value = self.raw[name]
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, str) and _KEY.match(value))
        ):
            raise ApiError(400, f"{name} must be a whole number.")
        number = int(value)
        if number < 0:
            raise ApiError(400, f"{name} must not be negative.")
        return number

    def boolean(self, name: str) -> bool | None:
        if name not in self.raw:
            return None
        value = self.raw[name]
        if not isinstance(value, str) or value.lower() not in ("true", "false"):
            raise ApiError(400, f'{name} must be either "true" or "false".')
        return value.lower() == "true"

    def enum(self, name: str, mapping: Mapping[str, int], allowed: Iterable[str]) -> int | None:
        if name not in self.raw:
            return None
        value = self.raw[name]
        choices = list(allowed)
        if not isinstance(value, str) or value not in choices:
            listed = ", ".join(f'"{c}"' for c in choices)
            raise ApiError(400, f"{name} must be one of {listed}.")
        return mapping[value]

    def day(self, name: str) -> str | None:
        value = self.text(name, limit=10)
        if value is None:
            return None
        try:
            return datetime.strptime(value, "%Y-%m-%d").strftime("%Y-%m-%d")
        except ValueError:
            raise ApiError(400, f'{name} must be a date in "yyyy-MM-dd" format.') from None

    def moment(self, name: str, *, required: bool = False) -> str | None:
        value = self.text(name, limit=19, required=required)
        if value is None:
            return None
        try:
            return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").strftime("%Y-%m-%d %H:%M:%S")
        except ValueError:
            raise ApiError(
                400, f'{name} must be a date and time in "yyyy-MM-dd HH:mm:ss" format.'
            ) from None

    def pattern(self, name: str) -> str | None:
        value = self.text(name, limit=10_000)
        if value is None:
            return None
        if not PATTERN.match(value):
            raise ApiError(400, f"{name} must consist of 'X' and '/' characters only.")
        return value
