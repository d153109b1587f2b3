"""Range checksums over the mirror: how an agent proves the cloud's copy equals its PMS.

The definitions are the contract's (docs/cloud-api.yaml, "Reconciliation
checksums"), implemented here independently of the bridge so that a test
comparing the two catches either side drifting from the spec:

* **Row hash**: :func:`content_hash` - SHA-256 of the row's ``data`` as
  canonical JSON (keys sorted at every level, separators ``,`` and ``:``,
  no ASCII escaping, UTF-8), first 32 hex digits.
* **Key order**: :func:`key_order` - shortlex, as for versions: the shorter
  key first, keys of the same length by code point. For unpadded
  non-negative decimal integers this is numeric order.
* **Range**: ``(after, upto]`` in key order; ``None`` is unbounded.
* **Digest** of a range: the byte-wise XOR of SHA-256(``"<key>:<row hash>"``)
  over the range's live (not deleted) rows, as 64 hex digits (all zeros for
  an empty range). XOR makes it independent of the order rows are visited
  in; keys are unique, so no two terms cancel.

:class:`ChecksumReader` answers both checksum operations from one read
snapshot of the database. It is a read: nothing is written, so repeating a
request is always safe.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sandbox.cloud.db import Database

EMPTY_DIGEST = "0" * 64


def content_hash(data: Any) -> str:
    """The row hash of ``data`` (module doc)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def key_order(key: str) -> tuple[int, str]:
    """Sort key of the key order (shortlex)."""
    return (len(key), key)


def row_term(key: str, row_hash: str) -> int:
    """One row's term of a range digest, as an integer to XOR."""
    return int.from_bytes(hashlib.sha256(f"{key}:{row_hash}".encode()).digest(), "big")


def format_digest(value: int) -> str:
    return f"{value:064x}"


@dataclass(frozen=True)
class KeyRange:
    """``(after, upto]`` in key order; None is unbounded on that side."""

    after: str | None
    upto: str | None

    def contains(self, key: str) -> bool:
        order = key_order(key)
        return (self.after is None or order > key_order(self.after)) and (
            self.upto is None or order <= key_order(self.upto)
        )


@dataclass(frozen=True)
class RangeSum:
    range: KeyRange
    count: int
    digest: str


def _span_sql(after: str | None, upto: str | None) -> tuple[str, list[object]]:
    """SQL conditions on ``key`` for ``(after, upto]`` in shortlex order.

    SQLite's ``length()`` counts characters and its default (BINARY) text
    comparison is UTF-8 byte order, which is code point order: the same
    order as :func:`key_order`.
    """
    parts: list[str] = []
    args: list[object] = []
    if after is not None:
        parts.append("(length(key) > ? OR (length(key) = ? AND key > ?))")
        args += [len(after), len(after), after]
    if upto is not None:
        parts.append("(length(key) < ? OR (length(key) = ? AND key <= ?))")
        args += [len(upto), len(upto), upto]
    return "".join(f" AND {p}" for p in parts), args


class ChecksumReader:
    """Checksums of one agent's mirror; thread-safe (each call one read snapshot)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def _rows(
        self,
        agent_id: str,
        entity: str,
        after: str | None,
        upto: str | None,
        *,
        limit: int | None = None,
    ) -> Iterator[tuple[str, str]]:
        """(key, row hash) of the live rows in ``(after, upto]``; with ``limit``,
        the first ``limit`` in key order."""
        where, args = _span_sql(after, upto)
        tail = ""
        if limit is not None:
            tail = " ORDER BY length(key), key LIMIT ?"
            args.append(limit)
        with self._db.read() as conn:  # callers consume every row: the snapshot then ends
            cursor = conn.execute(
                "SELECT key, data FROM mirror WHERE agent_id = ? AND entity = ? AND deleted = 0"
                f"{where}{tail}",
                [agent_id, entity, *args],
            )
            for key, data in cursor:
                yield key, content_hash(json.loads(data) if data is not None else None)

    def range_sums(self, agent_id: str, entity: str, ranges: Sequence[KeyRange]) -> list[RangeSum]:
        """Count and digest per range. ``ranges`` must be ascending and not overlap
        (:func:`~sandbox.cloud.validation.parse_checksum_request` checks it)."""
        if not ranges:
            return []
        counts = [0] * len(ranges)
        digests = [0] * len(ranges)
        # Ascending, disjoint ranges: a key belongs at most to the first range
        # whose upper bound is not below it.
        uppers = [key_order(r.upto) if r.upto is not None else None for r in ranges]
        bounded = [u for u in uppers if u is not None]
        for key, row_hash in self._rows(agent_id, entity, ranges[0].after, ranges[-1].upto):
            order = key_order(key)
            index = bisect.bisect_left(bounded, order)
            if index == len(bounded) and uppers[-1] is not None:
                continue
            if not ranges[index].contains(key):
                continue  # in a gap between two ranges
            counts[index] += 1
            digests[index] ^= row_term(key, row_hash)
        return [
            RangeSum(r, counts[i], format_digest(digests[i]) if counts[i] else EMPTY_DIGEST)
            for i, r in enumerate(ranges)
        ]

    def row_hashes(
        self, agent_id: str, entity: str, span: KeyRange, limit: int
    ) -> tuple[list[tuple[str, str]], bool]:
        """Up to ``limit`` (key, row hash) pairs of ``span`` in key order, and
        whether more follow (continue after the last key)."""
        rows = list(self._rows(agent_id, entity, span.after, span.upto, limit=limit + 1))
        return rows[:limit], len(rows) > limit
