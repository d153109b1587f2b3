"""The control channel's client: what the panel and the CLI use to drive the engine.

Contract
========

Connecting::

    with ControlClient.connect(paths) as client:     # BridgePaths, Endpoint or None
        snapshot = client.status()

:meth:`ControlClient.connect` finds the engine of the installation whose
data folder ``paths`` names (``None``: :func:`bridge.paths.default_paths`),
reads its key file and runs the key handshake. It raises
:class:`EngineNotRunning` when no engine answers (its message says how to
start one) and :class:`ControlAuthError` when this account may not read the
key or the key is refused. Every other method raises only
:class:`ControlError` subclasses (tree in :mod:`bridge.control.errors`).

Calls (each has a timeout; none waits for the PMS or the cloud unless
it says so):

============================================  ===================================  ========
call                                          returns                              timeout
============================================  ===================================  ========
``status()``                                  :class:`~bridge.status.StatusSnapshot`  10 s
``events(after=0, wait=0.0)``                 ``(list[Event], next_after)``        wait+10 s
``sync_now(entities=(), keys=())``            :class:`SyncScheduled`               10 s
``pause(by="")`` / ``resume(by="")``          :class:`PauseState`                  30 s
``exceptions(state="open")``                  ``list[ExceptionView]``              10 s
``resolve_exception(id, Resolution)``         :class:`ResolveOutcome`              60 s
``support_bundle()``                          :class:`~pathlib.Path` of the zip    180 s
``logs(after=None, limit=200, level, text)``  :class:`LogPage` (iterable records)  10 s
``version()``                                 :class:`VersionInfo`                 10 s
``booking_report(day=None)``                  ``dict`` (:mod:`bridge.bookings.report`)  10 s
============================================  ===================================  ========

Semantics the panel relies on:

* ``status()`` is the truth, rebuilt from the engine's state on each call.
  It includes ``paused``/``paused_since``/``paused_by``.
* ``events`` are hints only (:mod:`bridge.control.events`). Start with
  ``after=0`` and pass back ``next_after``; ``wait`` (up to 25 s) long-polls
  for the next event. Events can be missed (a bounded buffer, lost on
  restart): an :class:`~bridge.control.events.EventsMissed` in the list
  says so. On any event, and after a reconnect, re-read ``status()``.
* ``sync_now`` returns at once; presses that arrive before the sync starts
  merge into it (``merged``), so "Sync now" pressed five times is one sync.
  ``entities`` empty means every entity; ``keys`` (record keys) need
  exactly one entity. While paused the sync waits for ``resume``.
* ``pause`` persists across engine restarts; it returns once the loops have
  stopped or after 15 s with ``settled=False``. Exception actions are refused
  while paused (:class:`EnginePaused`).
* ``exceptions`` and ``resolve_exception`` raise :class:`BookingsDisabled`
  when the engine does not run the booking pipeline (the queue is the
  pipeline's; a panel hides its exceptions page then);
  ``resolve_exception`` raises :class:`ExceptionNotOpenError` and
  :class:`InvalidResolutionError` as the desk decides.
* ``support_bundle`` writes the zip in the engine's data folder (the path is
  the engine's; the CLI copies it if asked) and holds no personal data or
  secrets.
* ``logs`` without ``after`` returns the newest ``limit`` records; with
  ``after=page.cursor`` the records written since, at most ``limit``.

Threading: one call at a time per client (a lock serialises them), so a
client may be shared between threads, but a thread that long-polls
``events(wait=...)`` holds the client meanwhile: give it its own client.
Calls never block forever. After a timeout or a lost connection the next
call reconnects by itself (and may then raise :class:`EngineNotRunning`);
a read-only call that finds its old connection dead is retried once on a
new one, an action never is. :meth:`ControlClient.close` (from any thread)
also ends a call blocked in another thread (POSIX: at once; Windows: at
that call's timeout); a closed client makes no further calls.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from datetime import date
from multiprocessing.connection import Client, Connection
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from bridge.bookings.exceptions import ExceptionView, Resolution, ResolveOutcome
from bridge.control import protocol
from bridge.control.endpoint import START_HINT, Endpoint, endpoint_for, read_key
from bridge.control.errors import (
    BookingsDisabled,
    ControlAuthError,
    ControlConnectionLost,
    ControlError,
    ControlProtocolError,
    ControlTimeout,
    EngineError,
    EngineNotRunning,
    EnginePaused,
    ExceptionNotOpenError,
    InvalidResolutionError,
    RequestRejected,
    engine_error,
)
from bridge.control.events import Event
from bridge.control.results import (
    LogPage,
    PauseState,
    SyncScheduled,
    VersionInfo,
    outcome_from_json,
    resolution_to_json,
)
from bridge.paths import BridgePaths, default_paths
from bridge.status import StatusSnapshot

DEFAULT_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0
PAUSE_TIMEOUT = 30.0
RESOLVE_TIMEOUT = 60.0
BUNDLE_TIMEOUT = 180.0
T = TypeVar("T")
READ_ONLY_OPS = frozenset({"status", "events", "exceptions.list", "logs", "version"})


class ControlClient:
    """A connection to the local engine (see the module docstring for the contract)."""

    def __init__(self, endpoint: Endpoint, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._conn: Connection | None = None
        self._lock = threading.RLock()
        self._closed = False

    @classmethod
    def connect(
        cls,
        where: BridgePaths | Endpoint | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> ControlClient:
        """Connect now (see the module docstring); raises EngineNotRunning or
        ControlAuthError."""
        if isinstance(where, Endpoint):
            endpoint = where
        else:
            endpoint = endpoint_for((where or default_paths()).data_dir)
        client = cls(endpoint, timeout=timeout)
        with client._lock:
            client._ensure()
        return client

    # -- the calls ---------------------------------------------------------------

    def status(self) -> StatusSnapshot:
        return self._parse(StatusSnapshot.from_json, self.request("status"))

    def events(self, after: int = 0, *, wait: float = 0.0) -> tuple[list[Event], int]:
        result = self.request(
            "events", {"after": after, "wait": wait}, timeout=wait + DEFAULT_TIMEOUT
        )

        def parse(obj: Any) -> tuple[list[Event], int]:
            events = [Event.from_json(e) for e in obj["events"]]
            return [e for e in events if e is not None], int(obj["next_after"])

        return self._parse(parse, result)

    def sync_now(self, entities: Sequence[str] = (), keys: Sequence[str] = ()) -> SyncScheduled:
        result = self.request("sync", {"entities": list(entities), "keys": list(keys)})
        return self._parse(SyncScheduled.from_json, result)

    def pause(self, by: str = "") -> PauseState:
        result = self.request("pause", {"by": by}, timeout=PAUSE_TIMEOUT)
        return self._parse(PauseState.from_json, result)

    def resume(self, by: str = "") -> PauseState:
        result = self.request("resume", {"by": by}, timeout=PAUSE_TIMEOUT)
        return self._parse(PauseState.from_json, result)

    def exceptions(self, state: str | None = "open") -> list[ExceptionView]:
        result = self.request("exceptions.list", {"state": state})
        return self._parse(lambda obj: [ExceptionView.from_json(v) for v in obj], result)

    def resolve_exception(self, exception_id: int, resolution: Resolution) -> ResolveOutcome:
        result = self.request(
            "exceptions.resolve",
            resolution_to_json(exception_id, resolution),
            timeout=RESOLVE_TIMEOUT,
        )
        return self._parse(outcome_from_json, result)

    def support_bundle(self) -> Path:
        result = self.request("support_bundle", timeout=BUNDLE_TIMEOUT)
        return self._parse(lambda obj: Path(obj["path"]), result)

    def logs(
        self,
        after: str | None = None,
        limit: int = 200,
        level: str | None = None,
        text: str | None = None,
    ) -> LogPage:
        result = self.request(
            "logs", {"after": after, "limit": limit, "level": level, "text": text}
        )
        return self._parse(LogPage.from_json, result)

    def version(self) -> VersionInfo:
        return self._parse(VersionInfo.from_json, self.request("version"))

    def booking_report(self, day: date | None = None) -> dict[str, Any]:
        """The booking report of ``day`` (practice-local; default today): counts and
        codes only (:func:`bridge.bookings.report.build_report`)."""
        result = self.request("booking_report", {"date": day.isoformat() if day else None})
        return self._parse(_report_from_json, result)

    # -- plumbing ----------------------------------------------------------------

    def request(
        self, op: str, args: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> Any:
        """Send one request and return its ``result`` (raw JSON value).

        The typed methods above are built on this; raises ControlError.
        """
        body = protocol.encode({"op": op, "args": args or {}})
        if len(body) > protocol.MAX_REQUEST_BYTES:
            raise RequestRejected(
                f"the request is {len(body):,} bytes; the limit is {protocol.MAX_REQUEST_BYTES:,}.",
                kind="too_large",
            )
        limit = timeout if timeout is not None else self.timeout
        with self._lock:
            reused = self._conn is not None
            try:
                data = self._exchange(op, body, limit)
            except ControlConnectionLost:
                if not (reused and op in READ_ONLY_OPS):
                    raise
                data = self._exchange(op, body, limit)  # the engine restarted meanwhile
        answer = self._decode(data)
        if answer.get("ok") is True:
            return answer.get("result")
        raise self._error(answer)

    def _exchange(self, op: str, body: bytes, timeout: float) -> bytes:
        conn = self._ensure()
        try:
            conn.send_bytes(body)
            return protocol.receive(conn, timeout, protocol.MAX_RESPONSE_BYTES)
        except protocol.FrameTimeout:
            self._drop()
            raise ControlTimeout(
                f"the engine did not answer '{op}' within {timeout:.0f} s.",
                fix="The engine may be overloaded or stuck; check 'bridge logs'.",
            ) from None
        except (EOFError, OSError):
            self._drop()
            raise ControlConnectionLost(
                "the engine closed the connection (it may be stopping or restarting).",
                fix="Try again in a moment.",
            ) from None

    def _ensure(self) -> Connection:
        if self._conn is not None:
            return self._conn
        if self._closed:
            raise ControlConnectionLost("this control client was closed.")
        key = read_key(self.endpoint)
        where = self.endpoint.describe()
        try:
            conn = Client(self.endpoint.address, family=self.endpoint.family)
        except PermissionError:
            raise ControlAuthError(
                f"this account may not connect to the engine's {where}.",
                fix="Run this as the account the engine runs as, or ask IT to add this account "
                "to the group that owns the control folder.",
            ) from None
        except OSError as exc:
            raise EngineNotRunning(
                f"the engine is not running (nothing answers at {where}: "
                f"{exc.strerror or type(exc).__name__}).",
                fix=START_HINT,
            ) from None
        try:
            self._handshake(conn, key, where)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _handshake(self, conn: Connection, key: bytes, where: str) -> None:
        try:
            hello = self._decode(
                protocol.receive(conn, CONNECT_TIMEOUT, protocol.MAX_HANDSHAKE_BYTES)
            )
            if hello.get("ok") is False:
                raise self._error(hello)
            if hello.get("protocol") != protocol.PROTOCOL or not protocol.is_nonce(
                hello.get("nonce")
            ):
                raise ControlProtocolError(
                    f"the engine at {where} speaks {hello.get('protocol')!r}, this client "
                    f"{protocol.PROTOCOL!r}.",
                    fix="Use the CLI and panel of the same bridge version as the engine.",
                )
            server_nonce = str(hello["nonce"])
            mine = protocol.new_nonce()
            conn.send_bytes(
                protocol.encode(
                    {
                        "protocol": protocol.PROTOCOL,
                        "nonce": mine,
                        "proof": protocol.client_proof(key, server_nonce),
                    }
                )
            )
            answer = self._decode(
                protocol.receive(conn, CONNECT_TIMEOUT, protocol.MAX_HANDSHAKE_BYTES)
            )
        except protocol.FrameTimeout:
            raise ControlTimeout(
                f"the engine at {where} did not complete the handshake in time."
            ) from None
        except (EOFError, OSError):
            raise EngineNotRunning(
                f"the engine closed the connection at {where} during the handshake.",
                fix=START_HINT,
            ) from None
        if answer.get("ok") is not True:
            raise self._error(answer)
        expected = protocol.server_proof(key, mine, server_nonce)
        if not protocol.proofs_match(expected, answer.get("proof")):
            raise ControlAuthError(
                f"the process answering at {where} does not hold the engine's key.",
                fix="Stop whatever else listens there and restart the engine.",
            )

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()

    @staticmethod
    def _decode(data: bytes) -> dict[str, Any]:
        try:
            obj = protocol.decode(data)
        except ValueError as exc:
            raise ControlProtocolError(f"the engine's answer is not JSON ({exc}).") from None
        if not isinstance(obj, dict):
            raise ControlProtocolError("the engine's answer is not a JSON object.")
        return obj

    @staticmethod
    def _error(answer: dict[str, Any]) -> ControlError:
        error = answer.get("error")
        if not isinstance(error, dict):
            return ControlProtocolError("the engine's error answer has no error object.")
        return engine_error(
            str(error.get("kind") or "internal"),
            str(error.get("message") or "the engine refused the request"),
            str(error.get("fix") or ""),
        )

    @staticmethod
    def _parse(parse: Callable[[Any], T], result: Any) -> T:
        try:
            return parse(result)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ControlProtocolError(
                f"the engine's answer has an unexpected shape ({type(exc).__name__}: {exc})."
            ) from None

    def close(self) -> None:
        """Close the connection; a call blocked in another thread (a long-poll)
        ends with ControlConnectionLost (POSIX: at once; Windows: at its timeout).
        Calls after close raise ControlConnectionLost."""
        self._closed = True
        conn = self._conn
        if conn is not None:
            protocol.interrupt(conn)
        with self._lock:
            self._drop()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


__all__ = [
    "BookingsDisabled",
    "ControlAuthError",
    "ControlClient",
    "ControlConnectionLost",
    "ControlError",
    "ControlProtocolError",
    "ControlTimeout",
    "EngineError",
    "EngineNotRunning",
    "EnginePaused",
    "ExceptionNotOpenError",
    "InvalidResolutionError",
    "LogPage",
    "PauseState",
    "RequestRejected",
    "SyncScheduled",
    "VersionInfo",
]


def _report_from_json(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict) or "outcomes" not in obj:
        raise ValueError("a booking report must be an object with outcomes")
    return dict(obj)
