"""Published availability: the diary's free slots, per local day, kept current from deltas.

The data flow (each step its own module)::

    read path (bridge.sync.loops.PmsSyncLoop)
        --EntityChanges (bridge.sync.observers)--> upkeep.AvailabilityUpkeep.changed
            days.DayIndex: which local days the change touches, now and before
        availability loop: SlotEngine.finder (one live read per run of days)
            --> publish.day_records (one ``availability`` record per day)
            --> outbox (bridge.sync.outbox) --> uplink --> cloud /v1/changes

See ``docs/availability.md`` for the record's shape and the guarantees.
"""

from bridge.availability.publish import ENTITY
from bridge.availability.upkeep import AvailabilityUpkeep

__all__ = ["ENTITY", "AvailabilityUpkeep"]
