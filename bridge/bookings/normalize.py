"""Normal forms of names, phones, emails and birth dates, for patient matching.

Everything here is pure (no I/O) and total: bad or empty input gives an
empty key or ``None``, never an exception, because PMS rows hold whatever
a front desk typed. None of these functions log; their inputs are personal
data.

Names (:func:`name_tokens`, :func:`name_key`)
    Case is folded (``str.casefold``, so "ß" is "ss"), accents are removed
    (Unicode NFKD, combining marks dropped, plus the letters NFKD does not
    split: Ø, Æ, Œ, Ł, Đ, Þ, dotless ı), apostrophes and periods are dropped
    ("O'Brien" is "obrien", "St." is "st"), every hyphen and dash variant
    and every run of spaces separates words ("García-López" is the words
    "garcia", "lopez"). :func:`name_key` joins the words, so spacing and
    hyphenation never make two spellings differ: "Nguyễn-Smith",
    "NGUYEN SMITH" and "nguyensmith" share a key.

Surnames (:func:`surname_core`)
    The core drops particles (de, la, van, von, Ó, ...) and generational
    suffixes (Jr, Sr, II, III), so "de la Cruz" and "Cruz" share a core but
    not a key: the matcher treats that as a near match, never as the same
    name.

Typos (:func:`is_typo`)
    Two keys are a typo apart when their optimal-string-alignment distance
    (rapidfuzz ``OSA``: insertions, deletions, substitutions and
    transpositions of adjacent letters) is at most 1 for keys of up to 8
    letters and at most 2 for longer ones. The classic finding (Damerau
    1964, confirmed since on name data) is that over 80 % of misspellings
    are one such edit; a long name gets a second edit because it has more
    letters to slip on. Keys shorter than 4 letters never count as typos:
    "Ann"/"Amy" and "Tom"/"Tim" are different people, not slips. A
    ratio-style threshold (``fuzz.ratio``) was rejected for the decision
    because it punishes one slip in a short name far more than in a long
    one (one substitution in "Smith" scores 80, in "Montgomery" 90); it is
    used only for the display score (:func:`name_similarity`).

Phones (:func:`parse_phone`, :func:`phones_agree`, :func:`phone_search_forms`)
    Parsed with ``phonenumbers`` in the practice's country. Text after the
    number ("ext 12", "(cell)", "# work") is cut first, because
    ``phonenumbers`` reads letters as keypad digits. A number typed without
    its area code ("555-0145", common in Open Dental's ``HmPhone``) is kept
    as *local only* and agrees with a full number that ends with it.

Emails (:func:`normalize_email`, :func:`email_set`)
    Trimmed, ``mailto:`` and angle brackets removed, case folded (no
    provider treats case as significant). Provider rules such as Gmail's
    ignored dots and ``+tags`` are deliberately *not* applied: they hold
    for a few providers only, and families often share one mailbox with
    tags per person, so folding them would make two people's addresses
    agree.

Birth dates (:func:`birth_date`, :func:`dob_typo_variants`)
    Open Dental's ``0001-01-01`` (and anything before 1880) means "not
    known" and becomes ``None``. A typo of a date is the day and month
    swapped, one digit of ``YYYYMMDD`` changed, or two adjacent digits
    transposed.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

import phonenumbers
from rapidfuzz import fuzz
from rapidfuzz.distance import OSA

# Letters that NFKD does not decompose into a base letter and a mark.
_LETTERS = str.maketrans(
    {
        "ø": "o", "Ø": "o", "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe",
        "ł": "l", "Ł": "l", "đ": "d", "Đ": "d", "ð": "d", "Ð": "d",
        "þ": "th", "Þ": "th", "ı": "i", "ħ": "h", "Ħ": "h", "ŧ": "t", "Ŧ": "t",
    }
)  # fmt: skip
_APOSTROPHES = "'\u2019\u2018\u02bc\u02bb`\u00b4\u2032"
_HYPHENS = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d\u00ad_/"
_DROPPED = str.maketrans({ch: None for ch in _APOSTROPHES + "."})
_SEPARATORS = str.maketrans({ch: " " for ch in _HYPHENS + ",;:&+()"})
_WORD_EQUIVALENTS = {"st": "saint", "ste": "sainte"}

SURNAME_PARTICLES = frozenset(
    {
        "a", "al", "ap", "bat", "ben", "bin", "d", "da", "dal", "das", "de", "dei", "del",
        "della", "dela", "den", "der", "des", "di", "do", "dos", "du", "e", "el", "ibn",
        "l", "la", "las", "le", "les", "lo", "los", "mac", "ni", "o", "saint", "sainte",
        "te", "ten", "ter", "ui", "van", "vande", "vander", "von", "vom", "y", "zu", "zum",
        "zur",
    }
)  # fmt: skip
"""Words that may come and go in a surname as typed ("de la Cruz" / "Cruz")."""
NAME_SUFFIXES = frozenset({"jr", "jnr", "junior", "sr", "snr", "senior", "ii", "iii", "iv"})

TYPO_MIN_LENGTH = 4
TYPO_LONG_NAME = 9  # keys this long or longer may have two edits
OLDEST_KNOWN_BIRTH_YEAR = 1880


# -- names ----------------------------------------------------------------------


def fold(text: str) -> str:
    """Case-folded text without accents (punctuation and spacing kept)."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_LETTERS))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.translate(_LETTERS).casefold()


def name_tokens(text: str | None) -> tuple[str, ...]:
    """The words of a name, folded: letters only, in order (may be empty)."""
    if not text:
        return ()
    cleaned = fold(text).translate(_DROPPED).translate(_SEPARATORS)
    words = ("".join(ch for ch in word if ch.isalpha()) for word in cleaned.split())
    return tuple(_WORD_EQUIVALENTS.get(w, w) for w in words if w)


def name_key(text: str | None) -> str:
    """The comparison key of a name: its folded words joined ("" when none)."""
    return "".join(name_tokens(text))


def surname_core(text: str | None) -> str:
    """A surname's key without particles and generational suffixes.

    The words are kept when dropping would leave nothing ("De La", "Van").
    """
    words = name_tokens(text)
    kept = [w for w in words if w not in SURNAME_PARTICLES and w not in NAME_SUFFIXES]
    return "".join(kept) if kept else "".join(words)


def is_typo(a: str, b: str) -> bool:
    """Whether two different name keys are one slip apart (module docstring)."""
    if not a or not b or a == b or min(len(a), len(b)) < TYPO_MIN_LENGTH:
        return False
    allowed = 2 if max(len(a), len(b)) >= TYPO_LONG_NAME else 1
    return OSA.distance(a, b, score_cutoff=allowed) <= allowed


def name_similarity(a: str, b: str) -> float:
    """0..1 similarity of two name keys, for ordering candidates only."""
    if not a or not b:
        return 0.0
    return float(fuzz.ratio(a, b)) / 100.0


# -- phones -----------------------------------------------------------------------

_WORDS_IN_BRACKETS = re.compile(r"\([^)]*[^\W\d_][^)]*\)")
_NUMBER_START = re.compile(r"[+(\d]")
_AFTER_NUMBER = re.compile(r"[^\W\d_]|[#,;]")


@dataclass(frozen=True)
class Phone:
    """A parsed phone number (personal data: never log it).

    ``national`` is the national significant number's digits; ``local_only``
    says the text had no area code, so ``national`` is the subscriber part.
    """

    country_code: int
    national: str
    local_only: bool

    @property
    def e164(self) -> str:
        return f"+{self.country_code}{self.national}"

    def __repr__(self) -> str:
        return "Phone(<hidden>)"


def parse_phone(raw: str | None, country: str) -> Phone | None:
    """The number in ``raw`` read in ``country``, or ``None`` when there is none."""
    if not raw:
        return None
    text = _WORDS_IN_BRACKETS.sub(" ", raw)
    start = _NUMBER_START.search(text)
    if start is None:
        return None
    text = text[start.start() :]
    cut = _AFTER_NUMBER.search(text)
    if cut is not None:
        text = text[: cut.start()]
    if sum(ch.isdigit() for ch in text) < 5:
        return None
    try:
        number = phonenumbers.parse(text, country.upper())
    except phonenumbers.NumberParseException:
        return None
    reason = phonenumbers.is_possible_number_with_reason(number)
    if number.country_code is None or number.national_number is None:
        return None
    if reason == phonenumbers.ValidationResult.IS_POSSIBLE:
        local_only = False
    elif reason == phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY:
        local_only = True
    else:
        return None
    national = phonenumbers.national_significant_number(number)
    return Phone(int(number.country_code), national, local_only)


def normalize_phone(raw: str | None, country: str) -> str | None:
    """E.164 form of a full number (``None`` for no number or a local-only one)."""
    phone = parse_phone(raw, country)
    return None if phone is None or phone.local_only else phone.e164


def phones_agree(a: Phone, b: Phone) -> Literal["full", "local"] | None:
    """``full`` when both name the same number, ``local`` when one lacks its
    area code and the other ends with it, ``None`` otherwise."""
    if a.country_code != b.country_code:
        return None
    if not a.local_only and not b.local_only:
        return "full" if a.national == b.national else None
    if a.local_only and b.local_only:
        return "local" if a.national == b.national else None
    short, full = (a, b) if a.local_only else (b, a)
    if len(short.national) >= 6 and full.national.endswith(short.national):
        return "local"
    return None


def phone_search_forms(phone: Phone, country: str) -> tuple[str, ...]:
    """The ways a front desk may have typed this number, for an indexed lookup.

    Open Dental stores phones as typed ("(503) 555-0101", "503.555.0101",
    "+1 503 555 0101", "555-0101"), so an equality lookup on its indexed
    phone columns needs the typed forms. These are the number's digit
    groups (as the country writes them nationally) joined by nothing, a
    space, a hyphen or a period, with and without parentheses round the
    area code, with and without the international prefix, plus the
    subscriber part alone. Unusual forms are missed; the lookup by birth
    date still finds those patients.
    """
    if phone.local_only:
        return (phone.national,)
    number = phonenumbers.parse(phone.e164, country.upper())
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    groups = re.findall(r"\d+", national)
    intl_groups = re.findall(
        r"\d+", phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    )[1:]
    cc = str(phone.country_code)
    forms: set[str] = {phone.e164, phone.national, national}
    for sep in ("", " ", "-", "."):
        forms.add(sep.join(groups))
        forms.add(f"+{cc}{sep or ' '}" + sep.join(intl_groups))
        forms.add(f"{cc}{sep or ' '}" + sep.join(intl_groups))
        if len(groups) >= 2:
            rest = sep.join(groups[1:])
            forms.add(f"({groups[0]}){rest}")
            forms.add(f"({groups[0]}) {rest}")
            forms.add(f"{cc} ({groups[0]}) {rest}")
        if len(groups) >= 3:
            forms.add(sep.join(groups[1:]))
    forms.add(f"+{cc}" + "".join(intl_groups))
    return tuple(sorted(f for f in forms if 5 <= len(f) <= 30))


def mask_phone(phone: Phone) -> str:
    """Only the last four digits, for the front desk's candidate list."""
    return "\u2022\u2022\u2022 " + phone.national[-4:]


# -- emails -----------------------------------------------------------------------

_EMAIL_SPLIT = re.compile(r"[,;\s]+")


def normalize_email(raw: str | None) -> str | None:
    """The address in comparable form, or ``None`` when it is not an address."""
    if not raw:
        return None
    text = unicodedata.normalize("NFC", raw).strip().strip("<>").strip()
    if text.casefold().startswith("mailto:"):
        text = text[7:]
    local, at, domain = text.rpartition("@")
    if not at or not local or "." not in domain or any(ch.isspace() for ch in text):
        return None
    return f"{local}@{domain.rstrip('.')}".casefold()


def email_set(raw: str | None) -> frozenset[str]:
    """Every address in a PMS email field (some hold several, comma separated)."""
    if not raw:
        return frozenset()
    found = (normalize_email(part) for part in _EMAIL_SPLIT.split(raw))
    return frozenset(a for a in found if a)


def mask_email(address: str) -> str:
    """First letter of the mailbox and the domain: ``j\u2022\u2022\u2022@example.com``."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}\u2022\u2022\u2022@{domain}"


# -- birth dates --------------------------------------------------------------------


def birth_date(value: object) -> date | None:
    """A PMS birth date, or ``None`` for "not known" (``0001-01-01``, NULL, junk)."""
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip()[:10])
        except ValueError:
            return None
    if not isinstance(value, date) or value.year < OLDEST_KNOWN_BIRTH_YEAR:
        return None
    return value


def _from_digits(digits: str) -> date | None:
    try:
        found = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None
    return found if found.year >= OLDEST_KNOWN_BIRTH_YEAR else None


def dob_typo_variants(day: date) -> frozenset[date]:
    """Every real date one typing slip away from ``day`` (``day`` excluded).

    Slips: day and month swapped; one digit of ``YYYYMMDD`` changed; two
    adjacent digits transposed. At most 1 + 72 + 7 candidates, usually ~40.
    """
    digits = day.strftime("%Y%m%d")
    found: set[date] = set()
    if day.day <= 12 and day.day != day.month:
        found.add(date(day.year, day.day, day.month))
    for i, old in enumerate(digits):
        for new in "0123456789":
            if new != old and (d := _from_digits(digits[:i] + new + digits[i + 1 :])):
                found.add(d)
    for i in range(len(digits) - 1):
        swapped = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :]
        if swapped != digits and (d := _from_digits(swapped)):
            found.add(d)
    found.discard(day)
    return frozenset(found)
