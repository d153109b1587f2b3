"""The control channel's operations: arguments checked, the engine asked, JSON answered.

:class:`ControlService` is the ``dispatch(op, args)`` of
:class:`~bridge.control.server.ControlServer`. Each operation validates its
arguments and raises :class:`~bridge.control.server.RequestError` naming the
argument and the rule (never echoing a value); it returns plain JSON values.
It runs on the connection's thread; the engine parts it calls are
thread-safe.

========================  =====================================================
op                        args -> result
========================  =====================================================
``status``                {} -> StatusSnapshot JSON
``events``                {after: int >= 0, wait: 0..25 s} -> {events, next_after}
``sync``                  {entities: [name], keys: [key]} -> SyncScheduled
``pause`` / ``resume``    {by: str} -> PauseState
``exceptions.list``       {state: "open" | "resolved" | null} -> [ExceptionView] (*)
``exceptions.resolve``    {id, action, choice, message, by} -> ResolveOutcome
``support_bundle``        {} -> {path}
``logs``                  {after: cursor | null, limit, level, text} -> LogPage
``version``               {} -> VersionInfo
``booking_report``        {date: "YYYY-MM-DD" | null} -> the day's booking report
========================  =====================================================

(*) Both exception operations answer ``bookings_disabled`` when the engine
has no exception desk (no booking pipeline): the queue is the pipeline's.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Callable, Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

from bridge import __version__
from bridge.bookings.exceptions import (
    OPEN,
    RESOLVED,
    ExceptionDesk,
    ExceptionNotOpen,
    InvalidResolution,
    Resolution,
    list_exceptions,
)
from bridge.control import errors, protocol
from bridge.control.logview import BadCursor, read_page
from bridge.control.results import VersionInfo, action_of, outcome_to_json
from bridge.control.server import RequestError
from bridge.inbox.handlers import InvalidRequest, parse_entities, parse_keys
from bridge.status import read_status

if TYPE_CHECKING:
    from bridge.control.host import ControlHost

MAX_TEXT = 200
MAX_MESSAGE = 500
MAX_BY = 100

Op = Callable[[Mapping[str, Any]], Any]


def _invalid(message: str) -> RequestError:
    return RequestError(errors.INVALID_REQUEST, message)


def _int(args: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = args.get(name, default)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _invalid(f"{name} must be a whole number from {low} to {high:,}")
    return value


def _float(args: Mapping[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = args.get(name, default)
    if value is None:
        return default
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise _invalid(f"{name} must be a number from {low:g} to {high:g}")
    return float(value)


def _text(args: Mapping[str, Any], name: str, limit: int) -> str | None:
    value = args.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise _invalid(f"{name} must be text of at most {limit} characters")
    return value


class ControlService:
    """The operations of one engine (see the module docstring)."""

    def __init__(self, host: ControlHost) -> None:
        self.host = host
        self.ops: dict[str, Op] = {
            "status": self.status,
            "events": self.events,
            "sync": self.sync,
            "pause": self.pause,
            "resume": self.resume,
            "exceptions.list": self.exceptions_list,
            "exceptions.resolve": self.exceptions_resolve,
            "support_bundle": self.support_bundle,
            "logs": self.logs,
            "version": self.version,
            "booking_report": self.booking_report,
        }

    def __call__(self, op: str, args: Mapping[str, Any]) -> Any:
        handler = self.ops.get(op)
        if handler is None:
            raise RequestError(
                errors.UNKNOWN_OP,
                f"'{op[:40]}' is not an operation of this engine "
                f"(known: {', '.join(sorted(self.ops))})",
            )
        unknown = sorted(set(args) - set(ARGS[op]))
        if unknown:
            raise _invalid(
                f"'{op}' takes no argument '{unknown[0][:40]}' "
                f"(it takes: {', '.join(ARGS[op]) or 'none'})"
            )
        return handler(args)

    def status(self, args: Mapping[str, Any]) -> Any:
        return json.loads(read_status(self.host.store).to_json())

    def events(self, args: Mapping[str, Any]) -> Any:
        after = _int(args, "after", 0, 0, 2**53)
        wait = _float(args, "wait", 0.0, 0.0, 25.0)
        events, next_after = self.host.events.since(after, wait=wait)
        return {"events": [e.to_json() for e in events], "next_after": next_after}

    def sync(self, args: Mapping[str, Any]) -> Any:
        payload = {"entities": args.get("entities") or [], "keys": args.get("keys") or []}
        if not payload["keys"]:
            del payload["keys"]
        try:
            entities = parse_entities(payload, self.host.entities)
            keys = parse_keys(payload, entities, self.host.record_entities)
        except InvalidRequest as exc:
            raise _invalid(exc.message) from None
        return self.host.request_sync(entities, keys).to_json()

    def pause(self, args: Mapping[str, Any]) -> Any:
        return self.host.pause(_text(args, "by", MAX_BY) or "").to_json()

    def resume(self, args: Mapping[str, Any]) -> Any:
        return self.host.resume(_text(args, "by", MAX_BY) or "").to_json()

    def exceptions_list(self, args: Mapping[str, Any]) -> Any:
        state = args.get("state", OPEN)
        if state not in (OPEN, RESOLVED, None):
            raise _invalid('state must be "open", "resolved" or null (every state)')
        self._desk()  # the queue is the booking pipeline's: none without it
        return [v.to_json() for v in list_exceptions(self.host.store, state=state)]

    def exceptions_resolve(self, args: Mapping[str, Any]) -> Any:
        exception_id = _int(args, "id", 0, 1, 2**53)
        try:
            action = action_of(args.get("action"))
        except ValueError as exc:
            raise _invalid(str(exc)) from None
        resolution = Resolution(
            action,
            choice=_text(args, "choice", MAX_BY),
            message=_text(args, "message", MAX_MESSAGE) or "",
            by=_text(args, "by", MAX_BY) or "",
        )
        desk = self._desk()
        if self.host.gate.paused:
            raise RequestError(
                errors.PAUSED,
                "the bridge is paused; resolving an exception would write to the PMS",
                "Resume the bridge ('bridge resume'), then try again.",
            )
        try:
            outcome = desk.resolve(exception_id, resolution)
        except ExceptionNotOpen as exc:
            raise RequestError(errors.EXCEPTION_NOT_OPEN, str(exc)) from None
        except InvalidResolution as exc:
            raise RequestError(errors.INVALID_RESOLUTION, str(exc)) from None
        return outcome_to_json(outcome)

    def _desk(self) -> ExceptionDesk:
        desk = self.host.exception_desk()
        if desk is None:
            raise RequestError(
                errors.BOOKINGS_DISABLED,
                "bookings are not enabled in this engine, so it keeps no front-desk exceptions",
                "Configure the diary writer ([writer]) and restart the engine; if it is "
                "configured, 'bridge status' says why bookings are off. 'bridge exceptions "
                "list' still shows exceptions kept from earlier runs.",
            )
        return desk

    def support_bundle(self, args: Mapping[str, Any]) -> Any:
        return {"path": str(self.host.support_bundle())}

    def logs(self, args: Mapping[str, Any]) -> Any:
        try:
            page = read_page(
                self.host.paths.log_dir,
                after=_text(args, "after", 64),
                limit=_int(args, "limit", 200, 1, 1000),
                level=_text(args, "level", 10),
                text=_text(args, "text", MAX_TEXT),
            )
        except (BadCursor, ValueError) as exc:
            raise _invalid(str(exc)) from None
        return page.to_json()

    def version(self, args: Mapping[str, Any]) -> Any:
        return VersionInfo(
            bridge=__version__,
            python=sys.version.split()[0],
            platform=platform.platform(),
            protocol=protocol.PROTOCOL,
            pid=os.getpid(),
        ).to_json()

    def booking_report(self, args: Mapping[str, Any]) -> Any:
        raw = _text(args, "date", 10)
        try:
            day = date.fromisoformat(raw) if raw else None
        except ValueError:
            raise _invalid('date must be a day as "YYYY-MM-DD"') from None
        return self.host.booking_report(day)


ARGS: dict[str, tuple[str, ...]] = {
    "status": (),
    "events": ("after", "wait"),
    "sync": ("entities", "keys"),
    "pause": ("by",),
    "resume": ("by",),
    "exceptions.list": ("state",),
    "exceptions.resolve": ("id", "action", "choice", "message", "by"),
    "support_bundle": (),
    "logs": ("after", "limit", "level", "text"),
    "version": (),
    "booking_report": ("date",),
}
"""The arguments each operation takes; any other is refused by name."""
