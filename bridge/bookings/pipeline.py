"""The booking pipeline: request -> check -> hold -> verify -> confirm, or undo.

One :class:`BookingPipeline` per engine handles ``booking.request``,
``booking.cancel`` and ``booking.reschedule`` items (through the handlers
of :func:`booking_handlers`) and resolves front-desk exceptions (it is the
engine's :class:`~bridge.bookings.exceptions.ExceptionDesk`).

A booking request goes:

1. **validate** the payload (:mod:`.requests`), then the parts that need
   the PMS: a known appointment type, the policy (``never`` refuses);
2. **place** it: the slot is re-checked live (operatory and provider free
   for the whole length, inside hours, no blockout or holiday, inside the
   window and notice); when it is not free the result is ``conflict`` with
   the nearest alternatives;
3. **match** the patient (:mod:`.matching`); a doubt opens an exception
   (``needs_review``), no candidate creates the patient;
4. **hold**: the appointment is written with the PMS's "unconfirmed"
   status and the bridge's marker (:func:`~.lookups.marker`); a patient
   created for the request gets its ``source`` as referral source
   (:meth:`~bridge.pms.writers.DiaryWriter.attach_referral`);
5. **verify**: read back through ODBC; if an overlapping appointment
   appeared (a receptionist's click in the same instant) the hold is
   released and the result is ``conflict`` with alternatives;
6. **confirm** (policy ``auto``), or keep the hold and ask the front desk
   (``approve``: result ``held``).

**Crash safety.** Each step records the booking's ``stage`` (table
``booking``) *before* the PMS write it leads to, with the audit entry of
the step before, in one state transaction. A retried item resumes from its
stage: a ``holding`` booking first looks for its own marked hold, a
``releasing`` one releases again (idempotent), an answered one returns its
stored result. So a crash anywhere neither writes twice nor leaves a hold
unaccounted for.

**One writer.** All PMS writes of the pipeline (inbox items and front-desk
resolutions, which arrive on another thread) run under one lock, so the
bridge never races itself for a slot.

Cancel and reschedule follow the same rules: the appointment must be
scheduled and in the future; inside the minimum notice the change goes to
the front desk (``late_change``); a reschedule checks the new slot, moves,
verifies, and moves back on a collision.

Results carry the PMS ids and reason codes; messages never hold personal
data. Every PMS write and every decision is appended to the audit trail.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bridge import audit
from bridge.bookings import exceptions as desk
from bridge.bookings.diary import AppointmentType
from bridge.bookings.lookups import (
    DEFCAT_APPT_CONFIRMED,
    DEFCAT_BILLING_TYPES,
    AppointmentRow,
    BookingLookups,
    marker,
)
from bridge.bookings.matching import MatchOutcome
from bridge.bookings.policy import Policy
from bridge.bookings.ports import MatcherPort, SlotPort
from bridge.bookings.requests import (
    BookingRequest,
    CancelRequest,
    PatientDetails,
    RescheduleRequest,
    parse_booking_request,
    parse_cancel,
    parse_reschedule,
)
from bridge.bookings.slots import Slot, SlotCheck, diary_end
from bridge.cloud.protocol import Alternative, InboxResult, Reason
from bridge.config import Settings
from bridge.crashpoints import crashpoint
from bridge.errors import BookingError, PmsError
from bridge.inbox import records
from bridge.inbox.handlers import Handler, InvalidRequest, ReceivedItem
from bridge.pms.odbc import PmsConnection
from bridge.pms.writers import (
    DiaryWriter,
    NewAppointment,
    NewPatient,
    WriteError,
    WriterNotFoundError,
    WriterRefusedError,
    WriterUnavailableError,
)
from bridge.state import StateStore
from bridge.state.models import Booking, InboxItem

log = logging.getLogger(__name__)
_T = TypeVar("_T")

ACTOR = "bridge"
BOOKING_REQUEST = "booking.request"
BOOKING_CANCEL = "booking.cancel"
BOOKING_RESCHEDULE = "booking.reschedule"

# stages after which the item has its answer (the stored result is returned)
ANSWERED = frozenset(
    {"rejected", "conflict", "exception", "awaiting_approval", "confirmed", "cancelled"}
)
SCHEDULED_STATUSES = frozenset({1, 4})  # Scheduled, ASAP: what a patient may cancel or move
SLOT_REASONS_REJECTED = frozenset({"unknown_provider", "unknown_operatory"})

_MESSAGES = {
    "slot_taken": "the time asked for is taken in the diary",
    "provider_busy": "the provider is busy at that time",
    "outside_hours": "the provider does not work at that time",
    "blockout": "that time is blocked out in the diary",
    "holiday": "the practice is closed that day",
    "too_soon": "the time asked for is inside the practice's minimum notice",
    "outside_window": "the time asked for is beyond the practice's booking window",
    "unknown_provider": "provider_id is not a bookable provider of this practice",
    "unknown_operatory": "operatory_id is not a bookable operatory of this practice",
    "no_operatory": "no operatory with a working provider is free at that time",
    "ambiguous_patient": "more than one patient record fits; the front desk will decide",
    "near_match": "a patient record nearly fits; the front desk will decide",
    "unconfirmed_match": "a patient record fits but neither phone nor email confirms it; "
    "the front desk will decide",
    "approval_required": "this appointment type is held for the front desk's approval",
    "late_change": "the appointment is inside the practice's minimum notice; "
    "the front desk will decide",
}


def _message(code: str) -> str:
    return _MESSAGES.get(code, code.replace("_", " "))


def _now() -> datetime:
    return datetime.now(UTC)


def pattern_for(base: str, minutes: int) -> str:
    """An Open Dental ``Pattern`` of ``minutes`` (5-minute steps) shaped like ``base``.

    The type's own pattern when the length agrees; otherwise its first and
    last steps are kept (assistant time, usually ``/``) and the middle is
    provider time ``X``.
    """
    steps = max(1, -(-minutes // 5))  # round up: the slot engine checks whole 5-minute units
    base = "".join(ch for ch in base if ch in "X/")
    if len(base) == steps:
        return base
    if steps <= 2 or len(base) < 2:
        return "X" * steps
    return base[0] + "X" * (steps - 2) + base[-1]


@dataclass
class _Pms:
    """One PMS connection and the readers bound to it."""

    conn: PmsConnection
    lookups: BookingLookups
    slots: SlotPort
    matcher: MatcherPort


class BookingPipeline:
    """Handles booking items and front-desk resolutions (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        writer: DiaryWriter,
        *,
        open_pms: Callable[[], PmsConnection],
        slots_for: Callable[[PmsConnection, Policy], SlotPort],
        matcher_for: Callable[[PmsConnection], MatcherPort],
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.settings = settings
        self.store = store
        self.writer = writer
        self.tz = ZoneInfo(settings.practice.timezone)
        self.country = settings.practice.country
        self.policy = Policy.from_settings(settings.bookings)
        self._open_pms = open_pms
        self._slots_for = slots_for
        self._matcher_for = matcher_for
        self._clock = clock
        self._pms: _Pms | None = None
        self._lock = threading.RLock()
        self._defs: dict[tuple[int, str], str] = {}

    # -- plumbing --------------------------------------------------------------

    def now(self) -> datetime:
        return self._clock().astimezone(self.tz)

    def close(self) -> None:
        """Close the PMS connection (reopened on next use)."""
        with self._lock:
            if self._pms is not None:
                self._pms.conn.close()
                self._pms = None

    def shutdown(self) -> None:
        """Close the PMS connection and the writer (engine stop)."""
        self.close()
        close_writer = getattr(self.writer, "close", None)
        if callable(close_writer):
            close_writer()

    def _session(self) -> _Pms:
        if self._pms is None or self._pms.conn.closed:
            conn = self._open_pms()
            self._pms = _Pms(
                conn,
                BookingLookups(conn, self.tz),
                self._slots_for(conn, self.policy),
                self._matcher_for(conn),
            )
        return self._pms

    def _guarded(self, work: Callable[[_Pms], _T]) -> _T:
        """Run ``work`` under the write lock; a PMS failure drops the connection."""
        with self._lock:
            try:
                return work(self._session())
            except WriteError:
                raise  # the writer's own failure: the ODBC connection is fine
            except PmsError:
                self.close()
                raise

    def with_pms(self, work: Callable[[Any], _T]) -> _T:
        """Run ``work(pms)`` on the pipeline's PMS readers under its write lock."""
        return self._guarded(work)

    def _item_work(self, item_id: str, work: Callable[[_Pms], InboxResult]) -> InboxResult:
        """:meth:`_guarded` for one item: a refused write becomes a front-desk review."""

        def run(pms: _Pms) -> InboxResult:
            try:
                return work(pms)
            except WriterRefusedError as exc:
                return self._refused(item_id, exc)

        return self._guarded(run)

    def _definition(self, pms: _Pms, category: int, name: str) -> str:
        key = (category, name.casefold())
        if key not in self._defs:
            found = pms.lookups.definition_id(category, name)
            if found is None:
                raise BookingError(
                    f"the PMS has no visible definition named as configured in "
                    f"bookings ({'confirmation status' if category == 2 else 'billing type'})",
                    fix="Set bookings.hold_status / confirmed_status / new_patient_billing_type "
                    "to names that exist in the PMS's definitions.",
                )
            self._defs[key] = found
        return self._defs[key]

    def _billing_type(self, pms: _Pms) -> str:
        name = self.settings.bookings.new_patient_billing_type
        if name:
            return self._definition(pms, DEFCAT_BILLING_TYPES, name)
        first = pms.lookups.first_definition_id(DEFCAT_BILLING_TYPES)
        if first is None:
            raise BookingError("the PMS has no visible billing type for a new patient")
        return first

    # -- durable stages ---------------------------------------------------------

    def _booking(self, item: ReceivedItem) -> Booking:
        with self.store.write() as session:
            row = session.get(Booking, item.id)
            if row is None:
                now = _now()
                row = Booking(
                    item_id=item.id,
                    type=item.type,
                    stage="received",
                    patient_created=False,
                    reason_code="",
                    detail="{}",
                    created_at=now,
                    updated_at=now,
                )
                session.add(row)
                session.flush()
            session.expunge(row)
            return row

    def _advance(
        self,
        item_id: str,
        stage: str,
        *,
        event: str | None = None,
        data: Mapping[str, Any] | None = None,
        result: InboxResult | None = None,
        exception: tuple[str, Mapping[str, Any]] | None = None,
        extra: Callable[[Session], None] | None = None,
        **fields: Any,
    ) -> Booking:
        """Store the booking's new stage, its audit entry and, when answered, its result."""
        with self.store.write() as session:
            row = session.get(Booking, item_id)
            if row is None:
                raise BookingError("booking record vanished from the local state")
            detail = json.loads(row.detail)
            row.stage = stage
            row.updated_at = _now()
            for name, value in fields.items():
                if name == "detail":
                    detail.update(value)
                else:
                    setattr(row, name, value)
            if result is not None:
                detail["result"] = result.to_json()
                row.outcome = result.status
                row.reason_code = result.reason.code if result.reason else ""
            if exception is not None:
                code, context = exception
                exception_id = desk.open_exception(session, item_id, code, context)
                detail["exception_id"] = exception_id
                audit.append(
                    session,
                    "exception.opened",
                    actor=ACTOR,
                    subject=f"inbox:{item_id}",
                    data={"exception": exception_id, "reason": code},
                )
            row.detail = json.dumps(detail, sort_keys=True)
            if event is not None:
                audit.append(
                    session, event, actor=ACTOR, subject=f"inbox:{item_id}", data=dict(data or {})
                )
            if extra is not None:
                extra(session)
            session.flush()
            session.expunge(row)
            return row

    def _answer(
        self,
        item_id: str,
        stage: str,
        result: InboxResult,
        *,
        event: str,
        exception: tuple[str, Mapping[str, Any]] | None = None,
        data: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> InboxResult:
        audit_data = {"status": result.status, **(data or {})}
        if result.reason is not None:
            audit_data["reason"] = result.reason.code
        self._advance(
            item_id,
            stage,
            event=event,
            data=audit_data,
            result=result,
            exception=exception,
            **fields,
        )
        log.info(
            "booking answered",
            extra={
                "item": item_id,
                "status": result.status,
                "stage": stage,
                "reason": result.reason.code if result.reason else None,
            },
        )
        return result

    @staticmethod
    def _stored_result(row: Booking) -> InboxResult:
        return records.result_from_json(json.loads(row.detail)["result"])

    # -- booking.request -------------------------------------------------------

    def handle_request(self, item: ReceivedItem) -> InboxResult:
        request = parse_booking_request(
            item.payload, tz=self.tz, country=self.country, now=self.now()
        )
        return self._item_work(item.id, lambda pms: self._request(pms, item, request))

    def _request(self, pms: _Pms, item: ReceivedItem, req: BookingRequest) -> InboxResult:
        row = self._booking(item)
        if row.stage in ANSWERED:
            return self._stored_result(row)
        kind = pms.slots.appointment_type(req.appointment_type)
        if kind is None:
            return self._reject(
                item.id,
                "unknown_appointment_type",
                "appointment_type is not an appointment type of this practice",
            )
        if req.location_id is not None and not pms.lookups.has_clinic(req.location_id):
            return self._reject(
                item.id, "unknown_location", "location_id is not a location of this practice"
            )
        policy = self.policy.for_type(kind.name)
        if policy == "never":
            return self._reject(
                item.id,
                "not_bookable_online",
                "this appointment type cannot be booked online at this practice",
            )
        minutes = req.duration_minutes or kind.minutes
        if minutes <= 0:
            return self._reject(
                item.id,
                "invalid_request",
                "duration_minutes is required: this appointment type has no length in the PMS",
            )
        pattern = pattern_for(kind.pattern, minutes)
        detail = json.loads(row.detail)
        if row.stage in ("received", "matching", "creating_patient"):
            placed = pms.slots.place(req.start, minutes, req.provider_id, req.operatory_id)
            if not isinstance(placed, Slot):
                return self._slot_refused(pms, item.id, req, minutes, placed, kind)
            slot = placed
            outcome = pms.matcher.match(req.patient)
            if outcome.kind == "review":
                return self._patient_review(item.id, req, kind, slot, outcome)
            patient_id = self._patient(pms, item.id, req, slot, outcome, row.stage)
        else:
            slot = _slot_from(detail["slot"])
            patient_id = row.patient_id or ""
            if row.patient_created and req.source and detail.get("referral") == "pending":
                self._tag_source(item.id, patient_id, req.source, row.stage)
        return self._hold(pms, item.id, slot, minutes, pattern, kind, patient_id, policy, req)

    def _patient(
        self,
        pms: _Pms,
        item_id: str,
        req: BookingRequest,
        slot: Slot,
        outcome: MatchOutcome,
        stage: str,
    ) -> str:
        slot_detail = {"slot": _slot_json(slot)}
        if outcome.kind == "matched" and outcome.patient_id:
            self._advance(
                item_id,
                "patient_ready",
                event="decision.patient_matched",
                data={"patient": outcome.patient_id, "reason": outcome.reason_code},
                patient_id=outcome.patient_id,
                detail=slot_detail,
            )
            return outcome.patient_id
        self._advance(item_id, "creating_patient", detail=slot_detail)
        patient_id = self.writer.create_patient(
            NewPatient(
                first_name=req.patient.first_name,
                last_name=req.patient.last_name,
                date_of_birth=req.patient.date_of_birth,
                phone=req.patient.phone,
                email=req.patient.email,
                postcode=req.patient.postcode,
                provider_id=slot.provider_id,
                billing_type_id=self._billing_type(pms),
                clinic_id=None,
            )
        )
        crashpoint("booking.patient_created")
        self._advance(
            item_id,
            "patient_ready",
            event="pms.patient_created",
            data={"patient": patient_id, "resumed": stage == "creating_patient"},
            patient_id=patient_id,
            patient_created=True,
            detail={"referral": "pending"} if req.source else {},
        )
        if req.source:
            self._tag_source(item_id, patient_id, req.source, "patient_ready")
        return patient_id

    def _tag_source(self, item_id: str, patient_id: str, source: str, stage: str) -> None:
        """Record the request's ``source`` as the new patient's referral source.

        A refused write does not stop the booking (the tag is not the booking):
        it is audited as ``pms.referral_failed``. An unavailable PMS raises,
        and the retried item attaches it then (the detail says ``pending``).
        """
        try:
            attached = self.writer.attach_referral(patient_id, source)
        except WriterUnavailableError:
            raise
        except WriteError as exc:
            log.warning(
                "new patient's referral source not recorded",
                extra={"item": item_id, "patient": patient_id, "error": exc.operation},
            )
            self._advance(
                item_id,
                stage,
                event="pms.referral_failed",
                data={"patient": patient_id, "source": source, "operation": exc.operation},
                detail={"referral": "failed"},
            )
            return
        self._advance(
            item_id,
            stage,
            event="pms.referral_attached",
            data={"patient": patient_id, "source": source, "refattach": attached},
            detail={"referral": "attached"},
        )

    def _hold(
        self,
        pms: _Pms,
        item_id: str,
        slot: Slot,
        minutes: int,
        pattern: str,
        kind: AppointmentType,
        patient_id: str,
        policy: str,
        req: BookingRequest | None,
    ) -> InboxResult:
        """Write (or find) the hold, verify it, then confirm or ask the front desk."""
        row = self._load(item_id)
        appointment_id = row.appointment_id
        slot_data = {
            "start": slot.start.isoformat(),
            "operatory": slot.operatory_id,
            "provider": slot.provider_id,
            "minutes": minutes,
        }
        if row.stage not in ("held", "confirming"):
            found = (
                pms.lookups.find_marked(item_id, slot.start, slot.operatory_id)
                if row.stage == "holding"
                else None
            )
            self._advance(
                item_id,
                "holding",
                detail={
                    "slot": _slot_json(slot),
                    "minutes": minutes,
                    "pattern": pattern,
                    "type_id": kind.id,
                    "policy": policy,
                },
            )
            if found is None:
                check = pms.slots.check(slot.start, minutes, slot.provider_id, slot.operatory_id)
                if not check.free:
                    return self._slot_conflict(pms, item_id, slot, minutes, check, stage="conflict")
                found = self.writer.create_appointment(
                    NewAppointment(
                        patient_id=patient_id,
                        operatory_id=slot.operatory_id,
                        provider_id=slot.provider_id,
                        hygienist_id=None,
                        start=slot.start,
                        pattern=pattern,
                        appointment_type_id=kind.id,
                        is_new_patient=row.patient_created,
                        confirmed_def_id=self._definition(
                            pms, DEFCAT_APPT_CONFIRMED, self.settings.bookings.hold_status
                        ),
                        note=_note(item_id, req),
                        clinic_id=None,
                    )
                )
            appointment_id = found
            crashpoint("booking.hold_written")
            self._advance(
                item_id,
                "held",
                event="pms.hold_written",
                data={"appointment": found, "patient": patient_id, **slot_data},
                appointment_id=found,
            )
        assert appointment_id is not None
        problem = self._verify(pms, appointment_id, slot, minutes)
        if problem is not None:
            return self._release_after_conflict(
                pms, item_id, appointment_id, slot, minutes, problem
            )
        if policy == "approve" and row.stage != "confirming":
            result = InboxResult(
                "held",
                pms_ids={"patient": patient_id, "appointment": appointment_id},
                reason=Reason("approval_required", _message("approval_required")),
            )
            return self._answer(
                item_id,
                "awaiting_approval",
                result,
                event="decision.held_for_approval",
                data={"appointment": appointment_id},
                exception=("approval_required", self._context(item_id, slot=slot)),
            )
        return self._confirm(pms, item_id, patient_id, appointment_id)

    def _confirm(
        self, pms: _Pms, item_id: str, patient_id: str, appointment_id: str
    ) -> InboxResult:
        self._advance(item_id, "confirming")
        self.writer.set_confirmation(
            appointment_id,
            self._definition(pms, DEFCAT_APPT_CONFIRMED, self.settings.bookings.confirmed_status),
        )
        crashpoint("booking.confirmed")
        result = InboxResult(
            "confirmed", pms_ids={"patient": patient_id, "appointment": appointment_id}
        )
        return self._answer(
            item_id,
            "confirmed",
            result,
            event="pms.appointment_confirmed",
            data={"appointment": appointment_id},
        )

    def _verify(self, pms: _Pms, appointment_id: str, slot: Slot, minutes: int) -> SlotCheck | None:
        """Read the hold back: None when it stands alone where it was written."""
        written = pms.lookups.appointment(appointment_id)
        if (
            written is None
            or not written.occupies_chair
            or written.start != slot.start
            or written.operatory_id != slot.operatory_id
        ):
            return SlotCheck(free=False, reason_code="slot_taken", conflicts=())
        overlaps = pms.slots.overlapping(
            slot.start, minutes, slot.operatory_id, slot.provider_id, appointment_id
        )
        if overlaps:
            return SlotCheck(free=False, reason_code="slot_taken", conflicts=tuple(overlaps))
        return None

    def _release_after_conflict(
        self,
        pms: _Pms,
        item_id: str,
        appointment_id: str,
        slot: Slot,
        minutes: int,
        problem: SlotCheck,
    ) -> InboxResult:
        self._advance(item_id, "releasing")
        self._release(appointment_id, "slot_taken")
        crashpoint("booking.released")
        self._advance(
            item_id,
            "released",
            event="pms.hold_released",
            data={"appointment": appointment_id, "conflicts": list(problem.conflicts)},
        )
        return self._slot_conflict(pms, item_id, slot, minutes, problem, stage="conflict")

    def _release(self, appointment_id: str, reason: str) -> None:
        """Take an appointment out of the diary; one already gone counts as released."""
        try:
            self.writer.release_appointment(appointment_id, reason)
        except WriterNotFoundError:
            log.warning(
                "appointment to release is gone from the PMS", extra={"appointment": appointment_id}
            )

    def _refused(self, item_id: str, exc: WriterRefusedError) -> InboxResult:
        """The PMS refused a write: no retry can help, so a person decides."""
        result = InboxResult(
            "needs_review",
            reason=Reason("pms_refused", f"the PMS refused the booking's write ({exc.operation})"),
        )
        return self._answer(
            item_id,
            "exception",
            result,
            event="decision.pms_refused",
            data={"operation": exc.operation, "status": exc.status},
            exception=("pms_refused", self._context(item_id)),
        )

    # -- answers -----------------------------------------------------------------

    def _reject(self, item_id: str, code: str, message: str) -> InboxResult:
        return self._answer(
            item_id,
            "rejected",
            InboxResult("rejected", reason=Reason(code, message)),
            event="decision.rejected",
        )

    def _alternatives(
        self,
        pms: _Pms,
        start: datetime,
        minutes: int,
        provider_id: str | None,
        operatory_id: str | None,
    ) -> tuple[Alternative, ...]:
        slots = pms.slots.alternatives(
            start, minutes, provider_id, operatory_id, n=self.policy.alternatives
        )
        return tuple(Alternative(s.start, s.end, s.provider_id, s.operatory_id) for s in slots)

    def _conflict(
        self,
        item_id: str,
        check: SlotCheck,
        alternatives: tuple[Alternative, ...],
        context: dict[str, Any],
        *,
        data: Mapping[str, Any] | None = None,
        stage: str = "conflict",
        **fields: Any,
    ) -> InboxResult:
        """Answer ``conflict`` with the alternatives, and open the front desk's exception."""
        code = check.reason_code or "slot_taken"
        result = InboxResult(
            "conflict", alternatives=alternatives, reason=Reason(code, _message(code))
        )
        return self._answer(
            item_id,
            stage,
            result,
            event="decision.conflict",
            data={
                **(data or {}),
                "conflicts": list(check.conflicts),
                "alternatives": len(alternatives),
            },
            exception=(code, context),
            **fields,
        )

    def _slot_refused(
        self,
        pms: _Pms,
        item_id: str,
        req: BookingRequest,
        minutes: int,
        check: SlotCheck,
        kind: AppointmentType,
    ) -> InboxResult:
        code = check.reason_code or "slot_taken"
        if code in SLOT_REASONS_REJECTED:
            return self._reject(item_id, code, _message(code))
        alternatives = self._alternatives(
            pms, req.start, minutes, req.provider_id, req.operatory_id
        )
        return self._conflict(
            item_id, check, alternatives,
            self._context(item_id, alternatives=alternatives, kind=kind),
        )  # fmt: skip

    def _slot_conflict(
        self,
        pms: _Pms,
        item_id: str,
        slot: Slot,
        minutes: int,
        check: SlotCheck,
        *,
        stage: str,
    ) -> InboxResult:
        alternatives = self._alternatives(pms, slot.start, minutes, slot.provider_id, None)
        return self._conflict(
            item_id, check, alternatives,
            self._context(item_id, slot=slot, alternatives=alternatives), stage=stage,
        )  # fmt: skip

    def _patient_review(
        self,
        item_id: str,
        req: BookingRequest,
        kind: AppointmentType,
        slot: Slot,
        outcome: MatchOutcome,
    ) -> InboxResult:
        code = outcome.reason_code
        result = InboxResult("needs_review", reason=Reason(code, _message(code)))
        return self._answer(
            item_id,
            "exception",
            result,
            event="decision.patient_review",
            data={"candidates": [c.patient_id for c in outcome.candidates]},
            exception=(code, self._context(item_id, slot=slot, outcome=outcome, kind=kind)),
            detail={"slot": _slot_json(slot), "type_id": kind.id},
        )

    def _context(
        self,
        item_id: str,
        *,
        slot: Slot | None = None,
        alternatives: tuple[Alternative, ...] = (),
        outcome: MatchOutcome | None = None,
        kind: AppointmentType | None = None,
    ) -> dict[str, Any]:
        """What the front desk needs to decide (local only: may name patients)."""
        with self.store.read() as session:
            item = session.get(InboxItem, item_id)
            payload = json.loads(item.payload) if item is not None else {}
            booking = session.get(Booking, item_id)
            ids = {
                "patient": booking.patient_id if booking else None,
                "appointment": booking.appointment_id if booking else None,
            }
        context: dict[str, Any] = {
            "type": payload.get("type") if isinstance(payload, dict) else None,
            "request": payload,
            "pms_ids": {k: v for k, v in ids.items() if v},
        }
        if kind is not None:
            context["appointment_type"] = {
                "id": kind.id,
                "name": kind.name,
                "minutes": kind.minutes,
            }
        if slot is not None:
            context["slot"] = _slot_json(slot)
        context["alternatives"] = [a.to_json() for a in alternatives]
        if outcome is not None:
            context["candidates"] = [
                {
                    "patient_id": c.patient_id,
                    "score": c.score,
                    "reasons": list(c.reasons),
                    **c.display,
                }
                for c in outcome.candidates
            ]
        return context

    def _load(self, item_id: str) -> Booking:
        with self.store.read() as session:
            row = session.get(Booking, item_id)
            if row is None:
                raise BookingError("booking record vanished from the local state")
            session.expunge(row)
            return row

    # -- booking.cancel ----------------------------------------------------------

    def handle_cancel(self, item: ReceivedItem) -> InboxResult:
        request = parse_cancel(item.payload)
        return self._item_work(
            item.id, lambda pms: self._cancel(pms, item, request, approved=False)
        )

    def _cancel(
        self, pms: _Pms, item: ReceivedItem, req: CancelRequest, *, approved: bool
    ) -> InboxResult:
        row = self._booking(item)
        if row.stage in ANSWERED and not approved:
            return self._stored_result(row)
        appointment = pms.lookups.appointment(req.appointment_id)
        refused = self._changeable(item.id, appointment, approved, row.stage)
        if refused is not None:
            return refused
        assert appointment is not None
        self._advance(
            item.id, "releasing", appointment_id=appointment.id, patient_id=appointment.patient_id
        )
        self._release(appointment.id, "cancelled")
        crashpoint("booking.cancelled")
        result = InboxResult(
            "confirmed",
            pms_ids={"patient": appointment.patient_id, "appointment": appointment.id},
            reason=Reason("cancelled", "the appointment was taken out of the diary"),
        )
        return self._answer(
            item.id,
            "cancelled",
            result,
            event="pms.appointment_cancelled",
            data={"appointment": appointment.id},
        )

    def _changeable(
        self,
        item_id: str,
        appointment: AppointmentRow | None,
        approved: bool,
        stage: str,
    ) -> InboxResult | None:
        """A result refusing the change of ``appointment``, or None when it may change."""
        if stage in ("releasing", "moving", "moved", "moving_back"):
            return None  # resuming a change already decided
        if appointment is None:
            return self._reject(
                item_id,
                "unknown_appointment",
                "pms_appointment_id is not an appointment in the diary",
            )
        if appointment.status not in SCHEDULED_STATUSES:
            return self._reject(
                item_id, "not_changeable", "the appointment is not a scheduled appointment"
            )
        now = self.now()
        if appointment.start <= now:
            return self._reject(item_id, "not_changeable", "the appointment has already begun")
        if not approved and self.policy.is_late(appointment.start, now):
            result = InboxResult(
                "needs_review", reason=Reason("late_change", _message("late_change"))
            )
            return self._answer(
                item_id,
                "exception",
                result,
                event="decision.late_change",
                data={"appointment": appointment.id},
                exception=("late_change", self._context(item_id)),
                appointment_id=appointment.id,
                patient_id=appointment.patient_id,
            )
        return None

    # -- booking.reschedule --------------------------------------------------------

    def handle_reschedule(self, item: ReceivedItem) -> InboxResult:
        request = parse_reschedule(item.payload, tz=self.tz, now=self.now())
        return self._item_work(
            item.id, lambda pms: self._reschedule(pms, item, request, approved=False)
        )

    def _reschedule(
        self, pms: _Pms, item: ReceivedItem, req: RescheduleRequest, *, approved: bool
    ) -> InboxResult:
        row = self._booking(item)
        if row.stage in ANSWERED and not approved:
            return self._stored_result(row)
        detail = json.loads(row.detail)
        if row.stage in ("moving", "moved", "moving_back"):
            before = _slot_from(detail["before"])
            after = _slot_from(detail["slot"])
            return self._finish_move(
                pms,
                item.id,
                row.appointment_id or "",
                before,
                after,
                detail["pattern"],
                detail["old_pattern"],
                row.patient_id or "",
                row.stage,
            )
        appointment = pms.lookups.appointment(req.appointment_id)
        refused = self._changeable(item.id, appointment, approved, row.stage)
        if refused is not None:
            return refused
        assert appointment is not None
        minutes = req.duration_minutes or appointment.minutes
        pattern = (
            appointment.pattern
            if minutes == appointment.minutes
            else pattern_for(appointment.pattern, minutes)
        )
        provider = req.provider_id or appointment.provider_id
        operatory = req.operatory_id or appointment.operatory_id
        check = pms.slots.check(req.start, minutes, provider, operatory, appointment.id)
        if not check.free:
            code = check.reason_code or "slot_taken"
            if code in SLOT_REASONS_REJECTED:
                return self._reject(item.id, code, _message(code))
            alternatives = self._alternatives(pms, req.start, minutes, provider, operatory)
            return self._conflict(
                item.id,
                check,
                alternatives,
                self._context(item.id, alternatives=alternatives),
                data={"appointment": appointment.id},
                appointment_id=appointment.id,
                patient_id=appointment.patient_id,
            )
        before = Slot(
            appointment.start,
            diary_end(appointment.start, appointment.minutes, self.tz),
            appointment.provider_id,
            appointment.operatory_id,
        )
        after = Slot(req.start, diary_end(req.start, minutes, self.tz), provider, operatory)
        self._advance(
            item.id,
            "moving",
            appointment_id=appointment.id,
            patient_id=appointment.patient_id,
            detail={
                "before": _slot_json(before),
                "slot": _slot_json(after),
                "pattern": pattern,
                "old_pattern": appointment.pattern,
            },
        )
        return self._finish_move(
            pms,
            item.id,
            appointment.id,
            before,
            after,
            pattern,
            appointment.pattern,
            appointment.patient_id,
            "moving",
        )

    def _finish_move(
        self,
        pms: _Pms,
        item_id: str,
        appointment_id: str,
        before: Slot,
        after: Slot,
        pattern: str,
        old_pattern: str,
        patient_id: str,
        stage: str,
    ) -> InboxResult:
        minutes = len(pattern) * 5
        if stage == "moving_back":
            return self._move_back(
                pms, item_id, appointment_id, before, after, old_pattern, minutes, ()
            )
        if stage == "moving":
            self.writer.move_appointment(
                appointment_id,
                after.start,
                after.operatory_id,
                after.provider_id,
                pattern,
                note_line=_moved_note(item_id),
            )
            crashpoint("booking.moved")
            self._advance(
                item_id,
                "moved",
                event="pms.appointment_moved",
                data={
                    "appointment": appointment_id,
                    "from": before.start.isoformat(),
                    "to": after.start.isoformat(),
                    "operatory": after.operatory_id,
                },
            )
        problem = self._verify(pms, appointment_id, after, minutes)
        if problem is not None:
            self._advance(item_id, "moving_back")
            return self._move_back(
                pms, item_id, appointment_id, before, after, old_pattern, minutes, problem.conflicts
            )
        result = InboxResult(
            "confirmed",
            pms_ids={"patient": patient_id, "appointment": appointment_id},
            reason=Reason("rescheduled", "the appointment was moved"),
        )
        return self._answer(
            item_id,
            "confirmed",
            result,
            event="decision.rescheduled",
            data={"appointment": appointment_id},
        )

    def _move_back(
        self,
        pms: _Pms,
        item_id: str,
        appointment_id: str,
        before: Slot,
        after: Slot,
        old_pattern: str,
        minutes: int,
        conflicts: tuple[str, ...] | Any,
    ) -> InboxResult:
        self.writer.move_appointment(
            appointment_id,
            before.start,
            before.operatory_id,
            before.provider_id,
            old_pattern,
            note_line=_moved_note(item_id),
        )
        self._advance(
            item_id,
            "moved_back",
            event="pms.appointment_moved_back",
            data={"appointment": appointment_id, "conflicts": list(conflicts)},
        )
        return self._slot_conflict(
            pms,
            item_id,
            after,
            minutes,
            SlotCheck(free=False, reason_code="slot_taken", conflicts=tuple(conflicts)),
            stage="conflict",
        )

    # -- the front desk ------------------------------------------------------------

    def resolve(self, exception_id: int, resolution: desk.Resolution) -> desk.ResolveOutcome:
        """Act on a person's decision (see :mod:`bridge.bookings.exceptions`)."""
        return self._guarded(lambda pms: self._resolve(pms, exception_id, resolution))

    def _resolve(
        self, pms: _Pms, exception_id: int, resolution: desk.Resolution
    ) -> desk.ResolveOutcome:
        view = desk.get_exception(self.store, exception_id)
        if view is None or view.state != desk.OPEN:
            raise desk.ExceptionNotOpen(f"exception {exception_id} is not open")
        if resolution.action not in view.actions:
            raise desk.InvalidResolution(
                f"{resolution.action} does not resolve a {view.reason_code} exception "
                f"(possible: {', '.join(view.actions)})"
            )
        item = self._item(view.item_id)
        row = self._load(view.item_id)
        if view.reason_code == "double_booked":
            result = self._double_booked(row, resolution)
        elif resolution.action == "reject":
            result = self._decline(row, resolution)
        elif resolution.action == "approve":
            result = self._approve(pms, item, row)
        elif resolution.action in ("choose_patient", "new_patient"):
            result = self._with_patient(pms, item, row, view, resolution)
        else:
            result = self._with_alternative(pms, item, row, view, resolution)
        detail = {
            "status": result.status,
            "reason": result.reason.code if result.reason else None,
            "choice": resolution.choice,
        }

        def close(session: Session) -> None:
            desk.mark_resolved(session, exception_id, resolution, detail)
            audit.append(
                session,
                "exception.resolved",
                actor=f"frontdesk:{resolution.by or 'unknown'}",
                subject=f"inbox:{view.item_id}",
                data={
                    "exception": exception_id,
                    "action": resolution.action,
                    "status": result.status,
                },
            )
            records.supersede_in(session, view.item_id, result)

        self._advance(view.item_id, self._load(view.item_id).stage, extra=close)
        return desk.ResolveOutcome(
            exception_id=exception_id,
            status=result.status,
            reason_code=result.reason.code if result.reason else "",
            message=result.reason.message if result.reason else "",
            pms_ids=dict(result.pms_ids),
        )

    def _item(self, item_id: str) -> ReceivedItem:
        with self.store.read() as session:
            row = session.get(InboxItem, item_id)
            if row is None:
                raise BookingError("the exception's inbox item is gone from the local state")
            return ReceivedItem(
                row.id, row.type, row.created_at, json.loads(row.payload), row.attempts
            )

    def _decline(self, row: Booking, resolution: desk.Resolution) -> InboxResult:
        if row.stage == "awaiting_approval" and row.appointment_id:
            self._advance(row.item_id, "releasing")
            self._release(row.appointment_id, "declined")
            self._advance(
                row.item_id,
                "released",
                event="pms.hold_released",
                data={"appointment": row.appointment_id, "reason": "declined"},
            )
        message = resolution.message.strip()[:200] or "the practice declined this request"
        result = InboxResult("rejected", reason=Reason("declined_by_practice", message))
        return self._answer(row.item_id, "rejected", result, event="decision.declined")

    def _double_booked(self, row: Booking, resolution: desk.Resolution) -> InboxResult:
        """Keep both appointments (approve) or take the bridge's out of the diary (reject).

        The booking's result stays what the cloud was told (it is final); a
        release reaches the cloud as the appointment's change.
        """
        if resolution.action == "reject" and row.appointment_id:
            self._release(row.appointment_id, "double_booked")
            self._advance(
                row.item_id,
                "released",
                event="pms.appointment_released",
                data={"appointment": row.appointment_id, "reason": "double_booked"},
            )
        return self._stored_result(row)

    def _approve(self, pms: _Pms, item: ReceivedItem, row: Booking) -> InboxResult:
        if item.type == BOOKING_CANCEL:
            self._reopen(row.item_id)
            return self._cancel(pms, item, parse_cancel(item.payload), approved=True)
        if item.type == BOOKING_RESCHEDULE:
            self._reopen(row.item_id)
            request = parse_reschedule(item.payload, tz=self.tz, now=self.now())
            return self._reschedule(pms, item, request, approved=True)
        detail = json.loads(row.detail)
        slot = _slot_from(detail["slot"])
        assert row.appointment_id is not None
        problem = self._verify(pms, row.appointment_id, slot, int(detail["minutes"]))
        if problem is not None:
            return self._release_after_conflict(
                pms, row.item_id, row.appointment_id, slot, int(detail["minutes"]), problem
            )
        return self._confirm(pms, row.item_id, row.patient_id or "", row.appointment_id)

    def _reopen(self, item_id: str) -> None:
        self._advance(item_id, "received")

    def _request_and_type(
        self, pms: _Pms, item: ReceivedItem
    ) -> tuple[BookingRequest, AppointmentType | None]:
        """The stored request, re-read as it is decided, and its appointment type now."""
        req = parse_booking_request(item.payload, tz=self.tz, country=self.country, now=self.now())
        return req, pms.slots.appointment_type(req.appointment_type)

    def _type_gone(self, item_id: str) -> InboxResult:
        return self._reject(
            item_id,
            "unknown_appointment_type",
            "appointment_type is no longer an appointment type of this practice",
        )

    def _with_patient(
        self,
        pms: _Pms,
        item: ReceivedItem,
        row: Booking,
        view: desk.ExceptionView,
        resolution: desk.Resolution,
    ) -> InboxResult:
        req, kind = self._request_and_type(pms, item)
        if kind is None:
            return self._type_gone(item.id)
        if resolution.action == "choose_patient":
            allowed = {str(c.get("patient_id")) for c in view.candidates}
            if resolution.choice not in allowed:
                raise desk.InvalidResolution("choice must be one of the exception's candidates")
            outcome = MatchOutcome(
                kind="matched",
                patient_id=resolution.choice,
                candidates=(),
                reason_code="chosen_by_front_desk",
            )
        else:
            outcome = MatchOutcome(
                kind="new", patient_id=None, candidates=(), reason_code="new_by_front_desk"
            )
        slot = _slot_from(json.loads(row.detail)["slot"])
        self._reopen(item.id)
        minutes = req.duration_minutes or kind.minutes
        patient_id = self._patient(pms, item.id, req, slot, outcome, "received")
        return self._hold(
            pms,
            item.id,
            slot,
            minutes,
            pattern_for(kind.pattern, minutes),
            kind,
            patient_id,
            "auto",
            req,
        )

    def _with_alternative(
        self,
        pms: _Pms,
        item: ReceivedItem,
        row: Booking,
        view: desk.ExceptionView,
        resolution: desk.Resolution,
    ) -> InboxResult:
        try:
            chosen = view.alternatives[int(resolution.choice or "")]
        except (ValueError, IndexError):
            raise desk.InvalidResolution(
                "choice must be the number of one of the exception's alternatives"
            ) from None
        start = datetime.fromisoformat(str(chosen["start"])).astimezone(self.tz)
        end = datetime.fromisoformat(str(chosen["end"])).astimezone(self.tz)
        slot = Slot(start, end, str(chosen["provider_id"]), str(chosen["operatory_id"]))
        minutes = int((end - start).total_seconds() // 60)
        if item.type == BOOKING_RESCHEDULE:
            self._reopen(item.id)
            base = parse_reschedule(item.payload, tz=self.tz, now=self.now())
            request = RescheduleRequest(
                base.appointment_id, start, minutes, slot.provider_id, slot.operatory_id
            )
            return self._reschedule(pms, item, request, approved=True)
        req, kind = self._request_and_type(pms, item)
        if kind is None:
            return self._type_gone(item.id)
        self._reopen(item.id)
        if row.patient_id:
            patient_id = row.patient_id
        else:
            outcome = pms.matcher.match(req.patient)
            if outcome.kind == "review":
                return self._patient_review(item.id, req, kind, slot, outcome)
            patient_id = self._patient(pms, item.id, req, slot, outcome, "received")
        return self._hold(
            pms,
            item.id,
            slot,
            minutes,
            pattern_for(kind.pattern, minutes),
            kind,
            patient_id,
            "auto",
            req,
        )


def _slot_json(slot: Slot) -> dict[str, str]:
    return {
        "start": slot.start.isoformat(),
        "end": slot.end.isoformat(),
        "provider_id": slot.provider_id,
        "operatory_id": slot.operatory_id,
    }


def _slot_from(obj: Mapping[str, Any]) -> Slot:
    return Slot(
        datetime.fromisoformat(obj["start"]),
        datetime.fromisoformat(obj["end"]),
        str(obj["provider_id"]),
        str(obj["operatory_id"]),
    )


def _note(item_id: str, req: BookingRequest | None) -> str:
    """The appointment note: the bridge's marker first, then the patient's own words."""
    text = f"{marker(item_id)} Booked online through the bridge"
    if req is not None and req.source:
        text += f" (source: {req.source})"
    if req is not None and req.notes:
        text += f"\n{req.notes}"
    return text


def _moved_note(item_id: str) -> str:
    """The line a reschedule leaves in the note: the bridge's marker, no personal data."""
    return f"{marker(item_id)} rescheduled through the bridge"


class _Handler:
    def __init__(
        self,
        validate: Callable[[Mapping[str, Any]], object],
        handle: Callable[[ReceivedItem], InboxResult],
    ) -> None:
        self._validate = validate
        self._handle = handle

    def validate(self, payload: Mapping[str, Any]) -> None:
        self._validate(payload)

    def handle(self, item: ReceivedItem) -> InboxResult:
        return self._handle(item)


def booking_handlers(pipeline: BookingPipeline) -> dict[str, Handler]:
    """Inbox handlers for the three booking item types."""

    def check_request(payload: Mapping[str, Any]) -> object:
        return parse_booking_request(
            payload, tz=pipeline.tz, country=pipeline.country, now=pipeline.now()
        )

    def check_reschedule(payload: Mapping[str, Any]) -> object:
        return parse_reschedule(payload, tz=pipeline.tz, now=pipeline.now())

    return {
        BOOKING_REQUEST: _Handler(check_request, pipeline.handle_request),
        BOOKING_CANCEL: _Handler(parse_cancel, pipeline.handle_cancel),
        BOOKING_RESCHEDULE: _Handler(check_reschedule, pipeline.handle_reschedule),
    }


__all__ = [
    "BookingPipeline",
    "InvalidRequest",
    "PatientDetails",
    "WriterRefusedError",
    "booking_handlers",
    "pattern_for",
]
