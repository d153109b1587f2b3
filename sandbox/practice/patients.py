"""Families of patients, with their insurance (patient, inssub, patplan).

Contracts the rest of the build relies on:

* PatNums run 1..N in family order; every family's head comes first and has
  ``Guarantor = PatNum``; every member's ``Guarantor`` is the head's PatNum.
* ``PriProv`` is never 0: it is a dentist of the family's clinic. ``SecProv``
  is a hygienist or 0. ``BillingType`` is always a DefCat 4 definition.
* Every patient was entered before the diary starts, except prospective
  patients (PatStatus 6), who were entered recently and have no visits.
* The first families are fixed and carry the awkward data tests look for:
  non-ASCII and apostrophe names (including Ø and Ú, which MariaDB
  Connector/ODBC 3.1 mis-decodes by default), hyphenated surnames, twins (same family,
  surname and birthdate), two unrelated "John Smith"s with different
  birthdates, an unknown ``0001-01-01`` birthdate, NULL and '' contact fields.

Only compact per-patient facts are kept in memory (:class:`Roster`); the rows
themselves stream to the loader.
"""

from __future__ import annotations

import random
from array import array
from dataclasses import dataclass, field
from datetime import date, timedelta

from sandbox.practice import names, reference
from sandbox.practice.dates import NO_DATE, DiarySpan, stamp
from sandbox.practice.office import Office
from sandbox.practice.rows import Output

PATIENT, NON_PATIENT, INACTIVE, ARCHIVED, DELETED, DECEASED, PROSPECTIVE = range(7)
MALE, FEMALE = 0, 1
SINGLE, MARRIED, CHILD, WIDOWED, DIVORCED = range(5)
SELF, SPOUSE, CHILD_RELAT = 0, 1, 2

PATIENT_COLUMNS = (
    "PatNum",
    "LName",
    "FName",
    "MiddleI",
    "Preferred",
    "PatStatus",
    "Gender",
    "Position",
    "Birthdate",
    "Address",
    "Address2",
    "City",
    "State",
    "Zip",
    "HmPhone",
    "WkPhone",
    "WirelessPhone",
    "Guarantor",
    "Email",
    "PriProv",
    "SecProv",
    "BillingType",
    "ChartNumber",
    "DateFirstVisit",
    "ClinicNum",
    "PreferConfirmMethod",
    "PreferContactMethod",
    "PreferRecallMethod",
    "Language",
    "Title",
    "DateTStamp",
    "TxtMsgOk",
    "SecUserNumEntry",
    "SecDateEntry",
)


@dataclass(frozen=True)
class Member:
    """One person of a family, before PatNums and contact details."""

    first: str
    last: str
    gender: int
    birth: str  # YYYY-MM-DD, or NO_DATE
    adult: bool
    email: str | None = "auto"  # "auto": generated; None/"" kept as given
    wireless: str | None = "auto"


def _age(today: date, years: int, days: int = 0) -> str:
    return (today - timedelta(days=years * 365 + years // 4 + days)).isoformat()


def fixed_families(today: date) -> list[list[Member]]:
    """The awkward families every build starts with (same for every seed)."""
    twins = _age(today, 9, 40)
    return [
        [
            Member("Siân", "O'Brien", FEMALE, _age(today, 41, 12), True, email=""),
            Member("Liam", "O'Brien", MALE, _age(today, 43, 200), True, email=None),
            Member("Aoife", "O'Brien", FEMALE, twins, False),
            Member("Ciara", "O'Brien", FEMALE, twins, False),
        ],
        [
            Member("Minh", "Nguyễn", MALE, _age(today, 52, 3), True),
            Member("Zoë", "Nguyễn", FEMALE, _age(today, 49, 77), True, wireless=None),
            Member("Linh", "Nguyễn-Smith", FEMALE, _age(today, 15, 8), False),
        ],
        [Member("Pádraig", "Ó Súilleabháin", MALE, NO_DATE, True, email=None, wireless="")],
        [
            Member("Jürgen", "Müller", MALE, _age(today, 66, 150), True),
            Member("Renée", "Müller-Schmidt", FEMALE, _age(today, 61, 20), True),
        ],
        [
            Member("José", "García-López", MALE, _age(today, 35, 99), True),
            Member("María", "García-López", FEMALE, _age(today, 34, 5), True, email=""),
        ],
        [Member("John", "Smith", MALE, _age(today, 56, 30), True)],
        [Member("John", "Smith", MALE, _age(today, 29, 180), True, wireless=None)],
        [Member("Zoë", "D'Angelo", FEMALE, NO_DATE, True)],
        [
            Member("Øyvind", "Ødegaard", MALE, _age(today, 47, 61), True),
            Member("Úrsula", "Ødegaard", FEMALE, _age(today, 45, 2), True, email=""),
        ],
    ]


@dataclass
class Roster:
    """What later generators need to know per PatNum (index 0 unused)."""

    count: int = 0
    guarantor: array[int] = field(default_factory=lambda: array("q", [0]))
    pri_prov: array[int] = field(default_factory=lambda: array("q", [0]))
    clinic: array[int] = field(default_factory=lambda: array("q", [0]))
    status: bytearray = field(default_factory=lambda: bytearray(1))
    child: bytearray = field(default_factory=lambda: bytearray(1))
    perio: bytearray = field(default_factory=lambda: bytearray(1))
    plan1: array[int] = field(default_factory=lambda: array("q", [0]))
    sub1: array[int] = field(default_factory=lambda: array("q", [0]))
    plan2: array[int] = field(default_factory=lambda: array("q", [0]))
    sub2: array[int] = field(default_factory=lambda: array("q", [0]))
    relat1: bytearray = field(default_factory=lambda: bytearray(1))
    by_dentist: dict[int, list[int]] = field(default_factory=dict)  # active patients
    by_clinic: dict[int, list[int]] = field(default_factory=dict)  # active patients


def _random_family(rng: random.Random, today: date, size: int) -> list[Member]:
    head_female = rng.random() < 0.55
    last = names.surname(rng)
    head_age = rng.randint(24, 84) if size == 1 else rng.randint(26, 62)
    family = [
        Member(
            names.person_name(rng, head_female),
            last,
            int(head_female),
            _age(today, head_age, rng.randrange(365)),
            True,
        )
    ]
    if size >= 2:
        own = names.surname(rng)
        spouse_last = rng.choices((last, own, f"{own}-{last}"), (70, 15, 15))[0]
        spouse_age = max(19, head_age + rng.randint(-6, 6))
        family.append(
            Member(
                names.person_name(rng, not head_female),
                spouse_last,
                int(not head_female),
                _age(today, spouse_age, rng.randrange(365)),
                True,
            )
        )
    twins = size >= 4 and rng.random() < 0.05
    birth = ""
    for i in range(size - 2):
        female = rng.random() < 0.5
        if not (twins and i == 1):
            birth = _age(today, rng.randint(0, min(20, head_age - 20)), rng.randrange(365))
        child_last = last if rng.random() < 0.85 else f"{last}-{names.surname(rng)}"
        if twins and i == 1:
            child_last = family[-1].last
        family.append(Member(names.person_name(rng, female), child_last, int(female), birth, False))
    return family


def _status(rng: random.Random) -> int:
    return rng.choices(
        (PATIENT, INACTIVE, ARCHIVED, DELETED, DECEASED, PROSPECTIVE), (88, 6, 2, 1, 1, 2)
    )[0]


class _Writer:
    """Writes one family at a time and fills the roster."""

    def __init__(self, out: Output, rng: random.Random, office: Office, span: DiarySpan) -> None:
        self.rng, self.office, self.span = rng, office, span
        self.roster = Roster()
        self.add_patient = out.table("patient", PATIENT_COLUMNS)
        self.add_sub = out.table(
            "inssub",
            (
                "InsSubNum",
                "PlanNum",
                "Subscriber",
                "DateEffective",
                "DateTerm",
                "ReleaseInfo",
                "AssignBen",
                "SubscriberID",
                "SecUserNumEntry",
                "SecDateEntry",
                "SecDateTEdit",
            ),
        )
        self.add_patplan = out.table(
            "patplan",
            (
                "PatPlanNum",
                "PatNum",
                "Ordinal",
                "IsPending",
                "Relationship",
                "PatID",
                "InsSubNum",
                "SecDateTEntry",
                "SecDateTEdit",
            ),
        )
        self.sub_num = 0
        self.patplan_num = 0
        billing = office.defs[reference.BILLING_TYPES]
        self.billing_types = (
            (billing[0],) * 90 + (billing[1],) * 5 + (billing[2],) * 3 + (billing[3],) * 2
        )

    def family(self, members: list[Member]) -> None:
        rng, office, roster = self.rng, self.office, self.roster
        head = roster.count + 1
        clinic = office.clinics[rng.randrange(len(office.clinics))]
        dentist = rng.choice(office.dentists(clinic)).num
        hygienists = [p.num for p in office.providers if p.hygienist and p.clinic == clinic]
        street, street2, city, state, zipcode, area = names.address(rng)
        home = names.optional_phone(rng, area, 0.65)
        billing = rng.choice(self.billing_types)
        entered = self.span.start - timedelta(days=rng.randint(30, 15 * 365))
        last_day = self.span.today - timedelta(days=1)
        head_status = NON_PATIENT if len(members) > 2 and rng.random() < 0.05 else _status(rng)
        for i, member in enumerate(members):
            pat = roster.count + 1
            roster.count = pat
            status = head_status if i == 0 else _status(rng)
            entry = min(
                entered + timedelta(days=rng.randint(0, 400) if i else 0),
                self.span.start - timedelta(days=1),
            )
            first_visit = entry.isoformat()
            if status == PROSPECTIVE:
                entry = self.span.today - timedelta(days=rng.randint(1, 60))
                first_visit = NO_DATE
            email = member.email
            if email == "auto":
                email = (
                    names.email(rng, member.first, member.last)
                    if member.adult and rng.random() < 0.75
                    else rng.choice((None, ""))
                )
            wireless = member.wireless
            if wireless == "auto":
                wireless = names.optional_phone(rng, area, 0.85 if member.adult else 0.1)
            preferred = names.PREFERRED.get(member.first, "") if rng.random() < 0.3 else ""
            self.add_patient(
                (
                    pat,
                    member.last,
                    member.first,
                    rng.choice(("",) * 6 + ("A", "J", "M", "R")),
                    preferred,
                    status,
                    member.gender,
                    (
                        MARRIED
                        if len(members) > 1 and i < 2
                        else rng.choice((SINGLE, DIVORCED, WIDOWED, SINGLE))
                    )
                    if member.adult
                    else CHILD,
                    member.birth,
                    street,
                    street2,
                    city,
                    state,
                    zipcode,
                    home,
                    names.optional_phone(rng, area, 0.2 if member.adult else 0.0),
                    wireless,
                    head,
                    email,
                    dentist,
                    rng.choice(hygienists) if hygienists and rng.random() < 0.7 else 0,
                    billing,
                    f"{rng.choice('ABCDEFGH')}{pat}" if rng.random() < 0.3 else "",
                    first_visit,
                    clinic,
                    rng.choice((0, 0, 2, 4, 8)),
                    rng.choice((0, 2, 4, 5, 8)),
                    rng.choice((0, 4, 5, 8)),
                    rng.choice(names.LANGUAGES),
                    rng.choice((None,) * 8 + ("Mr.", "Ms.", "Mrs.", "Dr.")),
                    stamp(
                        min(entry + timedelta(days=rng.randint(0, 30)), last_day),
                        rng.randint(480, 1080),
                    ),
                    rng.choice((0, 1, 1, 2)),
                    rng.randint(1, 6),
                    entry.isoformat(),
                )
            )
            roster.guarantor.append(head)
            roster.pri_prov.append(dentist)
            roster.clinic.append(clinic)
            roster.status.append(status)
            born = member.birth
            roster.child.append(int(born != NO_DATE and born > _age(self.span.today, 14)))
            roster.perio.append(int(member.adult and rng.random() < 0.12))
            for series in (roster.plan1, roster.sub1, roster.plan2, roster.sub2):
                series.append(0)
            roster.relat1.append(SELF)
            if status == PATIENT:
                roster.by_dentist.setdefault(dentist, []).append(pat)
                roster.by_clinic.setdefault(clinic, []).append(pat)
        if rng.random() < 0.6:
            self._insure(head, members, entered)

    def _subscribe(self, subscriber: int, entered: date) -> tuple[int, int, int]:
        rng = self.rng
        plan = rng.choice(self.office.plans).num
        self.sub_num += 1
        effective = entered + timedelta(days=rng.randint(0, 200))
        self.add_sub(
            (
                self.sub_num,
                plan,
                subscriber,
                effective.isoformat(),
                NO_DATE,
                1,
                1,
                f"{rng.choice(('XGH', 'WDC', 'MTL', ''))}{rng.randint(0, 999_999_999):09d}",
                rng.randint(1, 6),
                effective.isoformat(),
                stamp(effective, 10 * 60),
            )
        )
        return plan, self.sub_num, subscriber

    def _insure(self, head: int, members: list[Member], entered: date) -> None:
        rng, roster = self.rng, self.roster
        plans = [self._subscribe(head, entered)]
        if len(members) >= 2 and rng.random() < 0.15:
            plans.append(self._subscribe(head + 1, entered))
        for i in range(len(members)):
            pat = head + i
            order = plans[::-1] if i == 1 else plans  # each spouse's own plan first
            for ordinal, (plan, sub, subscriber) in enumerate(order, 1):
                relat = SELF if subscriber == pat else (SPOUSE if i < 2 else CHILD_RELAT)
                self.patplan_num += 1
                when = entered + timedelta(days=rng.randint(0, 300))
                self.add_patplan(
                    (
                        self.patplan_num,
                        pat,
                        ordinal,
                        0,
                        relat,
                        "",
                        sub,
                        f"{when.isoformat()} 10:00:00",
                        stamp(when, 10 * 60 + 5),
                    )
                )
                if ordinal == 1:
                    roster.plan1[pat], roster.sub1[pat], roster.relat1[pat] = plan, sub, relat
                else:
                    roster.plan2[pat], roster.sub2[pat] = plan, sub


def build_patients(
    out: Output, rng: random.Random, office: Office, span: DiarySpan, target: int
) -> Roster:
    """Write ``target`` patients in families; returns the roster."""
    writer = _Writer(out, rng, office, span)
    for members in fixed_families(span.today):
        writer.family(members)
    sizes = (1,) * 40 + (2,) * 25 + (3,) * 15 + (4,) * 12 + (5,) * 6 + (6,) * 2
    while writer.roster.count < target:
        size = min(rng.choice(sizes), target - writer.roster.count)
        writer.family(_random_family(rng, span.today, size))
    return writer.roster
