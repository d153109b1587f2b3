"""What the booking pipeline needs from its parts, as Protocols.

The pipeline is written against these so each part can be built, tested
and replaced on its own: the slot engine (:mod:`bridge.bookings.slots` over
the live diary), the patient matcher (:mod:`bridge.bookings.matching`) and
a diary writer (:mod:`bridge.pms.writers`). Reads always go through ODBC;
writes only through the writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from bridge.bookings.diary import AppointmentType
from bridge.bookings.matching import MatchOutcome
from bridge.bookings.requests import PatientDetails
from bridge.bookings.slots import Slot, SlotCheck


class SlotPort(Protocol):
    def appointment_type(self, name_or_id: str) -> AppointmentType | None: ...

    def check(
        self,
        start: datetime,
        minutes: int,
        provider_id: str,
        operatory_id: str,
        ignore_appointment: str | None = None,
    ) -> SlotCheck: ...

    def place(
        self,
        start: datetime,
        minutes: int,
        provider_id: str | None = None,
        operatory_id: str | None = None,
    ) -> Slot | SlotCheck: ...

    def alternatives(
        self,
        start: datetime,
        minutes: int,
        provider_id: str | None = None,
        operatory_id: str | None = None,
        n: int = 3,
    ) -> list[Slot]: ...

    def overlapping(
        self,
        start: datetime,
        minutes: int,
        operatory_id: str,
        provider_id: str,
        ignore_appointment: str | None = None,
    ) -> Sequence[str]: ...


class MatcherPort(Protocol):
    def match(self, details: PatientDetails) -> MatchOutcome: ...
