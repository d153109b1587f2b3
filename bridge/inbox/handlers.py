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
``reconcile.request``; they ask the engine (:class:`SyncControl`) to
schedule work and answer ``confirmed`` with ``sync_scheduled`` or
``reconcile_scheduled``. A ``sync.request`` naming ``keys`` waits (at most
:data:`RECORDS_WAIT_SECONDS`) for those records to be pushed and answers
what happened to each: ``records_pushed``, ``records_partly_found`` (the
missing keys listed), ``rejected`` ``records_not_found`` when none exists;
if the PMS does not answer in time, ``sync_scheduled`` (they go when it does).
"""

from __future__ import annotations

import re
import time
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
RECORD_KEY = re.compile(r"[1-9][0-9]{0,18}")
"""A record key: the PMS's positive whole-number primary key (every Open
Dental table has one), as a string."""
RECORDS_WAIT_SECONDS = 10.0


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

    def await_records(
        self, entity: str, keys: Sequence[str], since: float, timeout: float
    ) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """(found, missing) keys once each was pushed after ``since`` (monotonic);
        None after ``timeout`` seconds."""
        ...


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


def parse_keys(
    payload: Mapping[str, Any],
    entities: Sequence[str],
    record_entities: Collection[str] | None = None,
) -> tuple[str, ...]:
    """Optional ``payload["keys"]``: keys of exactly one named entity.

    Keys of a PMS record entity (every entity when ``record_entities`` is
    None) must be record numbers (:data:`RECORD_KEY`); an entity the bridge
    computes (``availability``) takes any short key."""
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
        numbered = record_entities is None or (entities and entities[0] in record_entities)
        if numbered and not RECORD_KEY.fullmatch(key):
            raise InvalidRequest(
                f'keys[{index}] is not a record key (a positive whole number such as "1234")'
            )
    return tuple(dict.fromkeys(raw))


class SyncRequestHandler:
    """``sync.request {"entities": [...], "keys"?: [...]}``: schedule a sync."""

    def __init__(
        self,
        control: SyncControl,
        entities: Collection[str],
        record_entities: Collection[str] | None = None,
    ) -> None:
        self.control = control
        self.entities = tuple(entities)
        self.record_entities = None if record_entities is None else tuple(record_entities)

    def validate(self, payload: Mapping[str, Any]) -> None:
        parse_keys(payload, parse_entities(payload, self.entities), self.record_entities)

    def handle(self, item: ReceivedItem) -> InboxResult:
        entities = parse_entities(item.payload, self.entities)
        keys = parse_keys(item.payload, entities, self.record_entities)
        since = time.monotonic()
        self.control.request_sync(entities, keys)
        records = self.record_entities is None or entities[0] in self.record_entities
        if not keys or not records:
            return confirmed("sync_scheduled", f"sync of {len(entities)} entities scheduled")
        entity = entities[0]
        done = self.control.await_records(entity, keys, since, RECORDS_WAIT_SECONDS)
        if done is None:
            return confirmed(
                "sync_scheduled",
                f"sync of {len(keys)} record(s) of {entity} scheduled; the PMS did not "
                f"answer within {RECORDS_WAIT_SECONDS:.0f} s, they are pushed when it does",
            )
        found, missing = done
        listed = ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else "")
        if not found:
            return rejected(
                "records_not_found", f"no {entity} record with the key(s) asked for: {listed}"
            )
        if missing:
            return confirmed(
                "records_partly_found",
                f"pushed {len(found)} {entity} record(s); not in the PMS: {listed}",
            )
        return confirmed("records_pushed", f"pushed {len(found)} {entity} record(s) now")


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


def control_handlers(
    control: SyncControl,
    entities: Collection[str],
    record_entities: Collection[str] | None = None,
) -> dict[str, Handler]:
    """Handlers for ``sync.request`` and ``reconcile.request`` (``entities``: what a
    request may name; ``record_entities``: those read from the PMS, default all)."""
    return {
        SYNC_REQUEST: SyncRequestHandler(control, entities, record_entities),
        # only what is read from the PMS can be reconciled (availability is computed)
        RECONCILE_REQUEST: ReconcileRequestHandler(
            control, entities if record_entities is None else record_entities
        ),
    }
