"""A receptionist at Open Dental's front desk, editing the practice database.

:class:`Receptionist` makes the edits the front desk makes all day, through
real ODBC (the bridge's own connection strings: the SQLite3 driver or
MariaDB Connector/ODBC), each committed as one transaction, following Open
Dental's own write conventions:

* ``book`` a new appointment (AptNum auto) in a free slot of a provider's
  schedule; ``move`` one (AptDateTime and Op); ``confirm`` (Confirmed, a
  DefCat 2 definition); ``break`` (AptStatus 5); ``complete`` (AptStatus 2,
  the arrival/seat/dismiss times and its procedures set complete);
* ``delete_appointment``: the row deleted, its procedures detached
  (``procedurelog.AptNum = 0``) and a ``deletedobject`` row (ObjectNum =
  AptNum, ObjectType 0 = Appointment) inserted in the same transaction, as
  ``Appointments.Delete`` does;
* ``patient_phone`` (a phone or the email) and ``new_patient`` (Guarantor =
  its own PatNum, PriProv and BillingType set), each with a ``securitylog``
  row carrying the PatNum;
* ``schedule_day``: a provider's hours for one day replaced -- the old
  ``schedule`` rows and their ``scheduleop`` rows deleted, a ``deletedobject``
  row per deleted provider schedule (ObjectType 1 = ScheduleProv, as
  ``Schedules.Delete`` writes), new rows inserted for the same operatories;
* ``payment`` with one to three ``paysplit`` rows; ``claim_estimate``: one
  ``claimproc`` row's insurance estimate revised (only the child row changes;
  the cloud sees its claim change).

Change stamps are never written: MariaDB's ``ON UPDATE CURRENT_TIMESTAMP``
and the SQLite build's triggers set them, as they do for Open Dental.

About one edit in seven is followed at once by a second edit to the same row
(a *same-second burst*: the receptionist corrects what she just typed), the
case a one-second change stamp cannot order.

Deterministic: the same seed on the same practice gives the same sequence of
edits (actions and keys); only the wall-clock values differ. One thread uses
a :class:`Receptionist`; it never logs or prints personal data.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from types import TracebackType
from typing import Any

import pyodbc

from sandbox.practice import names

# securitylog.PermType: Open Dental's Permissions enum values were not
# collected by the research (schemas.md 1.4 / 5). These are placeholders that
# only need to be stable; the bridge reads securitylog for its PatNum, never
# for the PermType.
PERM_PATIENT_CREATE = 22  # unconfirmed value
PERM_PATIENT_EDIT = 23  # unconfirmed value
PERM_APPOINTMENT_EDIT = 25  # unconfirmed value
PERM_PAYMENT_CREATE = 27  # unconfirmed value

DELETED_APPOINTMENT = 0  # DeletedObjectType.Appointment
DELETED_SCHEDULE_PROV = 1  # DeletedObjectType.ScheduleProv

BURST_SHARE = 0.15
SLOT_STEP_MINUTES = 10

ACTIONS: tuple[tuple[str, int], ...] = (
    ("book", 14),
    ("move", 12),
    ("confirm", 18),
    ("break", 6),
    ("complete", 6),
    ("delete_appointment", 5),
    ("patient_phone", 12),
    ("new_patient", 5),
    ("schedule_day", 4),
    ("payment", 8),
    ("claim_estimate", 6),
)


@dataclass(frozen=True)
class Edit:
    """One committed edit, as the cloud should come to see it."""

    entity: str  # canonical entity: "appointment", "patient", "schedule", "claim", "payment"
    key: str  # canonical key (for a child-row edit: the parent's key)
    op: str  # "upsert" | "delete"
    action: str  # what the receptionist did: "book", "move", ...
    committed_at: float  # time.time() right after COMMIT returned


class _NothingToDo(Exception):
    """This action has no row to work on right now; another is drawn."""


def _text(day: date | datetime) -> str:
    if isinstance(day, datetime):
        return day.strftime("%Y-%m-%d %H:%M:%S")
    return day.isoformat()


class Receptionist:
    """Edits one practice database; see the module docstring."""

    def __init__(
        self,
        connection_string: str,
        *,
        seed: int = 1,
        password: str | None = None,
        today: date | None = None,
    ) -> None:
        text = connection_string
        if password:
            text += ";Password={" + password.replace("}", "}}") + "}"
        self.mysql_like = "mariadb" in text.lower() or "mysql" in text.lower()
        if self.mysql_like:
            text += ";CHARSET=utf8mb4"
        self.conn = pyodbc.connect(text, autocommit=False, timeout=30)
        if self.mysql_like:  # the UTF-8 path, as the bridge uses (bridge/pms/odbc.py)
            self.conn.setencoding(encoding="utf-8")
            for sql_type in (pyodbc.SQL_CHAR, pyodbc.SQL_WCHAR):
                self.conn.setdecoding(sql_type, encoding="utf-8", ctype=pyodbc.SQL_CHAR)
        self.rng = random.Random(seed)
        self.today = today or date.today()
        self._followups: deque[Callable[[], Edit]] = deque()
        self._actions = [a for a, _ in ACTIONS]
        self._weights = [w for _, w in ACTIONS]
        self._load_reference()

    # -- public ------------------------------------------------------------

    def edit(self) -> Edit:
        """Make one edit (a pending burst follow-up first) and commit it."""
        if self._followups:
            return self._followups.popleft()()
        for _ in range(50):
            action = self.rng.choices(self._actions, self._weights)[0]
            try:
                return getattr(self, f"_{action}")()  # type: ignore[no-any-return]
            except _NothingToDo:
                self.conn.rollback()
        raise RuntimeError("the practice offers nothing to edit")

    def run(
        self,
        count: int | None = None,
        *,
        per_minute: float = 60.0,
        stop: threading.Event | None = None,
        on_edit: Callable[[Edit], None] | None = None,
    ) -> list[Edit]:
        """Edit ``count`` times (or until ``stop``), ``per_minute`` on average.

        A burst's second edit follows the first at once. Returns the edits.
        """
        stop = stop or threading.Event()
        interval = 60.0 / per_minute if per_minute > 0 else 0.0
        done: list[Edit] = []
        next_at = time.monotonic()
        while not stop.is_set() and (count is None or len(done) < count):
            if not self._followups:
                delay = next_at - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    break
                next_at = max(next_at + interval, time.monotonic() - interval)
            made = self.edit()
            done.append(made)
            if on_edit is not None:
                on_edit(made)
        return done

    def close(self) -> None:
        try:
            self.conn.rollback()
        finally:
            self.conn.close()

    def __enter__(self) -> Receptionist:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------

    def _rows(self, sql: str, *params: object) -> list[Any]:
        return list(self.conn.execute(sql, params).fetchall())

    def _one(self, sql: str, *params: object) -> Any:
        rows = self._rows(sql, *params)
        if not rows:
            raise _NothingToDo
        return rows[0]

    def _exec(self, sql: str, *params: object) -> None:
        self.conn.execute(sql, params)

    def _insert(self, table: str, values: dict[str, object]) -> int:
        columns = ", ".join(values)
        marks = ", ".join("?" * len(values))
        self._exec(f"INSERT INTO {table} ({columns}) VALUES ({marks})", *values.values())
        last = "SELECT LAST_INSERT_ID()" if self.mysql_like else "SELECT last_insert_rowid()"
        return int(self._rows(last)[0][0])

    def _commit(self, entity: str, key: object, op: str, action: str) -> Edit:
        self.conn.commit()
        return Edit(entity, str(key), op, action, time.time())

    def _now(self) -> str:
        return _text(datetime.now().replace(microsecond=0))

    def _pick(self, table: str, key: str, where: str, *params: object) -> Any:
        """A random row of ``table`` matching ``where`` (first key at or after a random key)."""
        low, high = self._rows(
            f"SELECT MIN({key}), MAX({key}) FROM {table} WHERE {where}", *params
        )[0]
        if low is None:
            raise _NothingToDo
        start = self.rng.randint(int(low), int(high))
        return self._one(
            f"SELECT * FROM {table} WHERE {where} AND {key} >= ? ORDER BY {key} LIMIT 1",
            *params,
            start,
        )

    def _security_log(self, perm: int, patnum: int, text: str, fkey: int = 0) -> None:
        # LogText stays generic: no names, phones or addresses.
        self._insert(
            "securitylog",
            {
                "PermType": perm,
                "UserNum": 1,
                "LogDateTime": self._now(),
                "LogText": text,
                "PatNum": patnum,
                "CompName": "FRONTDESK1",
                "FKey": fkey,
                "LogSource": 0,
            },
        )

    def _load_reference(self) -> None:
        self.providers = {
            int(r.ProvNum): bool(r.IsSecondary)
            for r in self._rows(
                "SELECT ProvNum, IsSecondary FROM provider WHERE IsHidden = 0 AND IsNotPerson = 0"
            )
        }
        defs: dict[int, list[int]] = {}
        for r in self._rows("SELECT DefNum, Category FROM definition WHERE IsHidden = 0"):
            defs.setdefault(int(r.Category), []).append(int(r.DefNum))
        self.confirm_defs = defs.get(2, [0])
        self.billing_types = defs.get(4, [0])
        self.pay_types = defs.get(10, [0])
        self.appointment_types = [
            (int(r.AppointmentTypeNum), str(r.Pattern or "/XX/"))
            for r in self._rows(
                "SELECT AppointmentTypeNum, Pattern FROM appointmenttype WHERE IsHidden = 0"
            )
        ] or [(0, "/XXXX/")]

    # -- the diary ---------------------------------------------------------

    def _future_day(self, low: int = 1, high: int = 45) -> date:
        for _ in range(20):
            day = self.today + timedelta(days=self.rng.randint(low, high))
            if day.weekday() < 5:
                return day
        return self.today + timedelta(days=low)

    def _free_slot(self, minutes: int, exclude: int = 0) -> tuple[int, int, bool, datetime]:
        """(operatory, provider, is_hygiene, start) of a free slot in someone's hours."""
        for _ in range(6):
            day = self._future_day()
            blocks = self._rows(
                "SELECT s.ProvNum, s.StartTime, s.StopTime, o.OperatoryNum FROM schedule s"
                " JOIN scheduleop o ON o.ScheduleNum = s.ScheduleNum"
                " WHERE s.SchedDate = ? AND s.SchedType = 1 ORDER BY s.ScheduleNum, o.OperatoryNum",
                _text(day),
            )
            blocks = [b for b in blocks if int(b.ProvNum) in self.providers]
            if not blocks:
                continue
            block = self.rng.choice(blocks)
            start = _minutes(block.StartTime)
            stop = _minutes(block.StopTime)
            if stop - start < minutes:
                continue
            op = int(block.OperatoryNum)
            taken = [
                (_minutes_of(r.AptDateTime), len(r.Pattern or ""))
                for r in self._rows(
                    "SELECT AptDateTime, Pattern FROM appointment WHERE Op = ?"
                    " AND AptDateTime >= ? AND AptDateTime < ? AND AptStatus IN (1, 2)"
                    " AND AptNum <> ?",
                    op,
                    _text(day),
                    _text(day + timedelta(days=1)),
                    exclude,
                )
            ]
            choices = list(range(start, stop - minutes + 1, SLOT_STEP_MINUTES))
            self.rng.shuffle(choices)
            for begin in choices:
                if all(begin + minutes <= t or begin >= t + 5 * n for t, n in taken):
                    when = datetime.combine(day, datetime.min.time()) + timedelta(minutes=begin)
                    prov = int(block.ProvNum)
                    return op, prov, self.providers[prov], when
        raise _NothingToDo

    def _patient(self) -> Any:
        return self._pick("patient", "PatNum", "PatStatus = 0")

    def _book(self) -> Edit:
        patient = self._patient()
        type_num, pattern = self.rng.choice(self.appointment_types)
        op, prov, hygiene, start = self._free_slot(5 * len(pattern))
        dentist = int(patient.PriProv) if hygiene else prov
        if dentist not in self.providers or self.providers[dentist]:
            dentist = next((p for p, hyg in self.providers.items() if not hyg), prov)
        apt = self._insert(
            "appointment",
            {
                "PatNum": int(patient.PatNum),
                "AptStatus": 1,
                "Pattern": pattern,
                "Confirmed": self.confirm_defs[min(1, len(self.confirm_defs) - 1)],
                "Op": op,
                "Note": "",
                "ProvNum": dentist,
                "ProvHyg": prov if hygiene else 0,
                "AptDateTime": _text(start),
                "IsNewPatient": 0,
                "ProcDescript": "",
                "ClinicNum": 0,
                "IsHygiene": int(hygiene),
                "AppointmentTypeNum": type_num,
                "SecUserNumEntry": 1,
                "SecDateTEntry": self._now(),
            },
        )
        self._security_log(PERM_APPOINTMENT_EDIT, int(patient.PatNum), "New appointment", apt)
        made = self._commit("appointment", apt, "upsert", "book")
        self._maybe_burst(apt)
        return made

    def _scheduled(self, *, future: bool = True) -> Any:
        if future:
            return self._pick(
                "appointment", "AptNum", "AptStatus = 1 AND AptDateTime >= ?", _text(self.today)
            )
        return self._pick(
            "appointment",
            "AptNum",
            "AptStatus = 1 AND AptDateTime >= ? AND AptDateTime < ?",
            _text(self.today - timedelta(days=7)),
            _text(self.today + timedelta(days=1)),
        )

    def _move(self) -> Edit:
        apt = self._scheduled()
        num = int(apt.AptNum)
        current = (
            int(apt.Op),
            _text(apt.AptDateTime) if not isinstance(apt.AptDateTime, str) else apt.AptDateTime,
        )
        for _ in range(3):
            op, prov, hygiene, start = self._free_slot(5 * len(apt.Pattern or "/"), exclude=num)
            if (op, _text(start)) != current:
                break
        else:
            raise _NothingToDo  # only its own slot is free: nothing to move
        if hygiene:
            self._exec(
                "UPDATE appointment SET AptDateTime = ?, Op = ?, ProvHyg = ?, IsHygiene = 1"
                " WHERE AptNum = ?",
                _text(start),
                op,
                prov,
                num,
            )
        else:
            self._exec(
                "UPDATE appointment SET AptDateTime = ?, Op = ?, ProvNum = ?, IsHygiene = 0"
                " WHERE AptNum = ?",
                _text(start),
                op,
                prov,
                num,
            )
        self._security_log(PERM_APPOINTMENT_EDIT, int(apt.PatNum), "Appointment moved", num)
        made = self._commit("appointment", num, "upsert", "move")
        self._maybe_burst(num)
        return made

    def _confirm(self, num: int | None = None) -> Edit:
        if num is None:
            num = int(self._scheduled().AptNum)
        current = self._one("SELECT Confirmed FROM appointment WHERE AptNum = ?", num)[0]
        choices = [d for d in self.confirm_defs if d != int(current)] or self.confirm_defs
        self._exec(
            "UPDATE appointment SET Confirmed = ? WHERE AptNum = ?", self.rng.choice(choices), num
        )
        made = self._commit("appointment", num, "upsert", "confirm")
        self._maybe_burst(num)
        return made

    def _break(self) -> Edit:
        apt = self._scheduled()
        num = int(apt.AptNum)
        self._exec("UPDATE appointment SET AptStatus = 5 WHERE AptNum = ?", num)
        self._security_log(PERM_APPOINTMENT_EDIT, int(apt.PatNum), "Appointment broken", num)
        return self._commit("appointment", num, "upsert", "break")

    def _complete(self) -> Edit:
        apt = self._scheduled(future=False)
        num = int(apt.AptNum)
        start = apt.AptDateTime
        if isinstance(start, str):
            start = datetime.fromisoformat(start)
        minutes = 5 * len(apt.Pattern or "/")
        self._exec(
            "UPDATE appointment SET AptStatus = 2, DateTimeArrived = ?, DateTimeSeated = ?,"
            " DateTimeDismissed = ? WHERE AptNum = ?",
            _text(start - timedelta(minutes=5)),
            _text(start),
            _text(start + timedelta(minutes=minutes)),
            num,
        )
        self._exec(
            "UPDATE procedurelog SET ProcStatus = 2, DateComplete = ?, ProcDate = ?"
            " WHERE AptNum = ? AND ProcStatus = 1",
            _text(start.date()),
            _text(start.date()),
            num,
        )
        self._security_log(PERM_APPOINTMENT_EDIT, int(apt.PatNum), "Appointment completed", num)
        return self._commit("appointment", num, "upsert", "complete")

    def _delete_appointment(self) -> Edit:
        apt = self._pick(
            "appointment",
            "AptNum",
            "AptStatus IN (1, 3, 5) AND AptDateTime >= ?",
            _text(self.today),
        )
        num = int(apt.AptNum)
        self._exec("UPDATE procedurelog SET AptNum = 0 WHERE AptNum = ?", num)
        self._exec("DELETE FROM appointment WHERE AptNum = ?", num)
        self._insert("deletedobject", {"ObjectNum": num, "ObjectType": DELETED_APPOINTMENT})
        self._security_log(PERM_APPOINTMENT_EDIT, int(apt.PatNum), "Appointment deleted", num)
        return self._commit("appointment", num, "delete", "delete_appointment")

    def _maybe_burst(self, num: int) -> None:
        """Now and then the same appointment is edited again at once."""
        if self.rng.random() < BURST_SHARE:
            self._followups.append(lambda: self._confirm(num))

    # -- patients ----------------------------------------------------------

    def _patient_phone(self, patnum: int | None = None) -> Edit:
        if patnum is None:
            patnum = int(self._patient().PatNum)
        area = self.rng.choice(names.CITIES)[3]
        column = self.rng.choice(("HmPhone", "WirelessPhone", "WkPhone", "Email"))
        if column == "Email":
            first = self.rng.choice(names.FEMALE + names.MALE)
            value = names.email(self.rng, first, names.surname(self.rng))
        else:
            value = names.phone(self.rng, area)
        self._exec(f"UPDATE patient SET {column} = ? WHERE PatNum = ?", value, patnum)
        self._security_log(PERM_PATIENT_EDIT, patnum, "Patient information edited")
        made = self._commit("patient", patnum, "upsert", "patient_phone")
        if self.rng.random() < BURST_SHARE:
            self._followups.append(lambda: self._patient_phone(patnum))
        return made

    def _new_patient(self) -> Edit:
        female = self.rng.random() < 0.52
        first = names.person_name(self.rng, female)
        last = names.surname(self.rng)
        line, line2, city, state, zip_code, area = names.address(self.rng)
        born = self.today - timedelta(days=self.rng.randint(3 * 365, 85 * 365))
        dentist = [p for p, hyg in self.providers.items() if not hyg]
        patnum = self._insert(
            "patient",
            {
                "LName": last,
                "FName": first,
                "MiddleI": "",
                "Preferred": "",
                "PatStatus": 0,
                "Gender": 1 if female else 0,
                "Position": 0,
                "Birthdate": _text(born),
                "Address": line,
                "Address2": line2,
                "City": city,
                "State": state,
                "Zip": zip_code,
                "HmPhone": "",
                "WkPhone": "",
                "WirelessPhone": names.phone(self.rng, area),
                "Guarantor": 0,
                "Email": names.email(self.rng, first, last),
                "PriProv": self.rng.choice(dentist) if dentist else 1,
                "SecProv": 0,
                "BillingType": self.billing_types[0],
                "ChartNumber": "",
                "ClinicNum": 0,
                "PreferContactMethod": 4,
                "Language": "eng",
                "TxtMsgOk": 1,
                "SecUserNumEntry": 1,
                "SecDateEntry": _text(self.today),
            },
        )
        # Open Dental inserts, then makes a new family's head its own guarantor.
        self._exec("UPDATE patient SET Guarantor = ? WHERE PatNum = ?", patnum, patnum)
        self._security_log(PERM_PATIENT_CREATE, patnum, "Patient created")
        return self._commit("patient", patnum, "upsert", "new_patient")

    # -- schedules, money --------------------------------------------------

    def _schedule_day(self) -> Edit:
        prov = self.rng.choice(sorted(self.providers))
        day = self._future_day(1, 60)
        old = self._rows(
            "SELECT ScheduleNum, StartTime, StopTime FROM schedule"
            " WHERE SchedDate = ? AND ProvNum = ? AND SchedType = 1 ORDER BY ScheduleNum",
            _text(day),
            prov,
        )
        if not old:
            raise _NothingToDo
        nums = [int(r.ScheduleNum) for r in old]
        marks = ", ".join("?" * len(nums))
        ops = sorted(
            {
                int(r[0])
                for r in self._rows(
                    f"SELECT OperatoryNum FROM scheduleop WHERE ScheduleNum IN ({marks})", *nums
                )
            }
        )
        self._exec(f"DELETE FROM scheduleop WHERE ScheduleNum IN ({marks})", *nums)
        self._exec(f"DELETE FROM schedule WHERE ScheduleNum IN ({marks})", *nums)
        for num in nums:
            self._insert("deletedobject", {"ObjectNum": num, "ObjectType": DELETED_SCHEDULE_PROV})
        shift = self.rng.choice((-30, 0, 30, 60))
        hours = [(_minutes(r.StartTime) + shift, _minutes(r.StopTime) + shift) for r in old]
        if self.rng.random() < 0.3:  # a short day: the afternoon off
            hours = hours[:1]
        first = 0
        for begin, end in hours:
            start, stop = max(begin, 6 * 60), min(end, 20 * 60)
            num = self._insert(
                "schedule",
                {
                    "SchedDate": _text(day),
                    "StartTime": _clock(start),
                    "StopTime": _clock(stop),
                    "SchedType": 1,
                    "ProvNum": prov,
                    "BlockoutType": 0,
                    "Note": "",
                    "Status": 0,
                    "EmployeeNum": 0,
                    "ClinicNum": 0,
                },
            )
            first = first or num
            for op in ops:
                self._insert("scheduleop", {"ScheduleNum": num, "OperatoryNum": op})
        return self._commit("schedule", first, "upsert", "schedule_day")

    def _payment(self) -> Edit:
        patient = self._patient()
        patnum = int(patient.PatNum)
        splits = self.rng.randint(1, 3)
        amounts = [round(self.rng.uniform(15, 400), 2) for _ in range(splits)]
        day = _text(self.today)
        paynum = self._insert(
            "payment",
            {
                "PayType": self.rng.choice(self.pay_types),
                "PayDate": day,
                "PayAmt": round(sum(amounts), 2),
                "CheckNum": "",
                "PayNote": "",
                "IsSplit": int(splits > 1),
                "PatNum": patnum,
                "ClinicNum": 0,
                "DateEntry": day,
                "SecUserNumEntry": 1,
            },
        )
        for amount in amounts:
            self._insert(
                "paysplit",
                {
                    "SplitAmt": amount,
                    "PatNum": patnum,
                    "ProcDate": day,
                    "PayNum": paynum,
                    "ProvNum": int(patient.PriProv),
                    "DatePay": day,
                    "DateEntry": day,
                    "ClinicNum": 0,
                    "SecUserNumEntry": 1,
                },
            )
        self._security_log(PERM_PAYMENT_CREATE, patnum, "Payment created", paynum)
        return self._commit("payment", paynum, "upsert", "payment")

    def _claim_estimate(self) -> Edit:
        row = self._pick("claimproc", "ClaimProcNum", "ClaimNum > 0 AND Status = 0")
        estimate = round(float(row.FeeBilled) * self.rng.choice((0.5, 0.6, 0.8, 1.0)), 2)
        if estimate == float(row.InsPayEst):
            estimate = round(estimate + 1.0, 2)
        self._exec(
            "UPDATE claimproc SET InsPayEst = ? WHERE ClaimProcNum = ?",
            estimate,
            int(row.ClaimProcNum),
        )
        return self._commit("claim", int(row.ClaimNum), "upsert", "claim_estimate")


def _minutes(value: object) -> int:
    """Minutes after midnight of a TIME value (a time, timedelta or 'HH:MM:SS')."""
    if isinstance(value, timedelta):
        return int(value.total_seconds()) // 60
    if hasattr(value, "hour") and hasattr(value, "minute"):
        return int(value.hour) * 60 + int(value.minute)
    hours, minutes, *_ = str(value).split(":")
    return int(hours) * 60 + int(minutes)


def _minutes_of(value: object) -> int:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.hour * 60 + value.minute


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}:00"


def summarize(edits: Sequence[Edit]) -> dict[str, int]:
    """Edits per action (for reports; no keys, no data)."""
    counts: dict[str, int] = {}
    for made in edits:
        counts[made.action] = counts.get(made.action, 0) + 1
    return dict(sorted(counts.items()))
