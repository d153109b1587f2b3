"""The booking pipeline on real parts, in process, for the booking tests.

``World`` bundles the demo practice (read through ODBC), the Open Dental API
Service stand-in writing into it over real HTTP, the state store and a
``BookingPipeline`` built by ``build``; ``World.send`` hands an item to the
pipeline's handlers the way the inbox loop does. ``make_settings`` and
``booking`` build the settings and a request payload.

Shared by tests/test_booking_pipeline.py (which re-exports these names for
older imports), tests/test_booking_contest.py and
tests/test_booking_hostile_input.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bridge.bookings.diary import OpenDentalDiary
from bridge.bookings.matching import PatientMatcher
from bridge.bookings.pipeline import BookingPipeline, booking_handlers
from bridge.bookings.slot_engine import SlotEngine
from bridge.bookings.slots import Slot
from bridge.cloud.protocol import InboxItem as WireItem
from bridge.cloud.protocol import InboxPage, InboxResult
from bridge.config.load import validate_settings
from bridge.config.model import Settings
from bridge.inbox import records
from bridge.inbox.handlers import Handler
from bridge.pms.odbc import OdbcSettings, PmsConnection, connect
from bridge.pms.writers import OpenDentalApiWriter
from bridge.secrets import Secret
from bridge.state import StateStore
from sandbox.odapi import OdApiServer
from sandbox.odapi.testing import CUSTOMER_KEY, DEVELOPER_KEY
from sandbox.practice import TIMEZONE

TZ = ZoneInfo(TIMEZONE)


def make_settings(db: Path, **bookings: Any) -> Settings:
    settings, problems = validate_settings(
        {
            "practice": {"name": "Test Dental", "timezone": TIMEZONE, "country": "US"},
            "pms": {
                "profile": "opendental",
                "connection_string": f"Driver={{SQLite3}};Database={db}",
            },
            "cloud": {"url": "https://127.0.0.1:1", "agent_id": "agent-1"},
            "bookings": bookings,
        }
    )
    assert settings is not None, problems
    return settings


@dataclass
class World:
    db: Path
    api: OdApiServer
    store: StateStore
    pipeline: BookingPipeline
    conn: PmsConnection
    seq: int = 0

    def handlers(self) -> dict[str, Any]:
        return booking_handlers(self.pipeline)

    def send(self, kind: str, payload: dict[str, Any]) -> InboxResult:
        """Receive the item as the inbox loop does, validate and handle it, store the result."""
        self.seq += 1
        item_id = f"item-{self.seq}"
        page = InboxPage(
            (WireItem(item_id, kind, datetime.now(UTC), payload),), str(self.seq), False
        )
        records.receive(self.store, page, self.handlers())
        started = records.begin_attempt(self.store, item_id)
        assert started is not None
        item, _ = started
        handler: Handler = self.handlers()[kind]
        handler.validate(item.payload)
        result = handler.handle(item)
        records.finish(self.store, item_id, result)
        self.last_item = item
        return result

    def appointment(self, apt: str) -> dict[str, Any]:
        [row] = self.conn.execute("SELECT * FROM appointment WHERE AptNum = ?", (int(apt),))
        return dict(row)

    def count(self, table: str = "appointment") -> int:
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {table}")[0][0])

    def engine(self) -> SlotEngine:
        return SlotEngine(OpenDentalDiary(self.conn, TZ), self.pipeline.policy)


def build(db: Path, store: StateStore, api: OdApiServer, **bookings: Any) -> BookingPipeline:
    settings = make_settings(db, **bookings)
    writer = OpenDentalApiWriter(
        api.api_url,
        Secret(DEVELOPER_KEY, "od-developer-key"),
        Secret(CUSTOMER_KEY, "od-customer-key"),
        timezone=TZ,
        timeout_seconds=10,
    )

    def open_pms() -> PmsConnection:
        return connect(OdbcSettings(connection_string=settings.pms.connection_string))

    return BookingPipeline(
        settings,
        store,
        writer,
        open_pms=open_pms,
        slots_for=lambda conn, policy: SlotEngine(OpenDentalDiary(conn, TZ), policy),
        matcher_for=lambda conn: PatientMatcher(conn, "US"),
    )


def booking(slot: Slot, patient: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    """A ``booking.request`` payload for ``slot`` (a made-up new patient by default)."""
    who = patient or {
        "first_name": "Quentin",
        "last_name": "Zylberstein",
        "date_of_birth": "1991-04-17",
        "phone": "+1 503 555 0199",
        "email": "quentin.z@example.com",
    }
    body: dict[str, Any] = {
        "patient": who,
        "start": slot.start.isoformat(),
        "appointment_type": changes.pop("appointment_type", "Recall"),
        "provider_id": slot.provider_id,
        "operatory_id": slot.operatory_id,
    }
    body.update(changes)
    return body
