"""Everything about the practice's PMS database.

The ODBC layer is the only way the bridge reaches the database:

* :mod:`bridge.pms.odbc` — the public face: :class:`~bridge.pms.odbc.OdbcSettings`,
  :func:`~bridge.pms.odbc.connect`, :class:`~bridge.pms.odbc.PmsConnection`
  (read-only sessions, time-limited statements, bounded-memory streams, typed
  errors), and the driver and DSN listings ``bridge doctor`` shows.
* ``odbc_connstr`` (connection strings, driver families), ``odbc_errors``
  (driver errors into the bridge's tree), ``odbc_session`` (per-driver session
  setup, timeouts, the guarded statement runner), ``odbc_stream`` (paged
  reads that survive bad values), ``odbc_values`` (rows, defensive value
  conversion), ``odbc_catalog`` (tables, columns, login privileges): its parts.

Profiles (one declarative file per PMS), the change detectors and the
booking writers build on it. Per-driver behaviour, as measured: ``docs/odbc.md``.
"""
