"""The control channel's exception tree (client side).

Every error a :class:`~bridge.control.client.ControlClient` call raises on
purpose derives from :class:`ControlError`; socket, pipe and JSON errors are
translated at the client's boundary::

    ControlError                      base: ``kind``, ``message``, ``fix``
    ├── EngineNotRunning              nothing answers: no socket/pipe, refused, no key file
    ├── ControlAuthError              the key was refused, unreadable, or the answering
    │                                 process could not prove it holds the key
    ├── ControlTimeout                no answer in time (the connection is dropped)
    ├── ControlConnectionLost         the engine closed the connection (stopping, restarted)
    ├── ControlProtocolError          an answer that is not the protocol (wrong version, bad JSON)
    └── EngineError                   the engine answered ``{"ok": false}``; ``kind`` says why
        ├── RequestRejected           invalid_request, unknown_op, too_large, malformed
        ├── BookingsDisabled          bookings_disabled: the engine has no exception desk
        ├── EnginePaused              paused: the action needs a running (unpaused) engine
        ├── ExceptionNotOpenError     exception_not_open: no open exception has that id
        ├── InvalidResolutionError    invalid_resolution: the action does not fit it
        └── EngineFailed              internal and BridgeError kinds (pms, state, ...)

``str(error)`` is one sentence a person can read (the CLI prints it as is);
``fix`` says what to do, when there is something to do. Messages never hold
personal data: the engine words them from ids, codes and setting names.
"""

from __future__ import annotations

# Error kinds the engine answers with (``{"ok": false, "error": {"kind": ...}}``).
INVALID_REQUEST = "invalid_request"
UNKNOWN_OP = "unknown_op"
TOO_LARGE = "too_large"
MALFORMED = "malformed"
AUTH_FAILED = "auth_failed"
BUSY = "busy"
BOOKINGS_DISABLED = "bookings_disabled"
PAUSED = "paused"
EXCEPTION_NOT_OPEN = "exception_not_open"
INVALID_RESOLUTION = "invalid_resolution"
INTERNAL = "internal"

# Kinds raised by the client itself.
NOT_RUNNING = "not_running"
TIMEOUT = "timeout"
CONNECTION_LOST = "connection_lost"
PROTOCOL = "protocol"


class ControlError(Exception):
    """Base of every control-channel error; ``kind`` is a short code (see above)."""

    kind: str = INTERNAL

    def __init__(self, message: str, *, kind: str | None = None, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        if kind is not None:
            self.kind = kind

    def __str__(self) -> str:
        return self.message


class EngineNotRunning(ControlError):
    """No engine answers at the endpoint (not started, stopped, or crashed)."""

    kind = NOT_RUNNING


class ControlAuthError(ControlError):
    """The key handshake failed, or the key file could not be read."""

    kind = AUTH_FAILED


class ControlTimeout(ControlError):
    """The engine did not answer in time; the connection was dropped."""

    kind = TIMEOUT


class ControlConnectionLost(ControlError):
    """The engine closed the connection (it is stopping or was restarted)."""

    kind = CONNECTION_LOST


class ControlProtocolError(ControlError):
    """The other side does not speak this protocol (version or format)."""

    kind = PROTOCOL


class EngineError(ControlError):
    """The engine answered the request with an error (``kind`` from the engine)."""


class RequestRejected(EngineError):
    """The request was not valid (bad arguments, unknown op, too large, not JSON)."""


class BookingsDisabled(EngineError):
    """Exception actions need the booking pipeline, which this engine does not run."""

    kind = BOOKINGS_DISABLED


class EnginePaused(EngineError):
    """The action would touch the PMS while the bridge is paused."""

    kind = PAUSED


class ExceptionNotOpenError(EngineError):
    """No open exception has this id (it never existed or is already resolved)."""

    kind = EXCEPTION_NOT_OPEN


class InvalidResolutionError(EngineError):
    """The action (or its choice) does not fit this exception."""

    kind = INVALID_RESOLUTION


class EngineFailed(EngineError):
    """The engine could not carry the request out (``kind``: internal, pms, state, ...)."""


_BY_KIND: dict[str, type[EngineError]] = {
    INVALID_REQUEST: RequestRejected,
    UNKNOWN_OP: RequestRejected,
    TOO_LARGE: RequestRejected,
    MALFORMED: RequestRejected,
    BOOKINGS_DISABLED: BookingsDisabled,
    PAUSED: EnginePaused,
    EXCEPTION_NOT_OPEN: ExceptionNotOpenError,
    INVALID_RESOLUTION: InvalidResolutionError,
}


def engine_error(kind: str, message: str, fix: str = "") -> ControlError:
    """The exception for an engine's error answer (auth and busy answers included)."""
    if kind == AUTH_FAILED:
        return ControlAuthError(message, fix=fix)
    if kind == BUSY:
        return EngineFailed(message, kind=kind, fix=fix or "Close other panels and try again.")
    return _BY_KIND.get(kind, EngineFailed)(message, kind=kind, fix=fix)


__all__ = [
    "BookingsDisabled",
    "ControlAuthError",
    "ControlConnectionLost",
    "ControlError",
    "ControlProtocolError",
    "ControlTimeout",
    "EngineError",
    "EngineFailed",
    "EngineNotRunning",
    "EnginePaused",
    "ExceptionNotOpenError",
    "InvalidResolutionError",
    "RequestRejected",
    "engine_error",
]
