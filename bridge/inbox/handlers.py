"""What the inbox does with an item: the handler contract and the control handlers.

A :class:`Handler` is registered per item type (``Mapping[str, Handler]``).
The inbox loop calls :meth:`Handler.validate` on the payload before anything
acts, then :meth:`Handler.handle` with the stored item, and stores the
returned :class:`~bridge.cloud.protocol.InboxResult` before it is posted.

Contract for handlers:

* ``validate`` raises :class:`InvalidRequest` with a specific message naming
  the field (``entities[2]``), never repeating a value that could be personal
  data. It must not act.
* ``handle`` is idempotent per item id. It runs once per item in normal
  operation; only a crash after it acted and before its result was stored
  runs it again, with ``item.attempt`` above 1 (a booking handler checks
  the PMS for its own earlier hold then). It may raise
  :class:`InvalidRequest` (rejected with that code) or a
  :class:`~bridge.errors.BridgeError` (retried later, then routed to review).
* Handlers run on the inbox loop's thread, one item at a time.

:func:`control_handlers` builds the handlers for ``sync.request`` and
``reconcile.request``; they only ask the engine (:class:`SyncControl`) to
schedule work and answer ``confirmed`` with ``sync_scheduled`` or
``reconcile_scheduled``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bridge.cloud.protocol import InboxResult, Reason

SYNC_REQUEST = "sync.request"
RECONCILE_REQUEST = "reconcile.request"
BOOKING_TYPES = ("booking.request", "booking.cancel", "booking.reschedule")
KNOWN_TYPES: frozenset[str] = frozenset((*BOOKING_TYPES, SYNC_REQUEST, RECONCILE_REQUEST))
"""Item types of Cloud API v1. A known type without a handler in this engine
waits; any other type is rejected as ``unsupported_type``."""

MAX_ENTITIES = 64
MAX_KEYS = 1_000
MAX_KEY_LENGTH = 100  # row_state.key


class InvalidRequest(ValueError):
    """An item the bridge will not act on; becomes a ``rejected`` result.

    ``message`` names the field and the rule, never a value from the payload.
    Raised by handlers and caught by the inbox loop; it never leaves
    :mod:`bridge.inbox`.
    """

    def __init__(self, message: str, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class ReceivedItem:
    """An inbox item as stored locally. ``attempt`` is 1 on the first try."""

    id: str
    type: str
    created_at: str
    payload: Mapping[str, Any]
    attempt: int


class Handler(Protocol):
    def validate(self, payload: Mapping[str, Any]) -> None:
        """Raise :class:`InvalidRequest` if the payload may not be acted on."""

    def handle(self, item: ReceivedItem) -> InboxResult:
        """Act on a validated item; return its result (see the module contract)."""


class SyncControl(Protocol):
    """What the engine offers the inbox: schedule work, never wait for it.

    Both calls return at once; repeated requests merge (five "sync now" are
    one sync). ``entities`` is never empty: the handlers expand "everything"
    to every profile entity.
    """

    def request_sync(self, entities: Sequence[str], keys: Sequence[str] = ()) -> None: ...

    def request_reconcile(self, entities: Sequence[str]) -> None: ...


def confirmed(code: str, message: str) -> InboxResult:
    return InboxResult("confirmed", reason=Reason(code, message))


def rejected(code: str, message: str) -> InboxResult:
    return InboxResult("rejected", reason=Reason(code, message))


def parse_entities(payload: Mapping[str, Any], known: Sequence[str]) -> tuple[str, ...]:
    """``payload["entities"]`` checked against ``known``; empty means all of them."""
    if "entities" not in payload:
        raise InvalidRequest("entities is required (an empty list means every entity)")
    raw = payload["entities"]
    if not isinstance(raw, list):
        raise InvalidRequest("entities must be a list of entity names")
    if len(raw) > MAX_ENTITIES:
        raise InvalidRequest(f"entities has more than {MAX_ENTITIES} names")
    names: list[str] = []
    for index, name in enumerate(raw):
        if not isinstance(name, str):
            raise InvalidRequest(f"entities[{index}] must be a string")
        if name not in known:
            raise InvalidRequest(
                f"entities[{index}] is not an entity of this practice's PMS profile "
                f"(known: {', '.join(known)})"
            )
        if name not in names:
            names.append(name)
    return tuple(names) if names else tuple(known)


def parse_keys(payload: Mapping[str, Any], entities: Sequence[str]) -> tuple[str, ...]:
    """Optional ``payload["keys"]``: record keys of exactly one named entity."""
    raw = payload.get("keys")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidRequest("keys must be a list of record keys")
    if len(raw) > MAX_KEYS:
        raise InvalidRequest(f"keys has more than {MAX_KEYS} entries")
    if raw and len(payload.get("entities") or ()) != 1:
        raise InvalidRequest("keys needs exactly one entity in entities")
    for index, key in enumerate(raw):
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_LENGTH:
            raise InvalidRequest(
                f"keys[{index}] must be a string of 1 to {MAX_KEY_LENGTH} characters"
            )
    return tuple(dict.fromkeys(raw))


class SyncRequestHandler:
    """``sync.request {"entities": [...], "keys"?: [...]}``: schedule a sync."""

    def __init__(self, control: SyncControl, entities: Collection[str]) -> None:
        self.control = control
        self.entities = tuple(entities)

    def validate(self, payload: Mapping[str, Any]) -> None:
        parse_keys(payload, parse_entities(payload, self.entities))

    def handle(self, item: ReceivedItem) -> InboxResult:
        entities = parse_entities(item.payload, self.entities)
        keys = parse_keys(item.payload, entities)
        self.control.request_sync(entities, keys)
        what = f"{len(keys)} record(s) of {entities[0]}" if keys else f"{len(entities)} entities"
        return confirmed("sync_scheduled", f"sync of {what} scheduled")


class ReconcileRequestHandler:
    """``reconcile.request {"entities": [...]}``: schedule a checksum sweep."""

    def __init__(self, control: SyncControl, entities: Collection[str]) -> None:
        self.control = control
        self.entities = tuple(entities)

    def validate(self, payload: Mapping[str, Any]) -> None:
        parse_entities(payload, self.entities)

    def handle(self, item: ReceivedItem) -> InboxResult:
        entities = parse_entities(item.payload, self.entities)
        self.control.request_reconcile(entities)
        return confirmed(
            "reconcile_scheduled", f"reconciliation of {len(entities)} entities scheduled"
        )


def control_handlers(control: SyncControl, entities: Collection[str]) -> dict[str, Handler]:
    """Handlers for ``sync.request`` and ``reconcile.request`` (``entities``: the profile's)."""
    return {
        SYNC_REQUEST: SyncRequestHandler(control, entities),
        RECONCILE_REQUEST: ReconcileRequestHandler(control, entities),
    }
