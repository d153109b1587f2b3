"""The one interface the booking pipeline writes the diary through.

:class:`DiaryWriter` is what :mod:`bridge.bookings.pipeline` calls; each
PMS write route implements it (:mod:`.opendental_api` through Open Dental's
API Service, :mod:`.sql` straight into tables where a vendor allows that).
Reads (re-check, verify) never go through a writer: they use ODBC.

Contracts every writer keeps:

* **Ids are strings** of the PMS's primary keys (``"1042"``).
* **Times.** :attr:`NewAppointment.start` and ``move_appointment``'s
  ``start`` are aware datetimes; the writer stores the practice's local
  wall-clock time, as the PMS does. A naive time is refused.
* **A hold is an appointment** with status Scheduled whose confirmation
  status is the PMS's "unconfirmed" definition (``confirmed_def_id``);
  :meth:`DiaryWriter.set_confirmation` turns it into a booking.
* **Release** (undo a hold, cancel a booking) leaves the appointment in
  the PMS but no longer in the chair: Open Dental's status *UnschedList*
  (3), which its appointment book does not draw. *Broken* (5) is not used:
  Open Dental still draws broken appointments (crossed out) and counts
  them against the patient. The reason code is appended to the
  appointment's note. Releasing twice is harmless.
* **Idempotency.** ``set_confirmation``, ``move_appointment`` and
  ``release_appointment`` may be repeated. ``create_patient`` and
  ``create_appointment`` create a new row each time: after an error whose
  ``may_have_applied`` is true, look for the row (the appointment note
  starts with the pipeline's marker) before calling again.
* **Errors** are the :mod:`.errors` tree only: refused (not retryable) or
  unavailable (retryable). Bad input is refused before anything is sent.
* **Referral source.** :meth:`DiaryWriter.attach_referral` records where a
  new patient came from (``online``, ``phone-ai``, ``google``): Open
  Dental's ``refattach`` row (RefType RefFrom) pointing at the ``referral``
  whose LName is that name, created (NotPerson) when the practice has none.
  Attaching the same source twice attaches it once.
* **The bridge's mark.** Every appointment the bridge writes carries a note
  line starting with the pipeline's marker ``[bridge ref <12 hex>]``:
  ``create_appointment`` writes it first in the note, ``move_appointment``
  appends ``note_line`` unless the note already holds it; releasing appends
  its reason line and leaves earlier lines (the marker) as they are.
* **Personal data** (names, birth date, phone, email, postcode, notes)
  travels to the PMS and nowhere else: never into logs, error messages or
  ``repr`` (the personal fields below are left out of it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol

from bridge.pms.writers.errors import WriteRequestError

MAX_PATTERN_STEPS = 108
"""Longest Open Dental pattern: 9 hours of 5-minute steps (the API trims longer ones)."""

_ID = re.compile(r"[1-9][0-9]{0,18}\Z")
_PATTERN = re.compile(r"[X/]+\Z")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}\Z")
_REASON = re.compile(r"[a-z0-9_]{1,40}\Z")
_REFERRAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}\Z")
NAME_MAX = 100  # patient.LName / FName varchar(100)
EMAIL_MAX = 100  # patient.Email varchar(100)
POSTCODE_MAX = 100  # patient.Zip varchar(100)


def check_id(value: object, name: str) -> str:
    """``value`` if it is a PMS key (a positive whole number as a string)."""
    if not isinstance(value, str) or not _ID.match(value):
        raise WriteRequestError(f"{name} must be a positive whole number as a string")
    return value


def check_pattern(value: object, name: str = "pattern") -> str:
    """``value`` if it is an Open Dental time pattern: 'X' and '/' in 5-minute steps."""
    if not isinstance(value, str) or not _PATTERN.match(value):
        raise WriteRequestError(f"{name} must be 'X' and '/' characters (5-minute steps)")
    if len(value) > MAX_PATTERN_STEPS:
        raise WriteRequestError(
            f"{name} is {len(value) * 5} minutes; Open Dental allows at most 9 hours"
        )
    return value


def check_aware(value: object, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise WriteRequestError(f"{name} must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise WriteRequestError(f"{name} must carry its time zone (an aware datetime)")
    return value


def check_reason(value: object) -> str:
    """A reason code (``slot_taken``): lower-case letters, digits, '_'; no free text."""
    if not isinstance(value, str) or not _REASON.match(value):
        raise WriteRequestError(
            "reason_code must be 1-40 lower-case letters, digits or '_' (a code, not text)"
        )
    return value


def check_referral_name(value: object) -> str:
    """A referral source name (``referral.LName``): a short tag, no free text."""
    if not isinstance(value, str) or not _REFERRAL.match(value):
        raise WriteRequestError(
            "source must be 1-100 letters, digits, spaces, '.', '-' or '_' (a tag such as "
            "'online' or 'phone-ai')"
        )
    return value


def check_note_line(value: object) -> str:
    """A line the bridge appends to an appointment note: one line, short."""
    if not isinstance(value, str) or not 0 < len(value) <= 255 or "\n" in value or "\r" in value:
        raise WriteRequestError("note_line must be one line of at most 255 characters")
    return value


def _text(value: object, name: str, limit: int, *, required: bool) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not value.strip():
        raise WriteRequestError(f"{name} must be non-empty text")
    if len(value) > limit:
        raise WriteRequestError(f"{name} is longer than the PMS allows ({limit} characters)")
    if any(ch in value for ch in "\r\n\t\x00"):
        raise WriteRequestError(f"{name} must be one line of text")


@dataclass(frozen=True)
class NewPatient:
    """A patient to create: the head of a new family (Guarantor = itself).

    ``provider_id`` becomes the primary provider (Open Dental's ``PriProv``,
    required) and ``billing_type_id`` the billing type definition (category
    4, required: without one the patient is missing from reports).
    ``phone`` is E.164 (``+14155550123``) or None.
    """

    first_name: str = field(repr=False)
    last_name: str = field(repr=False)
    date_of_birth: date = field(repr=False)
    phone: str | None = field(repr=False)
    email: str | None = field(repr=False)
    postcode: str | None = field(repr=False)
    provider_id: str
    billing_type_id: str
    clinic_id: str | None = None

    def __post_init__(self) -> None:
        _text(self.first_name, "first_name", NAME_MAX, required=True)
        _text(self.last_name, "last_name", NAME_MAX, required=True)
        if not isinstance(self.date_of_birth, date) or isinstance(self.date_of_birth, datetime):
            raise WriteRequestError("date_of_birth must be a date")
        if not date(1880, 1, 1) <= self.date_of_birth <= date.today():
            raise WriteRequestError("date_of_birth must be between 1880-01-01 and today")
        if self.phone is not None and (
            not isinstance(self.phone, str) or not _E164.match(self.phone)
        ):
            raise WriteRequestError("phone must be an E.164 number such as +14155550123")
        _text(self.email, "email", EMAIL_MAX, required=False)
        if self.email is not None and "@" not in self.email:
            raise WriteRequestError("email must be an e-mail address")
        _text(self.postcode, "postcode", POSTCODE_MAX, required=False)
        check_id(self.provider_id, "provider_id")
        check_id(self.billing_type_id, "billing_type_id")
        if self.clinic_id is not None:
            check_id(self.clinic_id, "clinic_id")


@dataclass(frozen=True)
class NewAppointment:
    """An appointment to write as a tentative hold.

    ``pattern`` gives the length ('X' provider time, '/' assistant time, 5
    minutes each). ``confirmed_def_id`` is the confirmation status to write
    (the "Unconfirmed" definition for a hold). ``note`` starts with the
    pipeline's marker, which finds the hold again after a crash. With
    ``is_new_patient`` Open Dental sets the patient's first-visit date (if
    the patient has no completed procedure). ``is_hygiene`` marks a hygiene
    appointment (the hygienist's time is the main time).
    """

    patient_id: str
    operatory_id: str
    provider_id: str
    hygienist_id: str | None
    start: datetime
    pattern: str
    appointment_type_id: str | None
    is_new_patient: bool
    confirmed_def_id: str
    note: str = field(repr=False)
    clinic_id: str | None = None
    is_hygiene: bool = False

    def __post_init__(self) -> None:
        check_id(self.patient_id, "patient_id")
        check_id(self.operatory_id, "operatory_id")
        check_id(self.provider_id, "provider_id")
        for name in ("hygienist_id", "appointment_type_id", "clinic_id"):
            value = getattr(self, name)
            if value is not None:
                check_id(value, name)
        check_aware(self.start, "start")
        check_pattern(self.pattern)
        check_id(self.confirmed_def_id, "confirmed_def_id")
        if not isinstance(self.note, str) or len(self.note) > 65_535:
            raise WriteRequestError("note must be text of at most 65535 characters")
        if not isinstance(self.is_new_patient, bool) or not isinstance(self.is_hygiene, bool):
            raise WriteRequestError("is_new_patient and is_hygiene must be true or false")

    @property
    def minutes(self) -> int:
        return len(self.pattern) * 5


class DiaryWriter(Protocol):
    """Writes into the PMS diary (contracts: the module docstring)."""

    def create_patient(self, patient: NewPatient) -> str:
        """Create the patient as the head of a new family; returns its id (PatNum)."""
        ...

    def create_appointment(self, appointment: NewAppointment) -> str:
        """Write the appointment (status Scheduled); returns its id (AptNum)."""
        ...

    def set_confirmation(self, appointment_id: str, confirmed_def_id: str) -> None:
        """Set the appointment's confirmation status (confirm a hold)."""
        ...

    def move_appointment(
        self,
        appointment_id: str,
        start: datetime,
        operatory_id: str,
        provider_id: str,
        pattern: str,
        *,
        note_line: str | None = None,
    ) -> None:
        """Reschedule: new start, chair, provider and length; append ``note_line``
        to the note unless it already holds it (the bridge's mark)."""
        ...

    def attach_referral(self, patient_id: str, source: str) -> str:
        """Record ``source`` as where the patient came from (see the module
        docstring); returns the attachment's id (RefAttachNum). Idempotent."""
        ...

    def release_appointment(self, appointment_id: str, reason_code: str) -> None:
        """Take the appointment out of the chair (undo a hold, cancel a booking)."""
        ...


class ManagedWriter(DiaryWriter, Protocol):
    """A :class:`DiaryWriter` that can be checked (``bridge doctor``) and closed."""

    def check(self) -> str:
        """Prove the write route answers and accepts the credentials, without
        writing; returns one line for people. Raises the :mod:`.errors` tree."""
        ...

    def close(self) -> None:
        """Release connections (idempotent)."""
        ...


RELEASED_STATUS = 3
"""Open Dental ApptStatus UnschedList: kept, off the appointment book."""


def release_note(reason_code: str) -> str:
    """The line appended to a released appointment's note (a code; no personal data)."""
    return f"[bridge] released from the diary (reason: {check_reason(reason_code)})"
