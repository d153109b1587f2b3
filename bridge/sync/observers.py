"""What the sync loop saw change, for whoever upkeeps something derived from it.

The PMS sync loop (:class:`~bridge.sync.loops.PmsSyncLoop`) tells each of
its observers, after every delta step of every entity, what that step found
(:class:`EntityChanges`): the records it read by key (changed, or re-read
inside an overlap window: an observer compares hashes itself), the keys a
probe named that the PMS no longer has (deleted, or now outside the
entity's filter: a tombstone, an appointment turned into an employee
schedule), and how many changes it staged (a snapshot entity, such as
``appointment_type``, reports a change only there). Published availability
(:mod:`bridge.availability`) is the first observer; a booking collision
watch can be the next.

Contract: observers are called on the sync loop's thread, in the order
they were added, after the step's changes were committed to the outbox.
They must return quickly (note what to do and let another loop do it) and
never issue PMS queries on the loop's connection. An observer that raises
is logged and skipped; the sync goes on.

:class:`KeyTrackingReader` is how the loop learns the gone keys without
the detector reporting them: it is the detectors' record reader, and it
remembers which keys it was asked to read by key and did not find.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from bridge.pms.odbc import PmsConnection
from bridge.pms.profile import Profile
from bridge.sync.records import BadValueSink, Record, RecordReader


@dataclass(frozen=True)
class EntityChanges:
    """What one delta step of ``entity`` saw (see the module docstring)."""

    entity: str
    records: tuple[Record, ...] = ()
    gone: tuple[str, ...] = ()
    staged: int = 0

    @property
    def empty(self) -> bool:
        return not self.records and not self.gone and not self.staged


ChangeObserver = Callable[[EntityChanges], None]
"""Called with every delta step's :class:`EntityChanges` (contract above)."""


class KeyTrackingReader(RecordReader):
    """A :class:`RecordReader` that remembers the keys it was asked for and did not find.

    :meth:`take_missing` returns them (and forgets them). Thread-safe for
    one reading thread and one taking thread.
    """

    def __init__(
        self,
        profile: Profile,
        entity: str,
        zone: ZoneInfo,
        on_bad_value: BadValueSink | None = None,
    ) -> None:
        super().__init__(profile, entity, zone, on_bad_value)
        self._missing: set[str] = set()
        self._missing_lock = threading.Lock()

    def read_keys(self, conn: PmsConnection, keys: Iterable[str]) -> list[Record]:
        asked = {str(k) for k in keys}
        records = super().read_keys(conn, asked)
        missing = asked - {r.key for r in records}
        if missing:
            with self._missing_lock:
                self._missing |= missing
        return records

    def take_missing(self) -> tuple[str, ...]:
        with self._missing_lock:
            missing, self._missing = self._missing, set()
        return tuple(sorted(missing))


__all__ = ["ChangeObserver", "EntityChanges", "KeyTrackingReader"]
