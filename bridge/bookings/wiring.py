"""Build the booking pipeline the engine runs, from settings.

:func:`build_pipeline` joins the parts for the configured PMS (today Open
Dental): the writer of ``[writer]`` (its API Service, or SQL where a vendor
allows it), the live diary and slot engine, and the patient matcher, each
PMS reader on the pipeline's own ODBC connection. It returns None when no
writer is configured: booking items then wait in the inbox, kept, until a
bridge that writes bookings takes them.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from bridge.bookings.diary import OpenDentalDiary
from bridge.bookings.matching import PatientMatcher
from bridge.bookings.pipeline import BookingPipeline
from bridge.bookings.policy import Policy
from bridge.bookings.slot_engine import SlotEngine
from bridge.config import Settings
from bridge.pms.odbc import PmsConnection
from bridge.pms.source import connect_pms
from bridge.pms.writers import writer_for
from bridge.secrets import SecretStore
from bridge.state import StateStore


def build_pipeline(
    settings: Settings, store: StateStore, secret_store: SecretStore
) -> BookingPipeline | None:
    """The engine's booking pipeline, or None when ``[writer]`` names no route.

    Raises :class:`~bridge.errors.ConfigError` / ``SecretError`` when the
    writer is configured but its secrets are missing.
    """
    if settings.writer.kind is None:
        return None
    writer = writer_for(settings, secret_store)
    tz = ZoneInfo(settings.practice.timezone)

    def slots_for(conn: PmsConnection, policy: Policy) -> SlotEngine:
        return SlotEngine(OpenDentalDiary(conn, tz), policy)

    def matcher_for(conn: PmsConnection) -> PatientMatcher:
        return PatientMatcher(conn, settings.practice.country)

    return BookingPipeline(
        settings,
        store,
        writer,
        open_pms=lambda: connect_pms(settings, secret_store),
        slots_for=slots_for,
        matcher_for=matcher_for,
    )
