"""Values as Open Dental stores them, shared by every writer, and message scrubbing.

* Times: the practice's local wall-clock time, ``yyyy-MM-dd HH:mm:ss``
  (Open Dental stores naive local times; its API uses this format).
* Phones: Open Dental keeps phone numbers "including any punctuation" and
  its own screens write North American numbers as ``(415)555-0123``; an
  E.164 number from the cloud is written that way when it is a +1 number,
  and as E.164 otherwise.
* Postcodes: Open Dental's API accepts ``Zip`` only as ``12345``,
  ``12345-1234``, ``123456789`` (US) or ``A0A 0A0`` (Canada).
* :func:`scrub` takes a message from the PMS (which may echo what it was
  sent) and masks every value the bridge sent, plus anything shaped like
  an e-mail address or a phone number, so the message can be logged and
  reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from bridge.pms.writers.base import check_aware

_NANP = re.compile(r"\+1([2-9][0-9]{2})([2-9][0-9]{2})([0-9]{4})\Z")
_US_ZIP = re.compile(r"[0-9]{5}(?:-[0-9]{4})?\Z|[0-9]{9}\Z")
_CA_POSTAL = re.compile(r"([A-Za-z][0-9][A-Za-z]) ?([0-9][A-Za-z][0-9])\Z")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_LONG_DIGITS = re.compile(r"\+?[0-9][0-9()\-. ]{5,}[0-9]")
MESSAGE_MAX = 300


def wall_clock(start: datetime, tz: ZoneInfo) -> datetime:
    """The practice's local wall-clock time of an aware datetime (naive, seconds kept)."""
    return check_aware(start, "start").astimezone(tz).replace(tzinfo=None, microsecond=0)


def od_datetime(value: datetime) -> str:
    """``yyyy-MM-dd HH:mm:ss`` (isoformat: strftime drops year zeros on some platforms)."""
    return value.replace(tzinfo=None, microsecond=0).isoformat(sep=" ")


def od_date(value: date) -> str:
    return value.isoformat()


def phone_for_pms(e164: str) -> str:
    """``+14155550123`` -> ``(415)555-0123``; other countries stay E.164."""
    match = _NANP.match(e164)
    if match:
        area, exchange, line = match.groups()
        return f"({area}){exchange}-{line}"
    return e164


def zip_for_api(postcode: str) -> str | None:
    """The postcode in a format Open Dental's API accepts, or None if it has none."""
    text = postcode.strip()
    if _US_ZIP.match(text):
        return text
    match = _CA_POSTAL.match(text)
    if match:
        return f"{match.group(1)} {match.group(2)}".upper()
    return None


def scrub(message: str, sent: Iterable[object] = ()) -> str:
    """``message`` with every sent value (and e-mail/phone shapes) masked, one line, capped."""
    text = " ".join(message.split())
    values = sorted(
        {str(v).strip() for v in sent if isinstance(v, str | date) and len(str(v).strip()) >= 2},
        key=len,
        reverse=True,
    )
    for value in values:
        text = re.sub(re.escape(value), "***", text, flags=re.IGNORECASE)
    text = _EMAIL.sub("***", text)
    text = _LONG_DIGITS.sub("***", text)
    if len(text) > MESSAGE_MAX:
        text = text[: MESSAGE_MAX - 3] + "..."
    return text
