"""The daily booking report: what the bridge did with each day's bookings.

One report per practice-local day (the day the bridge *received* the
booking item), computed from local state only: the inbox records of the
three booking item types (``inbox_item``: result status and reason code),
the pipeline's bookings (``booking``: new patients) and the front desk's
exceptions (``booking_exception``: why a person was needed, how they
decided). It never reads the PMS.

Each item counts once, under what the bridge did *on its own* first:

=======================  ===================================================
``landed_automatically``  confirmed without a person (no exception)
``held_for_approval``     written as a hold for the front desk's approval
                          (policy ``approve``; exception ``approval_required``)
``conflicted``            the slot was not free (``slot_taken``, ``blockout``,
                          ...): answered ``conflict`` with alternatives
``needed_person``         any other doubt for the front desk (patient match,
                          late change, a refused PMS write, retries run out)
``rejected``              refused (invalid request, unknown type, policy
                          ``never``, ...)
``waiting``               not answered yet (being handled, or retried)
=======================  ===================================================

Beside the outcomes: reason codes per outcome, counts per item type,
``front_desk`` (exceptions opened for the day's items, resolved, how, and
what the items' results became after a person decided), collisions found
after the fact (``double_booked``), new patients created, and the
``source`` tags of the day's booking requests. **No personal data**: only
counts, codes and tags, each checked against a pattern (anything else is
counted as ``other``); never a name, birth date, phone, e-mail, note or
free-text message.

:class:`BookingReportLoop` pushes the reports to the cloud as the
``report`` entity (key ``bookings-YYYY-MM-DD``) through the outbox: within
:data:`CHECK_SECONDS` of any change to the bookings (a cheap fingerprint of
the three tables is compared), and once more when a day is over (``final``
true). The outbox drops a report whose content did not change, so an idle
practice costs one local query per check and nothing else.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bridge.errors import BridgeError
from bridge.health import Health, record_health
from bridge.state import StateStore
from bridge.state.models import Booking, BookingException, InboxItem
from bridge.sync.outbox import Outbox
from bridge.sync.records import Record, content_hash

log = logging.getLogger(__name__)

ENTITY = "report"
KIND = "bookings"
BOOKING_TYPES = ("booking.request", "booking.cancel", "booking.reschedule")
OUTCOMES = (
    "landed_automatically",
    "held_for_approval",
    "conflicted",
    "needed_person",
    "rejected",
    "waiting",
)
CONFLICT_REASONS = frozenset(
    {
        "slot_taken",
        "provider_busy",
        "outside_hours",
        "blockout",
        "holiday",
        "too_soon",
        "outside_window",
        "no_operatory",
    }
)
AFTER_THE_FACT = "double_booked"  # opened later, on a booking that had landed
CHECK_SECONDS = 15.0
FINALIZE_DAYS = 7  # past days re-checked (and marked final) at start and at midnight
_CODE = re.compile(r"[a-z][a-z0-9_.]{0,63}")
_SOURCE = re.compile(r"[a-z0-9][a-z0-9._-]{0,39}")


def report_key(day: date) -> str:
    return f"{KIND}-{day.isoformat()}"


def _code(value: object) -> str:
    return value if isinstance(value, str) and _CODE.fullmatch(value) else "other"


@dataclass(frozen=True)
class _Item:
    id: str
    type: str
    status: str | None
    reason: str
    source: str | None


def _first_outcome(item: _Item, first_exception: str | None) -> tuple[str, str]:
    """(outcome, reason code) of what the bridge did on its own first."""
    if first_exception is not None:
        if first_exception == "approval_required":
            return "held_for_approval", first_exception
        if first_exception in CONFLICT_REASONS:
            return "conflicted", first_exception
        return "needed_person", first_exception
    status = item.status
    if status is None:
        return "waiting", "not_answered"
    outcome = {
        "confirmed": "landed_automatically",
        "held": "held_for_approval",
        "conflict": "conflicted",
        "needs_review": "needed_person",
        "rejected": "rejected",
    }.get(status, "needed_person")
    return outcome, item.reason or status


def _day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), tz).astimezone(UTC)
    return start, end


def build_report(
    store: StateStore, day: date, tz: ZoneInfo, *, now: datetime | None = None
) -> dict[str, Any]:
    """The report of ``day`` (practice-local) as JSON-ready data (see the module docstring)."""
    now = now or datetime.now(UTC)
    start, end = _day_bounds(day, tz)
    with store.read() as session:
        rows = session.execute(
            select(InboxItem.id, InboxItem.type, InboxItem.result, InboxItem.payload)
            .where(
                InboxItem.type.in_(BOOKING_TYPES),
                InboxItem.received_at >= start,
                InboxItem.received_at < end,
            )
            .order_by(InboxItem.received_at)
        ).all()
        ids = [r.id for r in rows]
        exceptions: dict[str, list[BookingException]] = defaultdict(list)
        created: set[str] = set()
        for part in range(0, len(ids), 500):
            chunk = ids[part : part + 500]
            for exc in session.scalars(
                select(BookingException)
                .where(BookingException.item_id.in_(chunk))
                .order_by(BookingException.id)
            ):
                exceptions[exc.item_id].append(exc)
            created.update(
                session.scalars(
                    select(Booking.item_id).where(
                        Booking.item_id.in_(chunk), Booking.patient_created.is_(True)
                    )
                ).all()
            )
    items = [_item(r.id, r.type, r.result, r.payload) for r in rows]
    outcomes: Counter[str] = Counter()
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    by_type: dict[str, Counter[str]] = defaultdict(Counter)
    opened: Counter[str] = Counter()
    resolutions: Counter[str] = Counter()
    after_person: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    still_open = collisions = 0
    for item in items:
        found = exceptions.get(item.id, [])
        own = [e for e in found if e.reason_code != AFTER_THE_FACT]
        outcome, reason = _first_outcome(item, own[0].reason_code if own else None)
        outcomes[outcome] += 1
        reasons[outcome][_code(reason)] += 1
        by_type[item.type][outcome] += 1
        if item.type == "booking.request" and item.source is not None:
            sources[item.source] += 1
        for exc in found:
            opened[_code(exc.reason_code)] += 1
            if exc.reason_code == AFTER_THE_FACT:
                collisions += 1
            if exc.state == "resolved":
                resolutions[_code(exc.resolution)] += 1
            else:
                still_open += 1
        if own and all(e.state == "resolved" for e in own) and item.status is not None:
            after_person[_code(item.status)] += 1
    return {
        "kind": KIND,
        "date": day.isoformat(),
        "timezone": tz.key,
        "final": now.astimezone(tz).date() > day,
        "generated_at": now.astimezone(UTC).isoformat(timespec="seconds"),
        "total": len(items),
        "outcomes": {name: outcomes.get(name, 0) for name in OUTCOMES},
        "reasons": {
            name: dict(sorted(reasons[name].items())) for name in OUTCOMES if reasons[name]
        },
        "by_type": {
            kind: {name: by_type[kind].get(name, 0) for name in OUTCOMES} for kind in BOOKING_TYPES
        },
        "front_desk": {
            "exceptions_opened": sum(opened.values()),
            "by_reason": dict(sorted(opened.items())),
            "resolved": sum(resolutions.values()),
            "open": still_open,
            "resolutions": dict(sorted(resolutions.items())),
            "results_after_decision": dict(sorted(after_person.items())),
        },
        "collisions_after_booking": collisions,
        "new_patients": len(created),
        "sources": dict(sorted(sources.items())),
    }


def _item(item_id: str, kind: str, result: str | None, payload: str) -> _Item:
    status: str | None = None
    reason = ""
    if result:
        try:
            body = json.loads(result)
        except ValueError:
            body = {}
        raw_status = body.get("status")
        status = raw_status if isinstance(raw_status, str) else None
        raw_reason = body.get("reason")
        if isinstance(raw_reason, Mapping):
            reason = _code(raw_reason.get("code")) if raw_reason.get("code") else ""
    source: str | None = None
    if kind == "booking.request":
        try:
            raw = json.loads(payload)
        except ValueError:
            raw = {}
        value = raw.get("source") if isinstance(raw, Mapping) else None
        if value is not None:
            source = value if isinstance(value, str) and _SOURCE.fullmatch(value) else "other"
    return _Item(item_id, kind, _code(status) if status else None, reason, source)


def report_days(store: StateStore, tz: ZoneInfo, since: datetime) -> list[date]:
    """Practice-local days with booking items received since ``since`` (UTC)."""
    with store.read() as session:
        stamps = session.scalars(
            select(InboxItem.received_at).where(
                InboxItem.type.in_(BOOKING_TYPES), InboxItem.received_at >= since
            )
        ).all()
    return sorted({stamp.astimezone(tz).date() for stamp in stamps})


def fingerprint(store: StateStore) -> tuple[object, ...]:
    """Changes whenever a booking item, booking or exception changes (cheap)."""
    with store.read() as session:
        inbox = session.execute(
            select(func.count(), func.max(InboxItem.updated_at)).where(
                InboxItem.type.in_(BOOKING_TYPES)
            )
        ).one()
        bookings = session.execute(select(func.count(), func.max(Booking.updated_at))).one()
        desk = session.execute(
            select(
                func.count(), func.max(BookingException.id), func.max(BookingException.resolved_at)
            )
        ).one()
    return (*inbox, *bookings, *desk)


def publish(
    store: StateStore, outbox: Outbox, tz: ZoneInfo, days: Iterable[date], now: datetime
) -> int:
    """Stage the reports of ``days``; returns how many changed (were staged)."""
    records = []
    for day in days:
        data = build_report(store, day, tz, now=now)
        stable = {k: v for k, v in data.items() if k != "generated_at"}
        records.append(Record(ENTITY, report_key(day), data, None, content_hash(stable)))
    if not records:
        return 0
    with store.write() as session:
        return outbox.stage(session, records).staged


class BookingReportLoop:
    """Keeps the cloud's ``report`` entity current (see the module docstring).

    ``wake_uplink`` is set when a report was staged. Runs in its own thread.
    """

    def __init__(
        self,
        store: StateStore,
        outbox: Outbox,
        tz: ZoneInfo,
        wake_uplink: threading.Event,
        *,
        check_seconds: float = CHECK_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.tz = tz
        self.wake_uplink = wake_uplink
        self.check_seconds = check_seconds
        self._clock = clock
        self._seen: tuple[object, ...] | None = None
        self._today: date | None = None

    def __call__(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.check()
            except BridgeError as exc:
                record_health(self.store, Health.from_error("booking-report", exc))
            stop.wait(self.check_seconds)

    def check(self) -> int:
        """One check: publish what changed, finalize days that ended. Returns staged count."""
        now = self._clock()
        today = now.astimezone(self.tz).date()
        seen = fingerprint(self.store)
        days: set[date] = set()
        if self._today != today:  # start, or midnight passed: (re)check the last days
            since = now - timedelta(days=FINALIZE_DAYS)
            days.update(report_days(self.store, self.tz, since))
        if seen != self._seen:
            since = datetime.combine(today - timedelta(days=1), time(), self.tz)
            days.update(report_days(self.store, self.tz, since.astimezone(UTC)))
        staged = publish(self.store, self.outbox, self.tz, sorted(days), now) if days else 0
        self._seen, self._today = seen, today
        if staged:
            self.wake_uplink.set()
            log.info("booking reports staged", extra={"reports": staged})
        return staged


__all__ = [
    "ENTITY",
    "OUTCOMES",
    "BookingReportLoop",
    "build_report",
    "publish",
    "report_key",
]
