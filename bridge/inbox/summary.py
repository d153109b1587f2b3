"""What the inbox holds, for ``bridge status``, the panel and the cloud heartbeat.

:func:`read_inbox_summary` reads counts per state, the results not yet
acknowledged by the cloud and the items kept ``waiting`` (type, id, when
received). It never returns payload contents: they may hold personal data.
Safe from any thread (a read session).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, literal_column, select

from bridge.state import StateStore
from bridge.state.models import InboxItem

WAITING = "waiting"


@dataclass(frozen=True)
class WaitingItem:
    id: str
    type: str
    received_at: datetime


@dataclass(frozen=True)
class InboxSummary:
    """``counts``: items per state (``received``, ``waiting``, ``done``);
    ``results_unposted``: done items whose result the cloud has not
    acknowledged; ``waiting_types``: waiting items per type; ``waiting``: the
    oldest waiting items (at most the ``limit`` asked for)."""

    counts: Mapping[str, int]
    results_unposted: int
    waiting_types: Mapping[str, int]
    waiting: tuple[WaitingItem, ...]

    @property
    def pending(self) -> int:
        """Items the bridge still owes the cloud an answer for."""
        return sum(n for state, n in self.counts.items() if state != "done") + self.results_unposted


def read_inbox_summary(store: StateStore, *, limit: int = 50) -> InboxSummary:
    with store.read() as session:
        counts = {
            state: int(n)
            for state, n in session.execute(
                select(InboxItem.state, func.count()).group_by(InboxItem.state)
            )
        }
        unposted = session.scalar(
            select(func.count()).where(
                InboxItem.state == "done", InboxItem.result_posted_at.is_(None)
            )
        )
        types = {
            kind: int(n)
            for kind, n in session.execute(
                select(InboxItem.type, func.count())
                .where(InboxItem.state == WAITING)
                .group_by(InboxItem.type)
            )
        }
        rows = session.execute(
            select(InboxItem.id, InboxItem.type, InboxItem.received_at)
            .where(InboxItem.state == WAITING)
            .order_by(literal_column("inbox_item.rowid"))
            .limit(max(0, limit))
        ).all()
    return InboxSummary(
        counts=counts,
        results_unposted=int(unposted or 0),
        waiting_types=types,
        waiting=tuple(WaitingItem(r.id, r.type, r.received_at) for r in rows),
    )
