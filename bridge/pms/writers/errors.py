"""What a diary write can go wrong with, as part of the bridge's one exception tree.

Every writer (:mod:`.opendental_api`, :mod:`.sql`) raises only these, so
the booking pipeline can tell the two outcomes that matter apart::

    PmsError                          (bridge.errors)
    └── WriteError                    a diary write failed
        ├── WriterRefusedError        the PMS refused it: sending it again unchanged fails again
        │   ├── WriterAuthError       credentials rejected (401, login refused)
        │   ├── WriterNotFoundError   the appointment or patient named does not exist (404)
        │   └── WriteRequestError     the request was invalid; it was never sent
        └── WriterUnavailableError    unreachable, timed out, 5xx: try again later

``retryable`` says which side an error is on. ``operation`` names the call
(``"POST /appointments"``, ``"UPDATE appointment"``), ``status`` the HTTP
status if there was one. A :class:`WriterUnavailableError` says in
``may_have_applied`` whether the PMS may have carried the write out anyway
(a timeout after the request was sent, a lost answer, a 5xx): the caller
must then look for the write before repeating it. ``partial`` lists ids of
rows a multi-statement write had already created when it failed (the SQL
writer on MyISAM tables, which cannot roll back).

Messages never contain personal data: they name the call, the status and
the PMS's own explanation with every value the bridge sent masked out.
"""

from __future__ import annotations

from collections.abc import Mapping

from bridge.errors import ErrorKind, PmsError


class WriteError(PmsError):
    """A write into the PMS diary failed (see the module docstring)."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        operation: str = "",
        status: int | None = None,
        partial: Mapping[str, str] | None = None,
        fix: str | None = None,
    ) -> None:
        super().__init__(message, fix=fix)
        self.operation = operation
        self.status = status
        self.partial: dict[str, str] = dict(partial or {})


class WriterRefusedError(WriteError):
    """The PMS refused the write (HTTP 4xx, a rejected statement, bad values).

    Not retryable unchanged; the message carries the PMS's explanation.
    """

    default_fix = (
        "The PMS refused the booking; the front desk should enter it by hand. "
        "Report it with the support bundle if it keeps happening."
    )


class WriterAuthError(WriterRefusedError):
    """The PMS did not accept the writer's credentials (API keys, database login)."""

    kind = ErrorKind.LOGIN_FAILED
    default_fix = (
        "Store the right keys with 'bridge secret set <name>' (the names in "
        "writer.developer_key_secret / writer.customer_key_secret, or writer.password_secret) "
        "and check that the customer key is enabled in Open Dental (Setup > Advanced Setup > API)."
    )


class WriterNotFoundError(WriterRefusedError):
    """The appointment or patient the write names does not exist in the PMS."""

    default_fix = "The record was deleted in the PMS; the front desk should check the booking."


class WriteRequestError(WriterRefusedError):
    """The write request itself is invalid (a naive time, a bad id, a pattern
    too long); it was never sent to the PMS."""

    default_fix = "Report this as a bug, with the support bundle."


class WriterUnavailableError(WriteError):
    """The PMS could not be reached, did not answer in time, or failed (5xx).

    Retryable. ``may_have_applied`` is true when the request may have been
    carried out before the failure (look for it before sending it again).
    """

    retryable = True
    kind = ErrorKind.UNREACHABLE
    default_fix = (
        "The bridge retries by itself. If it persists, check that the PMS server and its "
        "write service (Open Dental's API Service, port 30223) are running."
    )

    def __init__(
        self,
        message: str,
        *,
        operation: str = "",
        status: int | None = None,
        may_have_applied: bool = False,
        timed_out: bool = False,
        partial: Mapping[str, str] | None = None,
        fix: str | None = None,
    ) -> None:
        super().__init__(message, operation=operation, status=status, partial=partial, fix=fix)
        self.may_have_applied = may_have_applied
        if timed_out:
            self.kind = ErrorKind.TIMEOUT


__all__ = [
    "WriteError",
    "WriteRequestError",
    "WriterAuthError",
    "WriterNotFoundError",
    "WriterRefusedError",
    "WriterUnavailableError",
]
