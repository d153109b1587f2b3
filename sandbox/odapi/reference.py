"""Lookups the stand-in's calls share, ``GET /definitions``, and the security log.

Open Dental's API "makes the appropriate security log entries"
(apiimplementation.html), so every write the stand-in makes adds a
``securitylog`` row naming the patient (``PatNum``) and, for appointments,
the ``FKey``. The text is generic (no names or values). Open Dental's
``Permissions`` numbers were not researched; the stand-in uses the same
placeholder numbers as the receptionist simulator
(:mod:`sandbox.practice.simulator`), and ``LogSource`` 0.

Defaults the documentation names without saying where they come from:

* "the dental office's default provider" (the ``PracticeDefaultProv``
  preference; the sample has no ``preference`` table): the first visible,
  non-hygienist provider by ``ItemOrder``;
* the default billing type: the first visible category-4 definition by
  ``ItemOrder`` (Open Dental's ``PracticeDefaultBillType`` preference).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

from sandbox.odapi.database import Row, Tx
from sandbox.odapi.fields import DEF_CATEGORY, ApiError, flag
from sandbox.practice.simulator import PERM_APPOINTMENT_EDIT, PERM_PATIENT_CREATE

__all__ = ["PERM_APPOINTMENT_EDIT", "PERM_PATIENT_CREATE"]

DEFCAT_APPT_CONFIRMED = 2
DEFCAT_BILLING_TYPES = 4
DEFCAT_UNSCHED_STATUS = 13
DELETED_PATIENT = 4
PAGE_LIMIT = 100
COMPUTER_NAME = socket.gethostname()[:255] or "OpenDentalAPIService"


def definition(tx: Tx, def_num: int, category: int) -> Row | None:
    return tx.one(
        "SELECT DefNum, ItemName, IsHidden FROM definition WHERE DefNum = ? AND Category = ?",
        def_num,
        category,
    )


def definition_named(tx: Tx, name: str, category: int) -> Row | None:
    """The definition of ``category`` called ``name`` (visible ones first)."""
    return tx.one(
        "SELECT DefNum, ItemName FROM definition WHERE Category = ? AND ItemName = ?"
        " ORDER BY IsHidden, ItemOrder, DefNum LIMIT 1",
        category,
        name,
    )


def first_definition(tx: Tx, category: int) -> Row | None:
    return tx.one(
        "SELECT DefNum, ItemName FROM definition WHERE Category = ? AND IsHidden = 0"
        " ORDER BY ItemOrder, DefNum LIMIT 1",
        category,
    )


def item_name(tx: Tx, def_num: object) -> str:
    if not def_num:
        return ""
    row = tx.one("SELECT ItemName FROM definition WHERE DefNum = ?", def_num)
    return str(row["ItemName"] or "") if row else ""


def provider(tx: Tx, prov_num: int) -> Row | None:
    return tx.one("SELECT ProvNum, Abbr FROM provider WHERE ProvNum = ?", prov_num)


def provider_abbr(tx: Tx, prov_num: object) -> str:
    if not prov_num:
        return ""
    row = tx.one("SELECT Abbr FROM provider WHERE ProvNum = ?", prov_num)
    return str(row["Abbr"] or "") if row else ""


def require_provider(tx: Tx, field: str, prov_num: int | None) -> None:
    if prov_num and provider(tx, prov_num) is None:
        raise ApiError(400, f"{field} is invalid: no provider {prov_num}.")


def require_clinic(tx: Tx, clinic_num: int | None) -> None:
    if (
        clinic_num
        and tx.one("SELECT ClinicNum FROM clinic WHERE ClinicNum = ?", clinic_num) is None
    ):
        raise ApiError(400, f"ClinicNum is invalid: no clinic {clinic_num}.")


def default_provider(tx: Tx) -> int:
    row = tx.one(
        "SELECT ProvNum FROM provider WHERE IsHidden = 0 AND IsSecondary = 0"
        " ORDER BY ItemOrder, ProvNum LIMIT 1"
    )
    if row is None:
        raise ApiError(400, "The practice has no default provider.")
    return int(row["ProvNum"])


def security_log(tx: Tx, perm: int, pat_num: int, text: str, fkey: int = 0) -> None:
    tx.insert(
        "securitylog",
        {
            "PermType": perm,
            "UserNum": 0,
            "LogDateTime": tx.now(),
            "LogText": text,
            "PatNum": pat_num,
            "CompName": COMPUTER_NAME,
            "FKey": fkey,
            "LogSource": 0,
        },
    )


def get_definitions(tx: Tx, query: Mapping[str, str]) -> list[dict[str, Any]]:
    """``GET /definitions[?Category=N][&includeHidden=true][&Offset=][&Limit=]``."""
    where = []
    params: list[object] = []
    if "Category" in query:
        if not query["Category"].isdigit():
            raise ApiError(400, "Category must be a whole number.")
        where.append("Category = ?")
        params.append(int(query["Category"]))
    hidden = query.get("includeHidden", "false").lower()
    if hidden not in ("true", "false"):
        raise ApiError(400, 'includeHidden must be either "true" or "false".')
    if hidden == "false":
        where.append("IsHidden = 0")
    offset, limit = page(query)
    sql = "SELECT DefNum, ItemName, ItemValue, Category, IsHidden FROM definition"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY Category, ItemOrder, DefNum LIMIT {limit} OFFSET {offset}"
    return [
        {
            "DefNum": int(row["DefNum"]),
            "ItemName": row["ItemName"] or "",
            "ItemValue": row["ItemValue"] or "",
            "Category": int(row["Category"]),
            "category": DEF_CATEGORY.get(int(row["Category"]), ""),
            "isHidden": flag(row["IsHidden"]),
        }
        for row in tx.all(sql, *params)
    ]


def page(query: Mapping[str, str]) -> tuple[int, int]:
    """``Offset`` and ``Limit`` (at most 100 items per request, the API's hard limit)."""
    values = []
    for name, default in (("Offset", 0), ("Limit", PAGE_LIMIT)):
        text = query.get(name, str(default))
        if not text.isdigit():
            raise ApiError(400, f"{name} must be a whole number.")
        values.append(int(text))
    return values[0], min(values[1], PAGE_LIMIT)
