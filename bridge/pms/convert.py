"""Conversions from PMS column values to canonical values that may leave the building.

A profile field names a column and one of the conversions below. Each
conversion takes the raw value as the ODBC layer returned it and gives a
JSON-ready value (str, int, float, bool or None):

``id``              key of the row itself, as a string
``ref``             a foreign key; Open Dental's ``0`` ("none") becomes null
``text``            trimmed text; empty becomes null
``int`` ``float``   numbers (floats finite, below 1e15 in size; below 1e-4 is 0.0)
``bool``            0/1 flags
``enum``            a number mapped to a name through the profile's enum table
``date``            ``YYYY-MM-DD``; ``0001-01-01`` and zero dates become null
``local_datetime``  a PMS-local wall-clock time to ISO 8601 with the
                    practice's offset for that instant; zero dates become null
``timestamp``       a change stamp (server local time) as ISO 8601 with offset
``time``            ``HH:MM:SS`` (schedule start/stop times)
``pattern_minutes`` Open Dental's ``Pattern`` (5-minute units) to minutes

Local times around clock changes: an ambiguous wall time (the repeated hour in
autumn) is taken as its *first* occurrence; a wall time that does not exist
(the skipped hour in spring) is moved forward by the gap, which is what the
PMS's own clock would have shown. Both follow :mod:`zoneinfo`'s ``fold=0``.

Errors raise :class:`ConversionError` with a description of the problem and
never the value itself (it may be personal data).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

Canonical = str | int | float | bool | None
ConversionName = Literal[
    "id",
    "ref",
    "text",
    "int",
    "float",
    "bool",
    "enum",
    "date",
    "local_datetime",
    "timestamp",
    "time",
    "pattern_minutes",
]

FLOAT_MAX = 1e15  # no amount in a practice comes near; JSON writers agree below it
FLOAT_TINY = 1e-4  # smaller sizes are rounding noise (and would need exponent notation)
ZERO_YEAR_CUTOFF = 1880  # Open Dental's "no date" is 0001-01-01; nothing real is older
PATTERN_UNIT_MINUTES = 5


class ConversionError(ValueError):
    """A value could not be converted; the message never includes the value."""


def _is_zero_date(value: date) -> bool:
    return value.year < ZERO_YEAR_CUTOFF


def to_id(value: object) -> Canonical:
    if value is None:
        raise ConversionError("key is null")
    if isinstance(value, float | Decimal) and value == int(value):
        value = int(value)
    return str(value)


def to_ref(value: object) -> Canonical:
    if value is None or value in (0, "0", ""):
        return None
    return to_id(value)


def to_text(value: object) -> Canonical:
    if value is None:
        return None
    if isinstance(value, bytes):
        raise ConversionError("binary value in a text column")
    text = str(value).strip()
    return text or None


def to_int(value: object) -> Canonical:
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        number = Decimal(str(value).strip())
    except ArithmeticError as exc:
        raise ConversionError("not a number") from exc
    if number != number.to_integral_value():
        raise ConversionError("not a whole number")
    return int(number)


def to_float(value: object) -> Canonical:
    """A finite number below ``FLOAT_MAX`` in size, written in plain notation
    by every JSON encoder; sizes below ``FLOAT_TINY`` (floating-point noise in
    money columns, under a hundredth of a cent) become 0.0."""
    if value is None:
        return None
    if isinstance(value, int | float | Decimal):
        number = float(value)
    else:
        try:
            number = float(str(value).strip())
        except ValueError as exc:
            raise ConversionError("not a number") from exc
    if not math.isfinite(number) or abs(number) >= FLOAT_MAX:
        raise ConversionError("number out of range")
    return 0.0 if abs(number) < FLOAT_TINY else number


def to_bool(value: object) -> Canonical:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    number = to_int(value)
    if number not in (0, 1):
        raise ConversionError("flag is neither 0 nor 1")
    return number == 1


def to_date(value: object) -> Canonical:
    if value is None:
        return None
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return None if _is_zero_date(value) else value.isoformat()
    text = str(value).strip()
    if not text or text.startswith("0000-00-00"):
        return None
    try:
        parsed = date.fromisoformat(text[:10])
    except ValueError as exc:
        raise ConversionError("not a valid date") from exc
    return None if _is_zero_date(parsed) else parsed.isoformat()


def localize(wall: datetime, zone: ZoneInfo) -> datetime:
    """Attach the practice zone to a naive PMS wall-clock time (see module doc)."""
    aware = wall.replace(tzinfo=zone, fold=0)
    # A non-existent wall time does not round-trip through UTC: move it forward.
    roundtrip = aware.astimezone(UTC).astimezone(zone)
    if roundtrip.replace(tzinfo=None) != wall:
        return roundtrip
    return aware


def _as_datetime(value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return None if _is_zero_date(value.date()) else value
    if isinstance(value, date):
        return None if _is_zero_date(value) else datetime.combine(value, time())
    text = str(value).strip()
    if not text or text.startswith("0000-00-00"):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConversionError("not a valid date and time") from exc
    return None if _is_zero_date(parsed.date()) else parsed


def to_local_datetime(value: object, zone: ZoneInfo) -> Canonical:
    wall = _as_datetime(value)
    if wall is None:
        return None
    if wall.tzinfo is not None:
        return wall.astimezone(zone).isoformat()
    return _local_iso(wall, zone)


def _local_iso(wall: datetime, zone: ZoneInfo) -> str:
    # Localizing (two zone conversions) was the costliest step of reading a
    # row; every wall time of an hour without a clock change has the same
    # offset, so one localization per hour serves them all.
    suffix = _hour_offset(wall.year, wall.month, wall.day, wall.hour, zone)
    if suffix is not None:
        return wall.isoformat() + suffix
    return localize(wall, zone).isoformat()


@lru_cache(maxsize=65_536)
def _hour_offset(year: int, month: int, day: int, hour_of_day: int, zone: ZoneInfo) -> str | None:
    """The ``+HH:MM`` suffix shared by every wall time of that hour; None if
    the hour holds (or borders) a clock change, a skipped or a repeated time."""
    hour = datetime(year, month, day, hour_of_day)
    last = hour + timedelta(minutes=59, seconds=59)
    start, end = localize(hour, zone), localize(last, zone)
    if start.replace(tzinfo=None) != hour or end.replace(tzinfo=None) != last:
        return None  # part of the hour does not exist
    offset = start.utcoffset()
    if offset is None or end.utcoffset() != offset:
        return None
    if any(t.replace(tzinfo=zone, fold=1).utcoffset() != offset for t in (hour, last)):
        return None  # part of the hour happens twice
    return start.isoformat()[len(hour.isoformat()) :]


def to_time(value: object) -> Canonical:
    if value is None:
        return None
    if isinstance(value, time):
        return value.replace(microsecond=0).isoformat()
    if isinstance(value, timedelta):  # some drivers return TIME as an interval
        seconds = int(value.total_seconds())
        if not 0 <= seconds < 86400:
            raise ConversionError("time of day out of range")
        return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    try:
        return time.fromisoformat(str(value).strip()).replace(microsecond=0).isoformat()
    except ValueError as exc:
        raise ConversionError("not a valid time of day") from exc


def pattern_minutes(value: object) -> Canonical:
    if value is None:
        return None
    pattern = str(value).strip()
    if any(ch not in "X/|" for ch in pattern.upper()):
        raise ConversionError("pattern holds characters other than X and /")
    return len(pattern) * PATTERN_UNIT_MINUTES


def to_enum(value: object, names: Mapping[int, str]) -> Canonical:
    number = to_int(value)
    if number is None:
        return None
    assert isinstance(number, int)
    try:
        return names[number]
    except KeyError as exc:
        raise ConversionError(f"enum number {number} is not defined in the profile") from exc


Converter = Callable[[object], Canonical]


def converter_for(
    conversion: ConversionName, zone: ZoneInfo, enum_names: Mapping[int, str] | None = None
) -> Converter:
    """Return the function converting one raw value (zone/enum bound in)."""
    simple: dict[str, Converter] = {
        "id": to_id,
        "ref": to_ref,
        "text": to_text,
        "int": to_int,
        "float": to_float,
        "bool": to_bool,
        "date": to_date,
        "time": to_time,
        "pattern_minutes": pattern_minutes,
    }
    if conversion in simple:
        return simple[conversion]
    if conversion in ("local_datetime", "timestamp"):
        return lambda value: to_local_datetime(value, zone)
    if conversion == "enum":
        if enum_names is None:
            raise ValueError("enum conversion needs an enum table")
        names = dict(enum_names)
        return lambda value: to_enum(value, names)
    raise ValueError(f"unknown conversion {conversion!r}")
