"""Patient matching: who in the PMS is the patient a booking request names?

:class:`PatientMatcher` answers with a :class:`MatchOutcome` whose ``kind``
is ``matched`` (one patient, beyond doubt), ``new`` (nobody close: create
the patient) or ``review`` (a person must decide; the pipeline opens a
``needs_review`` exception). It never guesses: doubt always means review.

Rules (names, phones, emails and dates compared in their normal forms, see
:mod:`bridge.bookings.normalize`):

* **matched** (``matched``): exactly one patient whose first and last name
  equal the request's, whose birth date equals the request's, and whose
  phone or email agrees (his own, or his guarantor's: children's records
  rarely carry their own phone, and the family's head of household is
  whom the practice calls). The first name may equal the patient's
  ``FName`` or the ``Preferred`` name the practice recorded for him.
* **review, ambiguous_patient**: two or more such patients (twins with one
  name, duplicate records); or more patients share the birth date than
  the bounded lookup reads, so uniqueness cannot be shown.
* **review, unconfirmed_match**: name and birth date equal, but neither
  phone nor email agrees (the request always has one of them: requests
  without both are refused before matching).
* **review, near_match**: a patient close enough that creating a new one
  could duplicate him: birth date equal and the name a nickname
  (:mod:`.nicknames`), a typo, swapped first and last, a hyphenated or
  double surname against one part of it, a surname with or without its
  particle ("de la Cruz"/"Cruz"), or one given name against two; or the
  name equal and phone or email agreeing while the birth date is a typo
  away (day and month swapped, one digit off, two digits transposed) or
  not recorded at all (``0001-01-01``).
* **new, no_candidate**: nothing of the above.

Patient status (``PatStatus``):

* 4 Deleted is never read: the PMS keeps deleted rows, and its API refuses
  to touch them.
* 0 Patient, 6 Prospective and 2 Inactive can be matched. "Inactive" only
  means the patient has not been in for a while; booking online is exactly
  how such patients come back, and sending each to the front desk would
  bury real doubts.
* 1 NonPatient, 3 Archived and 5 Deceased are candidates but never matched
  automatically: they are the same person, so creating a new patient would
  duplicate him, yet booking onto an archived record (often a merged
  duplicate), a non-patient guarantor or a deceased patient needs a
  person. A would-be match on them is a ``near_match`` with the reason
  ``status_archived`` (``status_nonpatient``, ``status_deceased``).

Queries (Open Dental ``patient``; all through ODBC, indexed and bounded;
names and contacts are compared in Python, so the database's collation
(binary in SQLite, accent-insensitive ``utf8mb3_general_ci`` in MariaDB)
only changes how many rows a lookup returns, never the decision):

1. ``Birthdate = ?`` and ``PatStatus <> 4``: index ``BirthdateStatus``,
   at most :data:`BIRTHDATE_LIMIT` rows. If more, uniqueness cannot be
   shown and the outcome is review.
2. ``Birthdate IN (<typo variants of the date>)``: same index, ~45 probes,
   at most :data:`VARIANT_LIMIT` rows.
3. ``HmPhone IN (...) OR WirelessPhone IN (...) OR WkPhone IN (...) OR
   Email IN (...)``: the phone columns hold numbers as typed, with
   punctuation, so the request's number is looked up in the ~30 forms
   front desks type (:func:`~.normalize.phone_search_forms`), each an
   index probe on ``HmPhone``, ``WirelessPhone``, ``WkPhone``, ``Email``.
   At most :data:`CONTACT_LIMIT` rows.
4. ``LName IN (...) AND (FName IN (...) OR Preferred IN (...))``: index
   ``indexLFName``, with the name as typed and in its usual
   capitalisations (and without accents), at most :data:`NAME_LIMIT`.
5. The guarantors of exact candidates without their own confirmation,
   by ``PatNum``.

Lookups 3 and 4 exist to find patients whose birth date is not recorded.
If one of lookups 2-4 is cut off at its limit and the decision would be
``new``, the outcome is review instead (a near match may be among the
rows not read).

Privacy: :class:`Candidate` holds the display fields the front desk needs
(name, birth date, masked phone and email) and hides them from ``repr``;
reason codes and :attr:`MatchOutcome.message` never carry personal data;
the matcher logs counts and codes only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from bridge.bookings import normalize as norm
from bridge.bookings.nicknames import are_nicknames
from bridge.bookings.requests import PatientDetails
from bridge.pms.odbc import PmsConnection, Row

__all__ = [
    "Candidate",
    "MatchKind",
    "MatchOutcome",
    "PatientDetails",
    "PatientMatcher",
    "Query",
    "candidate_queries",
]

log = logging.getLogger(__name__)

MatchKind = Literal["matched", "new", "review"]
MATCHED = "matched"
NO_CANDIDATE = "no_candidate"
AMBIGUOUS = "ambiguous_patient"
NEAR_MATCH = "near_match"
UNCONFIRMED = "unconfirmed_match"
MESSAGES: Mapping[str, str] = {
    MATCHED: "the patient was found in the practice's records",
    NO_CANDIDATE: "no patient of the practice is close to these details; a new one is created",
    AMBIGUOUS: "more than one patient of the practice fits these details",
    NEAR_MATCH: "a patient of the practice nearly fits these details; the practice will check",
    UNCONFIRMED: "a patient with this name and birth date exists, but neither phone nor "
    "email agrees; the practice will check",
}

DELETED = 4
MATCHABLE_STATUSES: Mapping[int, str] = {0: "patient", 2: "inactive", 6: "prospective"}
REVIEW_STATUSES: Mapping[int, str] = {1: "nonpatient", 3: "archived", 5: "deceased"}

BIRTHDATE_LIMIT = 200
VARIANT_LIMIT = 1000
CONTACT_LIMIT = 100
NAME_LIMIT = 100
MAX_CANDIDATES = 10
COLUMNS = (
    "PatNum, LName, FName, MiddleI, Preferred, Birthdate, HmPhone, WkPhone, WirelessPhone,"
    " Email, Zip, PatStatus, Guarantor"
)

Tier = Literal["confirmed", "exact", "near"]
_TIER_ORDER: Mapping[str, int] = {"confirmed": 0, "exact": 1, "near": 2}


@dataclass(frozen=True)
class Candidate:
    """One patient the request may name, as the front desk sees it.

    ``reasons`` are codes (``name_exact``, ``preferred_name``, ``nickname``,
    ``typo``, ``swapped_names``, ``hyphenated_surname``, ``surname_particle``,
    ``partial_first_name``, ``dob``, ``dob_typo``, ``dob_missing``, ``phone``,
    ``phone_local``, ``email``, ``guarantor_phone``, ``guarantor_email``,
    ``postcode``, ``status_<status>``); ``score`` (0..1) orders candidates
    for display and decides nothing. The display fields are personal data:
    they may be stored in the local state and shown in the panel, never
    logged, so ``repr`` leaves them out.
    """

    patient_id: str
    score: float
    reasons: tuple[str, ...]
    name: str = field(default="", repr=False)
    birth_date: date | None = field(default=None, repr=False)
    phone: str = field(default="", repr=False)
    email: str = field(default="", repr=False)
    status: str = "patient"

    @property
    def display(self) -> dict[str, str]:
        """The fields to show (``birth_date`` ISO or ``unknown``; phone and email masked)."""
        return {
            "name": self.name,
            "birth_date": self.birth_date.isoformat() if self.birth_date else "unknown",
            "phone": self.phone,
            "email": self.email,
            "status": self.status,
        }


@dataclass(frozen=True)
class MatchOutcome:
    """The matcher's answer (see the module docstring for the rules).

    ``patient_id`` is set when ``kind`` is ``matched``. ``reason_code`` is
    one of ``matched``, ``no_candidate``, ``ambiguous_patient``,
    ``near_match``, ``unconfirmed_match`` from the matcher; the pipeline
    builds outcomes with its own codes for front-desk decisions, so the
    code is not checked here. ``candidates`` come best first.
    """

    kind: MatchKind
    patient_id: str | None
    candidates: tuple[Candidate, ...]
    reason_code: str
    rows_read: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("matched", "new", "review"):
            raise ValueError(f"unknown match kind {self.kind!r}")
        if self.kind == "matched" and not self.patient_id:
            raise ValueError("a matched outcome needs the patient id")

    @property
    def message(self) -> str:
        """A sentence for the cloud or the panel; never personal data."""
        return MESSAGES.get(self.reason_code, self.reason_code.replace("_", " "))


@dataclass(frozen=True)
class Query:
    """One bounded lookup: ``limit`` rows are read at most (``LIMIT limit + 1``)."""

    purpose: str
    sql: str
    params: tuple[object, ...]
    limit: int


# -- the request and the rows, folded -----------------------------------------------


@dataclass(frozen=True)
class _Wanted:
    first: str
    first_tokens: tuple[str, ...]
    last: str
    last_tokens: tuple[str, ...]
    last_core: str
    dob: date
    dob_variants: frozenset[date]
    phone: norm.Phone | None
    email: str | None
    postcode: str

    @classmethod
    def of(cls, details: PatientDetails, country: str) -> _Wanted:
        return cls(
            first=norm.name_key(details.first_name),
            first_tokens=norm.name_tokens(details.first_name),
            last=norm.name_key(details.last_name),
            last_tokens=norm.name_tokens(details.last_name),
            last_core=norm.surname_core(details.last_name),
            dob=details.date_of_birth,
            dob_variants=norm.dob_typo_variants(details.date_of_birth),
            phone=norm.parse_phone(details.phone, country),
            email=norm.normalize_email(details.email),
            postcode=_postcode(details.postcode),
        )


def _postcode(raw: object) -> str:
    return "".join(ch for ch in str(raw or "").casefold() if ch.isalnum())


def _id(value: object) -> str:
    try:
        return str(int(value))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return "0"


@dataclass(frozen=True)
class _Patient:
    id: str
    first_raw: str
    last_raw: str
    middle_raw: str
    preferred_raw: str
    first: str
    first_tokens: tuple[str, ...]
    preferred: str
    last: str
    last_tokens: tuple[str, ...]
    last_core: str
    birth: date | None
    phones: tuple[norm.Phone, ...]
    emails: frozenset[str]
    postcode: str
    status: int
    guarantor: str

    @classmethod
    def of(cls, row: Row, country: str) -> _Patient:
        def text(column: str) -> str:
            value = row[column]
            return value.strip() if isinstance(value, str) else ""

        columns = ("WirelessPhone", "HmPhone", "WkPhone")
        phones = (norm.parse_phone(text(c), country) for c in columns)
        status = row["PatStatus"]
        return cls(
            id=_id(row["PatNum"]),
            first_raw=text("FName"),
            last_raw=text("LName"),
            middle_raw=text("MiddleI"),
            preferred_raw=text("Preferred"),
            first=norm.name_key(text("FName")),
            first_tokens=norm.name_tokens(text("FName")),
            preferred=norm.name_key(text("Preferred")),
            last=norm.name_key(text("LName")),
            last_tokens=norm.name_tokens(text("LName")),
            last_core=norm.surname_core(text("LName")),
            birth=norm.birth_date(row["Birthdate"]),
            phones=tuple(p for p in phones if p is not None),
            emails=norm.email_set(text("Email")),
            postcode=_postcode(text("Zip")),
            status=int(status) if isinstance(status, int) else 0,
            guarantor=_id(row["Guarantor"]),
        )

    @property
    def status_label(self) -> str:
        return MATCHABLE_STATUSES.get(self.status) or REVIEW_STATUSES.get(self.status, "unknown")

    @property
    def display_name(self) -> str:
        first = self.first_raw
        if self.preferred_raw and self.preferred != self.first:
            first += f' "{self.preferred_raw}"'
        middle = f" {self.middle_raw}" if self.middle_raw else ""
        return f"{first}{middle} {self.last_raw}".strip()


# -- comparing one patient with the request ------------------------------------------


def _first_name(want: _Wanted, pat: _Patient) -> tuple[str | None, list[str]]:
    """How the request's first name relates to the patient's FName/Preferred."""
    known = [k for k in (pat.first, pat.preferred) if k]
    if want.first in known:
        return "exact", ([] if want.first == pat.first else ["preferred_name"])
    heads = {want.first, want.first_tokens[0] if want.first_tokens else ""}
    theirs = {*known, pat.first_tokens[0] if pat.first_tokens else ""}
    if any(are_nicknames(a, b) for a in heads for b in theirs if a and b):
        return "near", ["nickname"]
    if _part_of(want.first_tokens, pat.first_tokens):
        return "near", ["partial_first_name"]
    if any(norm.is_typo(want.first, k) for k in known):
        return "near", ["typo"]
    return None, []


def _last_name(want: _Wanted, pat: _Patient) -> tuple[str | None, list[str]]:
    if not pat.last:
        return None, []
    if want.last == pat.last:
        return "exact", []
    if want.last_core == pat.last_core:
        return "near", ["surname_particle"]
    if _part_of(_core_tokens(want.last_tokens), _core_tokens(pat.last_tokens)):
        return "near", ["hyphenated_surname"]
    if norm.is_typo(want.last, pat.last) or norm.is_typo(want.last_core, pat.last_core):
        return "near", ["typo"]
    return None, []


def _core_tokens(tokens: tuple[str, ...]) -> tuple[str, ...]:
    kept = tuple(
        t for t in tokens if t not in norm.SURNAME_PARTICLES and t not in norm.NAME_SUFFIXES
    )
    return kept or tokens


def _part_of(a: Sequence[str], b: Sequence[str]) -> bool:
    """One side's words are some, not all, of the other side's words."""
    sa, sb = set(a), set(b)
    return bool(sa and sb) and sa != sb and (sa < sb or sb < sa)


def _swapped(want: _Wanted, pat: _Patient) -> bool:
    if want.first == pat.last and want.last == pat.first:
        return True
    ours = sorted((*want.first_tokens, *want.last_tokens))
    return bool(ours) and ours == sorted((*pat.first_tokens, *pat.last_tokens))


def _contact(want: _Wanted, phones: Iterable[norm.Phone], emails: frozenset[str]) -> list[str]:
    found: list[str] = []
    if want.phone is not None:
        agreements = {norm.phones_agree(want.phone, p) for p in phones}
        if "full" in agreements:
            found.append("phone")
        elif "local" in agreements:
            found.append("phone_local")
    if want.email is not None and want.email in emails:
        found.append("email")
    return found


@dataclass
class _Assessment:
    patient: _Patient
    name: str  # exact | near
    dob: str  # exact | typo | missing
    reasons: list[str]
    contact: list[str]
    similarity: float

    @property
    def matchable(self) -> bool:
        return self.patient.status in MATCHABLE_STATUSES

    @property
    def tier(self) -> Tier | None:
        if self.name == "exact" and self.dob == "exact" and self.matchable:
            return "confirmed" if self.contact else "exact"
        if self.dob == "exact" or self.contact:
            return "near"
        return None

    def candidate(self, want: _Wanted) -> Candidate:
        pat = self.patient
        reasons = list(self.reasons)
        reasons.append({"exact": "dob", "typo": "dob_typo", "missing": "dob_missing"}[self.dob])
        reasons.extend(self.contact)
        if want.postcode and want.postcode == pat.postcode:
            reasons.append("postcode")
        if not self.matchable or pat.status == 2:
            reasons.append(f"status_{pat.status_label}")
        dob_score = {"exact": 1.0, "typo": 0.6, "missing": 0.3}[self.dob]
        score = 0.45 * self.similarity + 0.35 * dob_score + (0.2 if self.contact else 0.0)
        agreeing = [p for p in pat.phones if want.phone and norm.phones_agree(want.phone, p)]
        shown_phone = next(iter(agreeing or pat.phones), None)
        shown_email = want.email if want.email in pat.emails else min(pat.emails, default=None)
        return Candidate(
            patient_id=pat.id,
            score=round(score, 3),
            reasons=tuple(dict.fromkeys(reasons)),
            name=pat.display_name,
            birth_date=pat.birth,
            phone=norm.mask_phone(shown_phone) if shown_phone else "",
            email=norm.mask_email(shown_email) if shown_email else "",
            status=pat.status_label,
        )


def _assess(want: _Wanted, pat: _Patient) -> _Assessment | None:
    """How close one patient is, or ``None`` when not close at all."""
    if pat.status == DELETED:
        return None
    if pat.birth == want.dob:
        dob = "exact"
    elif pat.birth is None:
        dob = "missing"
    elif pat.birth in want.dob_variants:
        dob = "typo"
    else:
        return None
    first, first_reasons = _first_name(want, pat)
    last, last_reasons = _last_name(want, pat)
    contact = _contact(want, pat.phones, pat.emails)
    similarity = (
        max(norm.name_similarity(want.first, k) for k in (pat.first, pat.preferred or pat.first))
        + norm.name_similarity(want.last, pat.last)
    ) / 2
    if first == "exact" and last == "exact":
        name, reasons = "exact", ["name_exact", *first_reasons]
        similarity = 1.0
    elif first is not None and last is not None:
        name, reasons = "near", first_reasons + last_reasons
    elif _swapped(want, pat):
        name, reasons = "near", ["swapped_names"]
    else:
        return None
    if dob != "exact" and not (name == "exact" and contact):
        return None  # a date slip only counts when name and contact agree
    assessment = _Assessment(pat, name, dob, reasons, contact, similarity)
    if assessment.tier is None:
        return None
    return assessment


# -- the lookups --------------------------------------------------------------------


def _spellings(text: str) -> list[str]:
    """The name as typed, in its usual capitalisations, with and without accents."""
    plain = "".join(ch for ch in norm.fold(text) if ch.isprintable())
    forms: dict[str, None] = {}
    for base in (text, plain):
        for form in (base, base.title(), base.upper(), base.lower(), base.capitalize()):
            forms[form] = None
    return list(forms)


def candidate_queries(details: PatientDetails, country: str) -> list[Query]:
    """The bounded, indexed lookups :meth:`PatientMatcher.match` runs (module docstring)."""
    live = f"PatStatus <> {DELETED}"
    queries = [
        Query(
            "birthdate",
            f"SELECT {COLUMNS} FROM patient WHERE Birthdate = ? AND {live}"
            f" LIMIT {BIRTHDATE_LIMIT + 1}",
            (details.date_of_birth,),
            BIRTHDATE_LIMIT,
        )
    ]
    variants = sorted(norm.dob_typo_variants(details.date_of_birth))
    if variants:
        queries.append(
            Query(
                "birthdate_variants",
                f"SELECT {COLUMNS} FROM patient WHERE Birthdate IN ({_marks(variants)})"
                f" AND {live} LIMIT {VARIANT_LIMIT + 1}",
                tuple(variants),
                VARIANT_LIMIT,
            )
        )
    clauses: list[str] = []
    params: list[object] = []
    phone = norm.parse_phone(details.phone, country)
    if phone is not None:
        forms = norm.phone_search_forms(phone, country)
        for column in ("HmPhone", "WirelessPhone", "WkPhone"):
            clauses.append(f"{column} IN ({_marks(forms)})")
            params.extend(forms)
    if details.email:
        emails = list(dict.fromkeys([details.email.strip(), details.email.strip().lower()]))
        clauses.append(f"Email IN ({_marks(emails)})")
        params.extend(emails)
    if clauses:
        queries.append(
            Query(
                "contact",
                f"SELECT {COLUMNS} FROM patient WHERE ({' OR '.join(clauses)}) AND {live}"
                f" LIMIT {CONTACT_LIMIT + 1}",
                tuple(params),
                CONTACT_LIMIT,
            )
        )
    lasts, firsts = _spellings(details.last_name), _spellings(details.first_name)
    queries.append(
        Query(
            "name",
            f"SELECT {COLUMNS} FROM patient WHERE LName IN ({_marks(lasts)})"
            f" AND (FName IN ({_marks(firsts)}) OR Preferred IN ({_marks(firsts)}))"
            f" AND {live} LIMIT {NAME_LIMIT + 1}",
            (*lasts, *firsts, *firsts),
            NAME_LIMIT,
        )
    )
    return queries


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" for _ in values)


# -- the matcher --------------------------------------------------------------------


class PatientMatcher:
    """Matches booking requests' patients against the PMS (module docstring).

    Reads only, through ``conn``; one matcher per connection, used by one
    thread at a time (as the connection is). ``country`` is the practice's
    ISO 3166 code, for reading phone numbers typed without a country
    prefix. :meth:`match` raises :class:`~bridge.errors.PmsError` when the
    PMS cannot be read; it never writes.
    """

    def __init__(self, conn: PmsConnection, country: str) -> None:
        self.conn = conn
        self.country = country.upper()

    def match(self, details: PatientDetails) -> MatchOutcome:
        started = time.perf_counter()
        want = _Wanted.of(details, self.country)
        patients: dict[str, _Patient] = {}
        capped: list[str] = []
        for query in candidate_queries(details, self.country):
            rows = self.conn.execute(query.sql, query.params, entity="patient")
            if len(rows) > query.limit:
                capped.append(query.purpose)
            for row in rows[: query.limit]:
                pat = _Patient.of(row, self.country)
                patients.setdefault(pat.id, pat)
        rows_read = len(patients)
        assessed = [a for a in (_assess(want, p) for p in patients.values()) if a is not None]
        rows_read += self._confirm_by_guarantor(want, assessed)
        outcome = _decide(want, assessed, capped, rows_read)
        log.info(
            "patient match",
            extra={
                "outcome": outcome.kind,
                "reason": outcome.reason_code,
                "candidates": len(outcome.candidates),
                "rows_read": rows_read,
                "capped": ",".join(capped) or None,
                "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return outcome

    def _confirm_by_guarantor(self, want: _Wanted, assessed: list[_Assessment]) -> int:
        """Add the guarantor's phone or email as confirmation for exact candidates."""
        waiting = [
            a
            for a in assessed
            if a.name == "exact"
            and a.dob == "exact"
            and not a.contact
            and a.patient.guarantor not in ("0", a.patient.id)
        ]
        if not waiting or (want.phone is None and want.email is None):
            return 0
        ids = sorted({int(a.patient.guarantor) for a in waiting})
        rows = self.conn.execute(
            f"SELECT {COLUMNS} FROM patient WHERE PatNum IN ({_marks(ids)})"
            f" AND PatStatus <> {DELETED}",
            tuple(ids),
            entity="patient",
        )
        heads = {g.id: g for g in (_Patient.of(r, self.country) for r in rows)}
        for a in waiting:
            head = heads.get(a.patient.guarantor)
            if head is not None:
                found = _contact(want, head.phones, head.emails)
                a.contact = [f"guarantor_{c.removesuffix('_local')}" for c in found]
        return len(rows)


def _decide(
    want: _Wanted, assessed: list[_Assessment], capped: list[str], rows_read: int
) -> MatchOutcome:
    ranked = sorted(
        assessed,
        key=lambda a: (_TIER_ORDER[a.tier or "near"], -a.similarity, a.patient.id),
    )
    candidates = tuple(a.candidate(want) for a in ranked[:MAX_CANDIDATES])
    tiers = [a.tier for a in ranked]
    confirmed = [a for a in ranked if a.tier == "confirmed"]

    def review(code: str) -> MatchOutcome:
        return MatchOutcome("review", None, candidates, code, rows_read)

    if "birthdate" in capped:
        return review(AMBIGUOUS)
    if len(confirmed) == 1:
        return MatchOutcome("matched", confirmed[0].patient.id, candidates, MATCHED, rows_read)
    if len(confirmed) > 1:
        return review(AMBIGUOUS)
    exact = tiers.count("exact")
    if exact == 1:
        return review(UNCONFIRMED)
    if exact > 1:
        return review(AMBIGUOUS)
    if ranked or capped:
        return review(NEAR_MATCH)
    return MatchOutcome("new", None, (), NO_CANDIDATE, rows_read)
