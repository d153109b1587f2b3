"""Diary writes straight into the PMS tables, for PMSs whose vendor allows that.

**Never point this at a real Open Dental database.** Open Dental forbids
third-party SQL writes: it keeps a salted hash of protected columns
(``appointment.AptStatus``/``Confirmed``/``AptDateTime``, ``patient.PatNum``)
in ``SecurityHash`` and flags rows written behind its back; use
:mod:`.opendental_api` there. This writer is written for the Open Dental
schema because that is the only schema the bridge has; it is the template
for a vendor that permits direct writes (or offers write-enabled views),
and it is tested on MariaDB, through MariaDB Connector/ODBC.

It connects with its own, write-scoped login (``[writer]`` connection
string or DSN, user, ``password_secret``), never the read-only one, and
gives the same results as the API writer:

=====================  =====================================================
writer method          statements (each preceded by one read that checks
                       the rows it refers to exist)
=====================  =====================================================
create_patient         ``INSERT patient`` (Guarantor 0), then ``UPDATE
                       patient SET Guarantor = PatNum``: the new family's
                       head, as Open Dental's own insert does.
create_appointment     ``INSERT appointment`` (AptStatus 1 Scheduled,
                       SecDateTEntry now); with ``is_new_patient``,
                       ``UPDATE patient SET DateFirstVisit`` when the patient
                       has no completed procedure (as the API does).
set_confirmation       ``UPDATE appointment SET Confirmed``.
move_appointment       ``UPDATE appointment SET AptDateTime, Op, ProvNum,
                       Pattern`` (PatternSecondary reset to '/' steps when
                       the length changes), appending ``note_line`` to the
                       note in the same statement unless it holds it.
attach_referral        the ``referral`` whose LName is the source (the API's
                       ``referralName`` rule), else ``INSERT referral``
                       (NotPerson 1); then, unless the patient has it
                       already, ``INSERT refattach`` (RefType 1 RefFrom,
                       RefDate today, ItemOrder after the patient's last).
release_appointment    one ``UPDATE`` setting AptStatus 3 (UnschedList) and
                       appending the reason to the note, only if the status
                       is not 3 already (so a repeat changes nothing).
=====================  =====================================================

Change stamps (``DateTStamp``) are left to the database, as Open Dental
leaves them (``ON UPDATE CURRENT_TIMESTAMP``). What only Open Dental's
business layer writes is not imitated: no ``securitylog`` rows (the
bridge's own audit trail records every write), no ``SecurityHash``.

**No transactions.** Open Dental's tables are MyISAM: every statement
commits on its own and nothing rolls back. A failure between the two
statements of ``create_patient`` or ``create_appointment`` leaves the first
row in place; the error then lists it in ``partial`` (``{"patient":
"901"}``) and says what is missing (a patient not yet its own guarantor; a
first-visit date not set), so nobody re-creates a row that exists. A single
statement either happened or did not; a lost connection during one makes
``may_have_applied`` true.

The connection opens on first use, and again after it was lost. Calls are
serialised (one connection; the pipeline writes on one thread anyway).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bridge.errors import (
    DataSourceNotFoundError,
    DriverNotFoundError,
    LoginFailedError,
    PmsError,
    QueryTimeoutError,
    ServerUnreachableError,
)
from bridge.pms.odbc import DriverFamily, OdbcSettings, PmsConnection, Row, connect
from bridge.pms.writers.base import (
    RELEASED_STATUS,
    NewAppointment,
    NewPatient,
    check_aware,
    check_id,
    check_note_line,
    check_pattern,
    check_referral_name,
    release_note,
)
from bridge.pms.writers.errors import (
    WriteError,
    WriterAuthError,
    WriterNotFoundError,
    WriterRefusedError,
    WriterUnavailableError,
)
from bridge.pms.writers.formats import od_date, od_datetime, phone_for_pms, wall_clock

log = logging.getLogger(__name__)

SCHEDULED = 1
DELETED_PATIENT = 4
COMPLETE_PROCEDURE = 2
GENDER_UNKNOWN = 2  # the API's default for a new patient
DEFCAT_APPT_CONFIRMED = 2
DEFCAT_BILLING_TYPES = 4
REF_FROM = 1  # refattach.RefType: where the patient came from
NOTE_LINE_BREAK = "\r\n"  # Open Dental appends notes after a CR LF


class _Dialect:
    """The few statements that differ between MariaDB/MySQL and SQLite."""

    def __init__(self, family: DriverFamily) -> None:
        if family.is_mysql_like:
            self.now = "NOW()"
            self.last_id = "SELECT LAST_INSERT_ID()"
            self.concat: Callable[[str, str], str] = lambda a, b: f"CONCAT({a}, {b})"
        elif family is DriverFamily.SQLITE:
            self.now = "datetime('now','localtime')"
            self.last_id = "SELECT last_insert_rowid()"
            self.concat = lambda a, b: f"({a} || {b})"
        else:
            raise WriterRefusedError(
                f"the SQL writer supports MariaDB/MySQL and SQLite databases, not {family.value}",
                fix="Use a writer kind made for this PMS.",
            )


class SqlDiaryWriter:
    """A :class:`~bridge.pms.writers.base.DiaryWriter` writing Open Dental's
    tables directly (see the module docstring: not for a real Open Dental).

    ``settings`` must have ``read_only=False``. ``timezone`` is the
    practice's zone (times are stored as its wall-clock time).
    """

    def __init__(
        self,
        settings: OdbcSettings,
        *,
        timezone: ZoneInfo,
        open_connection: Callable[[OdbcSettings], PmsConnection] = connect,
    ) -> None:
        if settings.read_only:
            raise ValueError("the SQL writer needs OdbcSettings(read_only=False)")
        self._settings = settings
        self._open = open_connection
        self.tz = timezone
        self._conn: PmsConnection | None = None
        self._dialect: _Dialect | None = None
        self._lock = threading.RLock()

    # -- the DiaryWriter calls ---------------------------------------------------

    def create_patient(self, patient: NewPatient) -> str:
        op = "INSERT patient"
        with self._lock:
            found = self._read(
                op,
                "SELECT (SELECT COUNT(*) FROM provider WHERE ProvNum = ?) AS prov,"
                " (SELECT COUNT(*) FROM definition WHERE DefNum = ? AND Category = ?) AS bill,"
                " (SELECT COUNT(*) FROM clinic WHERE ClinicNum = ?) AS clinic",
                (
                    int(patient.provider_id),
                    int(patient.billing_type_id),
                    DEFCAT_BILLING_TYPES,
                    int(patient.clinic_id or 0),
                ),
            )
            self._require(found["prov"], op, f"provider {patient.provider_id} does not exist")
            self._require(
                found["bill"],
                op,
                f"definition {patient.billing_type_id} is not a billing type (category 4)",
            )
            if patient.clinic_id is not None:
                self._require(found["clinic"], op, f"clinic {patient.clinic_id} does not exist")
            today = od_date(datetime.now(self.tz).date())
            values: dict[str, object] = {
                "LName": patient.last_name.strip(),
                "FName": patient.first_name.strip(),
                "MiddleI": "",
                "Preferred": "",
                "PatStatus": 0,
                "Gender": GENDER_UNKNOWN,
                "Position": 0,
                "Birthdate": od_date(patient.date_of_birth),
                "Zip": (patient.postcode or "").strip(),
                "HmPhone": "",
                "WkPhone": "",
                "WirelessPhone": phone_for_pms(patient.phone) if patient.phone else "",
                "Guarantor": 0,
                "Email": (patient.email or "").strip(),
                "PriProv": int(patient.provider_id),
                "SecProv": 0,
                "FeeSched": 0,
                "BillingType": int(patient.billing_type_id),
                "ChartNumber": "",
                "ClinicNum": int(patient.clinic_id or 0),
                "Language": "",
                "SecUserNumEntry": 0,
                "SecDateEntry": today,
                "SecurityHash": "",
            }
            patient_id = self._insert(op, "patient", values)
            self._write(
                "UPDATE patient",
                "UPDATE patient SET Guarantor = ? WHERE PatNum = ?",
                (int(patient_id), int(patient_id)),
                partial={"patient": patient_id},
                missing="the patient exists but is not yet its own guarantor (Guarantor 0)",
            )
            log.info("SQL writer created a patient", extra={"patient": patient_id})
            return patient_id

    def create_appointment(self, appointment: NewAppointment) -> str:
        op = "INSERT appointment"
        a = appointment
        with self._lock:
            found = self._read(
                op,
                "SELECT (SELECT COUNT(*) FROM patient WHERE PatNum = ? AND PatStatus <> ?)"
                " AS patient,"
                " (SELECT COUNT(*) FROM operatory WHERE OperatoryNum = ?) AS op,"
                " (SELECT COUNT(*) FROM provider WHERE ProvNum = ?) AS prov,"
                " (SELECT COUNT(*) FROM provider WHERE ProvNum = ?) AS hyg,"
                " (SELECT COUNT(*) FROM definition WHERE DefNum = ? AND Category = ?) AS conf,"
                " (SELECT COUNT(*) FROM appointmenttype WHERE AppointmentTypeNum = ?) AS kind,"
                " (SELECT COUNT(*) FROM clinic WHERE ClinicNum = ?) AS clinic",
                (
                    int(a.patient_id),
                    DELETED_PATIENT,
                    int(a.operatory_id),
                    int(a.provider_id),
                    int(a.hygienist_id or 0),
                    int(a.confirmed_def_id),
                    DEFCAT_APPT_CONFIRMED,
                    int(a.appointment_type_id or 0),
                    int(a.clinic_id or 0),
                ),
            )
            if not found["patient"]:
                raise WriterNotFoundError(
                    f"{op}: patient {a.patient_id} does not exist (or is deleted)", operation=op
                )
            self._require(found["op"], op, f"operatory {a.operatory_id} does not exist")
            self._require(found["prov"], op, f"provider {a.provider_id} does not exist")
            if a.hygienist_id is not None:
                self._require(found["hyg"], op, f"provider {a.hygienist_id} does not exist")
            self._require(
                found["conf"],
                op,
                f"definition {a.confirmed_def_id} is not a confirmation status (category 2)",
            )
            if a.appointment_type_id is not None:
                self._require(
                    found["kind"], op, f"appointment type {a.appointment_type_id} does not exist"
                )
            if a.clinic_id is not None:
                self._require(found["clinic"], op, f"clinic {a.clinic_id} does not exist")
            start = wall_clock(a.start, self.tz)
            values: dict[str, object] = {
                "PatNum": int(a.patient_id),
                "AptStatus": SCHEDULED,
                "Pattern": a.pattern,
                "Confirmed": int(a.confirmed_def_id),
                "Op": int(a.operatory_id),
                "Note": a.note,
                "ProvNum": int(a.provider_id),
                "ProvHyg": int(a.hygienist_id or 0),
                "AptDateTime": od_datetime(start),
                "IsNewPatient": int(a.is_new_patient),
                "ProcDescript": "",
                "ClinicNum": int(a.clinic_id or 0),
                "IsHygiene": int(a.is_hygiene),
                "AppointmentTypeNum": int(a.appointment_type_id or 0),
                "SecUserNumEntry": 0,
                "Priority": 0,
                "PatternSecondary": "/" * len(a.pattern),
                "SecurityHash": "",
            }
            appointment_id = self._insert(op, "appointment", values, now_column="SecDateTEntry")
            if a.is_new_patient:
                self._write(
                    "UPDATE patient",
                    "UPDATE patient SET DateFirstVisit = ? WHERE PatNum = ? AND NOT EXISTS"
                    " (SELECT 1 FROM procedurelog WHERE procedurelog.PatNum = ?"
                    " AND procedurelog.ProcStatus = ?)",
                    (
                        od_date(start.date()),
                        int(a.patient_id),
                        int(a.patient_id),
                        COMPLETE_PROCEDURE,
                    ),
                    partial={"appointment": appointment_id},
                    missing="the appointment exists but the patient's first-visit date is not set",
                )
            log.info("SQL writer created an appointment", extra={"appointment": appointment_id})
            return appointment_id

    def set_confirmation(self, appointment_id: str, confirmed_def_id: str) -> None:
        op = "UPDATE appointment"
        check_id(appointment_id, "appointment_id")
        check_id(confirmed_def_id, "confirmed_def_id")
        with self._lock:
            found = self._read(
                op,
                "SELECT (SELECT COUNT(*) FROM appointment WHERE AptNum = ?) AS apt,"
                " (SELECT COUNT(*) FROM definition WHERE DefNum = ? AND Category = ?) AS conf",
                (int(appointment_id), int(confirmed_def_id), DEFCAT_APPT_CONFIRMED),
            )
            self._require_appointment(found, op, appointment_id)
            self._require(
                found["conf"],
                op,
                f"definition {confirmed_def_id} is not a confirmation status (category 2)",
            )
            self._write(
                op,
                "UPDATE appointment SET Confirmed = ? WHERE AptNum = ?",
                (int(confirmed_def_id), int(appointment_id)),
            )

    def move_appointment(
        self,
        appointment_id: str,
        start: datetime,
        operatory_id: str,
        provider_id: str,
        pattern: str,
        *,
        note_line: str | None = None,
    ) -> None:
        op = "UPDATE appointment"
        check_id(appointment_id, "appointment_id")
        check_aware(start, "start")
        check_id(operatory_id, "operatory_id")
        check_id(provider_id, "provider_id")
        check_pattern(pattern)
        if note_line is not None:
            check_note_line(note_line)
        with self._lock:
            found = self._read(
                op,
                "SELECT (SELECT COUNT(*) FROM appointment WHERE AptNum = ?) AS apt,"
                " (SELECT COUNT(*) FROM operatory WHERE OperatoryNum = ?) AS op,"
                " (SELECT COUNT(*) FROM provider WHERE ProvNum = ?) AS prov",
                (int(appointment_id), int(operatory_id), int(provider_id)),
            )
            self._require_appointment(found, op, appointment_id)
            self._require(found["op"], op, f"operatory {operatory_id} does not exist")
            self._require(found["prov"], op, f"provider {provider_id} does not exist")
            note_sql = ""
            note_params: tuple[str, ...] = ()
            if note_line is not None:
                appended = self._sql_dialect().concat("Note", "?")
                note_sql = (
                    ", Note = CASE WHEN INSTR(COALESCE(Note, ''), ?) > 0 THEN Note"
                    f" WHEN Note IS NULL OR Note = '' THEN ? ELSE {appended} END"
                )
                note_params = (note_line, note_line, NOTE_LINE_BREAK + note_line)
            self._write(
                op,
                "UPDATE appointment SET AptDateTime = ?, Op = ?, ProvNum = ?, Pattern = ?,"
                " PatternSecondary = CASE WHEN LENGTH(PatternSecondary) = ?"
                f" THEN PatternSecondary ELSE ? END{note_sql} WHERE AptNum = ?",
                (
                    od_datetime(wall_clock(start, self.tz)),
                    int(operatory_id),
                    int(provider_id),
                    pattern,
                    len(pattern),
                    "/" * len(pattern),
                    *note_params,
                    int(appointment_id),
                ),
            )

    def attach_referral(self, patient_id: str, source: str) -> str:
        op = "INSERT refattach"
        check_id(patient_id, "patient_id")
        check_referral_name(source)
        with self._lock:
            found = self._read(
                op,
                "SELECT (SELECT COUNT(*) FROM patient WHERE PatNum = ? AND PatStatus <> ?)"
                " AS patient, (SELECT MIN(ReferralNum) FROM referral WHERE LName = ?) AS referral",
                (int(patient_id), DELETED_PATIENT, source),
            )
            if not found["patient"]:
                raise WriterNotFoundError(
                    f"{op}: patient {patient_id} does not exist (or is deleted)", operation=op
                )
            referral = found["referral"]
            if referral is None:
                referral = self._insert(
                    "INSERT referral",
                    "referral",
                    {
                        "LName": source, "FName": "", "MName": "", "Specialty": 0, "Note": "",
                        "IsHidden": 0, "NotPerson": 1, "Title": "", "PatNum": 0, "Slip": 0,
                        "IsDoctor": 0, "IsPreferred": 0, "BusinessName": "",
                    },
                )  # fmt: skip
                log.info("SQL writer created a referral source", extra={"referral": referral})
            attached = self._read(
                op,
                "SELECT MIN(CASE WHEN ReferralNum = ? AND RefType = ? THEN RefAttachNum END)"
                " AS same, MAX(ItemOrder) AS last FROM refattach WHERE PatNum = ?",
                (int(referral), REF_FROM, int(patient_id)),
            )
            if attached["same"] is not None:
                return str(attached["same"])  # attached before: once is enough
            ref_attach = self._insert(
                op,
                "refattach",
                {
                    "ReferralNum": int(referral),
                    "PatNum": int(patient_id),
                    "ItemOrder": int(attached["last"] or 0) + 1,
                    "RefDate": od_date(datetime.now(self.tz).date()),
                    "RefType": REF_FROM,
                    "RefToStatus": 0,
                    "Note": "",
                    "IsTransitionOfCare": 0,
                    "ProcNum": 0,
                    "DateProcComplete": "0001-01-01",
                    "ProvNum": 0,
                },
            )
            log.info(
                "SQL writer attached a referral source",
                extra={"patient": patient_id, "refattach": ref_attach},
            )
            return ref_attach

    def release_appointment(self, appointment_id: str, reason_code: str) -> None:
        op = "UPDATE appointment"
        check_id(appointment_id, "appointment_id")
        line = release_note(reason_code)
        with self._lock:
            found = self._read(
                op,
                "SELECT (SELECT COUNT(*) FROM appointment WHERE AptNum = ?) AS apt",
                (int(appointment_id),),
            )
            self._require_appointment(found, op, appointment_id)
            appended = self._sql_dialect().concat("Note", "?")
            self._write(
                op,
                "UPDATE appointment SET AptStatus = ?, Note = CASE WHEN Note IS NULL"
                f" OR Note = '' THEN ? ELSE {appended} END WHERE AptNum = ? AND AptStatus <> ?",
                (
                    RELEASED_STATUS,
                    line,
                    NOTE_LINE_BREAK + line,
                    int(appointment_id),
                    RELEASED_STATUS,
                ),
            )

    # -- doctor ------------------------------------------------------------------

    def check(self) -> str:
        """Connect with the write login and check it can change the diary tables."""
        with self._lock:
            conn = self._connection("connect")
            for table in ("patient", "appointment"):
                if not conn.has_table(table):
                    raise WriterRefusedError(
                        f"the writer's database has no table '{table}'",
                        fix="Point writer.connection_string (or writer.dsn) at the PMS database.",
                    )
            try:
                capability = conn.login_can_write()
            except PmsError as exc:
                raise self._translate("check", exc, sent=False) from None
            if capability.can_write is False:
                raise WriterAuthError(
                    f"the writer's database login cannot write: {capability.detail}",
                    fix="Give the writer's login INSERT and UPDATE on the PMS tables.",
                )
            return f"SQL writer connected ({conn.family.value}); {capability.detail}"

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __repr__(self) -> str:
        return "<SqlDiaryWriter>"

    # -- plumbing ----------------------------------------------------------------

    def _connection(self, operation: str) -> PmsConnection:
        if self._conn is None or self._conn.closed:
            try:
                conn = self._open(self._settings)
            except PmsError as exc:
                raise self._translate(operation, exc, sent=False) from None
            try:
                self._dialect = _Dialect(conn.family)
            except WriteError:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _sql_dialect(self) -> _Dialect:
        if self._dialect is None:
            self._connection("connect")
        assert self._dialect is not None
        return self._dialect

    def _execute(
        self,
        operation: str,
        sql: str,
        params: Sequence[object],
        *,
        sent: bool,
        partial: dict[str, str] | None = None,
        missing: str = "",
    ) -> list[Row]:
        conn = self._connection(operation)
        try:
            return conn.execute(sql, params)
        except PmsError as exc:
            if isinstance(exc, ServerUnreachableError | QueryTimeoutError):
                self.close()
            raise self._translate(
                operation, exc, sent=sent, partial=partial, missing=missing
            ) from None

    def _read(self, operation: str, sql: str, params: Sequence[object]) -> Row:
        return self._execute(operation, sql, params, sent=False)[0]

    def _write(
        self,
        operation: str,
        sql: str,
        params: Sequence[object],
        *,
        partial: dict[str, str] | None = None,
        missing: str = "",
    ) -> None:
        self._execute(operation, sql, params, sent=True, partial=partial, missing=missing)

    def _insert(
        self, operation: str, table: str, values: dict[str, object], now_column: str = ""
    ) -> str:
        columns = list(values)
        marks = ["?"] * len(columns)
        if now_column:
            columns.append(now_column)
            marks.append(self._sql_dialect().now)
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(marks)})"
        self._write(operation, sql, list(values.values()))
        rows = self._execute(operation, self._sql_dialect().last_id, (), sent=True)
        value: Any = rows[0][0] if rows else None
        if not isinstance(value, int | float | str) or not str(value).isdigit():
            raise WriterUnavailableError(
                f"{operation}: the row was written but its new key could not be read",
                operation=operation,
                may_have_applied=True,
            )
        return str(int(value))

    @staticmethod
    def _require(count: object, operation: str, problem: str) -> None:
        if not count:
            raise WriterRefusedError(f"{operation}: {problem}", operation=operation)

    @staticmethod
    def _require_appointment(found: Row, operation: str, appointment_id: str) -> None:
        if not found["apt"]:
            raise WriterNotFoundError(
                f"{operation}: appointment {appointment_id} does not exist", operation=operation
            )

    @staticmethod
    def _translate(
        operation: str,
        exc: PmsError,
        *,
        sent: bool,
        partial: dict[str, str] | None = None,
        missing: str = "",
    ) -> WriteError:
        detail = f"{operation}: {exc.message}" + (f"; {missing}" if missing else "")
        if isinstance(exc, LoginFailedError):
            if sent:  # a refused write: the login lacks a right (the driver's words say "read")
                detail = (
                    f"{operation}: the writer's login may not make this change ({exc.message})"
                    + (f"; {missing}" if missing else "")
                )
            return WriterAuthError(
                detail,
                operation=operation,
                partial=partial,
                fix="Check writer.user and store the writer login's password with "
                "'bridge secret set <writer.password_secret>'.",
            )
        if isinstance(exc, ServerUnreachableError | QueryTimeoutError):
            return WriterUnavailableError(
                detail,
                operation=operation,
                may_have_applied=sent,
                timed_out=isinstance(exc, QueryTimeoutError),
                partial=partial,
            )
        if isinstance(exc, DriverNotFoundError | DataSourceNotFoundError):
            return WriterRefusedError(
                detail,
                operation=operation,
                fix="Install the ODBC driver or correct writer.connection_string / writer.dsn.",
            )
        return WriterRefusedError(detail, operation=operation, partial=partial)
