"""The settings of the bridge, each declared exactly once.

Every setting is a field of one section model below: its type, default,
bounds and help text (``description``) live here and nowhere else. Loading
and checking (:mod:`bridge.config.load`), the commented template written by
``bridge config init``, ``docs/configuration.md`` and a future settings page
are all built from these declarations through
:func:`bridge.config.spec.iter_settings`. To add a setting, add a field here
(with a ``description``) and regenerate the docs
(``python -m bridge.config.docs``).

Contracts:

* Models are frozen and forbid unknown keys: a :class:`Settings` is an
  immutable snapshot; a changed configuration is a new object.
* The file never holds a secret. Fields marked ``secret_ref`` hold the *name*
  of an OS keyring entry; a connection string or URL carrying a password is
  rejected. ``sensitive`` fields are never echoed in error messages.
* Relative paths are resolved against ``base_dir`` from the validation
  context (the configuration file's folder), so the service does not depend
  on its working directory.
"""

from __future__ import annotations

import zoneinfo
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.config import JsonDict

from bridge.config.countries import COMMON_MISTAKES, COUNTRY_CODES
from bridge.config.values import (
    SettingValueError,
    check_agent_id,
    check_secret_name,
    did_you_mean,
    is_loopback,
    odbc_keys,
    resolve_path,
    split_url,
)

KNOWN_PMS_PROFILES: tuple[str, ...] = ("opendental",)
"""Profiles the bridge ships (``bridge/pms/profiles/<name>.toml``)."""

KiB = 1024
MiB = 1024 * KiB


def _meta(
    *, secret_ref: bool = False, sensitive: bool = False, type_label: str | None = None
) -> JsonDict:
    """Declaration extras: ``secret_ref`` (names a keyring secret), ``sensitive``
    (never echo the value), ``type_label`` (how docs describe the type)."""
    meta: JsonDict = {}
    if secret_ref:
        meta["secret_ref"] = True
    if sensitive:
        meta["sensitive"] = True
    if type_label:
        meta["type_label"] = type_label
    return meta


_KEYRING_NAME_LABEL = "secret name"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Practice(_Section):
    """The dental practice this bridge serves."""

    name: str = Field(
        min_length=1,
        max_length=200,
        description="Practice name, shown in the panel, status reports and support bundles.",
        examples=["Riverside Dental"],
    )
    timezone: str = Field(
        description="Time zone of the practice as an IANA name. The PMS stores local times; "
        "the bridge converts them with this zone.",
        examples=["America/New_York"],
        json_schema_extra=_meta(type_label="IANA time zone"),
    )
    country: str = Field(
        default="US",
        description="Country of the practice (ISO 3166 alpha-2), used to read phone numbers.",
        json_schema_extra=_meta(type_label="ISO 3166 alpha-2 code"),
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            zones = zoneinfo.available_timezones()
            if not zones:
                raise SettingValueError(
                    "no time zone database is installed on this machine "
                    "(install the Python package 'tzdata')"
                ) from None
            raise SettingValueError(
                f"unknown time zone {value[:60]!r}{did_you_mean(value, sorted(zones))} "
                "(use an IANA name such as 'America/New_York')"
            ) from None
        return value

    @field_validator("country", mode="before")
    @classmethod
    def _country_code(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        code = value.strip().upper()
        if code in COUNTRY_CODES:
            return code
        hint = COMMON_MISTAKES.get(code)
        raise SettingValueError(
            f"must be an ISO 3166 alpha-2 country code such as 'US' or 'GB' "
            f"(got {value[:10]!r})" + (f" — did you mean '{hint}'?" if hint else "")
        )

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        """The practice time zone as a tzinfo."""
        return zoneinfo.ZoneInfo(self.timezone)


class Pms(_Section):
    """How the bridge reaches the Practice Management System database (ODBC)."""

    profile: str = Field(
        description="Which PMS this is; selects the profile that maps its tables.",
        examples=["opendental"],
        json_schema_extra=_meta(type_label="one of: " + ", ".join(KNOWN_PMS_PROFILES)),
    )
    connection_string: str | None = Field(
        default=None,
        min_length=1,
        description="ODBC connection string WITHOUT the password. Set exactly one of "
        "connection_string or dsn.",
        examples=["Driver={MariaDB Unicode};Server=127.0.0.1;Port=3306;Database=opendental"],
        json_schema_extra=_meta(sensitive=True, type_label="ODBC connection string"),
    )
    dsn: str | None = Field(
        default=None,
        min_length=1,
        validate_default=True,
        description="Name of an ODBC data source (DSN) defined on this machine, instead of "
        "a connection string.",
        examples=["OpenDental"],
    )
    user: str | None = Field(
        default=None,
        min_length=1,
        description="Database user (a read-only login), unless the connection string or "
        "DSN names it.",
        examples=["bridge_ro"],
    )
    password_secret: str | None = Field(
        default=None,
        description="Name of the OS keyring secret holding the database password; store it "
        "with 'bridge secret set <name>'. Leave unset for a database without a password.",
        examples=["pms-password"],
        json_schema_extra=_meta(secret_ref=True, type_label=_KEYRING_NAME_LABEL),
    )
    query_timeout_seconds: int = Field(
        default=30,
        ge=1,
        le=3600,
        description="Longest a single query may run before it is cancelled.",
    )
    connect_timeout_seconds: int = Field(
        default=10, ge=1, le=300, description="Longest a connection attempt may take."
    )
    read_only: bool = Field(
        default=True,
        description="Open reading sessions read-only, so a read can never change the PMS.",
    )

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        if value not in KNOWN_PMS_PROFILES:
            raise SettingValueError(
                f"unknown PMS profile {value[:40]!r}{did_you_mean(value, KNOWN_PMS_PROFILES)} "
                f"(known: {', '.join(KNOWN_PMS_PROFILES)})"
            )
        return value

    @field_validator("connection_string")
    @classmethod
    def _no_password(cls, value: str | None) -> str | None:
        if value is not None and {"pwd", "password"} & set(odbc_keys(value)):
            raise SettingValueError(
                "must not contain a password (PWD= or Password=); remove it, set "
                'pms.password_secret = "pms-password" and store the password with '
                "'bridge secret set pms-password'"
            )
        return value

    @field_validator("dsn")
    @classmethod
    def _exactly_one_source(cls, value: str | None, info: ValidationInfo) -> str | None:
        if "connection_string" not in info.data:
            return value  # the connection string failed its own check
        if (info.data["connection_string"] is None) == (value is None):
            state = "neither is set" if value is None else "both are set"
            raise SettingValueError(
                f"set exactly one of pms.connection_string or pms.dsn ({state})",
                key="connection_string",
            )
        return value

    @field_validator("user")
    @classmethod
    def _user_in_one_place(cls, value: str | None, info: ValidationInfo) -> str | None:
        conn = info.data.get("connection_string")
        if value is not None and conn and {"uid", "user", "user id"} & set(odbc_keys(conn)):
            raise SettingValueError(
                "pms.connection_string already names the user (UID=); set it in one place"
            )
        return value

    @field_validator("password_secret")
    @classmethod
    def _secret_name(cls, value: str | None) -> str | None:
        return None if value is None else check_secret_name(value)


class Cloud(_Section):
    """The cloud service the bridge syncs with (outbound HTTPS only)."""

    url: str = Field(
        description="Base URL of the cloud API. Must be https:// (http only for a loopback "
        "test server).",
        examples=["https://cloud.example.com"],
        json_schema_extra=_meta(sensitive=True, type_label="https URL"),
    )
    agent_id: str = Field(
        description="This bridge's agent id, issued by the cloud when the practice was set up.",
        examples=["agent-0001"],
    )
    token_secret: str = Field(
        default="cloud-token",
        description="Name of the OS keyring secret holding the agent token; store it with "
        "'bridge secret set cloud-token'.",
        json_schema_extra=_meta(secret_ref=True, type_label=_KEYRING_NAME_LABEL),
    )
    ca_bundle: Path | None = Field(
        default=None,
        description="PEM file of extra CA certificates to trust in addition to the system "
        "ones (for a private CA or a TLS-inspecting proxy). A relative path is relative to "
        "this file.",
        examples=["cloud-ca.pem"],
    )
    proxy: str | None = Field(
        default=None,
        description="Outbound proxy URL (http://, https:// or socks5://), without a password.",
        examples=["http://proxy.local:3128"],
        json_schema_extra=_meta(sensitive=True, type_label="URL"),
    )
    proxy_password_secret: str | None = Field(
        default=None,
        description="Name of the OS keyring secret holding the proxy password, if the proxy "
        "needs one (the proxy user goes in the proxy URL).",
        examples=["proxy-password"],
        json_schema_extra=_meta(secret_ref=True, type_label=_KEYRING_NAME_LABEL),
    )
    timeout_seconds: float = Field(
        default=30.0, ge=1, le=600, description="Timeout of one HTTPS request to the cloud."
    )

    @field_validator("url")
    @classmethod
    def _https_url(cls, value: str) -> str:
        parts = split_url(value, ("https", "http"))
        host = parts.hostname or ""
        if parts.scheme.lower() == "http" and not is_loopback(host):
            raise SettingValueError(
                "must use https:// (plain http is allowed only for a loopback host such as "
                f"127.0.0.1; got host {host[:80]!r})"
            )
        if parts.username or parts.password:
            raise SettingValueError(
                "must not contain a user name or password; the agent token goes in the "
                "keyring (cloud.token_secret)"
            )
        return value.rstrip("/")

    @field_validator("agent_id")
    @classmethod
    def _agent_id(cls, value: str) -> str:
        return check_agent_id(value)

    @field_validator("proxy")
    @classmethod
    def _proxy_url(cls, value: str | None) -> str | None:
        if value is not None and split_url(value, ("http", "https", "socks5", "socks5h")).password:
            raise SettingValueError(
                "must not contain a password; set cloud.proxy_password_secret and store the "
                "password with 'bridge secret set <name>'"
            )
        return value

    @field_validator("token_secret", "proxy_password_secret")
    @classmethod
    def _secret_name(cls, value: str | None) -> str | None:
        return None if value is None else check_secret_name(value)

    @field_validator("ca_bundle")
    @classmethod
    def _ca_path(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return resolve_path(value, info)


class Engine(_Section):
    """How often the engine works."""

    poll_interval_seconds: float = Field(
        default=2.0,
        ge=0.5,
        le=3600,
        description="How often the real-time entities (appointments, patients) are polled "
        "for changes.",
    )
    sweep_rows_per_minute: int = Field(
        default=60_000,
        ge=1_000,
        le=10_000_000,
        description="Rows per minute the bridge may make the PMS examine to find edits in "
        "tables whose change stamp has no index (patient, schedule, claim, ...). Higher finds "
        "unsignalled edits sooner; each sweep covers its table in table rows / share minutes.",
    )
    first_sync_rows_per_second: int = Field(
        default=0,
        ge=0,
        le=10_000_000,
        description="Cap on rows read per second during the first sync, to spare a busy "
        "practice server; 0 means no cap.",
    )
    reconcile_interval_hours: float = Field(
        default=6.0,
        ge=0.25,
        le=168,
        description="How often every entity is reconciled: a keyed checksum sweep that proves "
        "the cloud's copy equals the PMS and re-sends what differs. The cloud can also ask for "
        "one at any time (reconcile.request).",
    )
    status_interval_seconds: float = Field(
        default=60.0,
        ge=5,
        le=3600,
        description="How often a heartbeat with the bridge's status goes to the cloud.",
    )


BookingPolicy = Literal["auto", "approve", "never"]


class Bookings(_Section):
    """How cloud bookings are written into the diary (used once a [writer] is configured)."""

    default_policy: BookingPolicy = Field(
        default="auto",
        description="What happens to a booking whose appointment type has no entry in "
        "type_policies: auto (write and confirm), approve (write a tentative hold and ask the "
        "front desk) or never (refuse: not bookable online).",
        json_schema_extra=_meta(type_label="one of: auto, approve, never"),
    )
    type_policies: dict[str, BookingPolicy] = Field(
        default={},
        description="Policy per appointment type, by the type's name in the PMS, e.g. "
        '{ "New Patient Exam" = "approve", "Emergency" = "never" }.',
        json_schema_extra=_meta(type_label="table of type name = auto | approve | never"),
    )
    window_days: int = Field(
        default=90,
        ge=1,
        le=730,
        description="How far ahead a booking may be made, in days.",
    )
    min_notice_minutes: int = Field(
        default=120,
        ge=0,
        le=20_160,
        description="How soon before its start a booking may still be made online; closer "
        "cancellations go to the front desk.",
    )
    buffer_minutes: int = Field(
        default=0,
        ge=0,
        le=120,
        description="Free time kept before and after every appointment in an operatory.",
    )
    alternatives: int = Field(
        default=3,
        ge=1,
        le=10,
        description="How many free alternatives a conflict offers on each side of the time asked.",
    )
    hold_status: str = Field(
        default="Unconfirmed",
        min_length=1,
        description="The PMS's appointment confirmation status (Open Dental: a definition of "
        "category ApptConfirmed) that marks a tentative hold.",
    )
    confirmed_status: str = Field(
        default="Confirmed",
        min_length=1,
        description="The confirmation status a booking gets once verified (or approved).",
    )
    new_patient_billing_type: str | None = Field(
        default=None,
        description="Billing type (by name) of patients the bridge creates; default: the "
        "PMS's first visible billing type.",
        examples=["Standard Account"],
    )


class Logging(_Section):
    """Local log files (JSON lines, rotated; personal data is masked)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Least severe level written to the log."
    )
    max_bytes: int = Field(
        default=10 * MiB,
        ge=64 * KiB,
        le=100 * MiB,
        description="Size at which the log file is rotated. The logs never take more than "
        "max_bytes * (backup_count + 1) bytes.",
    )
    backup_count: int = Field(
        default=10, ge=1, le=1000, description="How many rotated log files are kept."
    )

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @property
    def max_total_bytes(self) -> int:
        """The most disk space the logs can take."""
        return self.max_bytes * (self.backup_count + 1)


class State(_Section):
    """The local state database (outbox, inbox, watermarks)."""

    path: Path | None = Field(
        default=None,
        description="Where the state database lives; default: state.sqlite3 in the bridge "
        "data folder. A relative path is relative to this file.",
        examples=["state.sqlite3"],
    )

    @field_validator("path")
    @classmethod
    def _state_path(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return resolve_path(value, info)


class Settings(_Section):
    """All settings of the bridge: the root of ``bridge.toml``."""

    practice: Practice
    pms: Pms
    cloud: Cloud
    engine: Engine = Field(default=Engine(), description="Engine timing.")
    logging: Logging = Field(default=Logging(), description="Local log files.")
    state: State = Field(default=State(), description="Local state database.")
    bookings: Bookings = Field(
        default=Bookings(), description="Online bookings written into the diary."
    )
