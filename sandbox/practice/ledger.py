"""What each visit is for and what it cost: procedures, claims, payments.

For every appointment the diary books, :meth:`Ledger.plan` picks procedures
suited to the visit kind and :meth:`Ledger.record` writes them:

* procedurelog rows linked by ``AptNum`` (``PlannedAptNum`` for planned
  appointments): complete (ProcStatus 2) for completed visits, treatment
  planned (1) otherwise, with the fee of the code;
* for insured patients: one primary claim per completed visit (and a
  secondary one when the patient has a second plan), ClaimStatus letters
  aged realistically (U/W/S/R/H/I) relative to ``today``, one claimproc per
  billed procedure; estimate claimprocs (Status 6, ClaimNum 0) for treatment
  planned procedures;
* the patient's share paid at the visit or some days later (payment plus one
  paysplit per procedure), as long as that date is before ``today``.

Every date and stamp written here is before ``today``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from sandbox.practice import reference
from sandbox.practice.dates import NO_DATE, at, stamp
from sandbox.practice.draw import Weighted, between
from sandbox.practice.office import Office
from sandbox.practice.patients import Roster
from sandbox.practice.reference import CODE_INDEX, CODES
from sandbox.practice.rows import Output

TP, COMPLETE = 1, 2
CLAIM_NOT_RECEIVED, CLAIM_RECEIVED, CLAIM_ESTIMATE = 0, 1, 6
POSTERIOR = (
    "2",
    "3",
    "4",
    "5",
    "12",
    "13",
    "14",
    "15",
    "18",
    "19",
    "20",
    "21",
    "28",
    "29",
    "30",
    "31",
)
ANTERIOR = ("6", "7", "8", "9", "10", "11", "22", "23", "24", "25", "26", "27")
MOLARS = frozenset(("2", "3", "14", "15", "18", "19", "30", "31"))
SURFACES = {1: ("O", "B", "L", "M", "D"), 2: ("MO", "DO", "OL", "OB"), 3: ("MOD", "MOB", "DOL")}
FILLINGS = Weighted(
    [
        (("D2391", 1), 30),
        (("D2392", 2), 35),
        (("D2393", 3), 15),
        (("D2330", 1), 10),
        (("D2140", 1), 5),
        (("D2150", 2), 5),
    ]
)
CLAIM_AGING = (  # (minimum age in days, status letters weighted)
    (60, Weighted([("R", 96), ("S", 3), ("I", 1)])),
    (21, Weighted([("R", 75), ("S", 25)])),
    (5, Weighted([("S", 70), ("R", 20), ("W", 10)])),
    (0, Weighted([("U", 50), ("W", 30), ("S", 20)])),
)

Proc = tuple[int, str, str]  # (index into CODES, ToothNum, Surf)


# Columns written for payments and their splits (also by followup.py).
PAYMENT_COLUMNS = (
    "PayNum",
    "PayType",
    "PayDate",
    "PayAmt",
    "CheckNum",
    "PayNote",
    "IsSplit",
    "PatNum",
    "ClinicNum",
    "DateEntry",
    "SecUserNumEntry",
    "SecDateTEdit",
)
PAYSPLIT_COLUMNS = (
    "SplitNum",
    "SplitAmt",
    "PatNum",
    "ProcDate",
    "PayNum",
    "ProvNum",
    "DatePay",
    "ProcNum",
    "DateEntry",
    "ClinicNum",
    "SecUserNumEntry",
    "SecDateTEdit",
)


@dataclass(slots=True)
class Visit:
    """One booked appointment, as the ledger needs it."""

    apt_num: int
    planned: bool  # a Planned (status 6) appointment: procs link by PlannedAptNum
    pat: int
    day: date
    dstr: str  # day as YYYY-MM-DD
    complete: bool
    dentist: int
    hygienist: int  # 0 unless a hygiene visit
    clinic: int
    entry: date  # the day it was booked
    entry_str: str
    stamp: str  # the appointment's DateTStamp
    end_minute: int


def _c(code: str) -> int:
    return CODE_INDEX[code]


class Ledger:
    def __init__(
        self, out: Output, rng: random.Random, office: Office, roster: Roster, today: date
    ) -> None:
        self.rng, self.office, self.roster, self.today = rng, office, roster, today
        self.add_proc = out.table(
            "procedurelog",
            (
                "ProcNum",
                "PatNum",
                "AptNum",
                "ProcDate",
                "ProcFee",
                "Surf",
                "ToothNum",
                "ProcStatus",
                "ProvNum",
                "PlannedAptNum",
                "DateEntryC",
                "ClinicNum",
                "CodeNum",
                "UnitQty",
                "DateTP",
                "DateTStamp",
                "SecUserNumEntry",
                "SecDateEntry",
                "DateComplete",
            ),
        )
        self.add_claim = out.table(
            "claim",
            (
                "ClaimNum",
                "PatNum",
                "DateService",
                "DateSent",
                "ClaimStatus",
                "DateReceived",
                "PlanNum",
                "ProvTreat",
                "ClaimFee",
                "InsPayEst",
                "InsPayAmt",
                "DedApplied",
                "ClaimType",
                "ProvBill",
                "PatRelat",
                "PlanNum2",
                "WriteOff",
                "ClinicNum",
                "InsSubNum",
                "InsSubNum2",
                "ClaimIdentifier",
                "SecUserNumEntry",
                "SecDateEntry",
                "SecDateTEdit",
                "DateSentOrig",
            ),
        )
        self.add_claimproc = out.table(
            "claimproc",
            (
                "ClaimProcNum",
                "ProcNum",
                "ClaimNum",
                "PatNum",
                "ProvNum",
                "FeeBilled",
                "InsPayEst",
                "DedApplied",
                "Status",
                "InsPayAmt",
                "PlanNum",
                "DateCP",
                "WriteOff",
                "ProcDate",
                "DateEntry",
                "ClinicNum",
                "InsSubNum",
                "SecUserNumEntry",
                "SecDateEntry",
                "SecDateTEdit",
            ),
        )
        self.add_payment = out.table(
            "payment",
            PAYMENT_COLUMNS,
        )
        self.add_split = out.table(
            "paysplit",
            PAYSPLIT_COLUMNS,
        )
        self.proc_num = self.claim_num = self.claimproc_num = self.pay_num = self.split_num = 0
        self.pay_types = office.defs[reference.PAYMENT_TYPES]
        self.coverage = {plan.num: plan.coverage for plan in office.plans}

    # -- choosing procedures -------------------------------------------------

    def plan(self, kind: str, pat: int, needs_bitewings: bool) -> list[Proc]:
        rng = self.rng
        procs: list[Proc]
        if kind == "recall":
            procs = [(_c("D0120"), "", ""), (_c("D1110"), "", "")]
            if needs_bitewings or rng.random() < 0.2:
                procs.append((_c("D0274"), "", ""))
            if rng.random() < 0.12:
                procs.append((_c("D1206"), "", ""))
            if rng.random() < 0.04:
                procs.append((_c("D0330"), "", ""))
        elif kind == "child":
            procs = [(_c("D0120"), "", ""), (_c("D1120"), "", "")]
            if rng.random() < 0.9:
                procs.append((_c("D1206"), "", ""))
            if needs_bitewings:
                procs.append((_c("D0274"), "", ""))
            for tooth in rng.sample(("3", "14", "19", "30"), rng.choice((0, 0, 0, 1, 2))):
                procs.append((_c("D1351"), tooth, ""))
        elif kind == "perio":
            procs = [(_c("D4910"), "", "")]
            if rng.random() < 0.6:
                procs.append((_c("D0120"), "", ""))
            if needs_bitewings:
                procs.append((_c("D0274"), "", ""))
        elif kind == "new":
            procs = [(_c("D0150"), "", ""), (_c("D0210"), "", ""), (_c("D1110"), "", "")]
            if rng.random() < 0.2:
                procs.append((_c("D0330"), "", ""))
        elif kind == "srp":
            quads = rng.sample(("UR", "UL", "LR", "LL"), rng.choice((2, 2, 3)))
            procs = [(_c("D4341" if rng.random() < 0.8 else "D4342"), "", q) for q in quads]
        elif kind == "filling":
            procs = []
            for _ in range(rng.choice((1, 1, 2, 2, 3, 4))):
                code, surfaces = FILLINGS(rng)
                teeth = ANTERIOR if code == "D2330" else POSTERIOR
                procs.append((_c(code), rng.choice(teeth), rng.choice(SURFACES[surfaces])))
            if rng.random() < 0.15:
                procs.append((_c("D0220"), procs[0][1], ""))
            if rng.random() < 0.08:
                procs.append((_c("D9230"), "", ""))
        elif kind == "crown":
            tooth = rng.choice(POSTERIOR)
            procs = [
                (_c("D2950"), tooth, ""),
                (_c("D2740" if rng.random() < 0.7 else "D2750"), tooth, ""),
            ]
            if rng.random() < 0.4:
                procs.append((_c("D0220"), tooth, ""))
        elif kind == "endo":
            tooth = rng.choice(POSTERIOR + ANTERIOR)
            code = "D3310" if tooth in ANTERIOR else ("D3330" if tooth in MOLARS else "D3320")
            procs = [(_c(code), tooth, ""), (_c("D0220"), tooth, "")]
            if rng.random() < 0.7:
                procs.append((_c("D0230"), tooth, ""))
        elif kind == "extraction":
            tooth = rng.choice((*POSTERIOR, "1", "16", "17", "32"))
            procs = [(_c("D7140" if rng.random() < 0.75 else "D7210"), tooth, "")]
            if rng.random() < 0.6:
                procs.append((_c("D0220"), tooth, ""))
            if rng.random() < 0.1:
                procs.append((_c("D9230"), "", ""))
        elif kind == "emergency":
            tooth = rng.choice(POSTERIOR)
            procs = [(_c("D0140"), "", ""), (_c("D0220"), tooth, "")]
            if rng.random() < 0.6:
                procs.append((_c("D9110"), tooth, ""))
        else:  # consult
            procs = [(_c("D9310"), "", "")]
            if rng.random() < 0.3:
                procs.append((_c("D0330"), "", ""))
        return procs

    @staticmethod
    def descript(procs: list[Proc]) -> str:
        """Open Dental's ProcDescript: abbreviations, with the tooth when there is one."""
        return ", ".join(
            f"#{tooth}-{CODES[i].abbr}" if tooth else CODES[i].abbr for i, tooth, _surf in procs
        )

    # -- writing -------------------------------------------------------------

    def record(self, visit: Visit, procs: list[Proc], *, hygiene_visit: bool) -> None:
        """Write the procedures of ``visit`` and, when complete, claims and payments."""
        rng, roster = self.rng, self.roster
        day, entry = visit.dstr, visit.entry_str
        entered_at = at(entry, between(rng, 8 * 60, 17 * 60))
        done = visit.complete
        user = between(rng, 1, 6)
        written: list[tuple[int, int, float, int]] = []  # (ProcNum, code index, fee, ProvNum)
        for index, tooth, surf in procs:
            code = CODES[index]
            self.proc_num += 1
            prov = visit.hygienist if hygiene_visit and code.hygiene else visit.dentist
            self.add_proc(
                (
                    self.proc_num,
                    visit.pat,
                    0 if visit.planned else visit.apt_num,
                    day,
                    code.fee,
                    surf,
                    tooth,
                    COMPLETE if done else TP,
                    prov,
                    visit.apt_num if visit.planned else 0,
                    day if done else NO_DATE,
                    visit.clinic,
                    self.office.code_nums[index],
                    1,
                    entry,
                    visit.stamp,
                    user,
                    entered_at,
                    day if done else NO_DATE,
                )
            )
            written.append((self.proc_num, index, code.fee, prov))
        if roster.plan1[visit.pat] and not visit.planned:
            if done:
                self._claims(visit, written)
            else:
                self._estimates(visit, written)
        if done:
            self._payment(visit, written)

    def _estimate(self, plan: int, index: int, fee: float) -> float:
        return round(fee * CODES[index].coverage * self.coverage[plan], 2)

    def _claim_status(self, age: int, secondary: bool, primary_received: bool) -> str:
        if secondary and not primary_received:
            return "H"  # hold until the primary is received
        return next(letters(self.rng) for minimum, letters in CLAIM_AGING if age >= minimum)

    def _claims(self, visit: Visit, procs: list[tuple[int, int, float, int]]) -> None:
        rng, roster = self.rng, self.roster
        billed = [p for p in procs if not CODES[p[1]].no_bill_ins]
        if not billed:
            return
        pat, day = visit.pat, visit.dstr
        age = (self.today - visit.day).days
        last_day = self.today - timedelta(days=1)
        plans = [(roster.plan1[pat], roster.sub1[pat])]
        if roster.plan2[pat]:
            plans.append((roster.plan2[pat], roster.sub2[pat]))
        primary_received = False
        for ordinal, (plan, sub) in enumerate(plans):
            status = self._claim_status(age, ordinal == 1, primary_received)
            primary_received = primary_received or (ordinal == 0 and status == "R")
            sent = (
                min(visit.day + timedelta(days=between(rng, 0, 2)), last_day)
                if status in "SRI"
                else None
            )
            received = (
                min(sent + timedelta(days=between(rng, 7, 35)), last_day)
                if status == "R" and sent
                else None
            )
            sent_str = sent.isoformat() if sent else NO_DATE
            received_str = received.isoformat() if received else NO_DATE
            # A secondary plan pays a small share of what the primary left over.
            estimates = [
                self._estimate(plan, i, fee) if ordinal == 0 else round(fee * 0.1, 2)
                for _n, i, fee, _p in billed
            ]
            paid = [
                round(e * rng.choice((1.0, 1.0, 0.95, 0.9)), 2) if received else 0.0
                for e in estimates
            ]
            edited = received or sent or visit.day
            self.claim_num += 1
            other_plan, other_sub = plans[1 - ordinal] if len(plans) > 1 else (0, 0)
            self.add_claim(
                (
                    self.claim_num,
                    pat,
                    day,
                    sent_str,
                    status,
                    received_str,
                    plan,
                    visit.dentist,
                    round(sum(p[2] for p in billed), 2),
                    round(sum(estimates), 2),
                    round(sum(paid), 2),
                    50.0 if received and rng.random() < 0.1 else 0.0,
                    "P" if ordinal == 0 else "S",
                    visit.dentist,
                    roster.relat1[pat],
                    other_plan,
                    0.0,
                    visit.clinic,
                    sub,
                    other_sub,
                    f"{pat}/{self.claim_num}",
                    between(rng, 1, 6),
                    day,
                    stamp(edited, between(rng, 480, 1080)),
                    sent_str,
                )
            )
            edited_str = stamp(edited, 17 * 60)
            for (proc_num, _i, fee, prov), est, amount in zip(billed, estimates, paid, strict=True):
                self.claimproc_num += 1
                self.add_claimproc(
                    (
                        self.claimproc_num,
                        proc_num,
                        self.claim_num,
                        pat,
                        prov,
                        fee,
                        est,
                        0.0,
                        CLAIM_RECEIVED if received else CLAIM_NOT_RECEIVED,
                        amount,
                        plan,
                        received_str if received else day,
                        0.0,
                        day,
                        day,
                        visit.clinic,
                        sub,
                        between(rng, 1, 6),
                        day,
                        edited_str,
                    )
                )

    def _estimates(self, visit: Visit, procs: list[tuple[int, int, float, int]]) -> None:
        pat = visit.pat
        plan, sub = self.roster.plan1[pat], self.roster.sub1[pat]
        for proc_num, index, fee, prov in procs:
            if CODES[index].no_bill_ins:
                continue
            self.claimproc_num += 1
            self.add_claimproc(
                (
                    self.claimproc_num,
                    proc_num,
                    0,
                    pat,
                    prov,
                    0.0,
                    self._estimate(plan, index, fee),
                    0.0,
                    CLAIM_ESTIMATE,
                    0.0,
                    plan,
                    visit.dstr,
                    0.0,
                    visit.dstr,
                    visit.entry_str,
                    visit.clinic,
                    sub,
                    1,
                    visit.entry_str,
                    visit.stamp,
                )
            )

    def _payment(self, visit: Visit, procs: list[tuple[int, int, float, int]]) -> None:
        rng = self.rng
        pat = visit.pat
        plan = self.roster.plan1[pat]
        shares = [
            (n, round(fee - (self._estimate(plan, i, fee) if plan else 0.0), 2), prov)
            for n, i, fee, prov in procs
        ]
        shares = [share for share in shares if share[1] > 0]
        if not shares or rng.random() < 0.15:
            return  # nothing owed, or still unpaid
        paid_on = (
            visit.day if rng.random() < 0.65 else visit.day + timedelta(days=between(rng, 10, 45))
        )
        if paid_on >= self.today:
            return
        pay_type = rng.choice(self.pay_types)
        check = (
            f"{between(rng, 1001, 9999)}"
            if pay_type == self.pay_types[0]
            else ("" if rng.random() < 0.9 else None)
        )
        self.pay_num += 1
        edited = stamp(paid_on, visit.end_minute + 10 if paid_on == visit.day else 11 * 60)
        user = between(rng, 1, 6)
        paid = paid_on.isoformat()
        self.add_payment(
            (
                self.pay_num,
                pay_type,
                paid,
                round(sum(s[1] for s in shares), 2),
                check,
                "" if rng.random() < 0.9 else "Paid at front desk, thank you!",
                int(len(shares) > 1),
                self.roster.guarantor[pat],
                visit.clinic,
                paid,
                user,
                edited,
            )
        )
        for proc_num, amount, prov in shares:
            self.split_num += 1
            self.add_split(
                (
                    self.split_num,
                    amount,
                    pat,
                    visit.dstr,
                    self.pay_num,
                    prov,
                    paid,
                    proc_num,
                    paid,
                    visit.clinic,
                    user,
                    edited,
                )
            )
