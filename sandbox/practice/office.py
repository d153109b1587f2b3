"""The office set-up: pick lists, clinics, providers, chairs, codes, plans.

:func:`build_office` writes the small set-up tables (definition, clinic,
provider, operatory, procedurecode, appointmenttype, recalltype, insplan) and
returns an :class:`Office` describing them for the generators that follow.

Every provider who sees patients owns one or two operatories for good: a
dentist's ops have ``ProvDentist`` set, a hygienist's op has ``IsHygiene=1``
and ``ProvHygienist`` set. No two providers ever share an operatory, which is
what keeps the diary free of overlaps by construction (see ``diary``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from sandbox.practice import names, reference
from sandbox.practice.dates import NO_DATE, stamp
from sandbox.practice.profiles import SizeProfile
from sandbox.practice.rows import Output

CLINICS = (
    ("Downtown Dental", "DT", "1200 Broadway", "Oakland", "CA", "94612", "510"),
    ("Eastside Family Dentistry", "ES", "455 E Santa Clara St", "San Jose", "CA", "95112", "408"),
)


@dataclass(frozen=True)
class Provider:
    num: int
    hygienist: bool
    clinic: int
    workdays: frozenset[int]  # weekday numbers, Monday = 0
    start: int  # minutes after midnight
    lunch: int
    lunch_end: int
    stop: int
    friday_stop: int
    ops: tuple[int, ...]


@dataclass(frozen=True)
class Operatory:
    num: int
    clinic: int
    hygiene: bool
    provider: int  # the one provider scheduled in it


@dataclass(frozen=True)
class Plan:
    num: int
    coverage: float  # multiplier on each code's usual coverage


@dataclass(frozen=True)
class Office:
    defs: dict[int, tuple[int, ...]]  # DefCat -> DefNums in ItemOrder
    clinics: tuple[int, ...]  # (0,) for a single-location office
    providers: tuple[Provider, ...]
    operatories: tuple[Operatory, ...]
    code_nums: tuple[int, ...]  # aligned with reference.CODES
    apt_type_nums: tuple[int, ...]  # aligned with reference.APT_TYPES
    recall_type_nums: tuple[int, ...]  # aligned with reference.RECALL_TYPES
    plans: tuple[Plan, ...]

    def def_nums(self, category: int) -> dict[str, int]:
        """ItemName -> DefNum for one category."""
        names = [item[0] for item in reference.DEFINITIONS[category]]
        return dict(zip(names, self.defs[category], strict=True))

    def dentists(self, clinic: int | None = None) -> list[Provider]:
        return [
            p for p in self.providers if not p.hygienist and (clinic is None or p.clinic == clinic)
        ]


def def_num(defs: dict[int, tuple[int, ...]], category: int, name: str) -> int:
    """The DefNum of the definition ``name`` in ``category``."""
    items = reference.DEFINITIONS[category]
    return defs[category][[item[0] for item in items].index(name)]


def _write_definitions(out: Output) -> dict[int, tuple[int, ...]]:
    add = out.table(
        "definition",
        ("DefNum", "Category", "ItemOrder", "ItemName", "ItemValue", "ItemColor", "IsHidden"),
    )
    defs: dict[int, tuple[int, ...]] = {}
    num = 0
    for category, items in reference.DEFINITIONS.items():
        nums = []
        for order, (item_name, value, color) in enumerate(items):
            num += 1
            add((num, category, order, item_name, value, color, 0))
            nums.append(num)
        defs[category] = tuple(nums)
    return defs


def _write_clinics(out: Output, with_clinics: bool) -> tuple[int, ...]:
    if not with_clinics:
        return (0,)
    add = out.table(
        "clinic",
        (
            "ClinicNum",
            "Description",
            "Address",
            "City",
            "State",
            "Zip",
            "Phone",
            "ItemOrder",
            "Abbr",
            "TimeZone",
        ),
    )
    for num, (title, abbr, street, city, state, zipcode, area) in enumerate(CLINICS, 1):
        add((num, title, street, city, state, zipcode, f"{area}5550100", num - 1, abbr, ""))
    return tuple(range(1, len(CLINICS) + 1))


def _hours(rng: random.Random) -> tuple[int, int, int, int, int]:
    start = rng.choice((7 * 60, 7 * 60 + 30, 8 * 60, 8 * 60))
    lunch = rng.choice((12 * 60, 12 * 60, 12 * 60 + 30))
    stop = rng.choice((16 * 60, 16 * 60 + 30, 17 * 60, 17 * 60))
    return start, lunch, lunch + 60, stop, 13 * 60


def _workdays(rng: random.Random, part_time: bool) -> frozenset[int]:
    days = list(range(5))
    rng.shuffle(days)
    return frozenset(days[: rng.choice((2, 3)) if part_time else 4])


def build_office(
    out: Output, rng: random.Random, size: SizeProfile, *, with_clinics: bool, setup_day: date
) -> Office:
    """Write the set-up tables; ``setup_day`` dates their stamps."""
    defs = _write_definitions(out)
    clinics = _write_clinics(out, with_clinics)
    providers, operatories = _write_staff(
        out, rng, size, defs=defs, clinics=clinics, setup_day=setup_day
    )
    return Office(
        defs=defs,
        clinics=clinics,
        providers=providers,
        operatories=operatories,
        code_nums=_write_codes(out, defs, stamp(setup_day, 9 * 60)),
        apt_type_nums=_write_apt_types(out),
        recall_type_nums=_write_recall_types(out),
        plans=_write_plans(out, rng, size, defs, setup_day),
    )


def _write_staff(
    out: Output,
    rng: random.Random,
    size: SizeProfile,
    *,
    defs: dict[int, tuple[int, ...]],
    clinics: tuple[int, ...],
    setup_day: date,
) -> tuple[tuple[Provider, ...], tuple[Operatory, ...]]:
    add_prov = out.table(
        "provider",
        (
            "ProvNum",
            "Abbr",
            "ItemOrder",
            "LName",
            "FName",
            "MI",
            "Suffix",
            "Specialty",
            "IsSecondary",
            "ProvColor",
            "IsHidden",
            "NationalProvID",
            "DateTStamp",
            "IsNotPerson",
            "ProvStatus",
            "Birthdate",
            "SchedNote",
            "PreferredName",
        ),
    )
    add_op = out.table(
        "operatory",
        (
            "OperatoryNum",
            "OpName",
            "Abbrev",
            "ItemOrder",
            "IsHidden",
            "ProvDentist",
            "ProvHygienist",
            "IsHygiene",
            "ClinicNum",
            "DateTStamp",
            "IsWebSched",
        ),
    )
    specialties = reference.PROVIDER_SPECIALTIES
    when = stamp(setup_day, 10 * 60)
    providers: list[Provider] = []
    operatories: list[Operatory] = []
    abbrs: set[str] = set()
    kinds = [False] * size.dentists + [True] * size.hygienists
    part_time_from = {
        False: size.dentists - round(size.dentists * size.part_time_share),
        True: size.hygienists - round(size.hygienists * size.part_time_share),
    }
    two_columns = round(size.dentists * size.two_column_share)
    seen = {False: 0, True: 0}
    for prov_num, hygienist in enumerate(kinds, 1):
        index = seen[hygienist]
        seen[hygienist] += 1
        female = rng.random() < 0.6
        first, last = names.person_name(rng, female), names.surname(rng)
        abbr = f"{first} {last[0]}. RDH" if hygienist else f"Dr {last}"[:16]
        while abbr in abbrs:
            abbr = f"{abbr.rstrip('0123456789 ')} {len(abbrs) + 1}"
        abbrs.add(abbr)
        specialty = (
            "Hygienist"
            if hygienist
            else rng.choice(
                ("General",) * 8 + ("Endodontics", "Periodontics", "Pediatric", "Prosthodontics")
            )
        )
        clinic = clinics[(prov_num - 1) % len(clinics)]
        n_ops = 2 if not hygienist and index < two_columns else 1
        ops = tuple(range(len(operatories) + 1, len(operatories) + 1 + n_ops))
        for column, op_num in enumerate(ops):
            label = (
                f"Hyg {index + 1}"
                if hygienist
                else f"Op {index + 1}{'AB'[column] if n_ops > 1 else ''}"
            )
            web_sched = int(hygienist or (column == 0 and index % 2 == 0))
            add_op(
                (
                    op_num,
                    f"{label} - {abbr}",
                    label.replace(" ", "")[:5],
                    op_num - 1,
                    0,
                    0 if hygienist else prov_num,
                    prov_num if hygienist else 0,
                    int(hygienist),
                    clinic,
                    when,
                    web_sched,
                )
            )
            operatories.append(Operatory(op_num, clinic, hygienist, prov_num))
        start, lunch, lunch_end, stop, friday_stop = _hours(rng)
        providers.append(
            Provider(
                prov_num,
                hygienist,
                clinic,
                _workdays(rng, index >= part_time_from[hygienist]),
                start,
                lunch,
                lunch_end,
                stop,
                friday_stop,
                ops,
            )
        )
        birth = setup_day - timedelta(days=rng.randint(27 * 365, 62 * 365))
        add_prov(
            (
                prov_num,
                abbr,
                prov_num - 1,
                last,
                first,
                rng.choice(("", "A", "J", "M")),
                "" if hygienist else rng.choice(("DDS", "DDS", "DMD")),
                def_num(defs, specialties, specialty),
                int(hygienist),
                rng.randrange(1 << 24),
                0,
                f"9{rng.randint(0, 999_999_999):09d}",
                when,
                0,
                0,
                birth.isoformat(),
                "",
                "",
            )
        )
    # A hidden billing pseudo-provider and a hidden, retired chair: present in
    # every real database, scheduled nowhere, never a patient's provider.
    billing = len(kinds) + 1
    add_prov(
        (
            billing,
            "BILL",
            billing - 1,
            "Billing",
            "Office",
            "",
            "",
            def_num(defs, specialties, "General"),
            0,
            0,
            1,
            "",
            when,
            1,
            0,
            NO_DATE,
            "",
            "",
        )
    )
    retired = len(operatories) + 1
    add_op((retired, "Old Op (do not use)", "OLD", retired - 1, 1, 0, 0, 0, clinics[0], when, 0))
    return tuple(providers), tuple(operatories)


def _write_codes(out: Output, defs: dict[int, tuple[int, ...]], when: str) -> tuple[int, ...]:
    add = out.table(
        "procedurecode",
        (
            "CodeNum",
            "ProcCode",
            "Descript",
            "AbbrDesc",
            "ProcTime",
            "ProcCat",
            "TreatArea",
            "NoBillIns",
            "IsHygiene",
            "DateTStamp",
        ),
    )
    nums = []
    for num, code in enumerate(reference.CODES, 1):
        add(
            (
                num,
                code.code,
                code.descript,
                code.abbr,
                code.proc_time,
                def_num(defs, reference.PROC_CODE_CATS, code.category),
                code.area,
                int(code.no_bill_ins),
                int(code.hygiene),
                when,
            )
        )
        nums.append(num)
    return tuple(nums)


def _write_apt_types(out: Output) -> tuple[int, ...]:
    add = out.table(
        "appointmenttype",
        (
            "AppointmentTypeNum",
            "AppointmentTypeName",
            "AppointmentTypeColor",
            "ItemOrder",
            "IsHidden",
            "Pattern",
            "CodeStr",
        ),
    )
    nums = []
    for num, apt_type in enumerate(reference.APT_TYPES, 1):
        add((num, apt_type.name, apt_type.color, num - 1, 0, apt_type.pattern, apt_type.codes))
        nums.append(num)
    return tuple(nums)


def _write_recall_types(out: Output) -> tuple[int, ...]:
    add = out.table(
        "recalltype",
        (
            "RecallTypeNum",
            "Description",
            "DefaultInterval",
            "TimePattern",
            "Procedures",
            "AppendToSpecial",
        ),
    )
    nums = []
    for num, kind in enumerate(reference.RECALL_TYPES, 1):
        add((num, kind.description, kind.interval, kind.time_pattern, kind.procedures, 0))
        nums.append(num)
    return tuple(nums)


def _write_plans(
    out: Output,
    rng: random.Random,
    size: SizeProfile,
    defs: dict[int, tuple[int, ...]],
    setup_day: date,
) -> tuple[Plan, ...]:
    add = out.table(
        "insplan",
        (
            "PlanNum",
            "GroupName",
            "GroupNum",
            "PlanNote",
            "PlanType",
            "EmployerNum",
            "CarrierNum",
            "IsMedical",
            "MonthRenew",
            "SecDateEntry",
            "SecDateTEdit",
            "BillingType",
        ),
    )
    billing = defs[reference.BILLING_TYPES][0]
    plans = []
    for num in range(1, size.insurance_plans + 1):
        employer = rng.randrange(len(reference.EMPLOYER_STEMS))
        carrier = rng.randrange(len(reference.CARRIERS))
        entered = setup_day + timedelta(days=rng.randint(0, 300))
        group = f"{reference.EMPLOYER_STEMS[employer]} {reference.CARRIERS[carrier]}"
        add(
            (
                num,
                group[:50],
                None if rng.random() < 0.05 else f"{rng.randint(1000, 999999)}",
                "" if rng.random() < 0.8 else "Missing tooth clause applies.",
                rng.choice(("", "", "p")),
                employer + 1,
                carrier + 1,
                0,
                rng.choice((1, 1, 7)),
                entered.isoformat(),
                stamp(entered, 11 * 60),
                billing,
            )
        )
        plans.append(Plan(num, rng.choice((1.0, 1.0, 0.9, 0.8))))
    return tuple(plans)
