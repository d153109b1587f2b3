"""The first sync's progress, as honest as the snapshot allows.

An entity's row total is known only once its first sync has started (the
engine counts its rows then), so while some entities have not started, a
percentage of the rows counted so far would overstate the progress. The
percentage (:attr:`FirstSyncProgress.share`) is therefore given only once
every entity has started; before that the panel says how many kinds of
records are still to start. Rate and ETA come from the engine's ``sync``
component. Pure function of a :class:`~bridge.status.StatusSnapshot`.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.status import StatusSnapshot


@dataclass(frozen=True)
class FirstSyncProgress:
    rows_done: int
    rows_counted: int  # rows of the entities that have started
    reading: tuple[str, ...]  # entities in their first sync now
    not_started: int  # entities whose first sync has not begun
    rate_rows_per_s: float | None
    eta_seconds: float | None

    @property
    def share(self) -> float | None:
        """Done / total (0..1), once every entity has been counted."""
        if self.not_started or self.rows_counted <= 0:
            return None
        return min(self.rows_done / self.rows_counted, 1.0)


def first_sync_progress(snapshot: StatusSnapshot) -> FirstSyncProgress | None:
    """Progress while any entity is in its first sync (None once all are done)."""
    reading = tuple(e.entity for e in snapshot.entities if e.phase == "initial")
    sync = snapshot.component("sync")
    details = sync.details if sync is not None else {}
    in_first_sync = details.get("entities_in_first_sync")
    not_started = max(int(in_first_sync) - len(reading), 0) if isinstance(in_first_sync, int) else 0
    if not reading and not not_started:
        return None
    rate, eta = details.get("rate_rows_per_s"), details.get("eta_seconds")
    return FirstSyncProgress(
        rows_done=sum(e.rows_done for e in snapshot.entities),
        rows_counted=sum(
            e.rows_total if e.rows_total is not None else e.rows_done for e in snapshot.entities
        ),
        reading=reading,
        not_started=not_started,
        rate_rows_per_s=float(rate) if isinstance(rate, int | float) and rate > 0 else None,
        eta_seconds=float(eta) if isinstance(eta, int | float) and not not_started else None,
    )
