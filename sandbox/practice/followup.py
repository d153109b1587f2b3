"""After the visits: communication log, recalls and legacy leftovers.

* :class:`Commlogs` writes commlog rows (the diary logs confirmations and
  no-show calls through it; :func:`write_recalls` logs recall calls).
* :func:`write_recalls` writes one recall row per active patient and recall
  type, from what the diary recorded in a :class:`Tracker`: ``DatePrevious``
  is the last completed hygiene visit, ``DateScheduled`` the next booked one.
* :func:`write_legacy_rows` writes what a conversion from older software
  leaves behind: payments and commlogs with zero dates. On MariaDB those are
  the legacy ``0000-00-00`` values the real schema allows; SQLite has no zero
  dates, so there they are ``0001-01-01``. Everything else is the same on
  both targets.
"""

from __future__ import annotations

import random
from array import array
from dataclasses import dataclass
from datetime import date, timedelta

from sandbox.practice import names, reference
from sandbox.practice.dates import NO_DATE, NO_DATETIME, DiarySpan, add_months, stamp
from sandbox.practice.draw import between
from sandbox.practice.ledger import PAYMENT_COLUMNS, PAYSPLIT_COLUMNS
from sandbox.practice.office import Office
from sandbox.practice.patients import PATIENT, Roster
from sandbox.practice.rows import Output

MODE_PHONE, MODE_TEXT = 3, 5  # commlog.Mode_
SENT = 1  # commlog.SentOrReceived
SOURCE_USER, SOURCE_REMINDER = 0, 3


@dataclass
class Tracker:
    """Per-patient visit facts (date ordinals, 0 = none), indexed by PatNum."""

    last_hygiene: array[int]
    next_hygiene: array[int]
    last_bitewings: array[int]

    @classmethod
    def for_patients(cls, count: int) -> Tracker:
        return cls(*(array("i", bytes(4 * (count + 1))) for _ in range(3)))


class Commlogs:
    def __init__(self, out: Output, rng: random.Random, office: Office) -> None:
        self.rng = rng
        self.types = office.def_nums(reference.COMMLOG_TYPES)
        self.num = 0
        self._add = out.table(
            "commlog",
            (
                "CommlogNum",
                "PatNum",
                "CommDateTime",
                "CommType",
                "Note",
                "Mode_",
                "SentOrReceived",
                "UserNum",
                "DateTStamp",
                "DateTimeEnd",
                "CommSource",
                "DateTEntry",
            ),
        )

    def add(
        self,
        pat: int,
        when: str,
        *,
        kind: str,
        mode: int,
        note: str,
        source: int | None,
        edited: str,
        entered: str | None = None,
    ) -> None:
        """One outgoing communication at ``when`` (entered then, unless ``entered``)."""
        self.num += 1
        self._add(
            (
                self.num,
                pat,
                when,
                self.types[kind],
                note,
                mode,
                SENT,
                between(self.rng, 1, 6),
                edited,
                NO_DATETIME,
                source,
                entered or when,
            )
        )


def write_recalls(
    out: Output,
    rng: random.Random,
    office: Office,
    roster: Roster,
    *,
    tracker: Tracker,
    span: DiarySpan,
    commlogs: Commlogs,
) -> None:
    add = out.table(
        "recall",
        (
            "RecallNum",
            "PatNum",
            "DateDueCalc",
            "DateDue",
            "DatePrevious",
            "RecallInterval",
            "RecallStatus",
            "Note",
            "IsDisabled",
            "DateTStamp",
            "RecallTypeNum",
            "DateScheduled",
            "Priority",
        ),
    )
    unsched = office.defs[reference.RECALL_UNSCHED_STATUS]
    today, last_day = span.today, span.today - timedelta(days=1)
    num = 0
    for pat in range(1, roster.count + 1):
        if roster.status[pat] != PATIENT:
            continue
        kind = (
            reference.PERIO
            if roster.perio[pat]
            else reference.CHILD_PROPHY
            if roster.child[pat]
            else reference.PROPHY
        )
        months = 3 if kind == reference.PERIO else 6
        kinds = [(kind, tracker.last_hygiene[pat], months)]
        if not roster.child[pat]:
            kinds.append((reference.BITEWINGS, tracker.last_bitewings[pat], 12))
        for recall_kind, last, interval in kinds:
            if last:
                previous: date | None = date.fromordinal(last)
            elif rng.random() < 0.9:
                previous = span.start - timedelta(days=rng.randint(30, 700))
            else:
                previous = None
            due = add_months(previous, interval) if previous else None
            scheduled = (
                date.fromordinal(tracker.next_hygiene[pat])
                if tracker.next_hygiene[pat] and recall_kind != reference.BITEWINGS
                else None
            )
            overdue = due is not None and due < today and scheduled is None
            status = rng.choice(unsched) if overdue and rng.random() < 0.4 else 0
            edited = min(previous or span.start, last_day)
            num += 1
            add(
                (
                    num,
                    pat,
                    due.isoformat() if due else NO_DATE,
                    due.isoformat() if due else NO_DATE,
                    previous.isoformat() if previous else NO_DATE,
                    reference.RECALL_TYPES[recall_kind].interval,
                    status,
                    rng.choice(("", "", "", None, "Prefers Tuesdays.")),
                    int(rng.random() < 0.02),
                    stamp(edited, 17 * 60 + 30),
                    office.recall_type_nums[recall_kind],
                    scheduled.isoformat() if scheduled else NO_DATE,
                    int(rng.random() < 0.03),
                )
            )
            if status:
                called = today - timedelta(days=rng.randint(1, 30))
                when = stamp(called, rng.randint(9 * 60, 16 * 60))
                commlogs.add(
                    pat,
                    when,
                    kind="Recall",
                    mode=MODE_PHONE,
                    note=rng.choice(names.COMMLOG_NOTES),
                    source=SOURCE_USER,
                    edited=when,
                )


def write_legacy_rows(
    out: Output,
    rng: random.Random,
    office: Office,
    roster: Roster,
    *,
    span: DiarySpan,
    commlogs: Commlogs,
    zero_date: str,
    zero_datetime: str,
    first_pay_num: int,
    first_split_num: int,
) -> None:
    """Converted balances and imported notes with zero dates (see module doc)."""
    add_payment = out.table(
        "payment",
        PAYMENT_COLUMNS,
    )
    add_split = out.table(
        "paysplit",
        PAYSPLIT_COLUMNS,
    )
    converted = span.start - timedelta(days=rng.randint(400, 900))
    pay_num, split_num = first_pay_num, first_split_num
    step = max(1, roster.count // max(3, roster.count // 200))
    for pat in range(1, roster.count + 1, step):
        edited = stamp(converted, 12 * 60)
        pay_num += 1
        amount = round(rng.uniform(5, 400), 2)
        add_payment(
            (
                pay_num,
                office.defs[reference.PAYMENT_TYPES][0],
                zero_date,
                amount,
                "",
                "Converted balance from previous software",
                0,
                roster.guarantor[pat],
                roster.clinic[pat],
                converted.isoformat(),
                1,
                edited,
            )
        )
        split_num += 1
        add_split(
            (
                split_num,
                amount,
                pat,
                zero_date,
                pay_num,
                roster.pri_prov[pat],
                NO_DATE,
                0,
                converted.isoformat(),
                roster.clinic[pat],
                1,
                edited,
            )
        )
        commlogs.add(
            pat,
            zero_datetime,
            kind="Misc",
            mode=0,
            note="Imported note from previous software.",
            source=None,
            edited=edited,
            entered=NO_DATETIME,
        )
