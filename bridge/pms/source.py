"""From settings to a live PMS connection, and facts about the PMS server.

This is the one place that turns ``[pms]`` settings plus the secret store
into :class:`~bridge.pms.odbc.OdbcSettings`, so the engine, doctor and the
sync loops all connect the same way.
"""

from __future__ import annotations

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
