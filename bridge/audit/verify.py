"""Checking the audit trail: every edit, removal, insertion and reordering shows.

:func:`verify` reads the trail in ``seq`` order, one pass, in bounded
memory, and names each problem with the ``seq`` where it shows:

* **edited**: an entry's hash does not match its content (kind, actor,
  subject, data, time or seq changed), or its ``data`` is not the
  canonical JSON that was hashed; or the newest entry differs from the
  head anchor.
* **reordered**: an entry is intact but stands at another ``seq`` than it
  was written at (two entries swapped, or renumbered to hide a removal or
  an insertion). The written ``seq`` is found by re-hashing the entry with
  the ``seq`` values near its place (up to :data:`RECOVERY_WINDOW` away).
  Runs of entries shifted alike are reported once.
* **removed**: ``seq`` values are missing (an entry deleted from the
  middle), or the head anchor names a newer entry than the table holds
  (the newest entries deleted), or SQLite's ``AUTOINCREMENT`` counter for
  the table shows a higher ``seq`` once existed.
* **inserted**: an entry that the next entry's link skips (it links to
  the entry before), or entries after the head anchor.
* **broken_link**: an entry's ``prev_hash`` is not its predecessor's hash
  and nothing above explains it: typically the predecessor was edited and
  its hash recomputed without fixing this one.
* **anchor**: the head anchor is missing or malformed, so a cut-off tail
  cannot be ruled out.

Limits. The hash is keyless: someone who can write the state file and
rewrites *every* entry from the first changed one onwards, recomputing
each hash, and sets the head anchor (and SQLite's counter) to match,
leaves a chain that verifies. The chain proves the trail was not changed
piecemeal, not that it was never replaced. Closing that needs a copy of
the head outside this machine (for example sent with each heartbeat to
the cloud) or a key the attacker does not hold.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple

from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bridge.audit.chain import (
    GENESIS_HASH,
    HEAD_KEY,
    Head,
    canonical_json,
    entry_hash,
    parse_anchor,
)
from bridge.state import StateStore
from bridge.state.models import AuditEntry, MetaValue

ProblemKind = Literal["edited", "reordered", "removed", "inserted", "broken_link", "anchor"]
RECOVERY_WINDOW = 16
MAX_RECOVERIES = 5_000
MAX_PROBLEMS = 1_000
_READ_BATCH = 2_000


@dataclass(frozen=True)
class Problem:
    """One finding: the ``seq`` where it shows, its kind and an explanation
    (ids and seq numbers only)."""

    seq: int
    kind: ProblemKind
    message: str

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.kind.replace('_', ' ')}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": self.kind, "message": self.message}


@dataclass(frozen=True)
class AuditReport:
    """The result of :func:`verify`. ``ok`` when there are no problems."""

    entries: int
    problems: tuple[Problem, ...]
    head: Head | None
    last_seq: int | None
    problems_not_listed: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "last_seq": self.last_seq,
            "head": f"{self.head.seq}:{self.head.hash}" if self.head else None,
            "problems": [p.to_json() for p in self.problems],
            "problems_not_listed": self.problems_not_listed,
        }


class _Stored(NamedTuple):
    """One row as read (the columns the hash covers, and the links)."""

    seq: int
    recorded_at: datetime
    kind: str
    actor: str
    subject: str
    data: str
    prev_hash: str
    hash: str


@dataclass
class _Seen:
    """One entry as the checker remembers it (its successor needs it)."""

    seq: int
    hash: str
    written: int  # the seq it was written at (== seq unless reordered)
    intact: bool  # content matches the hash at ``written``
    flagged: bool  # already reported (edited or reordered)


@dataclass
class _Checker:
    problems: list[Problem] = field(default_factory=list)
    dropped: int = 0
    missing: list[tuple[int, int]] = field(default_factory=list)  # written seq ranges
    recovered: set[int] = field(default_factory=set)
    recoveries: int = 0
    highest_written: int = 0
    shift: tuple[int, int, int] | None = None  # (first stored seq, last stored seq, offset)
    count: int = 0

    def report(self, seq: int, kind: ProblemKind, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(seq, kind, message))
        else:
            self.dropped += 1

    # -- one entry -------------------------------------------------------------

    def written_seq(self, row: _Stored) -> tuple[int | None, str]:
        """The seq this entry's hash was computed with, or None; and why not."""
        try:
            data = json.loads(row.data)
        except ValueError:
            return None, "its data is not valid JSON"
        if canonical_json(data) != row.data:
            return None, "its data text was rewritten (not the form that was hashed)"

        def hash_at(seq: int) -> str:
            return entry_hash(
                row.prev_hash,
                seq=seq,
                recorded_at=row.recorded_at,
                kind=row.kind,
                actor=row.actor,
                subject=row.subject,
                data=data,
            )

        if hash_at(row.seq) == row.hash:
            return row.seq, ""
        if self.recoveries < MAX_RECOVERIES:
            self.recoveries += 1
            for distance in range(1, RECOVERY_WINDOW + 1):
                for seq in (row.seq - distance, row.seq + distance):
                    if seq >= 1 and hash_at(seq) == row.hash:
                        return seq, ""
        return None, "its content does not match its hash (kind, actor, subject, data or time)"

    def check(self, row: _Stored, prev: _Seen | None, before: _Seen | None) -> _Seen:
        self.count += 1
        written, why = self.written_seq(row)
        seen = _Seen(row.seq, row.hash, written or row.seq, written is not None, False)
        if written is None:
            self._end_shift()
            self.report(row.seq, "edited", why)
            seen.flagged = True
        elif written != row.seq:
            self._note_shift(row.seq, written)
            self.recovered.add(written)
            seen.flagged = True
        else:
            self._end_shift()
        if seen.written > self.highest_written + 1:
            self.missing.append((self.highest_written + 1, seen.written - 1))
        self.highest_written = max(self.highest_written, seen.written)
        self._link(row, seen, prev, before)
        return seen

    def _link(self, row: _Stored, seen: _Seen, prev: _Seen | None, before: _Seen | None) -> None:
        expected = prev.hash if prev is not None else GENESIS_HASH
        if row.prev_hash == expected or not seen.intact:
            return
        skipped_to = before.hash if before is not None else GENESIS_HASH
        if prev is not None and not prev.flagged and row.prev_hash == skipped_to:
            target = f"seq {before.seq}" if before is not None else "the start"
            self.report(
                prev.seq,
                "inserted",
                f"not part of the chain: seq {row.seq} links past it to {target}",
            )
            prev.flagged = True
            return
        gap = (prev is None and seen.written > 1) or (
            prev is not None and seen.written > prev.written + 1
        )
        if gap or seen.flagged or (prev is not None and prev.flagged):
            return  # explained by a removal, an edit or a reordering reported elsewhere
        if prev is None:
            self.report(row.seq, "broken_link", "the first entry does not start the chain")
            return
        self.report(
            row.seq,
            "broken_link",
            f"it does not link to seq {prev.seq}: seq {prev.seq} was changed and its hash "
            "recomputed (or this entry's link was changed)",
        )

    # -- reordering runs ---------------------------------------------------------

    def _note_shift(self, stored: int, written: int) -> None:
        offset = stored - written
        if self.shift is not None and self.shift[2] == offset and self.shift[1] == stored - 1:
            self.shift = (self.shift[0], stored, offset)
            return
        self._end_shift()
        self.shift = (stored, stored, offset)

    def _end_shift(self) -> None:
        if self.shift is None:
            return
        first, last, offset = self.shift
        self.shift = None
        if first == last:
            message = f"written as seq {first - offset}, now stored as seq {first}"
        else:
            message = (
                f"entries written as seq {first - offset}-{last - offset} are stored as "
                f"seq {first}-{last} (moved by {offset:+d})"
            )
        self.report(first, "reordered", message)

    # -- after the last entry -----------------------------------------------------

    def finish(
        self, last: _Seen | None, anchor: Head | None, anchor_present: bool, counter: int | None
    ) -> None:
        self._end_shift()
        for first, end in self.missing:
            gone = [s for s in range(first, end + 1) if s not in self.recovered]
            for start, stop in _runs(gone):
                self.report(start, "removed", f"{_span(start, stop)} missing from the chain")
        last_seq = last.seq if last is not None else 0
        if anchor is None:
            if anchor_present:
                self.report(
                    last_seq,
                    "anchor",
                    f"the head anchor (meta {HEAD_KEY}) is malformed; "
                    "removal of the newest entries cannot be ruled out",
                )
            elif last is not None:
                self.report(
                    last_seq,
                    "anchor",
                    f"the head anchor (meta {HEAD_KEY}) is missing; "
                    "removal of the newest entries cannot be ruled out",
                )
        elif anchor.seq > last_seq:
            self.report(
                last_seq + 1,
                "removed",
                f"the newest entries ({_span(last_seq + 1, anchor.seq)}) are missing "
                f"(the head anchor names seq {anchor.seq})",
            )
        elif anchor.seq < last_seq:
            self.report(
                anchor.seq + 1,
                "inserted",
                f"{_span(anchor.seq + 1, last_seq)} after the head anchor (seq {anchor.seq}) "
                "were not appended by the bridge",
            )
        elif last is not None and anchor.hash != last.hash:
            self.report(last_seq, "edited", "the newest entry does not match the head anchor")
        newest_known = max(last_seq, anchor.seq if anchor else 0)
        if counter is not None and counter > newest_known:
            self.report(
                newest_known + 1,
                "removed",
                f"SQLite's counter for the table shows entries up to seq {counter} existed",
            )


def _span(first: int, last: int) -> str:
    return f"seq {first}" if first == last else f"seq {first}-{last}"


def _runs(values: list[int]) -> Iterator[tuple[int, int]]:
    start = prev = None
    for value in values:
        if start is None or prev is None:
            start = prev = value
        elif value == prev + 1:
            prev = value
        else:
            yield start, prev
            start = prev = value
    if start is not None and prev is not None:
        yield start, prev


def _counter(session: Session) -> int | None:
    try:
        value = session.execute(
            text("SELECT seq FROM sqlite_sequence WHERE name = 'audit_entry'")
        ).scalar()
    except SQLAlchemyError:
        return None
    return int(value) if value is not None else None


def _anchor_text(session: Session) -> str | None:
    value = session.execute(select(MetaValue.value).where(MetaValue.key == HEAD_KEY)).scalar()
    return None if value is None else str(value)


def verify(store: StateStore) -> AuditReport:
    """Check the whole trail (module docstring).

    Safe beside a running engine: the pass reads one snapshot of the
    database (one SQLite read transaction, which WAL keeps stable while the
    engine commits), and each append commits its entry and the anchor
    together, so a concurrent append is never mistaken for an insertion or
    a removal. Raises :class:`~bridge.errors.StateError` only when the
    store cannot be read; tampering is reported, never raised.
    """
    checker = _Checker()
    with store.read() as session:
        # pysqlite opens no transaction for reads: begin one so that the
        # anchor, the entries and the counter come from one snapshot
        session.connection().exec_driver_sql("BEGIN")
        anchor_text = _anchor_text(session)
        anchor = parse_anchor(anchor_text)
        prev: _Seen | None = None
        before: _Seen | None = None
        columns = (getattr(AuditEntry, name) for name in _Stored._fields)
        rows = session.execute(
            select(*columns).order_by(AuditEntry.seq).execution_options(yield_per=_READ_BATCH)
        )
        for values in rows:
            seen = checker.check(_Stored(*values), prev, before)
            before, prev = prev, seen
        counter = _counter(session)
    checker.finish(prev, anchor, anchor_text is not None, counter)
    problems = tuple(sorted(checker.problems, key=lambda p: p.seq))
    return AuditReport(
        entries=checker.count,
        problems=problems,
        head=anchor,
        last_seq=prev.seq if prev is not None else None,
        problems_not_listed=checker.dropped,
    )
