"""From ``[writer]`` settings plus the secret store to a ready diary writer.

The one place that turns settings into a writer, so the engine and
``bridge doctor`` build it the same way. Secrets are read from the keyring
here (by the names in the settings) and handed over as
:class:`~bridge.secrets.Secret` values; they are never in the settings.
"""

from __future__ import annotations

from bridge.config.model import Settings
from bridge.errors import ConfigError, SecretError
from bridge.pms.odbc import OdbcSettings
from bridge.pms.writers.base import ManagedWriter
from bridge.pms.writers.opendental_api import OpenDentalApiWriter
from bridge.pms.writers.sql import SqlDiaryWriter
from bridge.secrets import Secret, SecretStore


def writer_for(settings: Settings, secret_store: SecretStore) -> ManagedWriter:
    """The writer ``settings.writer`` describes (the caller closes it).

    Raises :class:`~bridge.errors.ConfigError` when no writer is configured
    and :class:`~bridge.errors.SecretError` (naming the setting) when a
    secret it names is not stored.
    """
    config = settings.writer
    zone = settings.practice.zone
    if config.kind == "opendental-api":
        assert config.url and config.developer_key_secret and config.customer_key_secret
        return OpenDentalApiWriter(
            config.url,
            _secret(secret_store, config.developer_key_secret, "writer.developer_key_secret"),
            _secret(secret_store, config.customer_key_secret, "writer.customer_key_secret"),
            timezone=zone,
            timeout_seconds=config.timeout_seconds,
        )
    if config.kind == "sql":
        password = (
            _secret(secret_store, config.password_secret, "writer.password_secret")
            if config.password_secret
            else None
        )
        timeout = max(1, round(config.timeout_seconds))
        odbc = OdbcSettings(
            connection_string=config.connection_string,
            dsn=config.dsn,
            user=config.user,
            password=password,
            query_timeout_seconds=timeout,
            connect_timeout_seconds=min(timeout, settings.pms.connect_timeout_seconds),
            read_only=False,
        )
        return SqlDiaryWriter(odbc, timezone=zone)
    raise ConfigError(
        "no diary writer is configured (writer.kind is not set)",
        key="writer.kind",
        fix='Set writer.kind = "opendental-api" (Open Dental) and its url and key secrets.',
    )


def probe_writer(settings: Settings, secret_store: SecretStore) -> str:
    """Build the writer, prove it answers and accepts its credentials, close it.

    Writes nothing. Returns one line for ``bridge doctor``; raises the
    bridge's errors (:mod:`bridge.pms.writers.errors`, ConfigError).
    """
    writer = writer_for(settings, secret_store)
    try:
        return writer.check()
    finally:
        writer.close()


def _secret(store: SecretStore, name: str, key: str) -> Secret:
    try:
        return store.get(name)
    except SecretError as exc:
        raise SecretError(f"{key}: {exc.message}", key=key, fix=exc.fix) from None
