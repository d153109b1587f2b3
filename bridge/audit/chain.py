"""Appending to the hash chain, and the hash itself.

Each entry's ``hash`` is ``sha256(prev_hash + canonical)`` in hex, where
``canonical`` is the JSON of ``{seq, recorded_at, kind, actor, subject,
data}`` with sorted keys, no spaces, UTF-8 (:func:`canonical_json`), and
``recorded_at`` is ISO 8601 in UTC with microseconds. The first entry's
``prev_hash`` is :data:`GENESIS_HASH` (64 zeros). ``data`` is stored as its
canonical JSON text.

The head anchor: ``meta`` key :data:`HEAD_KEY` holds ``"<seq>:<hash>"`` of
the newest entry, written in the same transaction as the entry. The chain
alone cannot show that its newest entries were cut off; the anchor can.
:func:`append` chains from the anchor, not from whatever row is last, so
cutting the tail and appending again still leaves a visible gap.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.audit.guard import AuditDataError, checked_data, checked_subject
from bridge.state.models import AuditEntry, MetaValue

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
HEAD_KEY = "audit.head"
MAX_ACTOR = 100
_KIND = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*")
_ANCHOR = re.compile(r"([1-9][0-9]*):([0-9a-f]{64})")


class Head(NamedTuple):
    seq: int
    hash: str


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 characters kept, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def timestamp(moment: datetime) -> str:
    """``recorded_at`` as hashed: UTC, ISO 8601, microseconds."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def entry_hash(
    prev_hash: str,
    *,
    seq: int,
    recorded_at: datetime,
    kind: str,
    actor: str,
    subject: str,
    data: Any,
) -> str:
    """The hash of one entry given its predecessor's hash (module docstring)."""
    body = canonical_json(
        {
            "seq": seq,
            "recorded_at": timestamp(recorded_at),
            "kind": kind,
            "actor": actor,
            "subject": subject,
            "data": data,
        }
    )
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def parse_anchor(value: str | None) -> Head | None:
    """The head anchor's ``seq:hash``, or ``None`` if absent or malformed."""
    match = _ANCHOR.fullmatch(value or "")
    return Head(int(match.group(1)), match.group(2)) if match else None


def read_anchor(session: Session) -> tuple[Head | None, bool]:
    """(anchor, present): ``present`` is True when the meta row exists at all."""
    row = session.get(MetaValue, HEAD_KEY)
    return (parse_anchor(row.value), True) if row is not None else (None, False)


def _checked_kind(kind: str) -> str:
    if not isinstance(kind, str) or len(kind) > 60 or not _KIND.fullmatch(kind):
        raise AuditDataError(
            "audit kind must be lower-case dotted words such as 'pms.hold_written' "
            "(at most 60 characters)"
        )
    return kind


def _checked_actor(actor: str) -> str:
    """Who acted (``bridge``, ``frontdesk:<operator>``): control characters
    replaced, cut to the column's length. Staff names may appear here;
    patients' never do (the pipeline passes only its own and operators' names)."""
    if not isinstance(actor, str) or not actor.strip():
        raise AuditDataError("audit actor must be a non-empty string")
    cleaned = "".join("?" if unicodedata.category(ch)[0] == "C" else ch for ch in actor.strip())
    return cleaned[:MAX_ACTOR]


def _chain_from(session: Session) -> Head:
    """Where the next entry links: the anchor, unless there is none."""
    anchor, present = read_anchor(session)
    tail_row = session.execute(
        select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
    ).first()
    tail = Head(int(tail_row[0]), str(tail_row[1])) if tail_row is not None else None
    if anchor is None:
        if present or tail is not None:
            log.warning(
                "audit head anchor is %s; chaining from the newest entry "
                "('bridge audit verify' reports it)",
                "malformed" if present else "missing",
            )
        return tail or Head(0, GENESIS_HASH)
    if tail != anchor:
        log.warning(
            "audit trail's newest entry does not match its head anchor; chaining from the "
            "anchor so the difference stays visible ('bridge audit verify' reports it)"
        )
        if tail is not None and tail.seq > anchor.seq:
            return Head(tail.seq, anchor.hash)
    return anchor


def append(
    session: Session,
    kind: str,
    *,
    actor: str,
    subject: str,
    data: Mapping[str, Any],
    recorded_at: datetime | None = None,
) -> AuditEntry:
    """Append one entry inside the caller's write transaction and return it.

    Call it within :meth:`bridge.state.StateStore.write`, in the same
    transaction as the change the entry describes: both commit or neither
    does. The head anchor is updated in that transaction too. Entries of
    one transaction chain in call order. ``kind`` is dotted lower case
    (``pms.hold_written``, ``decision.conflict``); ``subject`` a reference
    (``inbox:<id>``); ``data`` ids, codes and slot times only
    (:mod:`bridge.audit.guard`), else :class:`AuditDataError`.
    """
    kind = _checked_kind(kind)
    actor = _checked_actor(actor)
    subject = checked_subject(subject)
    clean = checked_data(data)
    when = (recorded_at or datetime.now(UTC)).astimezone(UTC)
    head = _chain_from(session)
    seq = head.seq + 1
    digest = entry_hash(
        head.hash, seq=seq, recorded_at=when, kind=kind, actor=actor, subject=subject, data=clean
    )
    entry = AuditEntry(
        seq=seq,
        recorded_at=when,
        kind=kind,
        actor=actor,
        subject=subject,
        data=canonical_json(clean),
        prev_hash=head.hash,
        hash=digest,
    )
    session.add(entry)
    anchor = session.get(MetaValue, HEAD_KEY)
    value = f"{seq}:{digest}"
    if anchor is None:
        session.add(MetaValue(key=HEAD_KEY, value=value))
    else:
        anchor.value = value
    session.flush()
    return entry
