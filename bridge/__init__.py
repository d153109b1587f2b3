"""The Dental PMS Bridge engine.

Reads the practice's PMS database through ODBC, pushes changes to the cloud,
uploads export files and writes online bookings back. This package never
imports Qt: the tray and panel live in :mod:`gui` and talk to the engine
through :mod:`bridge.control`.
"""

__version__ = "0.1.0"
