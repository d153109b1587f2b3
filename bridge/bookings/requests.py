"""Booking items as typed requests, validated before anything touches the PMS.

:func:`parse_booking_request`, :func:`parse_cancel` and
:func:`parse_reschedule` turn an inbox payload (Cloud API v1, DESIGN.md)
into frozen dataclasses or raise
:class:`~bridge.inbox.handlers.InvalidRequest`. They check shape, types,
lengths, characters, dates and time zones only; what needs the PMS (a known
appointment type, provider or operatory, a free slot) is checked by the
pipeline. Unknown extra fields are ignored, as the API promises.

Rules worth knowing:

* ``start`` must carry a UTC offset, and that offset must be the practice's
  own at that instant. A time inside a daylight-saving gap, or sent with
  another zone's offset, is refused rather than silently moved: the
  appointment is written at the practice's wall-clock time, so a client
  that disagrees about the offset disagrees about the time. A time in the
  hour repeated when clocks go back is refused too: the PMS stores wall
  clock times and could not tell the two apart.
* Times are on the 5-minute grid of Open Dental's ``Pattern``; lengths are
  5 to 540 minutes (nine hours, the longest the PMS allows).
* A patient needs a phone or an email: a match is only ever confirmed by
  one of them, so without both a returning patient could never be matched.
* Names accept letters (any script), spaces, hyphens, apostrophes and
  periods; anything else (digits, quotes, semicolons, control characters)
  is refused. Messages name the field and the rule, never the value.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers

from bridge.inbox.handlers import InvalidRequest

MAX_NAME = 100
MAX_EMAIL = 100
MAX_PHONE = 30
MAX_POSTCODE = 20
MAX_NOTES = 2_000
MAX_REASON = 200
MAX_TYPE = 255
MAX_ID = 20
MIN_MINUTES = 5
MAX_MINUTES = 540
GRID_MINUTES = 5
OLDEST_BIRTH_YEAR = 1900
MAX_START_DAYS_AHEAD = 3 * 366  # hard sanity bound; the policy's window is tighter

_NAME_PUNCTUATION = frozenset(" -'.\u2019\u2010\u2011")
_ID = re.compile(r"[0-9]{1,20}")
_POSTCODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 -]{0,19}")
_SOURCE = re.compile(r"[a-z0-9][a-z0-9._-]{0,39}")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True)
class PatientDetails:
    """The patient named by a booking request (personal data: never log it)."""

    first_name: str
    last_name: str
    date_of_birth: date
    phone: str | None  # E.164
    email: str | None
    postcode: str | None


@dataclass(frozen=True)
class BookingRequest:
    patient: PatientDetails
    start: datetime  # aware, in the practice's zone
    duration_minutes: int | None
    appointment_type: str
    provider_id: str | None
    operatory_id: str | None
    location_id: str | None
    notes: str
    source: str | None


@dataclass(frozen=True)
class CancelRequest:
    appointment_id: str
    reason: str


@dataclass(frozen=True)
class RescheduleRequest:
    appointment_id: str
    start: datetime
    duration_minutes: int | None
    provider_id: str | None
    operatory_id: str | None


def _object(payload: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = payload.get(name)
    if not isinstance(value, Mapping):
        raise InvalidRequest(f"{name} is required and must be an object")
    return value


def _text(
    obj: Mapping[str, Any], name: str, field: str, limit: int, *, required: bool
) -> str | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"{field} is required")
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{field} must be a string")
    value = unicodedata.normalize("NFC", value).strip()
    if not value:
        if required:
            raise InvalidRequest(f"{field} must not be empty")
        return None
    if len(value) > limit:
        raise InvalidRequest(f"{field} is longer than {limit} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in value):
        raise InvalidRequest(f"{field} contains control or unassigned characters")
    return value


def _name(obj: Mapping[str, Any], name: str, field: str) -> str:
    value = _text(obj, name, field, MAX_NAME, required=True)
    assert value is not None
    if not any(ch.isalpha() for ch in value):
        raise InvalidRequest(f"{field} must contain letters")
    for ch in value:
        if not (ch.isalpha() or ch in _NAME_PUNCTUATION or unicodedata.category(ch) == "Mn"):
            raise InvalidRequest(
                f"{field} may hold only letters, spaces, hyphens, apostrophes and periods"
            )
    return " ".join(value.split())


def _identifier(obj: Mapping[str, Any], name: str, field: str, *, required: bool) -> str | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"{field} is required")
        return None
    if isinstance(value, bool):
        raise InvalidRequest(f"{field} must be a PMS id (digits)")
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidRequest(f"{field} must be a PMS id of 1 to {MAX_ID} digits")
    if int(value) == 0:
        raise InvalidRequest(f"{field} must not be 0 (0 means none in the PMS)")
    return value


def _birth_date(obj: Mapping[str, Any], today: date) -> date:
    raw = obj.get("date_of_birth")
    if not isinstance(raw, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        raise InvalidRequest("patient.date_of_birth must be a date written YYYY-MM-DD")
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest("patient.date_of_birth is not a real calendar date") from None
    if value > today:
        raise InvalidRequest("patient.date_of_birth is in the future")
    if value.year < OLDEST_BIRTH_YEAR:
        raise InvalidRequest(f"patient.date_of_birth is before {OLDEST_BIRTH_YEAR}")
    return value


def _phone(obj: Mapping[str, Any], country: str) -> str | None:
    raw = _text(obj, "phone", "patient.phone", MAX_PHONE, required=False)
    if raw is None:
        return None
    try:
        number = phonenumbers.parse(raw, country)
    except phonenumbers.NumberParseException:
        raise InvalidRequest("patient.phone is not a phone number") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidRequest("patient.phone is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _email(obj: Mapping[str, Any]) -> str | None:
    raw = _text(obj, "email", "patient.email", MAX_EMAIL, required=False)
    if raw is None:
        return None
    if not _EMAIL.fullmatch(raw) or raw.startswith(".") or ".." in raw:
        raise InvalidRequest("patient.email is not an email address")
    return raw


def _patient(payload: Mapping[str, Any], country: str, today: date) -> PatientDetails:
    obj = _object(payload, "patient")
    first = _name(obj, "first_name", "patient.first_name")
    last = _name(obj, "last_name", "patient.last_name")
    born = _birth_date(obj, today)
    phone = _phone(obj, country)
    email = _email(obj)
    if phone is None and email is None:
        raise InvalidRequest("patient needs a phone or an email to confirm who they are")
    postcode = _text(obj, "postcode", "patient.postcode", MAX_POSTCODE, required=False)
    if postcode is not None and not _POSTCODE.fullmatch(postcode):
        raise InvalidRequest("patient.postcode may hold only letters, digits, spaces and hyphens")
    return PatientDetails(first, last, born, phone, email, postcode)


def parse_start(raw: object, tz: ZoneInfo, now: datetime, field: str = "start") -> datetime:
    """An ISO 8601 instant with the practice's own offset, on the 5-minute grid."""
    if not isinstance(raw, str) or len(raw) > 40:
        raise InvalidRequest(f"{field} must be an ISO 8601 date and time with a UTC offset")
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest(f"{field} is not an ISO 8601 date and time") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidRequest(f"{field} must carry a UTC offset (e.g. -08:00)")
    local = value.astimezone(tz)
    given = value.utcoffset()
    expected = local.utcoffset()
    if given != expected:
        raise InvalidRequest(
            f"{field}'s UTC offset {_offset(given)} is not the practice's offset at that time "
            f"({_offset(expected)}); send the practice's local time with its offset"
        )
    wall = local.replace(tzinfo=None)
    if wall.replace(tzinfo=tz, fold=0).utcoffset() != wall.replace(tzinfo=tz, fold=1).utcoffset():
        raise InvalidRequest(
            f"{field} falls in the hour repeated when clocks go back; the diary keeps "
            "wall-clock times and cannot tell the two apart"
        )
    if local.second or local.microsecond or local.minute % GRID_MINUTES:
        raise InvalidRequest(f"{field} must fall on a {GRID_MINUTES}-minute boundary")
    if local < now - timedelta(minutes=1):
        raise InvalidRequest(f"{field} is in the past")
    if local > now + timedelta(days=MAX_START_DAYS_AHEAD):
        raise InvalidRequest(f"{field} is more than {MAX_START_DAYS_AHEAD} days ahead")
    return local


def _offset(value: timedelta | None) -> str:
    if value is None:
        return "none"
    minutes = int(value.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _duration(payload: Mapping[str, Any], field: str = "duration_minutes") -> int | None:
    raw = payload.get(field)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise InvalidRequest(f"{field} must be a whole number of minutes")
    if not MIN_MINUTES <= raw <= MAX_MINUTES:
        raise InvalidRequest(f"{field} must be between {MIN_MINUTES} and {MAX_MINUTES}")
    if raw % GRID_MINUTES:
        raise InvalidRequest(f"{field} must be a multiple of {GRID_MINUTES}")
    return raw


def parse_booking_request(
    payload: Mapping[str, Any], *, tz: ZoneInfo, country: str, now: datetime
) -> BookingRequest:
    """A ``booking.request`` payload as a :class:`BookingRequest`, or :class:`InvalidRequest`."""
    patient = _patient(payload, country, now.astimezone(tz).date())
    start = parse_start(payload.get("start"), tz, now.astimezone(tz))
    duration = _duration(payload)
    raw_type = payload.get("appointment_type")
    if isinstance(raw_type, int) and not isinstance(raw_type, bool):
        raw_type = str(raw_type)
    appointment_type = _text({"t": raw_type}, "t", "appointment_type", MAX_TYPE, required=True)
    assert appointment_type is not None
    notes = _text(payload, "notes", "notes", MAX_NOTES, required=False) or ""
    source = payload.get("source")
    if source is not None and (not isinstance(source, str) or not _SOURCE.fullmatch(source)):
        raise InvalidRequest(
            "source must be a short lower-case tag of letters, digits, dots, hyphens, underscores"
        )
    return BookingRequest(
        patient=patient,
        start=start,
        duration_minutes=duration,
        appointment_type=appointment_type,
        provider_id=_identifier(payload, "provider_id", "provider_id", required=False),
        operatory_id=_identifier(payload, "operatory_id", "operatory_id", required=False),
        location_id=_identifier(payload, "location_id", "location_id", required=False),
        notes=notes,
        source=source,
    )


def parse_cancel(payload: Mapping[str, Any]) -> CancelRequest:
    appointment_id = _identifier(payload, "pms_appointment_id", "pms_appointment_id", required=True)
    assert appointment_id is not None
    reason = _text(payload, "reason", "reason", MAX_REASON, required=False) or ""
    return CancelRequest(appointment_id, reason)


def parse_reschedule(
    payload: Mapping[str, Any], *, tz: ZoneInfo, now: datetime
) -> RescheduleRequest:
    appointment_id = _identifier(payload, "pms_appointment_id", "pms_appointment_id", required=True)
    assert appointment_id is not None
    return RescheduleRequest(
        appointment_id=appointment_id,
        start=parse_start(payload.get("start"), tz, now.astimezone(tz)),
        duration_minutes=_duration(payload),
        provider_id=_identifier(payload, "provider_id", "provider_id", required=False),
        operatory_id=_identifier(payload, "operatory_id", "operatory_id", required=False),
    )
