"""Patient matching against the demo practice through the SQLite3 ODBC driver.

Crafted patients are inserted with a separate sqlite3 connection (as the
PMS's own client would write them); the matcher reads them through ODBC.
Birth dates of crafted patients are in 1931-1933, where the demo practice
has nobody with these (distinctive) names.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from bridge.bookings import normalize as norm
from bridge.bookings.matching import (
    BIRTHDATE_LIMIT,
    Candidate,
    MatchOutcome,
    PatientMatcher,
    candidate_queries,
)
from bridge.bookings.nicknames import are_nicknames, group_count
from bridge.bookings.requests import PatientDetails
from bridge.pms.odbc import PmsConnection

DOB = date(1932, 3, 7)
PHONE = "+15035550101"


class Practice:
    """Writes crafted patients into the practice's SQLite file (raw, not ODBC)."""

    def __init__(self, path: Path) -> None:
        self.raw = sqlite3.connect(path, isolation_level=None)

    def add(self, first: str, last: str, born: date | str = DOB, **cols: object) -> str:
        values: dict[str, object] = {
            "FName": first,
            "LName": last,
            "Birthdate": born.isoformat() if isinstance(born, date) else born,
            "PatStatus": 0,
            "PriProv": 1,
            "BillingType": 1,
            **cols,
        }
        names = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        cursor = self.raw.execute(
            f"INSERT INTO patient ({names}) VALUES ({marks})", tuple(values.values())
        )
        pat = int(cursor.lastrowid or 0)
        if not cols.get("Guarantor"):
            self.raw.execute("UPDATE patient SET Guarantor = ? WHERE PatNum = ?", (pat, pat))
        return str(pat)


@pytest.fixture
def pms(db: Path) -> Iterator[Practice]:
    practice = Practice(db)
    yield practice
    practice.raw.close()


@pytest.fixture
def matcher(conn: PmsConnection) -> PatientMatcher:
    return PatientMatcher(conn, "US")


def ask(
    first: str,
    last: str,
    born: date = DOB,
    phone: str | None = PHONE,
    email: str | None = None,
    postcode: str | None = None,
) -> PatientDetails:
    """A request's patient as :mod:`bridge.bookings.requests` hands it over (E.164 phone)."""
    return PatientDetails(first, last, born, norm.normalize_phone(phone, "US"), email, postcode)


def reasons(outcome: MatchOutcome, patient_id: str) -> tuple[str, ...]:
    return next(c.reasons for c in outcome.candidates if c.patient_id == patient_id)


# -- matched ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stored",
    [
        "(503)555-0101",
        "(503) 555-0101",
        "503-555-0101",
        "503.555.0101",
        "5035550101",
        "+1 503 555 0101",
        "1-503-555-0101",
        "+15035550101",
        "503-555-0101 ext 12",
        "(503) 555-0101 (cell)",
    ],
)
@pytest.mark.parametrize("column", ["HmPhone", "WirelessPhone", "WkPhone"])
def test_name_birth_date_and_phone_in_any_format_match(
    pms: Practice, matcher: PatientMatcher, stored: str, column: str
) -> None:
    pat = pms.add("Dana", "Kowalczyk", **{column: stored})
    outcome = matcher.match(ask("Dana", "Kowalczyk"))
    assert (outcome.kind, outcome.reason_code, outcome.patient_id) == ("matched", "matched", pat)
    assert reasons(outcome, pat) == ("name_exact", "dob", "phone")


def test_a_phone_stored_without_area_code_confirms(pms: Practice, matcher: PatientMatcher) -> None:
    pat = pms.add("Dana", "Kowalczyk", HmPhone="555-0101")
    outcome = matcher.match(ask("Dana", "Kowalczyk"))
    assert (outcome.kind, outcome.patient_id) == ("matched", pat)
    assert "phone_local" in reasons(outcome, pat)


def test_email_confirms_whatever_its_case_and_among_several(
    pms: Practice, matcher: PatientMatcher
) -> None:
    one = pms.add("Dana", "Kowalczyk", Email="Dana.Kowalczyk@Example.COM")
    two = pms.add("Piotr", "Kowalczyk", Email="office@example.org, p.k@example.net")
    outcome = matcher.match(
        ask("Dana", "Kowalczyk", phone=None, email="dana.kowalczyk@example.com")
    )
    assert (outcome.kind, outcome.patient_id) == ("matched", one)
    assert reasons(outcome, one) == ("name_exact", "dob", "email")
    outcome = matcher.match(ask("Piotr", "Kowalczyk", phone=None, email=" P.K@Example.net "))
    assert (outcome.kind, outcome.patient_id) == ("matched", two)


@pytest.mark.parametrize(
    ("stored", "asked"),
    [
        (("Siân", "O'Brien"), ("Sian", "OBrien")),
        (("Siân", "O\u2019Brien"), ("SIAN", "o'brien")),
        (("Øyvind", "Ødegaard"), ("Oyvind", "Odegaard")),
        (("José", "García-López"), ("Jose", "Garcia Lopez")),
        (("Renée", "Müller\u2013Schmidt"), ("Renee", "Muller-Schmidt")),
        (("Mary Ann", "de la Cruz"), ("Maryann", "De La Cruz")),
        (("Úrsula", "Nguyễn"), ("Ursula", "Nguyen")),
        (("Jürgen", "Strauß"), ("Jurgen", "Strauss")),
    ],
)
def test_accents_case_punctuation_and_hyphens_do_not_matter(
    pms: Practice, matcher: PatientMatcher, stored: tuple[str, str], asked: tuple[str, str]
) -> None:
    pat = pms.add(*stored, WirelessPhone="503.555.0101")
    outcome = matcher.match(ask(*asked))
    assert (outcome.kind, outcome.patient_id) == ("matched", pat)
    assert reasons(outcome, pat)[0] == "name_exact"


def test_the_preferred_name_the_practice_recorded_counts_as_the_name(
    pms: Practice, matcher: PatientMatcher
) -> None:
    pat = pms.add("Robert", "Quimby", Preferred="Bob", HmPhone="503-555-0101")
    outcome = matcher.match(ask("Bob", "Quimby"))
    assert (outcome.kind, outcome.patient_id) == ("matched", pat)
    assert reasons(outcome, pat) == ("name_exact", "preferred_name", "dob", "phone")
    assert outcome.candidates[0].display["name"] == 'Robert "Bob" Quimby'


def test_a_child_is_confirmed_by_the_guarantors_phone(
    pms: Practice, matcher: PatientMatcher
) -> None:
    parent = pms.add("Maren", "Thorsby", date(1931, 5, 2), PatStatus=1, WirelessPhone="5035550101")
    child = pms.add("Ola", "Thorsby", Guarantor=int(parent))
    outcome = matcher.match(ask("Ola", "Thorsby"))
    assert (outcome.kind, outcome.patient_id) == ("matched", child)
    assert reasons(outcome, child) == ("name_exact", "dob", "guarantor_phone")


def test_inactive_and_prospective_patients_are_matched(
    pms: Practice, matcher: PatientMatcher
) -> None:
    inactive = pms.add("Dana", "Kowalczyk", PatStatus=2, HmPhone="503-555-0101")
    prospective = pms.add("Ewa", "Kowalczyk", PatStatus=6, HmPhone="503-555-0101")
    outcome = matcher.match(ask("Dana", "Kowalczyk"))
    assert (outcome.kind, outcome.patient_id) == ("matched", inactive)
    assert "status_inactive" in reasons(outcome, inactive)
    assert matcher.match(ask("Ewa", "Kowalczyk")).patient_id == prospective


def test_one_confirmed_patient_wins_over_an_unconfirmed_namesake(
    pms: Practice, matcher: PatientMatcher
) -> None:
    pms.add("Dana", "Kowalczyk", HmPhone="971-555-0199")
    pat = pms.add("Dana", "Kowalczyk", HmPhone="503-555-0101")
    outcome = matcher.match(ask("Dana", "Kowalczyk"))
    assert (outcome.kind, outcome.patient_id) == ("matched", pat)
    assert outcome.candidates[0].patient_id == pat and len(outcome.candidates) == 2


# -- review -------------------------------------------------------------------------


def test_name_and_birth_date_without_phone_or_email_agreeing_is_unconfirmed(
    pms: Practice, matcher: PatientMatcher
) -> None:
    pat = pms.add("Dana", "Kowalczyk", HmPhone="971-555-0199", Email="dk@example.com")
    outcome = matcher.match(ask("Dana", "Kowalczyk", email="other@example.com"))
    assert (outcome.kind, outcome.reason_code, outcome.patient_id) == (
        "review",
        "unconfirmed_match",
        None,
    )
    assert [c.patient_id for c in outcome.candidates] == [pat]
    assert reasons(outcome, pat) == ("name_exact", "dob")


def test_twins_like_candidates_are_ambiguous(pms: Practice, matcher: PatientMatcher) -> None:
    """Two records with one name, birth date and family phone (twins named
    alike, or a duplicate record): never pick one."""
    one = pms.add("Alex", "Varga", HmPhone="(503) 555-0101")
    two = pms.add("Alex", "Varga", HmPhone="(503) 555-0101", Guarantor=int(one))
    outcome = matcher.match(ask("Alex", "Varga"))
    assert (outcome.kind, outcome.reason_code) == ("review", "ambiguous_patient")
    assert sorted(c.patient_id for c in outcome.candidates) == sorted([one, two])


def test_two_unconfirmed_namesakes_are_ambiguous(pms: Practice, matcher: PatientMatcher) -> None:
    pms.add("Alex", "Varga")
    pms.add("Alex", "Varga")
    assert matcher.match(ask("Alex", "Varga")).reason_code == "ambiguous_patient"


@pytest.mark.parametrize(
    ("stored", "asked", "reason"),
    [
        (("Elizabeth", "Quimby"), ("Liz", "Quimby"), "nickname"),
        (("Bill", "Quimby"), ("William", "Quimby"), "nickname"),
        (("Bill", "Quimby"), ("Will", "Quimby"), "nickname"),
        (("Jonathan", "Quimby"), ("Jonathon", "Quimby"), "typo"),
        (("Dana", "Kowalczyk"), ("Dana", "Kowalcyzk"), "typo"),
        (("Dana", "Kowalczyk"), ("Kowalczyk", "Dana"), "swapped_names"),
        (("Dana", "Kowalczyk-Brandt"), ("Dana", "Kowalczyk"), "hyphenated_surname"),
        (("Dana", "Kowalczyk"), ("Dana", "Brandt Kowalczyk"), "hyphenated_surname"),
        (("Rosa", "de la Cruz"), ("Rosa", "Cruz"), "surname_particle"),
        (("Mary Ann", "Quimby"), ("Mary", "Quimby"), "partial_first_name"),
    ],
)
def test_near_names_with_the_same_birth_date_go_to_the_front_desk(
    pms: Practice,
    matcher: PatientMatcher,
    stored: tuple[str, str],
    asked: tuple[str, str],
    reason: str,
) -> None:
    pat = pms.add(*stored, HmPhone="503-555-0101")
    outcome = matcher.match(ask(*asked))
    assert (outcome.kind, outcome.reason_code, outcome.patient_id) == (
        "review",
        "near_match",
        None,
    )
    assert reason in reasons(outcome, pat)


@pytest.mark.parametrize(
    "stored_dob",
    [date(1932, 7, 3), date(1933, 3, 7), date(1932, 3, 8), date(1923, 3, 7), date(1932, 3, 17)],
    ids=["day-month-swapped", "year-digit", "day-digit", "digits-transposed", "digit-added"],
)
def test_a_birth_date_typo_with_name_and_phone_agreeing_is_near(
    pms: Practice, matcher: PatientMatcher, stored_dob: date
) -> None:
    pat = pms.add("Dana", "Kowalczyk", stored_dob, HmPhone="503-555-0101")
    outcome = matcher.match(ask("Dana", "Kowalczyk", DOB))
    assert (outcome.kind, outcome.reason_code) == ("review", "near_match")
    assert reasons(outcome, pat) == ("name_exact", "dob_typo", "phone")


def test_an_unknown_birth_date_with_name_and_phone_agreeing_is_near(
    pms: Practice, matcher: PatientMatcher
) -> None:
    pat = pms.add("Pádraig", "Ó Súilleabháin", "0001-01-01", HmPhone="+1 503 555 0101")
    outcome = matcher.match(ask("Padraig", "O Suilleabhain"))
    assert (outcome.kind, outcome.reason_code) == ("review", "near_match")
    assert reasons(outcome, pat) == ("name_exact", "dob_missing", "phone")
    assert outcome.candidates[0].display["birth_date"] == "unknown"


@pytest.mark.parametrize(("status", "label"), [(1, "nonpatient"), (3, "archived"), (5, "deceased")])
def test_archived_nonpatient_and_deceased_records_are_never_matched_silently(
    pms: Practice, matcher: PatientMatcher, status: int, label: str
) -> None:
    pat = pms.add("Dana", "Kowalczyk", PatStatus=status, HmPhone="503-555-0101")
    outcome = matcher.match(ask("Dana", "Kowalczyk"))
    assert (outcome.kind, outcome.reason_code) == ("review", "near_match")
    assert f"status_{label}" in reasons(outcome, pat)
    assert outcome.candidates[0].status == label


def test_when_too_many_share_the_birth_date_uniqueness_cannot_be_shown(
    pms: Practice, matcher: PatientMatcher
) -> None:
    born = date(1931, 1, 1)
    pms.raw.execute("BEGIN")
    for i in range(BIRTHDATE_LIMIT + 1):
        pms.add(f"Filler{i}", "Placeholder", born)
    pms.raw.execute("COMMIT")
    pms.add("Dana", "Kowalczyk", born, HmPhone="503-555-0101")
    outcome = matcher.match(ask("Dana", "Kowalczyk", born))
    assert (outcome.kind, outcome.reason_code) == ("review", "ambiguous_patient")


# -- new ----------------------------------------------------------------------------


def test_nobody_close_means_a_new_patient(pms: Practice, matcher: PatientMatcher) -> None:
    outcome = matcher.match(ask("Zebedee", "Quarrington"))
    assert (outcome.kind, outcome.reason_code, outcome.candidates) == ("new", "no_candidate", ())


def test_a_deleted_patient_is_never_a_candidate(pms: Practice, matcher: PatientMatcher) -> None:
    pms.add("Dana", "Kowalczyk", PatStatus=4, HmPhone="503-555-0101")
    outcome = matcher.match(ask("Dana", "Kowalczyk"))
    assert (outcome.kind, outcome.reason_code, outcome.candidates) == ("new", "no_candidate", ())


@pytest.mark.parametrize(
    ("stored", "asked"),
    [
        (("Tom", "Quimby"), ("Tim", "Quimby")),  # short names: a different person, not a typo
        (("Dana", "Kowalczyk"), ("Dana", "Nowak")),
        (("Aoife", "Thorsby"), ("Ciara", "Thorsby")),  # a twin's sibling
    ],
)
def test_different_people_with_the_same_birth_date_are_not_close(
    pms: Practice, matcher: PatientMatcher, stored: tuple[str, str], asked: tuple[str, str]
) -> None:
    pms.add(*stored, HmPhone="503-555-0101")
    assert matcher.match(ask(*asked)).kind == "new"


def test_father_and_son_with_one_name_and_phone_are_different_people(
    pms: Practice, matcher: PatientMatcher
) -> None:
    pms.add("Dana", "Kowalczyk", date(1901, 5, 5), HmPhone="503-555-0101")
    outcome = matcher.match(ask("Dana", "Kowalczyk", DOB))
    assert outcome.kind == "new"


def test_a_birth_date_typo_without_phone_or_email_agreeing_is_not_close(
    pms: Practice, matcher: PatientMatcher
) -> None:
    pms.add("Dana", "Kowalczyk", date(1932, 7, 3), HmPhone="971-555-0199")
    assert matcher.match(ask("Dana", "Kowalczyk")).kind == "new"


# -- queries, privacy, types --------------------------------------------------------------


def test_every_lookup_is_indexed_and_bounded(conn: PmsConnection) -> None:
    details = ask("José", "García-López", email="jose@example.com")
    queries = candidate_queries(details, "US")
    assert [q.purpose for q in queries] == ["birthdate", "birthdate_variants", "contact", "name"]
    for query in queries:
        assert query.sql.endswith(f"LIMIT {query.limit + 1}")
        plan = conn.execute("EXPLAIN QUERY PLAN " + query.sql, query.params)
        details_ = [str(r["detail"]) for r in plan]
        assert not any(d.startswith("SCAN") for d in details_), (query.purpose, details_)
        assert any("USING" in d and "INDEX" in d for d in details_), (query.purpose, details_)


def test_the_matcher_reads_few_rows(pms: Practice, matcher: PatientMatcher) -> None:
    pms.add("Dana", "Kowalczyk", HmPhone="503-555-0101")
    outcome = matcher.match(ask("Dana", "Kowalczyk"))
    assert outcome.kind == "matched"
    assert outcome.rows_read < 30  # of 900+ patients


def test_no_personal_data_in_logs_messages_or_reprs(
    pms: Practice, matcher: PatientMatcher, caplog: pytest.LogCaptureFixture
) -> None:
    pms.add("Siân", "Kowalczyk", HmPhone="503-555-0101", Email="sian.k@example.com", Zip="97201")
    pms.add("Siân", "Kowalczyk", date(1932, 7, 3), HmPhone="503-555-0101")
    pms.add("Sian", "Kowalczyk-Brandt", HmPhone="503-555-0101")
    asked = [
        ask("Sian", "Kowalczyk", email="sian.k@example.com", postcode="97201"),
        ask("Sian", "Kowalczyk", phone="971-555-0123"),
        ask("Sian", "Kowalczyk", date(1932, 7, 4)),
        ask("Sianne", "Kowalczyk"),
        ask("Quentin", "Zyx"),
    ]
    caplog.set_level(logging.DEBUG)
    outcomes = [matcher.match(a) for a in asked]
    assert {o.reason_code for o in outcomes} >= {
        "matched",
        "unconfirmed_match",
        "near_match",
        "no_candidate",
    }
    logged = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    assert "patient match" in caplog.text
    text = logged + " ".join(repr(o) + o.message + o.reason_code for o in outcomes)
    for secret in (
        "Siân", "Sian", "sian", "Kowalczyk", "kowalczyk", "Quentin", "555-0101", "5550101",
        "example.com", "1932", "97201",
    ):  # fmt: skip
        assert secret not in text, secret


def test_candidates_show_masked_contacts() -> None:
    candidate = Candidate(
        "7", 0.9, ("name_exact",), "Dana Kowalczyk", DOB, "\u2022\u2022\u2022 0101", "d\u2022@x.org"
    )
    assert candidate.display == {
        "name": "Dana Kowalczyk",
        "birth_date": "1932-03-07",
        "phone": "\u2022\u2022\u2022 0101",
        "email": "d\u2022@x.org",
        "status": "patient",
    }
    assert "Dana" not in repr(candidate)


def test_outcomes_check_their_kind() -> None:
    with pytest.raises(ValueError, match="needs the patient id"):
        MatchOutcome("matched", None, (), "matched")
    with pytest.raises(ValueError, match="unknown match kind"):
        MatchOutcome("maybe", None, (), "x")  # type: ignore[arg-type]
    assert MatchOutcome("new", None, (), "new_by_front_desk").message == "new by front desk"


# -- the normal forms -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("O'Brien", "obrien"),
        ("O\u2019Brien", "O Brien"),
        ("García-López", "GARCIA LOPEZ"),
        ("Nguyễn\u2010Smith", "nguyen smith"),
        ("Ødegaard", "Odegaard"),
        ("Strauß", "STRAUSS"),
        ("  Mary   Ann ", "Mary-Ann"),
        ("St. John", "Saint John"),
        ("Łukasz", "Lukasz"),
    ],
)
def test_name_keys_ignore_case_accents_and_punctuation(a: str, b: str) -> None:
    assert norm.name_key(a) == norm.name_key(b) != ""


def test_surname_cores_drop_particles_and_suffixes() -> None:
    assert norm.surname_core("de la Cruz") == norm.surname_core("Cruz") == "cruz"
    assert norm.surname_core("van der Berg") == "berg"
    assert norm.surname_core("Smith Jr.") == "smith"
    assert norm.surname_core("De La") == "dela"  # nothing else left: keep the words


def test_typos_are_single_slips_and_scale_with_length() -> None:
    assert norm.is_typo("smith", "smyth")
    assert norm.is_typo("jonathan", "jonahtan")  # transposition
    assert norm.is_typo("montgomery", "montgomry")
    assert norm.is_typo("kowalczyk", "kowalcyzk")
    assert not norm.is_typo("tom", "tim")
    assert not norm.is_typo("smith", "smithers")
    assert not norm.is_typo("smith", "smith")


def test_phones_parse_as_typed_and_agree_across_formats() -> None:
    full = norm.parse_phone("+1 503 555 0101", "US")
    assert full is not None and full.e164 == PHONE and not full.local_only
    for typed in ("(503) 555-0101 (cell)", "Cell: 503.555.0101", "503-555-0101 x12"):
        other = norm.parse_phone(typed, "US")
        assert other is not None and norm.phones_agree(full, other) == "full"
    local = norm.parse_phone("555-0101", "US")
    assert local is not None and local.local_only
    assert norm.phones_agree(full, local) == "local"
    assert norm.normalize_phone("555-0101", "US") is None
    assert norm.normalize_phone("020 7946 0018", "GB") == "+442079460018"
    for junk in ("", "none", "12", "n/a", "call mum"):
        assert norm.parse_phone(junk, "US") is None
    assert repr(full) == "Phone(<hidden>)"
    forms = norm.phone_search_forms(full, "US")
    for stored in (
        "(503)555-0101",
        "(503) 555-0101",
        "503.555.0101",
        "+1 503 555 0101",
        "555-0101",
    ):
        assert stored in forms


def test_emails_fold_case_and_keep_provider_tricks() -> None:
    assert norm.normalize_email(" <mailto:Dana.K@Example.COM> ") == "dana.k@example.com"
    assert norm.normalize_email("not an address") is None
    assert norm.email_set("a@x.org; B@Y.org ,") == {"a@x.org", "b@y.org"}
    assert norm.normalize_email("d.k+kids@gmail.com") != norm.normalize_email("dk@gmail.com")


def test_birth_date_typo_variants() -> None:
    variants = norm.dob_typo_variants(date(1985, 11, 3))
    assert date(1985, 3, 11) in variants  # day and month swapped
    assert date(1958, 11, 3) in variants  # digits transposed
    assert date(1985, 11, 8) in variants  # one digit off
    assert date(1985, 11, 3) not in variants
    assert date(1985, 12, 4) not in variants  # two slips
    assert norm.birth_date("0001-01-01") is None
    assert norm.birth_date(date(1, 1, 1)) is None
    assert norm.birth_date("1985-11-03") == date(1985, 11, 3)


def test_nicknames_work_both_ways_and_the_table_is_substantial() -> None:
    key = norm.name_key
    assert group_count() >= 200
    for a, b in [("Bob", "Robert"), ("Liz", "Elizabeth"), ("Pepe", "José"), ("Bill", "Will")]:
        assert are_nicknames(key(a), key(b)) and are_nicknames(key(b), key(a))
    assert not are_nicknames(key("Samuel"), key("Samantha"))  # both "Sam", not each other
    assert not are_nicknames(key("Robert"), key("Robert"))
