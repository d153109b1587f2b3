"""Plain words for the panel: names of components and entities, times, sizes.

Receptionists read these, so they say what a thing is for ("Practice
database"), not what it is called in the code (``pms``). Times are relative
("2 min ago") or local clock times; nothing here holds personal data.
"""

from __future__ import annotations

from datetime import datetime

COMPONENT_TITLES = {
    "pms": "Practice database",
    "sync": "Reading the practice database",
    "cloud": "Sending to the cloud",
    "reconcile": "Cloud copy check",
    "inbox": "Requests from the cloud",
    "heartbeat": "Status reports to the cloud",
    "files": "Export folders",
    "control": "Control channel",
}

ENTITY_TITLES = {
    "patient": "Patients",
    "appointment": "Appointments",
    "provider": "Providers",
    "operatory": "Operatories (chairs)",
    "appointment_type": "Appointment types",
    "schedule": "Schedules and blockouts",
    "procedure": "Procedures",
    "procedure_code": "Procedure codes",
    "claim": "Claims",
    "payment": "Payments",
    "recall": "Recalls",
    "definition": "PMS definitions",
    "availability": "Free slots (computed here)",
    "report": "Booking reports (computed here)",
}

# Computed by the bridge from what it read, not read from the PMS: the cloud's
# copy of these is not checked by reconciliation.
COMPUTED_ENTITIES = frozenset({"availability", "report"})

REASON_TITLES = {
    "ambiguous_patient": "More than one patient could be this person",
    "near_match": "A patient looks similar but not the same",
    "unconfirmed_match": "The patient matches by name and birth date only",
    "approval_required": "This appointment type needs the front desk's approval",
    "slot_taken": "The time asked for is already taken",
    "outside_hours": "The time asked for is outside the provider's hours",
    "blockout": "The time asked for is blocked out",
    "holiday": "The practice is closed that day",
    "unknown_appointment_type": "The appointment type is not known",
    "not_bookable_online": "This appointment type cannot be booked online",
    "provider_busy": "The provider is busy at the time asked for",
    "too_soon": "The time asked for is inside the practice's minimum notice",
    "outside_window": "The time asked for is beyond the booking window",
    "no_operatory": "No chair with a working provider is free at that time",
    "late_change": "A late change: the appointment starts within the minimum notice",
    "pms_refused": "The PMS refused to write the booking",
}


def component_title(name: str) -> str:
    if name.startswith("loop:"):
        return f"Internal task '{name.removeprefix('loop:')}'"
    return COMPONENT_TITLES.get(name, name.replace("_", " ").capitalize())


def entity_title(name: str) -> str:
    return ENTITY_TITLES.get(name, name.replace("_", " ").capitalize() + "s")


def reason_title(code: str) -> str:
    return REASON_TITLES.get(code, code.replace("_", " ").capitalize())


def duration(seconds: float) -> str:
    """``42 s``, ``5 min``, ``3.5 h``, ``2 days``."""
    seconds = max(seconds, 0.0)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h".replace(".0 h", " h")
    return f"{seconds / 86400:.0f} days"


def ago(moment: datetime | None, now: datetime) -> str:
    """``just now``, ``12 s ago``, ``5 min ago``, ``never``."""
    if moment is None:
        return "never"
    seconds = (now - moment).total_seconds()
    if seconds < 2:
        return "just now"
    return f"{duration(seconds)} ago"


def clock(moment: datetime | None) -> str:
    """Local wall-clock time, with the date when it is not today."""
    if moment is None:
        return "never"
    local = moment.astimezone()
    if local.date() == datetime.now().astimezone().date():
        return local.strftime("%H:%M")
    return local.strftime("%d %b %H:%M")


def size(n: int) -> str:
    if n < 1024:
        return f"{n:,} bytes"
    if n < 1024**2:
        return f"{n / 1024:,.1f} KiB"
    return f"{n / 1024**2:,.1f} MiB"


def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"
