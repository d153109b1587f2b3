"""The append-only, hash-chained audit trail of PMS writes and booking decisions.

::

    with store.write() as session:
        ...  # the booking stage this entry describes
        audit.append(session, "pms.hold_written", actor="bridge",
                     subject=f"inbox:{item_id}", data={"appointment": "812"})

    report = audit.verify(store)      # every edit, removal, insertion, reordering
    for problem in report.problems:   # "seq 41: removed: seq 41 missing from the chain"
        ...

* :func:`append` (:mod:`.chain`) writes inside the caller's state-store
  transaction, so an entry commits together with the change it describes;
  it chains each entry to the one before by SHA-256 and keeps a head
  anchor (``meta`` key ``audit.head``) in the same transaction.
* :mod:`.guard` refuses personal data: entries hold ids, codes and slot
  times, and may be shown to support staff.
* :func:`verify` (:mod:`.verify`) checks the chain and the anchor and says
  what an attacker who rewrites everything could still do.
* :func:`recent` lists entries for ``bridge audit list`` and the panel.
"""

from __future__ import annotations

from sqlalchemy import select

from bridge.audit.chain import GENESIS_HASH, HEAD_KEY, Head, append, canonical_json, entry_hash
from bridge.audit.guard import AuditDataError
from bridge.audit.verify import AuditReport, Problem, verify
from bridge.state import StateStore
from bridge.state.models import AuditEntry

__all__ = [
    "GENESIS_HASH",
    "HEAD_KEY",
    "AuditDataError",
    "AuditEntry",
    "AuditReport",
    "Head",
    "Problem",
    "append",
    "canonical_json",
    "entry_hash",
    "recent",
    "verify",
]


def recent(store: StateStore, *, limit: int = 50, kind: str | None = None) -> list[AuditEntry]:
    """The newest ``limit`` entries, oldest first.

    ``kind`` keeps one kind (``pms.hold_written``); ending in ``.`` or ``*``
    it keeps a family (``pms.``, ``decision.*``).
    """
    with store.read() as session:
        query = select(AuditEntry)
        if kind:
            if kind.endswith(("*", ".")):
                prefix = kind.rstrip("*")
                escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                query = query.where(AuditEntry.kind.like(escaped + "%", escape="\\"))
            else:
                query = query.where(AuditEntry.kind == kind)
        rows = list(session.scalars(query.order_by(AuditEntry.seq.desc()).limit(limit)))
        for row in rows:
            session.expunge(row)
    return rows[::-1]
