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

import ipaddress
import re
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


WriterKind = Literal["opendental-api", "sql"]
OPENDENTAL_API_PATH = "/api/v1"


def _is_lan_address(host: str) -> bool:
    """``localhost`` or a loopback or private (LAN) IP address literal."""
    if is_loopback(host):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private and not address.is_unspecified


class Writer(_Section):
    """How bookings are written into the PMS diary (leave kind unset: no write-back).

    opendental-api writes through Open Dental's API Service (its sanctioned
    route); sql writes straight into the tables, for a PMS whose vendor
    allows that (never for Open Dental).
    """

    kind: WriterKind | None = Field(
        default=None,
        description="The write route: opendental-api (Open Dental's API Service) or sql "
        "(direct writes with a separate write login; not allowed for Open Dental). Unset: "
        "bookings are not written into the diary.",
        examples=["opendental-api"],
        json_schema_extra=_meta(type_label="one of: opendental-api, sql"),
    )
    url: str | None = Field(
        default=None,
        description="kind = opendental-api: base URL of Open Dental's API Service, normally "
        "http://<server IP>:30223/api/v1. Plain http (all the API Service speaks) is allowed "
        "only for localhost and loopback or private (LAN) IP addresses; anything else must be "
        "https. Without a path, /api/v1 is used.",
        examples=["http://192.168.1.10:30223/api/v1"],
        json_schema_extra=_meta(type_label="http(s) URL"),
    )
    developer_key_secret: str | None = Field(
        default=None,
        description="kind = opendental-api: name of the OS keyring secret holding the Open "
        "Dental developer key; store it with 'bridge secret set <name>'.",
        examples=["od-developer-key"],
        json_schema_extra=_meta(secret_ref=True, type_label=_KEYRING_NAME_LABEL),
    )
    customer_key_secret: str | None = Field(
        default=None,
        description="kind = opendental-api: name of the OS keyring secret holding the "
        "practice's Open Dental customer key (Setup > Advanced Setup > API).",
        examples=["od-customer-key"],
        json_schema_extra=_meta(secret_ref=True, type_label=_KEYRING_NAME_LABEL),
    )
    timeout_seconds: float = Field(
        default=15.0,
        ge=1,
        le=120,
        description="Longest one write may take before it counts as failed (and is retried "
        "after checking whether it happened).",
    )
    connection_string: str | None = Field(
        default=None,
        min_length=1,
        description="kind = sql: ODBC connection string of the write login, WITHOUT the "
        "password. Set exactly one of connection_string or dsn.",
        examples=["Driver={MariaDB Unicode};Server=127.0.0.1;Port=3306;Database=pms"],
        json_schema_extra=_meta(sensitive=True, type_label="ODBC connection string"),
    )
    dsn: str | None = Field(
        default=None,
        min_length=1,
        description="kind = sql: name of an ODBC data source for the write login, instead of "
        "a connection string.",
        examples=["PmsWriter"],
    )
    user: str | None = Field(
        default=None,
        min_length=1,
        description="kind = sql: database user allowed to write the diary tables (not the "
        "read-only pms.user), unless the connection string or DSN names it.",
        examples=["bridge_rw"],
    )
    password_secret: str | None = Field(
        default=None,
        validate_default=True,
        description="kind = sql: name of the OS keyring secret holding the write login's "
        "password. Leave unset for a login without a password.",
        examples=["pms-writer-password"],
        json_schema_extra=_meta(secret_ref=True, type_label=_KEYRING_NAME_LABEL),
    )

    @field_validator("url")
    @classmethod
    def _api_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = split_url(value, ("http", "https"))
        host = parts.hostname or ""
        if parts.scheme.lower() == "http" and not _is_lan_address(host):
            raise SettingValueError(
                "may use plain http only for localhost or a loopback or private (LAN) IP "
                "address, where Open Dental's API Service listens; give the server's IP "
                f"address, or use https (got host {host[:80]!r})"
            )
        if parts.username or parts.password:
            raise SettingValueError(
                "must not contain a user name or password; the keys go in the keyring "
                "(writer.developer_key_secret, writer.customer_key_secret)"
            )
        if parts.query or parts.fragment:
            raise SettingValueError("must not contain '?' or '#' parts")
        path = parts.path.rstrip("/") or OPENDENTAL_API_PATH
        return f"{parts.scheme.lower()}://{parts.netloc}{path}"

    @field_validator("connection_string")
    @classmethod
    def _no_password(cls, value: str | None) -> str | None:
        if value is not None and {"pwd", "password"} & set(odbc_keys(value)):
            raise SettingValueError(
                "must not contain a password (PWD= or Password=); remove it, set "
                "writer.password_secret and store the password with 'bridge secret set <name>'"
            )
        return value

    @field_validator("developer_key_secret", "customer_key_secret")
    @classmethod
    def _key_names(cls, value: str | None) -> str | None:
        return None if value is None else check_secret_name(value)

    @field_validator("password_secret")
    @classmethod
    def _one_route(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Checks the settings against the kind (runs last: every field is known)."""
        if value is not None:
            check_secret_name(value)
        data = info.data
        if "kind" not in data:
            return value  # the kind failed its own check
        kind = data["kind"]
        api = ("url", "developer_key_secret", "customer_key_secret")
        sql = ("connection_string", "dsn", "user")
        given = {name for name in (*api, *sql) if data.get(name) is not None}
        if value is not None:
            given.add("password_secret")
        if kind is None:
            if given:
                first = sorted(given)[0]
                raise SettingValueError(
                    f"writer.{first} is set but writer.kind is not; set kind = "
                    '"opendental-api" or "sql", or remove the [writer] settings',
                    key="kind",
                )
            return value
        if kind == "opendental-api":
            for name in api:
                if name in data and data[name] is None:
                    example = {"url": '"http://192.168.1.10:30223/api/v1"'}.get(
                        name, f'"od-{name.split("_")[0]}-key"'
                    )
                    raise SettingValueError(
                        f'is required when kind = "opendental-api" (e.g. {name} = {example})',
                        key=name,
                    )
            wrong = sorted(given & {*sql, "password_secret"})
        else:
            if (
                "connection_string" in data
                and "dsn" in data
                and ((data["connection_string"] is None) == (data["dsn"] is None))
            ):
                state = "neither is set" if data["connection_string"] is None else "both are set"
                raise SettingValueError(
                    f'set exactly one of writer.connection_string or writer.dsn when kind = "sql" '
                    f"({state})",
                    key="connection_string",
                )
            wrong = sorted(given & set(api))
        if wrong:
            raise SettingValueError(f'is not used when kind = "{kind}"; remove it', key=wrong[0])
        return value


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
    availability_days: int = Field(
        default=60,
        ge=0,
        le=366,
        description="How many local days ahead (today included) the free slots are published "
        "to the cloud as the availability entity; 0 publishes none.",
    )
    availability_step_minutes: int = Field(
        default=15,
        ge=5,
        le=60,
        multiple_of=5,
        description="The wall-clock grid of published slot starts (every 15 minutes from "
        "midnight by default); bookings themselves may start on any 5-minute mark.",
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


FileKindSetting = Literal["auto", "era835", "claim", "report", "statement", "other"]
AfterUpload = Literal["leave", "move", "delete"]
FOLDER_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,31}")
DEFAULT_EXCLUDES: tuple[str, ...] = ("*.tmp", "*.temp", "*.part", "*.partial", "*.crdownload")
DEFAULT_EXCLUDES += ("~*", ".*", "Thumbs.db", "desktop.ini")


class Folder(_Section):
    """Export folders whose new files are uploaded to the cloud, once each.

    One [[folders]] table per folder the PMS or a clearinghouse tool writes
    into (ERA/835 remittances, 837 claim batches, reports, statements).
    """

    label: str = Field(
        description="Short unique name of the folder, sent to the cloud with each file "
        "(letters, digits, space, '_', '.', '-'; at most 32 characters).",
        examples=["ERA"],
    )
    path: Path = Field(
        description="Absolute path of the folder to watch (a local folder or a mapped share).",
        examples=["C:\\OpenDental\\Exports\\ERA"],
    )
    kind: FileKindSetting = Field(
        default="auto",
        description="Kind of files expected: era835, claim, report, statement, other, or auto "
        "(recognised from the content). X12 835 and 837 files are always recognised by their "
        "ISA/ST segments; auto sends CSV and PDF files as report and anything else as other.",
    )
    include: tuple[str, ...] = Field(
        default=("*",),
        min_length=1,
        description="File name patterns to upload (* and ? wildcards, case-insensitive); a "
        "pattern with a '/' is matched against the path below the folder.",
        examples=[["*.835", "*.era"]],
        json_schema_extra=_meta(type_label="list of patterns"),
    )
    exclude: tuple[str, ...] = Field(
        default=DEFAULT_EXCLUDES,
        description="File name patterns never to upload, even when included (temporary "
        "and partial files by default).",
        json_schema_extra=_meta(type_label="list of patterns"),
    )
    recursive: bool = Field(default=False, description="Also watch the folders inside this one.")
    after: AfterUpload = Field(
        default="leave",
        description="What to do with a file once the cloud has it: leave it, move it to "
        "archive_to, or delete it (only when set to delete here; never by default).",
    )
    archive_to: Path | None = Field(
        default=None,
        validate_default=True,
        description="Absolute path of the archive folder that uploaded files are moved "
        "into when after = move (subfolders are kept). Not watched, even inside the folder.",
        examples=["C:\\OpenDental\\Exports\\ERA\\uploaded"],
    )
    watch: bool = Field(
        default=True,
        description="Listen for change events; set false for shares that never send them "
        "(the periodic rescan finds the files either way).",
    )
    settle_seconds: float = Field(
        default=5.0,
        ge=0.1,
        le=3600,
        description="A file is uploaded only once its size and modification time stayed the "
        "same across two checks this many seconds apart and no program holds it open for "
        "writing.",
    )
    rescan_seconds: float = Field(
        default=300.0,
        ge=1,
        le=86_400,
        description="How often the whole folder is scanned again, for files whose change "
        "events were missed.",
    )
    give_up_seconds: float = Field(
        default=3600.0,
        ge=1,
        le=604_800,
        description="A file still changing (or held open) after this long is quarantined as "
        "never stable and reported; it is still uploaded if it settles later.",
    )

    @field_validator("label")
    @classmethod
    def _label(cls, value: str) -> str:
        if not FOLDER_LABEL.fullmatch(value):
            raise SettingValueError(
                f"must be 1 to 32 letters, digits, spaces, '_', '.' or '-', starting with a "
                f"letter or digit (got {value[:40]!r})"
            )
        return value

    @field_validator("path")
    @classmethod
    def _absolute_path(cls, value: Path) -> Path:
        value = value.expanduser()
        if not value.is_absolute():
            raise SettingValueError(
                "must be an absolute path, e.g. 'C:\\OpenDental\\Exports' "
                f"(got {str(value)[:80]!r})"
            )
        return value

    @field_validator("include", "exclude")
    @classmethod
    def _patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            if not pattern.strip():
                raise SettingValueError("must not contain an empty pattern")
        return tuple(p.strip() for p in value)

    @field_validator("archive_to")
    @classmethod
    def _archive(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        after, folder = info.data.get("after"), info.data.get("path")
        if after == "move" and value is None:
            raise SettingValueError(
                'is required when after = "move" (the folder uploaded files are moved into)'
            )
        if after is not None and after != "move" and value is not None:
            raise SettingValueError(
                f'is set but after = "{after}"; set after = "move" to move uploaded files '
                "there, or remove archive_to"
            )
        if value is None:
            return None
        value = value.expanduser()
        if not value.is_absolute():
            raise SettingValueError(f"must be an absolute path (got {str(value)[:80]!r})")
        if isinstance(folder, Path) and (value == folder or folder.is_relative_to(value)):
            raise SettingValueError("must not be the watched folder or a folder containing it")
        return value


class Settings(_Section):
    """All settings of the bridge: the root of ``bridge.toml``."""

    practice: Practice
    pms: Pms
    cloud: Cloud
    engine: Engine = Field(default=Engine(), description="Engine timing.")
    logging: Logging = Field(default=Logging(), description="Local log files.")
    state: State = Field(default=State(), description="Local state database.")
    writer: Writer = Field(
        default=Writer(), description="The route bookings are written into the diary by."
    )
    bookings: Bookings = Field(
        default=Bookings(), description="Online bookings written into the diary."
    )
    folders: tuple[Folder, ...] = Field(
        default=(),
        description="Export folders watched for new files to upload, one [[folders]] table each.",
    )

    @field_validator("folders")
    @classmethod
    def _unique_labels(cls, value: tuple[Folder, ...]) -> tuple[Folder, ...]:
        seen: set[str] = set()
        for folder in value:
            if folder.label.casefold() in seen:
                raise SettingValueError(
                    f"two [[folders]] tables have the label {folder.label!r}; labels must be "
                    "unique (letter case aside)"
                )
            seen.add(folder.label.casefold())
        return value
