"""From settings to a live PMS connection, and facts about the PMS server.

This is the one place that turns ``[pms]`` settings plus the secret store
into :class:`~bridge.pms.odbc.OdbcSettings`, so the engine, doctor and the
sync loops all connect the same way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bridge.config import Settings
from bridge.errors import SchemaMismatchError
from bridge.pms import odbc_connstr as connstr
from bridge.pms.odbc import OdbcSettings, PmsConnection, connect, defined_data_sources
from bridge.pms.profile import Profile
from bridge.secrets import Secret, SecretStore


def odbc_settings_for(settings: Settings, secret_store: SecretStore) -> OdbcSettings:
    """Build connection settings; reads the password from the keyring."""
    pms = settings.pms
    password: Secret | None = None
    if pms.password_secret:
        password = secret_store.get(pms.password_secret)
    return OdbcSettings(
        connection_string=pms.connection_string,
        dsn=pms.dsn,
        user=pms.user,
        password=password,
        query_timeout_seconds=pms.query_timeout_seconds,
        connect_timeout_seconds=pms.connect_timeout_seconds,
        read_only=pms.read_only,
    )


def connect_pms(settings: Settings, secret_store: SecretStore) -> PmsConnection:
    return connect(odbc_settings_for(settings, secret_store))


def profile_problems(conn: PmsConnection, profile: Profile) -> list[SchemaMismatchError]:
    """Every table or column the profile reads that the database lacks."""
    problems: list[SchemaMismatchError] = []
    for label, table, columns in profile.table_requirements():
        problems.extend(conn.check_entity(label, table, columns))
    return problems


def configured_driver(settings: Settings) -> str | None:
    """The ODBC driver name the settings point at, or None if unknown.

    For a DSN, the driver registered for that DSN (None if the DSN itself is
    not defined; connecting then reports the missing DSN).
    """
    if settings.pms.connection_string:
        return connstr.get(connstr.parse(settings.pms.connection_string), "driver")
    if settings.pms.dsn:
        return defined_data_sources().get(settings.pms.dsn)
    return None


@dataclass(frozen=True)
class ServerClock:
    utc_now: datetime
    local_offset: timedelta


def pms_now(conn: PmsConnection) -> datetime:
    """The PMS database's local time, as its change stamps record it (naive).

    Change stamps are written by the database server's clock, which may
    differ from this machine's; comparisons with stamps use this.
    """
    if conn.family in ("mariadb", "mysql"):
        value = conn.execute("SELECT NOW()")[0][0]
    elif conn.family == "sqlite":
        value = conn.execute("SELECT datetime('now', 'localtime')")[0][0]
    else:
        return datetime.now()  # stamps are naive local time
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    return datetime.fromisoformat(str(value))


class PmsClock:
    """The PMS clock, read lazily and reused for up to ``max_age`` seconds.

    A delta pass needs the PMS's time only for some steps (a sweep cycle
    that ends or starts, a probe that starts, rows at an indexed watermark
    that may have settled); asking ``SELECT NOW()`` in every entity's step
    was a fifth of an idle pass's statements. Calling the clock reads
    :func:`pms_now` only if it was never read or the reading is older than
    ``max_age`` seconds (this machine's monotonic clock); otherwise it
    returns the earlier reading.

    Contract: a value returned is never later than the PMS clock at any
    moment after the call (while the PMS clock does not step back); it may
    be up to ``max_age`` seconds earlier. Every user in the read path takes
    an earlier time as the cautious side: a sweep cycle's start (the next
    cycle looks back further), a probe's start, and whether rows at a
    watermark have settled (they settle later). The default ``max_age``
    (infinite) reads once: one clock for one pass or one step. Not
    thread-safe: one loop, one thread.
    """

    def __init__(
        self,
        conn: PmsConnection,
        *,
        max_age: float = math.inf,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._conn = conn
        self.max_age = max_age
        self._monotonic = monotonic
        self._now: datetime | None = None
        self._read_at = 0.0
        self.reads = 0
        """How many times the PMS was asked."""

    def __call__(self) -> datetime:
        if self._now is None or self._monotonic() - self._read_at > self.max_age:
            self._read_at = self._monotonic()
            self._now = pms_now(self._conn)
            self.reads += 1
        return self._now


def server_clock(conn: PmsConnection) -> ServerClock | None:
    """The PMS server's clock, or None for an embedded database (same clock)."""
    if conn.family in ("mariadb", "mysql"):
        row = next(iter(conn.execute("SELECT UTC_TIMESTAMP(), NOW()")))
        utc_now, local_now = row[0], row[1]
        offset = local_now - utc_now
        # round to the minute: the two calls can straddle a second boundary
        offset = timedelta(minutes=round(offset.total_seconds() / 60))
        return ServerClock(utc_now.replace(tzinfo=UTC), offset)
    return None
