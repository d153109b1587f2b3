"""``python bench/booking_report.py [--items N] [--days D]``: what the daily booking report costs.

The report (:mod:`bridge.bookings.report`) is computed from local state only.
This fills a fresh state store with ``N`` booking inbox items spread over
``D`` days (results of every outcome, a front-desk exception for a third of
them, a booking row per item) and measures, in process:

* ``fingerprint_ms``: the check the ``booking-report`` loop runs every 15 s
  (when nothing changed this is all it does);
* ``build_ms``: one day's report;
* ``publish_ms`` / ``republish_ms``: staging a day's report into the outbox,
  then staging it again unchanged (dropped by the content hash).

Prints one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bridge.bookings.report import build_report, fingerprint, publish
from bridge.state import open_state
from bridge.state.models import Booking, BookingException, InboxItem
from bridge.sync.outbox import Outbox

TZ = ZoneInfo("America/Los_Angeles")
RESULTS = (
    ("confirmed", ""),
    ("held", "approval_required"),
    ("conflict", "slot_taken"),
    ("needs_review", "unconfirmed_match"),
    ("rejected", "invalid_request"),
)


def fill(path: Path, items: int, days: int) -> datetime:
    store = open_state(path)
    rng = random.Random(7)
    now = datetime.now(UTC).replace(microsecond=0)
    with store.write() as session:
        for n in range(items):
            at = now - timedelta(days=rng.randrange(days), minutes=rng.randrange(600))
            status, code = RESULTS[n % len(RESULTS)]
            result = {"status": status, "pms_ids": {}, "alternatives": []}
            if code:
                result["reason"] = {"code": code, "message": code}
            item_id = f"item-{n}"
            session.add(
                InboxItem(
                    id=item_id,
                    type="booking.request",
                    payload=json.dumps({"source": rng.choice(["online", "phone-ai", "google"])}),
                    created_at=at.isoformat(),
                    received_at=at,
                    state="done",
                    result=json.dumps(result),
                    attempts=1,
                    updated_at=at,
                )
            )
            session.add(
                Booking(
                    item_id=item_id,
                    type="booking.request",
                    stage="confirmed",
                    patient_created=n % 4 == 0,
                    reason_code=code,
                    detail="{}",
                    created_at=at,
                    updated_at=at,
                )
            )
            if code and code != "invalid_request":
                session.add(
                    BookingException(
                        item_id=item_id, reason_code=code, state="open", context="{}", created_at=at
                    )
                )
    store.close()
    return now


def timed(work: Callable[[], object], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        runs.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(runs), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "state.sqlite3"
        now = fill(path, args.items, args.days)
        store = open_state(path)
        outbox = Outbox(store, "bench-agent")
        today = now.astimezone(TZ).date()
        report = build_report(store, today, TZ, now=now)
        figures = {
            "bench": "booking_report",
            "items": args.items,
            "days": args.days,
            "items_today": report["total"],
            "fingerprint_ms": timed(lambda: fingerprint(store), args.repeat),
            "build_ms": timed(lambda: build_report(store, today, TZ, now=now), args.repeat),
            "publish_ms": timed(lambda: publish(store, outbox, TZ, [today], now), 1),
            "republish_ms": timed(lambda: publish(store, outbox, TZ, [today], now), args.repeat),
            "republish_staged": publish(store, outbox, TZ, [today], now),
            "python": platform.python_version(),
            "cpus": __import__("os").cpu_count(),
        }
        store.close()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
