"""``POST /patients`` as opendental.com/site/apipatients.html documents it.

"The only required fields are LName and FName." Defaults as documented:
PatStatus Patient, Gender Unknown, Position Single, TxtMsgOk Unknown, the
Prefer*Method fields None, and "Guarantor: ... Default is patient's PatNum"
(a new family's head: inserted, then ``Guarantor = PatNum``, as Open
Dental's own insert does). ``BillingType`` is a definition *name*
(category 4); ``Zip`` must be ``12345``, ``12345-1234``, ``123456789`` or
``A0A 0A0``; ``ChartNumber`` at most 15 characters.

"New patient information is compared against existing patient information
(LName, FName, Birthdate, and Email or phone numbers) to prevent
duplicates." What the API answers then is not documented; the stand-in
refuses with 400 and the existing PatNum when a patient that is not deleted
has the same names and birth date (letter case aside) and the same e-mail
or one of the same phone numbers (digits compared).

Documented fields the sample database has no column for (SSN, MedicaidID,
EmployerNum, FamFinUrgNote, Premed, Ward, AdmitDate, SuperFamily) are
refused with a 400 that says so. The answer is 201 with the patient (the
documented fields the sample stores) and a ``Location`` header.
"""

from __future__ import annotations

import re
from typing import Any

from sandbox.odapi.database import Row, Tx
from sandbox.odapi.fields import (
    CONTACT_METHOD,
    GENDER,
    PAT_STATUS,
    POSITION,
    YES_NO,
    ApiError,
    Body,
    date_text,
    datetime_text,
    name_of,
)
from sandbox.odapi.reference import (
    DEFCAT_BILLING_TYPES,
    DELETED_PATIENT,
    PERM_PATIENT_CREATE,
    default_provider,
    definition_named,
    first_definition,
    item_name,
    provider_abbr,
    require_clinic,
    require_provider,
    security_log,
)

TEXT_FIELDS = (
    "MiddleI", "Preferred", "Address", "Address2", "City", "State",
    "HmPhone", "WkPhone", "WirelessPhone", "Email", "Language",
)  # fmt: skip
PHONE_LIMIT = 30
ALLOWED = (
    "LName", "FName", *TEXT_FIELDS, "PatStatus", "Gender", "Position", "Birthdate", "Zip",
    "Guarantor", "PriProv", "SecProv", "FeeSched", "BillingType", "ChartNumber",
    "DateFirstVisit", "ClinicNum", "PreferConfirmMethod", "PreferContactMethod",
    "PreferRecallMethod", "TxtMsgOk",
)  # fmt: skip
UNSUPPORTED = (
    "SSN", "MedicaidID", "EmployerNum", "FamFinUrgNote", "Premed", "Ward", "AdmitDate",
    "SuperFamily",
)  # fmt: skip
_ZIP = re.compile(r"[0-9]{5}(-[0-9]{4})?\Z|[0-9]{9}\Z|[A-Z][0-9][A-Z] [0-9][A-Z][0-9]\Z")
_DIGITS = re.compile(r"[^0-9]")


def create_patient(tx: Tx, raw: object) -> dict[str, Any]:
    """Validate and insert; returns the created patient as the API shows it."""
    body = Body(raw, ALLOWED, UNSUPPORTED)
    values: dict[str, object] = {
        "LName": body.text("LName", limit=100, required=True),
        "FName": body.text("FName", limit=100, required=True),
    }
    for name in TEXT_FIELDS:
        limit = PHONE_LIMIT if name.endswith("Phone") else 100
        values[name] = body.text(name, limit=limit) or ""
    values["PatStatus"] = _enum(body, "PatStatus", PAT_STATUS, exclude=("Deleted",), default=0)
    values["Gender"] = _enum(body, "Gender", GENDER, exclude=("Other",), default=2)
    values["Position"] = _enum(body, "Position", POSITION, default=0)
    values["TxtMsgOk"] = _enum(body, "TxtMsgOk", YES_NO, default=0)
    for name in ("PreferConfirmMethod", "PreferContactMethod", "PreferRecallMethod"):
        values[name] = _enum(body, name, CONTACT_METHOD, default=0)
    values["Birthdate"] = body.day("Birthdate") or "0001-01-01"
    values["DateFirstVisit"] = body.day("DateFirstVisit") or "0001-01-01"
    zip_code = body.text("Zip", limit=100)
    if zip_code and not _ZIP.match(zip_code):
        raise ApiError(
            400, "Zip must be in format 12345, 12345-1234, or 123456789 (US) or A0A 0A0 (Canada)."
        )
    values["Zip"] = zip_code or ""
    chart = body.text("ChartNumber", limit=15)
    values["ChartNumber"] = chart or ""
    pri_prov = body.key("PriProv")
    require_provider(tx, "PriProv", pri_prov)
    values["PriProv"] = pri_prov or default_provider(tx)
    sec_prov = body.key("SecProv")
    require_provider(tx, "SecProv", sec_prov)
    values["SecProv"] = sec_prov or 0
    values["FeeSched"] = body.key("FeeSched") or 0
    values["BillingType"] = _billing_type(tx, body.text("BillingType", limit=255))
    clinic = body.key("ClinicNum")
    require_clinic(tx, clinic)
    values["ClinicNum"] = clinic or 0
    guarantor = body.key("Guarantor")
    if guarantor:
        head = tx.one("SELECT PatStatus FROM patient WHERE PatNum = ?", guarantor)
        if head is None or head["PatStatus"] == DELETED_PATIENT:
            raise ApiError(400, f"Guarantor is invalid: no patient {guarantor}.")
    _refuse_duplicate(tx, values)
    values.update(
        Guarantor=guarantor or 0,
        SuperFamily=0,
        SecUserNumEntry=0,
        SecDateEntry=tx.today(),
        SecurityHash="",
    )
    pat_num = tx.insert("patient", values)
    if not guarantor:
        tx.run("UPDATE patient SET Guarantor = ? WHERE PatNum = ?", pat_num, pat_num)
    security_log(tx, PERM_PATIENT_CREATE, pat_num, "Patient created through the API.")
    row = tx.one("SELECT * FROM patient WHERE PatNum = ?", pat_num)
    assert row is not None
    return render_patient(tx, row)


def render_patient(tx: Tx, row: Row) -> dict[str, Any]:
    """A patient row in the API's shape (the fields the sample database stores)."""
    return {
        "PatNum": int(row["PatNum"]),
        "LName": row["LName"] or "",
        "FName": row["FName"] or "",
        "MiddleI": row["MiddleI"] or "",
        "Preferred": row["Preferred"] or "",
        "PatStatus": name_of(PAT_STATUS, row["PatStatus"]),
        "Gender": name_of(GENDER, row["Gender"]),
        "Position": name_of(POSITION, row["Position"]),
        "Birthdate": date_text(row["Birthdate"]),
        "Address": row["Address"] or "",
        "Address2": row["Address2"] or "",
        "City": row["City"] or "",
        "State": row["State"] or "",
        "Zip": row["Zip"] or "",
        "HmPhone": row["HmPhone"] or "",
        "WkPhone": row["WkPhone"] or "",
        "WirelessPhone": row["WirelessPhone"] or "",
        "Guarantor": int(row["Guarantor"]),
        "Email": row["Email"] or "",
        "PriProv": int(row["PriProv"]),
        "priProvAbbr": provider_abbr(tx, row["PriProv"]),
        "SecProv": int(row["SecProv"]),
        "secProvAbbr": provider_abbr(tx, row["SecProv"]),
        "FeeSched": int(row["FeeSched"]),
        "BillingType": item_name(tx, row["BillingType"]),
        "ChartNumber": row["ChartNumber"] or "",
        "DateFirstVisit": date_text(row["DateFirstVisit"]),
        "ClinicNum": int(row["ClinicNum"]),
        "PreferConfirmMethod": name_of(CONTACT_METHOD, row["PreferConfirmMethod"]),
        "PreferContactMethod": name_of(CONTACT_METHOD, row["PreferContactMethod"]),
        "PreferRecallMethod": name_of(CONTACT_METHOD, row["PreferRecallMethod"]),
        "Language": row["Language"] or "",
        "DateTStamp": datetime_text(row["DateTStamp"]),
        "SuperFamily": int(row["SuperFamily"]),
        "TxtMsgOk": name_of(YES_NO, row["TxtMsgOk"]),
        "SecDateEntry": date_text(row["SecDateEntry"]),
    }


def _enum(
    body: Body,
    name: str,
    mapping: dict[str, int],
    *,
    default: int,
    exclude: tuple[str, ...] = (),
) -> int:
    value = body.enum(name, mapping, [k for k in mapping if k not in exclude])
    return default if value is None else value


def _billing_type(tx: Tx, name: str | None) -> int:
    if name is None:
        row = first_definition(tx, DEFCAT_BILLING_TYPES)
        if row is None:
            raise ApiError(400, "The practice has no billing type.")
        return int(row["DefNum"])
    row = definition_named(tx, name, DEFCAT_BILLING_TYPES)
    if row is None:
        raise ApiError(400, "BillingType must be a definition.ItemName where Category=4.")
    return int(row["DefNum"])


def _refuse_duplicate(tx: Tx, values: dict[str, object]) -> None:
    candidates = tx.all(
        "SELECT PatNum, Email, HmPhone, WkPhone, WirelessPhone FROM patient"
        " WHERE LName = ? AND FName = ? AND Birthdate = ? AND PatStatus <> ?",
        values["LName"],
        values["FName"],
        values["Birthdate"],
        DELETED_PATIENT,
    )
    email = str(values["Email"]).strip().lower()
    phones = {_digits(values[n]) for n in ("HmPhone", "WkPhone", "WirelessPhone")} - {""}
    for row in candidates:
        same_email = bool(email) and str(row["Email"] or "").strip().lower() == email
        theirs = {_digits(row[n]) for n in ("HmPhone", "WkPhone", "WirelessPhone")} - {""}
        if same_email or phones & theirs:
            raise ApiError(
                400,
                f"This patient already exists (PatNum {int(row['PatNum'])}): same name, "
                "birthdate and email or phone number.",
            )


def _digits(value: object) -> str:
    return _DIGITS.sub("", str(value or ""))
