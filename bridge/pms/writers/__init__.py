"""Diary writers: how online bookings get into the PMS, behind one interface.

* :mod:`.base` -- :class:`DiaryWriter` (what the booking pipeline calls),
  :class:`NewPatient`, :class:`NewAppointment` and the contracts every
  writer keeps (times, holds, release, idempotency, privacy).
* :mod:`.errors` -- refused (not retryable) versus unavailable (retryable).
* :mod:`.opendental_api` -- Open Dental's API Service, its sanctioned route.
* :mod:`.sql` -- direct SQL writes, for a PMS whose vendor allows them
  (never Open Dental).
* :mod:`.factory` -- :func:`writer_for` builds the configured one.

The sandbox has a stand-in of Open Dental's API Service (``python -m
sandbox odapi``); see ``docs/writers.md``.
"""

from bridge.pms.writers.base import DiaryWriter, ManagedWriter, NewAppointment, NewPatient
from bridge.pms.writers.errors import (
    WriteError,
    WriterAuthError,
    WriteRequestError,
    WriterNotFoundError,
    WriterRefusedError,
    WriterUnavailableError,
)
from bridge.pms.writers.factory import probe_writer, writer_for
from bridge.pms.writers.opendental_api import OpenDentalApiWriter
from bridge.pms.writers.sql import SqlDiaryWriter

__all__ = [
    "DiaryWriter",
    "ManagedWriter",
    "NewAppointment",
    "NewPatient",
    "OpenDentalApiWriter",
    "SqlDiaryWriter",
    "WriteError",
    "WriteRequestError",
    "WriterAuthError",
    "WriterNotFoundError",
    "WriterRefusedError",
    "WriterUnavailableError",
    "probe_writer",
    "writer_for",
]
