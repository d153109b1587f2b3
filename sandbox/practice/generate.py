"""The whole practice, generated in order into an :class:`~rows.Output`.

Determinism: every part draws from its own ``random.Random`` seeded with
``f"{seed}:{part}"`` (string seeds hash the same on every platform and
Python version), iterates only over lists and insertion-ordered dicts, and
takes the date from ``today`` alone, never from the clock. The same seed,
size, today and clinics flag therefore give the same rows, in the same order,
on every run. The only target-dependent values are the legacy zero dates
(``legacy_zero_dates``: MariaDB only, see :mod:`followup`).

Order: set-up tables, patients (with insurance), then the diary day by day
(schedules, appointments and, per appointment, procedures, claims and
payments), then recalls and legacy rows. Tables not written here (for
example ``deletedobject`` and ``securitylog``) exist but stay empty.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from sandbox.practice.dates import (
    LEGACY_ZERO_DATE,
    LEGACY_ZERO_DATETIME,
    NO_DATE,
    NO_DATETIME,
    DiarySpan,
)
from sandbox.practice.diary import Diary
from sandbox.practice.followup import Commlogs, write_legacy_rows, write_recalls
from sandbox.practice.ledger import Ledger
from sandbox.practice.office import build_office
from sandbox.practice.patients import build_patients
from sandbox.practice.profiles import SizeProfile
from sandbox.practice.rows import Output


def generate(
    out: Output,
    *,
    size: SizeProfile,
    seed: int,
    today: date,
    clinics: bool,
    legacy_zero_dates: bool,
) -> None:
    """Write every row of the practice to ``out`` and flush it."""

    def rng(part: str) -> random.Random:
        return random.Random(f"{seed}:{part}")

    span = DiarySpan.around(today)
    office = build_office(
        out,
        rng("office"),
        size,
        with_clinics=clinics,
        setup_day=span.start - timedelta(days=3 * 365),
    )
    roster = build_patients(out, rng("patients"), office, span, size.patients)
    ledger = Ledger(out, rng("ledger"), office, roster, today)
    commlogs = Commlogs(out, rng("commlog"), office)
    diary = Diary(
        out,
        rng("diary"),
        office,
        roster,
        span,
        ledger=ledger,
        commlogs=commlogs,
        vacation_days=size.vacation_days,
    )
    diary.run()
    write_recalls(
        out, rng("recall"), office, roster, tracker=diary.tracker, span=span, commlogs=commlogs
    )
    write_legacy_rows(
        out,
        rng("legacy"),
        office,
        roster,
        span=span,
        commlogs=commlogs,
        zero_date=LEGACY_ZERO_DATE if legacy_zero_dates else NO_DATE,
        zero_datetime=LEGACY_ZERO_DATETIME if legacy_zero_dates else NO_DATETIME,
        first_pay_num=ledger.pay_num,
        first_split_num=ledger.split_num,
    )
    out.flush()
