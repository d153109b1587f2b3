"""Diary writes through Open Dental's API Service: the sanctioned route.

Open Dental forbids third-party SQL writes (it hashes protected columns and
flags rows written behind its back); its API Service, a Windows service on
the practice's database server, writes for us:
``http://<server>:30223/api/v1/``, every request with
``Authorization: ODFHIR {DeveloperKey}/{CustomerKey}`` and
``Content-Type: application/json``.

The calls (opendental.com/site/apipatients.html, apiappointments.html,
apidefinitions.html, apiimplementation.html):

=====================  =====================================================
writer method          request
=====================  =====================================================
create_patient         ``POST /patients`` (201 with the patient; PatNum).
                       ``BillingType`` must be the definition's *name*, so
                       the writer reads ``GET /definitions?Category=4`` once
                       to turn ``billing_type_id`` into its name. No
                       ``Guarantor`` is sent: "Default is patient's PatNum".
create_appointment     ``POST /appointments`` (201 with the appointment;
                       AptNum). ``AptStatus`` "Scheduled", ``Confirmed`` the
                       hold's definition, booleans as "true"/"false".
set_confirmation       ``PUT /appointments/{AptNum}/Confirm`` ``{"defNum"}``.
move_appointment       ``PUT /appointments/{AptNum}`` with ``AptDateTime``,
                       ``Op``, ``ProvNum``, ``Pattern`` (fields left out do
                       not change); then ``PUT .../Note`` appends
                       ``note_line`` unless the note already holds it.
attach_referral        ``GET /refattaches?PatNum=`` (apirefattaches.html);
                       unless one already names the source,
                       ``POST /refattaches`` ``{"PatNum", "referralName",
                       "ReferralType": "RefFrom"}``: "If a match is not
                       found, a new referral with that name is created".
release_appointment    ``PUT /appointments/{AptNum}`` ``{"AptStatus":
                       "UnschedList"}``, then ``PUT .../Note`` appends the
                       reason unless the note already ends with it. Not
                       ``PUT .../Break``: breaking is for a patient who
                       broke an appointment (counted against them, a
                       commlog by office preference), works only on a
                       Scheduled appointment (so a repeat would fail), and
                       without ``sendToUnscheduledList`` leaves it drawn.
check                  ``GET /definitions?Category=2`` (confirmation statuses:
                       no personal data), for ``bridge doctor``.
=====================  =====================================================

Status handling (documented codes: 200, 201, 400, 401, 404, 410, 504):
401 -> :class:`WriterAuthError`; 404 -> :class:`WriterNotFoundError`; other
4xx except 429 -> :class:`WriterRefusedError`; 429, 5xx, timeouts and
connection failures -> :class:`WriterUnavailableError` (retryable;
``may_have_applied`` unless the connection was never made). Open Dental
documents that 400 also covers "network issues" on its Remote API; the
API Service answers on the practice network, so 400 is taken as a refusal.

Not documented, and chosen here: the error body is read as a JSON string,
a JSON object with ``message``/``Message``, or plain text; the created id
comes from the body's ``PatNum``/``AptNum`` or else the ``Location``
header. Postcodes the API would reject (not US or Canadian) are left out
of the patient rather than failing the booking.

Privacy: request and response bodies are never logged (they carry names,
birth dates, phone numbers and notes); log records name the call, the
status, the elapsed time and the id. The keys are read from the keyring by
the factory and revealed only inside the httpx auth flow. Thread-safe (one
httpx client; the billing-type cache is guarded).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Generator, Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx

from bridge.pms.writers.base import (
    NewAppointment,
    NewPatient,
    check_aware,
    check_id,
    check_note_line,
    check_pattern,
    check_referral_name,
    release_note,
)
from bridge.pms.writers.errors import (
    WriteError,
    WriterAuthError,
    WriterNotFoundError,
    WriterRefusedError,
    WriterUnavailableError,
)
from bridge.pms.writers.formats import (
    od_date,
    od_datetime,
    phone_for_pms,
    scrub,
    wall_clock,
    zip_for_api,
)
from bridge.secrets import Secret

log = logging.getLogger(__name__)

DEFAULT_PORT = 30223
DEFCAT_APPT_CONFIRMED = 2
DEFCAT_BILLING_TYPES = 4
CONNECT_TIMEOUT_CAP = 10.0
_LOCATION_ID = re.compile(r"/([0-9]+)/?$")


class _OdFhirAuth(httpx.Auth):
    """``Authorization: ODFHIR {DeveloperKey}/{CustomerKey}``, revealed per request."""

    def __init__(self, developer_key: Secret, customer_key: Secret) -> None:
        self._developer = developer_key
        self._customer = customer_key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = (
            f"ODFHIR {self._developer.reveal()}/{self._customer.reveal()}"
        )
        yield request


class OpenDentalApiWriter:
    """A :class:`~bridge.pms.writers.base.DiaryWriter` over Open Dental's API
    (see the module docstring). ``base_url`` ends in ``/api/v1``;
    ``transport`` replaces the network in tests."""

    def __init__(
        self,
        base_url: str,
        developer_key: Secret,
        customer_key: Secret,
        *,
        timezone: ZoneInfo,
        timeout_seconds: float = 15.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("base_url must be an http(s) URL with a host")
        self.base_url = base_url.rstrip("/")
        self.tz = timezone
        self._where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
        self._http = httpx.Client(
            base_url=self.base_url + "/",
            auth=_OdFhirAuth(developer_key, customer_key),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            timeout=httpx.Timeout(
                timeout_seconds, connect=min(timeout_seconds, CONNECT_TIMEOUT_CAP)
            ),
            transport=transport,
            trust_env=False,
            follow_redirects=False,
        )
        self._billing_names: dict[str, str] = {}
        self._lock = threading.Lock()

    # -- the DiaryWriter calls ---------------------------------------------------

    def create_patient(self, patient: NewPatient) -> str:
        body: dict[str, Any] = {
            "LName": patient.last_name.strip(),
            "FName": patient.first_name.strip(),
            "Birthdate": od_date(patient.date_of_birth),
            "PriProv": int(patient.provider_id),
            "BillingType": self._billing_type_name(patient.billing_type_id),
        }
        if patient.phone:
            body["WirelessPhone"] = phone_for_pms(patient.phone)
        if patient.email:
            body["Email"] = patient.email.strip()
        if patient.postcode:
            zip_code = zip_for_api(patient.postcode)
            if zip_code is not None:
                body["Zip"] = zip_code
            else:
                log.info(
                    "postcode left out of the new patient: not in a format Open Dental accepts"
                )
        if patient.clinic_id is not None:
            body["ClinicNum"] = int(patient.clinic_id)
        personal = (
            patient.first_name,
            patient.last_name,
            patient.date_of_birth,
            patient.phone,
            patient.email,
            patient.postcode,
            body.get("WirelessPhone"),
        )
        response = self._call("POST", "patients", body=body, personal=personal)
        return self._created_id("POST /patients", response, "PatNum")

    def create_appointment(self, appointment: NewAppointment) -> str:
        start = wall_clock(appointment.start, self.tz)
        body: dict[str, Any] = {
            "PatNum": int(appointment.patient_id),
            "Op": int(appointment.operatory_id),
            "AptDateTime": od_datetime(start),
            "AptStatus": "Scheduled",
            "Pattern": appointment.pattern,
            "Confirmed": int(appointment.confirmed_def_id),
            "Note": appointment.note,
            "ProvNum": int(appointment.provider_id),
            "IsNewPatient": _flag(appointment.is_new_patient),
            "IsHygiene": _flag(appointment.is_hygiene),
        }
        if appointment.hygienist_id is not None:
            body["ProvHyg"] = int(appointment.hygienist_id)
        if appointment.appointment_type_id is not None:
            body["AppointmentTypeNum"] = int(appointment.appointment_type_id)
        if appointment.clinic_id is not None:
            body["ClinicNum"] = int(appointment.clinic_id)
        response = self._call("POST", "appointments", body=body, personal=(appointment.note,))
        return self._created_id("POST /appointments", response, "AptNum")

    def set_confirmation(self, appointment_id: str, confirmed_def_id: str) -> None:
        check_id(appointment_id, "appointment_id")
        check_id(confirmed_def_id, "confirmed_def_id")
        self._call(
            "PUT",
            f"appointments/{appointment_id}/Confirm",
            body={"defNum": int(confirmed_def_id)},
            label="PUT /appointments/{AptNum}/Confirm",
            ident=appointment_id,
        )

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
        check_id(appointment_id, "appointment_id")
        check_aware(start, "start")
        if note_line is not None:
            check_note_line(note_line)
        body = {
            "AptDateTime": od_datetime(wall_clock(start, self.tz)),
            "Op": int(check_id(operatory_id, "operatory_id")),
            "ProvNum": int(check_id(provider_id, "provider_id")),
            "Pattern": check_pattern(pattern),
        }
        response = self._call(
            "PUT",
            f"appointments/{appointment_id}",
            body=body,
            label="PUT /appointments/{AptNum}",
            ident=appointment_id,
        )
        if note_line is None:
            return
        note = _json_object(response).get("Note")
        if isinstance(note, str) and note_line in note:
            return  # moved before (a repeat, or a move back): the mark is there
        self._call(
            "PUT",
            f"appointments/{appointment_id}/Note",
            body={"Note": note_line},
            label="PUT /appointments/{AptNum}/Note",
            ident=appointment_id,
        )

    def attach_referral(self, patient_id: str, source: str) -> str:
        check_id(patient_id, "patient_id")
        check_referral_name(source)
        response = self._call(
            "GET",
            "refattaches",
            params={"PatNum": patient_id},
            label="GET /refattaches",
        )
        for row in _json_list(response):
            if (
                isinstance(row, Mapping)
                and str(row.get("referralName", "")).casefold() == source.casefold()
                and str(row.get("ReferralType", "")) == "RefFrom"
            ):
                return str(row.get("RefAttachNum", ""))  # attached before: once is enough
        created = self._call(
            "POST",
            "refattaches",
            body={"PatNum": int(patient_id), "referralName": source, "ReferralType": "RefFrom"},
            label="POST /refattaches",
        )
        return self._created_id("POST /refattaches", created, "RefAttachNum")

    def release_appointment(self, appointment_id: str, reason_code: str) -> None:
        check_id(appointment_id, "appointment_id")
        line = release_note(reason_code)
        response = self._call(
            "PUT",
            f"appointments/{appointment_id}",
            body={"AptStatus": "UnschedList"},
            label="PUT /appointments/{AptNum}",
            ident=appointment_id,
        )
        note = _json_object(response).get("Note")
        if isinstance(note, str) and note.rstrip().endswith(line):
            return  # released before (a repeat): the reason is already there
        try:
            self._call(
                "PUT",
                f"appointments/{appointment_id}/Note",
                body={"Note": line},
                label="PUT /appointments/{AptNum}/Note",
                ident=appointment_id,
            )
        except WriteError as exc:
            # The appointment is out of the chair; only the explanation for the
            # front desk is missing. The bridge's audit trail has the reason.
            log.warning(
                "released appointment, but its note could not be appended",
                extra={"appointment": appointment_id, "error": exc.message},
            )

    # -- doctor ------------------------------------------------------------------

    def check(self) -> str:
        """``GET /definitions?Category=2``: reachable, keys accepted, no personal data read."""
        response = self._call(
            "GET",
            "definitions",
            params={"Category": str(DEFCAT_APPT_CONFIRMED)},
            label="GET /definitions",
        )
        rows = _json_list(response)
        return (
            f"Open Dental API at {self._where} accepted the keys "
            f"({len(rows)} appointment confirmation statuses)"
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OpenDentalApiWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<OpenDentalApiWriter {self._where}>"

    # -- plumbing ----------------------------------------------------------------

    def _billing_type_name(self, def_id: str) -> str:
        with self._lock:
            if def_id not in self._billing_names:
                response = self._call(
                    "GET",
                    "definitions",
                    params={"Category": str(DEFCAT_BILLING_TYPES), "includeHidden": "true"},
                    label="GET /definitions",
                )
                for row in _json_list(response):
                    if isinstance(row, Mapping) and isinstance(row.get("ItemName"), str):
                        self._billing_names[str(row.get("DefNum"))] = row["ItemName"]
            name = self._billing_names.get(def_id)
        if name is None:
            raise WriterRefusedError(
                f"billing type definition {def_id} is not a billing type in Open Dental "
                "(definition category 4)",
                operation="GET /definitions",
                fix="Set bookings.new_patient_billing_type to a billing type that exists.",
            )
        return name

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        label: str | None = None,
        ident: str | None = None,
        personal: Iterable[object] = (),
    ) -> httpx.Response:
        operation = label or f"{method} /{path}"
        content = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        started = time.monotonic()
        try:
            response = self._http.request(method, path, content=content, params=params)
        except httpx.TransportError as exc:
            raise self._transport_error(operation, exc) from None
        elapsed_ms = round((time.monotonic() - started) * 1000)
        log.info(
            "Open Dental API call",
            extra={
                "operation": operation,
                "status": response.status_code,
                "ms": elapsed_ms,
                "appointment": ident,
            },
        )
        if response.status_code < 300:
            return response
        raise self._status_error(operation, response, personal)

    def _transport_error(self, operation: str, exc: httpx.TransportError) -> WriteError:
        name = type(exc).__name__
        if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError):
            return WriterUnavailableError(
                f"{operation}: Open Dental's API Service at {self._where} could not be "
                f"reached ({name})",
                operation=operation,
                may_have_applied=False,
                timed_out=isinstance(exc, httpx.ConnectTimeout),
                fix=(
                    "Check that OpenDentalAPIService runs on the Open Dental server, that "
                    "port 30223 is open in its firewall, and writer.url."
                ),
            )
        if isinstance(exc, httpx.UnsupportedProtocol):
            return WriterRefusedError(
                f"{operation}: unsupported URL scheme in writer.url", operation=operation
            )
        if isinstance(exc, httpx.TimeoutException):
            return WriterUnavailableError(
                f"{operation}: Open Dental's API Service did not answer in time ({name}); "
                "the write may have been carried out",
                operation=operation,
                may_have_applied=True,
                timed_out=True,
            )
        return WriterUnavailableError(
            f"{operation}: the connection to Open Dental's API Service failed ({name}); "
            "the write may have been carried out",
            operation=operation,
            may_have_applied=True,
        )

    def _status_error(
        self, operation: str, response: httpx.Response, personal: Iterable[object]
    ) -> WriteError:
        status = response.status_code
        said = scrub(_explanation(response), personal)
        detail = f"{operation}: Open Dental answered {status}" + (f": {said}" if said else "")
        if status == 401:
            return WriterAuthError(detail, operation=operation, status=status)
        if status == 404:
            return WriterNotFoundError(detail, operation=operation, status=status)
        if status == 429 or status >= 500:
            return WriterUnavailableError(
                detail, operation=operation, status=status, may_have_applied=status != 429
            )
        return WriterRefusedError(detail, operation=operation, status=status)

    @staticmethod
    def _created_id(operation: str, response: httpx.Response, key: str) -> str:
        value = _json_object(response).get(key)
        if isinstance(value, int) and value > 0:
            return str(value)
        match = _LOCATION_ID.search(response.headers.get("location", ""))
        if match:
            return match.group(1)
        raise WriterUnavailableError(
            f"{operation}: Open Dental answered {response.status_code} without a readable "
            f"{key}; the record was probably created",
            operation=operation,
            status=response.status_code,
            may_have_applied=True,
        )


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return None


def _json_object(response: httpx.Response) -> Mapping[str, Any]:
    body = _json(response)
    return body if isinstance(body, Mapping) else {}


def _json_list(response: httpx.Response) -> list[Any]:
    body = _json(response)
    if not isinstance(body, list):
        raise WriterUnavailableError(
            "Open Dental answered without the expected list", status=response.status_code
        )
    return body


def _explanation(response: httpx.Response) -> str:
    """The PMS's reason for a failure: a JSON string, a JSON ``message``, or text."""
    body = _json(response)
    if isinstance(body, str):
        return body
    if isinstance(body, Mapping):
        for key in ("message", "Message", "error", "detail"):
            if isinstance(body.get(key), str):
                return str(body[key])
        return ""
    try:
        return response.text
    except (UnicodeDecodeError, LookupError):
        return ""
