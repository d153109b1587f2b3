"""``Referrals`` and ``RefAttaches`` as opendental.com documents them.

apireferrals.html: ``GET /referrals`` lists referral sources ("The
description of non-patient sources is stored in the LName field"), with the
optional filters ``IsHidden``, ``NotPerson``, ``IsDoctor``, ``IsPreferred``
and ``isPatient``; ``POST /referrals`` creates one: ``LName`` required,
``FName``, ``MName``, ``Title``, ``Note``, ``BusinessName``, ``PatNum``
optional; "Non Persons (provide neither PatNum or specialty) ... NotPerson
will be set to true"; ``IsDoctor``, ``isPatient`` and ``NotPerson`` cannot be
set. (``specialty`` is refused by the stand-in: the sample has no
ProviderSpecialty definitions.)

apirefattaches.html: ``GET /refattaches[?PatNum=]`` ("400 Patient has been
deleted", "404 Patient not found"); ``POST /refattaches`` attaches a patient
to a referral source given by ``ReferralNum`` or ``referralName`` ("search
the LName of existing referrals for an exact match. If a match is not found,
a new referral with that name is created and used"), ``RefDate`` (default
today), ``ReferralType`` (``RefTo``, ``RefFrom``, ``RefCustom``; default
``RefFrom``), ``RefToStatus`` (default ``None``), ``Note``; "400 Referral is
already attached to this patient"; 404 "Patient not found" or "Referral not
found". The new attachment goes after the patient's others (``ItemOrder``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sandbox.odapi.database import Row, Tx
from sandbox.odapi.fields import ApiError, Body, date_text, datetime_text, flag, name_of
from sandbox.odapi.reference import DELETED_PATIENT

REFERRAL_TYPE = {"RefTo": 0, "RefFrom": 1, "RefCustom": 2}
REF_TO_STATUS = {
    "None": 0,
    "Declined": 1,
    "Scheduled": 2,
    "Consulted": 3,
    "InTreatment": 4,
    "Complete": 5,
}
REFERRAL_FILTERS = ("IsHidden", "NotPerson", "IsDoctor", "IsPreferred", "isPatient")
REFERRAL_FIELDS = ("LName", "FName", "MName", "Title", "Note", "BusinessName", "PatNum")
REFATTACH_FIELDS = (
    "PatNum", "ReferralNum", "referralName", "RefDate", "ReferralType", "RefToStatus", "Note",
)  # fmt: skip


def _bool_query(query: Mapping[str, str], name: str) -> bool | None:
    if name not in query:
        return None
    value = query[name].lower()
    if value not in ("true", "false"):
        raise ApiError(400, f'{name} must be either "true" or "false".')
    return value == "true"


def render_referral(row: Row) -> dict[str, Any]:
    return {
        "ReferralNum": int(row["ReferralNum"]),
        "LName": row["LName"] or "",
        "FName": row["FName"] or "",
        "MName": row["MName"] or "",
        "Specialty": int(row["Specialty"] or 0),
        "Note": row["Note"] or "",
        "IsHidden": flag(row["IsHidden"]),
        "NotPerson": flag(row["NotPerson"]),
        "Title": row["Title"] or "",
        "PatNum": int(row["PatNum"] or 0),
        "IsDoctor": flag(row["IsDoctor"]),
        "DateTStamp": datetime_text(row["DateTStamp"]),
        "IsPreferred": flag(row["IsPreferred"]),
        "BusinessName": row["BusinessName"] or "",
        "isPatient": flag(int(row["PatNum"] or 0) > 0),
    }


def get_referrals(tx: Tx, query: Mapping[str, str]) -> list[dict[str, Any]]:
    where: list[str] = []
    for name in REFERRAL_FILTERS:
        wanted = _bool_query(query, name)
        if wanted is None:
            continue
        if name == "isPatient":
            where.append("PatNum > 0" if wanted else "PatNum = 0")
        else:
            where.append(f"{name} {'<>' if wanted else '='} 0")
    sql = "SELECT * FROM referral"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return [render_referral(row) for row in tx.all(sql + " ORDER BY ReferralNum")]


def _insert_referral(tx: Tx, last_name: str, **values: object) -> int:
    row: dict[str, object] = {
        "LName": last_name, "FName": "", "MName": "", "Specialty": 0, "Note": "",
        "IsHidden": 0, "NotPerson": 1, "Title": "", "PatNum": 0, "Slip": 0, "IsDoctor": 0,
        "IsPreferred": 0, "BusinessName": "",
    }  # fmt: skip
    row.update(values)
    return tx.insert("referral", row)


def create_referral(tx: Tx, raw: object) -> dict[str, Any]:
    body = Body(raw, REFERRAL_FIELDS, ("specialty", "Specialty"))
    last_name = body.text("LName", limit=100, required=True)
    assert last_name is not None
    patient = body.key("PatNum") or 0
    if patient:
        row = tx.one("SELECT LName, PatStatus FROM patient WHERE PatNum = ?", patient)
        if row is None or row["PatStatus"] == DELETED_PATIENT:
            raise ApiError(400, "PatNum is invalid.")
        if (row["LName"] or "").casefold() != last_name.casefold():
            raise ApiError(400, "LName must match the patient's last name.")
    number = _insert_referral(
        tx,
        last_name,
        FName=body.text("FName", limit=100) or "",
        MName=body.text("MName", limit=100) or "",
        Title=body.text("Title", limit=255) or "",
        Note=body.text("Note", limit=65_535) or "",
        BusinessName=body.text("BusinessName", limit=255) or "",
        PatNum=patient,
        NotPerson=0 if patient else 1,
    )
    created = tx.one("SELECT * FROM referral WHERE ReferralNum = ?", number)
    assert created is not None
    return render_referral(created)


def _patient(tx: Tx, pat_num: int) -> None:
    row = tx.one("SELECT PatStatus FROM patient WHERE PatNum = ?", pat_num)
    if row is None:
        raise ApiError(404, "Patient not found")
    if row["PatStatus"] == DELETED_PATIENT:
        raise ApiError(400, "Patient has been deleted")


def _referral_name(row: Row) -> str:
    """As Open Dental shows a referral: "First Middle Last, Title" (LName alone for a source)."""
    if row["NotPerson"]:
        return str(row["LName"] or "")
    parts = [p for p in (row["FName"], row["MName"], row["LName"]) if p]
    name = " ".join(str(p) for p in parts)
    return f"{name}, {row['Title']}" if row["Title"] else name


def render_refattach(row: Row) -> dict[str, Any]:
    return {
        "RefAttachNum": int(row["RefAttachNum"]),
        "ReferralNum": int(row["ReferralNum"]),
        "referralName": _referral_name(row),
        "PatNum": int(row["PatNum"]),
        "ItemOrder": int(row["ItemOrder"] or 0),
        "RefDate": date_text(row["RefDate"]),
        "ReferralType": name_of(REFERRAL_TYPE, int(row["RefType"] or 0)),
        "RefToStatus": name_of(REF_TO_STATUS, int(row["RefToStatus"] or 0)),
        "Note": row["Note"] or "",
        "IsTransitionOfCare": flag(row["IsTransitionOfCare"]),
        "ProcNum": int(row["ProcNum"] or 0),
        "DateProcComplete": date_text(row["DateProcComplete"]),
        "ProvNum": int(row["ProvNum"] or 0),
        "DateTStamp": datetime_text(row["DateTStamp"]),
    }


_REFATTACH_SELECT = (
    "SELECT a.RefAttachNum, a.ReferralNum, a.PatNum, a.ItemOrder, a.RefDate, a.RefType,"
    " a.RefToStatus, a.Note, a.IsTransitionOfCare, a.ProcNum, a.DateProcComplete, a.ProvNum,"
    " a.DateTStamp, r.LName, r.FName, r.MName, r.Title, r.NotPerson"
    " FROM refattach a LEFT JOIN referral r ON r.ReferralNum = a.ReferralNum"
)


def get_refattaches(tx: Tx, query: Mapping[str, str]) -> list[dict[str, Any]]:
    sql, params = _REFATTACH_SELECT, []
    if "PatNum" in query:
        if not query["PatNum"].isdigit():
            raise ApiError(400, "PatNum must be a whole number.")
        _patient(tx, int(query["PatNum"]))
        sql += " WHERE a.PatNum = ?"
        params.append(int(query["PatNum"]))
    rows = tx.all(sql + " ORDER BY a.PatNum, a.ItemOrder, a.RefAttachNum", *params)
    return [render_refattach(row) for row in rows]


def create_refattach(tx: Tx, raw: object) -> dict[str, Any]:
    body = Body(raw, REFATTACH_FIELDS)
    pat_num = body.key("PatNum", required=True)
    assert pat_num is not None
    number = body.key("ReferralNum")
    name = body.text("referralName", limit=100)
    if not number and not name:
        raise ApiError(400, "ReferralNum or referralName is required.")
    ref_type = body.enum("ReferralType", REFERRAL_TYPE, REFERRAL_TYPE) or 0
    if not body.has("ReferralType"):
        ref_type = REFERRAL_TYPE["RefFrom"]
    status = body.enum("RefToStatus", REF_TO_STATUS, REF_TO_STATUS) or 0
    ref_date = body.day("RefDate") or tx.today()
    note = body.text("Note", limit=65_535) or ""
    _patient(tx, pat_num)
    if number:
        if tx.one("SELECT ReferralNum FROM referral WHERE ReferralNum = ?", number) is None:
            raise ApiError(404, "Referral not found")
    else:
        assert name is not None
        found = tx.one("SELECT MIN(ReferralNum) AS n FROM referral WHERE LName = ?", name.strip())
        number = int(found["n"]) if found and found["n"] is not None else 0
        if not number:
            number = _insert_referral(tx, name.strip())
    same = tx.one(
        "SELECT RefAttachNum FROM refattach WHERE PatNum = ? AND ReferralNum = ? AND RefType = ?",
        pat_num,
        number,
        ref_type,
    )
    if same is not None:
        raise ApiError(400, "Referral is already attached to this patient")
    last = tx.one("SELECT MAX(ItemOrder) AS n FROM refattach WHERE PatNum = ?", pat_num)
    ref_attach = tx.insert(
        "refattach",
        {
            "ReferralNum": number,
            "PatNum": pat_num,
            "ItemOrder": int(last["n"] or 0) + 1 if last else 1,
            "RefDate": ref_date,
            "RefType": ref_type,
            "RefToStatus": status,
            "Note": note,
            "IsTransitionOfCare": 0,
            "ProcNum": 0,
            "DateProcComplete": "0001-01-01",
            "ProvNum": 0,
        },
    )
    row = tx.one(_REFATTACH_SELECT + " WHERE a.RefAttachNum = ?", ref_attach)
    assert row is not None
    return render_refattach(row)
