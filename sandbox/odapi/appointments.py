"""Appointment calls as opendental.com/site/apiappointments.html documents them.

* ``GET /appointments/{AptNum}`` -- the appointment, with ``serverDateTime``.
* ``POST /appointments`` -- PatNum, Op and AptDateTime required. Defaults:
  AptStatus "Scheduled" (allowed: Scheduled, Complete, UnschedList, PtNote,
  PtNoteCompleted); Pattern "/XX/", or the appointment type's pattern when
  AppointmentTypeNum is given without a Pattern; patterns over 9 hours are
  trimmed to 9 hours; Confirmed the first category-2 definition; ProvNum
  the patient's PriProv, else the office's default provider; ClinicNum the
  operatory's, else the patient's; PatternSecondary '/' steps as long as
  Pattern (when given it must be as long). ``IsNewPatient`` "true" sets the
  patient's ``DateFirstVisit`` to the appointment's date when the patient
  has no completed procedure. 201 with the appointment and ``Location``.
* ``PUT /appointments/{AptNum}`` -- every field optional; "If a field is not
  included in a PUT (update), then it will not change"; Note overwrites.
  200 with the appointment.
* ``PUT /appointments/{AptNum}/Confirm`` -- exactly one of ``confirmVal``
  and ``defNum``. 200.
* ``PUT /appointments/{AptNum}/Note`` -- appends a line ("If a note already
  exists, a CR is included before the new note"; CR LF here, Open Dental's
  line ending). 200.

Open Dental's API does not refuse an appointment that overlaps another
(clients are told to find free times with ``GET /appointments/Slots``), so
neither does the stand-in: that is why the bridge re-reads the diary after
writing. Deleted patients (PatStatus 4) and their appointments may not be
changed (apipatients.html): 400.

Chosen where the documentation is silent: an unknown PatNum or AptNum is
404; other unknown keys (Op, ProvNum, Confirmed, ...) and a hidden
operatory are 400; a PUT that changes Pattern's length without a
PatternSecondary resets PatternSecondary to '/' steps; ``confirmVal`` other
than "None" is refused (it depends on eServices settings the sample does
not have); attached procedures and colours that Open Dental adds from an
appointment type are not added (the type's pattern is). Fields the sample
has no column for (colorOverride) and check-in times are refused with a
400 that says so.
"""

from __future__ import annotations

from typing import Any

from sandbox.odapi.database import Row, Tx
from sandbox.odapi.fields import (
    APT_STATUS,
    MAX_PATTERN,
    PRIORITY,
    ApiError,
    Body,
    datetime_text,
    flag,
    name_of,
)
from sandbox.odapi.reference import (
    DEFCAT_APPT_CONFIRMED,
    DEFCAT_UNSCHED_STATUS,
    DELETED_PATIENT,
    PERM_APPOINTMENT_EDIT,
    default_provider,
    definition,
    first_definition,
    item_name,
    provider_abbr,
    require_clinic,
    require_provider,
    security_log,
)

DEFAULT_PATTERN = "/XX/"
COMPLETE_PROCEDURE = 2
POST_STATUSES = ("Scheduled", "Complete", "UnschedList", "PtNote", "PtNoteCompleted")
PUT_STATUSES = ("Scheduled", "Complete", "UnschedList", "Broken", "Planned", "PtNote",
                "PtNoteCompleted")  # fmt: skip
COMMON = (
    "AptStatus", "Pattern", "Confirmed", "Op", "Note", "ProvNum", "ProvHyg", "AptDateTime",
    "ClinicNum", "IsHygiene", "IsNewPatient", "Priority", "AppointmentTypeNum",
    "PatternSecondary",
)  # fmt: skip
UNSUPPORTED = ("colorOverride", "DateTimeArrived", "DateTimeSeated", "DateTimeDismissed")
NOTE_LIMIT = 65_535


def get_appointment(tx: Tx, apt_num: int) -> dict[str, Any]:
    row = _appointment(tx, apt_num)
    return {"serverDateTime": tx.now(), **render_appointment(tx, row)}


def create_appointment(tx: Tx, raw: object) -> dict[str, Any]:
    body = Body(raw, ("PatNum", *COMMON, "SecUserNumEntry"), UNSUPPORTED)
    pat_num = body.key("PatNum", required=True)
    op_num = body.key("Op", required=True)
    when = body.moment("AptDateTime", required=True)
    assert pat_num is not None and op_num is not None and when is not None
    patient = _patient(tx, pat_num)
    op = _operatory(tx, op_num)
    status = body.enum("AptStatus", APT_STATUS, POST_STATUSES) or APT_STATUS["Scheduled"]
    type_num = _appointment_type(tx, body.key("AppointmentTypeNum"))
    pattern = body.pattern("Pattern")
    if pattern is None and type_num:
        kind = tx.one("SELECT Pattern FROM appointmenttype WHERE AppointmentTypeNum = ?", type_num)
        pattern = str(kind["Pattern"] or "") if kind else ""
    pattern = (pattern or DEFAULT_PATTERN)[:MAX_PATTERN]
    secondary = body.pattern("PatternSecondary")
    if secondary is not None and len(secondary) != len(pattern):
        raise ApiError(400, "PatternSecondary must match the length of Pattern.")
    confirmed = _confirmed(tx, body.key("Confirmed"))
    prov_num = body.key("ProvNum")
    require_provider(tx, "ProvNum", prov_num)
    prov_hyg = body.key("ProvHyg")
    require_provider(tx, "ProvHyg", prov_hyg)
    clinic = body.key("ClinicNum")
    require_clinic(tx, clinic)
    if clinic is None:
        clinic = int(op["ClinicNum"] or 0) or int(patient["ClinicNum"] or 0)
    note = body.text("Note", limit=NOTE_LIMIT) or ""
    new_patient = bool(body.boolean("IsNewPatient"))
    apt_num = tx.insert(
        "appointment",
        {
            "PatNum": pat_num,
            "AptStatus": status,
            "Pattern": pattern,
            "Confirmed": confirmed,
            "Op": op_num,
            "Note": note,
            "ProvNum": prov_num or int(patient["PriProv"] or 0) or default_provider(tx),
            "ProvHyg": prov_hyg or 0,
            "AptDateTime": when,
            "IsNewPatient": int(new_patient),
            "ProcDescript": "",
            "ClinicNum": clinic,
            "IsHygiene": int(bool(body.boolean("IsHygiene"))),
            "AppointmentTypeNum": type_num,
            "SecUserNumEntry": body.key("SecUserNumEntry") or 0,
            "SecDateTEntry": tx.now(),
            "Priority": body.enum("Priority", PRIORITY, PRIORITY) or 0,
            "PatternSecondary": secondary or "/" * len(pattern),
            "SecurityHash": "",
        },
    )
    if new_patient:
        _set_first_visit(tx, pat_num, when)
    security_log(
        tx, PERM_APPOINTMENT_EDIT, pat_num, "Appointment created through the API.", apt_num
    )
    return render_appointment(tx, _appointment(tx, apt_num))


def update_appointment(tx: Tx, apt_num: int, raw: object) -> dict[str, Any]:
    row = _appointment(tx, apt_num)
    _patient(tx, int(row["PatNum"]))
    body = Body(raw, (*COMMON, "UnschedStatus"), UNSUPPORTED)
    if not body.names:
        raise ApiError(400, "No fields to update.")
    changes: dict[str, object] = {}
    status = body.enum("AptStatus", APT_STATUS, PUT_STATUSES)
    if status is not None:
        changes["AptStatus"] = status
    pattern = body.pattern("Pattern")
    if pattern is not None:
        changes["Pattern"] = pattern[:MAX_PATTERN]
    length = len(str(changes.get("Pattern", row["Pattern"] or "")))
    secondary = body.pattern("PatternSecondary")
    if secondary is not None:
        if len(secondary) != length:
            raise ApiError(400, "PatternSecondary must match the length of Pattern.")
        changes["PatternSecondary"] = secondary
    elif pattern is not None and len(str(row["PatternSecondary"] or "")) != length:
        changes["PatternSecondary"] = "/" * length
    if body.has("Confirmed"):
        changes["Confirmed"] = _confirmed(tx, body.key("Confirmed"))
    op_num = body.key("Op")
    if op_num is not None:
        _operatory(tx, op_num)
        changes["Op"] = op_num
    for field in ("ProvNum", "ProvHyg"):
        value = body.key(field)
        if value is not None:
            if field == "ProvNum" and not value:
                raise ApiError(400, "ProvNum is invalid: an appointment needs a provider.")
            require_provider(tx, field, value)
            changes[field] = value
    when = body.moment("AptDateTime")
    if when is not None:
        changes["AptDateTime"] = when
    clinic = body.key("ClinicNum")
    if clinic is not None:
        require_clinic(tx, clinic)
        changes["ClinicNum"] = clinic
    note = body.text("Note", limit=NOTE_LIMIT)
    if note is not None:
        changes["Note"] = note
    for field in ("IsHygiene", "IsNewPatient"):
        value = body.boolean(field)
        if value is not None:
            changes[field] = int(value)
    priority = body.enum("Priority", PRIORITY, PRIORITY)
    if priority is not None:
        changes["Priority"] = priority
    if body.has("AppointmentTypeNum"):
        changes["AppointmentTypeNum"] = _appointment_type(tx, body.key("AppointmentTypeNum"))
    unsched = body.key("UnschedStatus")
    if unsched and definition(tx, unsched, DEFCAT_UNSCHED_STATUS) is None:
        raise ApiError(400, "UnschedStatus must be a definition.DefNum where Category=13.")
    if unsched is not None:
        changes["UnschedStatus"] = unsched
    if changes:
        assignments = ", ".join(f"{name} = ?" for name in changes)
        tx.run(f"UPDATE appointment SET {assignments} WHERE AptNum = ?", *changes.values(), apt_num)
    security_log(
        tx,
        PERM_APPOINTMENT_EDIT,
        int(row["PatNum"]),
        "Appointment edited through the API: " + ", ".join(body.names) + ".",
        apt_num,
    )
    return render_appointment(tx, _appointment(tx, apt_num))


def confirm_appointment(tx: Tx, apt_num: int, raw: object) -> None:
    row = _appointment(tx, apt_num)
    _patient(tx, int(row["PatNum"]))
    body = Body(raw, ("confirmVal", "defNum"))
    if len(body.names) != 1:
        raise ApiError(400, "Only one field is allowed: either confirmVal or defNum.")
    if body.has("defNum"):
        def_num = body.key("defNum")
        if not def_num or definition(tx, def_num, DEFCAT_APPT_CONFIRMED) is None:
            raise ApiError(400, "defNum must be a definition.DefNum where Category=2.")
    else:
        value = body.text("confirmVal")
        if value != "None":
            raise ApiError(
                400,
                'confirmVal must be "None" here: "Sent", "Confirmed", "Not Accepted" and '
                '"Failed" depend on eServices settings this stand-in does not have.',
            )
        first = first_definition(tx, DEFCAT_APPT_CONFIRMED)
        if first is None:
            raise ApiError(400, "The practice has no appointment confirmation statuses.")
        def_num = int(first["DefNum"])
    tx.run("UPDATE appointment SET Confirmed = ? WHERE AptNum = ?", def_num, apt_num)
    text = "Appointment confirmation set through the API."
    security_log(tx, PERM_APPOINTMENT_EDIT, int(row["PatNum"]), text, apt_num)


def append_note(tx: Tx, apt_num: int, raw: object) -> None:
    row = _appointment(tx, apt_num)
    _patient(tx, int(row["PatNum"]))
    body = Body(raw, ("Note",))
    line = body.text("Note", limit=NOTE_LIMIT, required=True)
    old = str(row["Note"] or "")
    note = f"{old}\r\n{line}" if old else str(line)
    if len(note) > NOTE_LIMIT:
        raise ApiError(400, "The appointment note would be too long.")
    tx.run("UPDATE appointment SET Note = ? WHERE AptNum = ?", note, apt_num)
    text = "Appointment note appended through the API."
    security_log(tx, PERM_APPOINTMENT_EDIT, int(row["PatNum"]), text, apt_num)


def render_appointment(tx: Tx, row: Row) -> dict[str, Any]:
    """An appointment row in the API's shape (the fields the sample database stores)."""
    return {
        "AptNum": int(row["AptNum"]),
        "PatNum": int(row["PatNum"]),
        "AptStatus": name_of(APT_STATUS, row["AptStatus"], "None"),
        "Pattern": row["Pattern"] or "",
        "Confirmed": int(row["Confirmed"]),
        "confirmed": item_name(tx, row["Confirmed"]),
        "TimeLocked": flag(row["TimeLocked"]),
        "Op": int(row["Op"]),
        "Note": row["Note"] or "",
        "ProvNum": int(row["ProvNum"]),
        "provAbbr": provider_abbr(tx, row["ProvNum"]),
        "ProvHyg": int(row["ProvHyg"]),
        "AptDateTime": datetime_text(row["AptDateTime"]),
        "NextAptNum": int(row["NextAptNum"]),
        "UnschedStatus": int(row["UnschedStatus"]),
        "unschedStatus": item_name(tx, row["UnschedStatus"]),
        "IsNewPatient": flag(row["IsNewPatient"]),
        "ProcDescript": row["ProcDescript"] or "",
        "Assistant": int(row["Assistant"]),
        "ClinicNum": int(row["ClinicNum"]),
        "IsHygiene": flag(row["IsHygiene"]),
        "DateTStamp": datetime_text(row["DateTStamp"]),
        "DateTimeArrived": datetime_text(row["DateTimeArrived"]),
        "DateTimeSeated": datetime_text(row["DateTimeSeated"]),
        "DateTimeDismissed": datetime_text(row["DateTimeDismissed"]),
        "InsPlan1": int(row["InsPlan1"]),
        "InsPlan2": int(row["InsPlan2"]),
        "DateTimeAskedToArrive": datetime_text(row["DateTimeAskedToArrive"]),
        "AppointmentTypeNum": int(row["AppointmentTypeNum"]),
        "SecUserNumEntry": int(row["SecUserNumEntry"]),
        "SecDateTEntry": datetime_text(row["SecDateTEntry"]),
        "Priority": name_of(PRIORITY, row["Priority"], "Normal"),
        "PatternSecondary": row["PatternSecondary"] or "",
    }


def _appointment(tx: Tx, apt_num: int) -> Row:
    row = tx.one("SELECT * FROM appointment WHERE AptNum = ?", apt_num)
    if row is None:
        raise ApiError(404, f"Appointment not found: AptNum {apt_num}.")
    return row


def _patient(tx: Tx, pat_num: int) -> Row:
    row = tx.one(
        "SELECT PatNum, PatStatus, PriProv, ClinicNum FROM patient WHERE PatNum = ?", pat_num
    )
    if row is None:
        raise ApiError(404, f"Patient not found: PatNum {pat_num}.")
    if row["PatStatus"] == DELETED_PATIENT:
        raise ApiError(
            400, "The patient is deleted; deleted patients cannot be modified via the API."
        )
    return row


def _operatory(tx: Tx, op_num: int) -> Row:
    row = tx.one(
        "SELECT OperatoryNum, ClinicNum, IsHidden FROM operatory WHERE OperatoryNum = ?", op_num
    )
    if row is None:
        raise ApiError(400, f"Op is invalid: no operatory {op_num}.")
    if row["IsHidden"]:
        raise ApiError(400, f"Op is invalid: operatory {op_num} is hidden.")
    return row


def _confirmed(tx: Tx, def_num: int | None) -> int:
    if def_num is None:
        first = first_definition(tx, DEFCAT_APPT_CONFIRMED)
        return int(first["DefNum"]) if first else 0
    if definition(tx, def_num, DEFCAT_APPT_CONFIRMED) is None:
        raise ApiError(400, "Confirmed must be a definition.DefNum where Category=2.")
    return def_num


def _appointment_type(tx: Tx, type_num: int | None) -> int:
    if not type_num:
        return 0
    found = tx.one(
        "SELECT AppointmentTypeNum FROM appointmenttype WHERE AppointmentTypeNum = ?", type_num
    )
    if found is None:
        raise ApiError(400, f"AppointmentTypeNum is invalid: no appointment type {type_num}.")
    return type_num


def _set_first_visit(tx: Tx, pat_num: int, when: str) -> None:
    completed = tx.one(
        "SELECT COUNT(*) AS n FROM procedurelog WHERE PatNum = ? AND ProcStatus = ?",
        pat_num,
        COMPLETE_PROCEDURE,
    )
    if completed is not None and int(completed["n"]) == 0:
        tx.run("UPDATE patient SET DateFirstVisit = ? WHERE PatNum = ?", when[:10], pat_num)
