"""The one exception tree of the bridge.

Every error the engine raises on purpose derives from :class:`BridgeError`.
Third-party exceptions (pyodbc, SQLAlchemy, httpx, keyring, OS errors) are
translated into this tree at the module boundary that calls the library, so
callers above that boundary catch only these classes::

    BridgeError
    ├── ConfigError                 bad or missing setting (names the key)
    │   └── SecretError             keyring missing / secret not stored
    ├── PmsError                    anything about the PMS database
    │   ├── DriverNotFoundError     ODBC driver not installed (lists installed)
    │   ├── DataSourceNotFoundError DSN name not defined
    │   ├── LoginFailedError        wrong user or password
    │   ├── ServerUnreachableError  host down, wrong port, firewall, file missing
    │   ├── SchemaMismatchError     table or column of a profile entity missing
    │   ├── QueryTimeoutError       a query ran past its timeout
    │   ├── ReadOnlyViolationError  a write was attempted on a read session
    │   └── BadValueError           one value in one row could not be read
    ├── StateError                  local SQLite store (disk full, corrupt, lock)
    ├── CloudError                  the cloud API (``retryable`` says whether to try again)
    │   ├── CloudAuthError          token missing/rejected (401) or not for this agent (403)
    │   ├── CloudTlsError           certificate not verified or pinned key mismatch
    │   ├── CloudUnavailableError   5xx, 429, connection lost: retryable (``retry_after``)
    │   └── CloudRejectedError      400/404/409/415/422: not retryable unchanged
    │       └── BatchTooLargeError  413: split the batch (``limits`` from the cloud)
    └── BookingError                write-back pipeline (reserved for bookings)

Each error carries a :class:`ErrorKind` that a user interface can act on (for
example ``LOGIN_FAILED`` opens the credentials page) and a ``fix``: one
sentence telling a person what to do. Messages never contain personal data;
they name tables, columns, keys and settings, never values from patient rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum


class ErrorKind(StrEnum):
    """What a person (or the panel) can do about an error."""

    CONFIG = "config"
    SECRET = "secret"  # noqa: S105 - an error kind, not a password
    DRIVER_MISSING = "driver_missing"
    DSN_MISSING = "dsn_missing"
    LOGIN_FAILED = "login_failed"
    UNREACHABLE = "unreachable"
    SCHEMA = "schema"
    TIMEOUT = "timeout"
    READ_ONLY = "read_only"
    BAD_VALUE = "bad_value"
    PMS = "pms"
    STATE = "state"
    CLOUD = "cloud"
    CLOUD_AUTH = "cloud_auth"
    CLOUD_TLS = "cloud_tls"
    BOOKING = "booking"


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose."""

    kind: ErrorKind = ErrorKind.PMS
    default_fix: str = ""

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix if fix is not None else self.default_fix

    def __str__(self) -> str:
        return self.message


class ConfigError(BridgeError):
    """A setting is missing, has the wrong type or an impossible value.

    ``key`` is the dotted setting name (``pms.connection_string``) when the
    problem is about one setting.
    """

    kind = ErrorKind.CONFIG
    default_fix = "Correct the setting in the configuration file and run 'bridge config check'."

    def __init__(self, message: str, *, key: str | None = None, fix: str | None = None) -> None:
        super().__init__(message, fix=fix)
        self.key = key


class SecretError(ConfigError):
    """A secret could not be read from (or written to) the OS keyring."""

    kind = ErrorKind.SECRET
    default_fix = "Store the secret with 'bridge secret set <name>' (it goes to the OS keyring)."


class PmsError(BridgeError):
    """The PMS database could not be reached or read as expected."""

    kind = ErrorKind.PMS


class DriverNotFoundError(PmsError):
    """The ODBC driver named in the connection is not installed."""

    kind = ErrorKind.DRIVER_MISSING

    def __init__(self, driver: str, installed: Sequence[str]) -> None:
        listed = ", ".join(installed) if installed else "none"
        super().__init__(
            f"ODBC driver '{driver}' is not installed (installed drivers: {listed})",
            fix=(
                f"Install the ODBC driver '{driver}' or change pms.connection_string "
                "to one of the installed drivers."
            ),
        )
        self.driver = driver
        self.installed = tuple(installed)


class DataSourceNotFoundError(PmsError):
    """The DSN named in the connection is not defined."""

    kind = ErrorKind.DSN_MISSING

    def __init__(self, dsn: str, defined: Sequence[str]) -> None:
        listed = ", ".join(defined) if defined else "none"
        super().__init__(
            f"ODBC data source '{dsn}' is not defined (defined data sources: {listed})",
            fix="Create the data source in the ODBC administrator or correct pms.dsn.",
        )
        self.dsn = dsn
        self.defined = tuple(defined)


class LoginFailedError(PmsError):
    """The database rejected the user name or password."""

    kind = ErrorKind.LOGIN_FAILED
    default_fix = (
        "Check the database user in pms.connection_string and store the right password "
        "with 'bridge secret set pms-password'."
    )


class ServerUnreachableError(PmsError):
    """The database server (or database file) could not be reached."""

    kind = ErrorKind.UNREACHABLE
    default_fix = (
        "Check that the database server is running and that host, port or file path "
        "in pms.connection_string are right."
    )


class SchemaMismatchError(PmsError):
    """A table or column that a profile entity needs is missing."""

    kind = ErrorKind.SCHEMA

    def __init__(
        self,
        entity: str,
        table: str,
        column: str | None = None,
        *,
        fix: str | None = None,
    ) -> None:
        what = f"column '{table}.{column}'" if column else f"table '{table}'"
        super().__init__(
            f"{what} needed by profile entity '{entity}' is missing from the PMS database",
            fix=fix
            or (
                "Check that the bridge points at the PMS database (not a copy or another "
                "product) and that the PMS version is supported by the profile."
            ),
        )
        self.entity = entity
        self.table = table
        self.column = column


class QueryTimeoutError(PmsError):
    """A query ran longer than its timeout and was cancelled."""

    kind = ErrorKind.TIMEOUT
    default_fix = (
        "The PMS database is busy or slow; the bridge will retry. "
        "Raise pms.query_timeout_seconds if it persists."
    )


class ReadOnlyViolationError(PmsError):
    """A statement tried to change data through a read-only session."""

    kind = ErrorKind.READ_ONLY
    default_fix = "Reads must never write; report this as a bug."


class BadValueError(PmsError):
    """One value in one row could not be read or converted.

    Raised (or reported) per value so the reader can skip that value or row
    and keep going. Carries the table, the row's key and the column, never the
    value itself (it may be personal data).
    """

    kind = ErrorKind.BAD_VALUE

    def __init__(self, table: str, key: object, column: str, problem: str) -> None:
        super().__init__(
            f"bad value in {table}.{column} for key {key}: {problem}",
            fix="Correct the value in the PMS; the bridge skipped it and carried on.",
        )
        self.table = table
        self.key = key
        self.column = column
        self.problem = problem


class StateError(BridgeError):
    """The local state store failed (disk full, corrupt file, locked)."""

    kind = ErrorKind.STATE
    default_fix = "Check free disk space and permissions of the bridge data folder."


class CloudError(BridgeError):
    """The cloud API refused or failed a request.

    ``retryable`` tells the caller whether the same request may be sent again
    (every write is idempotent); ``status`` is the HTTP status, if any.
    """

    kind = ErrorKind.CLOUD
    retryable: bool = False

    def __init__(self, message: str, *, status: int | None = None, fix: str | None = None) -> None:
        super().__init__(message, fix=fix)
        self.status = status


class CloudAuthError(CloudError):
    """The cloud did not accept the agent token (401) or the token may not act
    for the configured agent id (403). Not retryable until the token changes."""

    kind = ErrorKind.CLOUD_AUTH
    default_fix = (
        "Store the agent token issued by the cloud with 'bridge secret set cloud-token' and "
        "check cloud.agent_id."
    )


class CloudTlsError(CloudError):
    """The cloud's certificate could not be verified, or its public key does not
    match the configured pin. Not retryable: someone must check the network."""

    kind = ErrorKind.CLOUD_TLS
    default_fix = (
        "Check cloud.url and cloud.ca_bundle; a proxy that intercepts HTTPS must be told to "
        "let the cloud's address through."
    )


class CloudUnavailableError(CloudError):
    """The cloud failed or asked to back off (5xx, 429), or the connection was
    lost. Retryable; ``retry_after`` is the wait in seconds the cloud asked for."""

    retryable = True
    default_fix = "The bridge retries by itself; check the internet connection if it persists."

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        fix: str | None = None,
    ) -> None:
        super().__init__(message, status=status, fix=fix)
        self.retry_after = retry_after


class CloudRejectedError(CloudError):
    """The cloud rejected the request itself (400, 404, 409, 415, 422, ...):
    sending it again unchanged would fail again. ``code`` and ``field`` come
    from the cloud's error body; the message never repeats payload data."""

    default_fix = "Report this as a bug, with the support bundle."

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        field: str | None = None,
        fix: str | None = None,
    ) -> None:
        super().__init__(message, status=status, fix=fix)
        self.code = code
        self.field = field


class BatchTooLargeError(CloudRejectedError):
    """413: the batch (or body) is above the cloud's caps; split it and resend.
    ``max_changes`` and ``max_body_bytes`` are the cloud's limits, if it said."""

    default_fix = "The bridge splits the batch by itself."

    def __init__(
        self,
        message: str,
        *,
        max_changes: int | None = None,
        max_body_bytes: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, status=413, code=code)
        self.max_changes = max_changes
        self.max_body_bytes = max_body_bytes


class BookingError(BridgeError):
    """The booking write-back pipeline could not complete a request."""

    kind = ErrorKind.BOOKING
