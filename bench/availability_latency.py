"""Availability latency: a diary change committed in the PMS -> the cloud's availability.

    .venv/bin/python bench/availability_latency.py                  # demo practice in MariaDB
    .venv/bin/python bench/availability_latency.py --target var/bench/avail.sqlite3 --edits 50

Builds the sample practice (``--size demo``, rebuilt each run), starts the
reference cloud and the engine as processes (``poll_interval_seconds`` =
``--poll-interval``, default 0.5 s, as ``bench/delta_latency.py``), waits
for the first sync and for every published day to reach the cloud, then
makes ``--edits`` diary changes at ``--per-minute``, each on its own local
day (the days rotate, so two edits of a day are far apart), through a raw
connection as the PMS's own client would:

* ``book`` (half): an appointment in a slot the cloud shows as free;
* ``cancel`` (a third): an earlier booking deleted, with the tombstone Open
  Dental writes (``deletedobject``);
* ``blockout``: a blockout over a slot the cloud shows as free.

Each of them changes its day's free slots, so its day's ``availability``
record must change. Latency = the cloud's ``received_at`` of the first
change to that day's record it *applied* after the edit's commit, minus
the commit time (one machine, one clock). An edit with no such change
within ``--grace`` seconds is *never seen* (must be 0). Target: p95 <= 2 s.
The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import _harness as h
from delta_latency import stats

from bridge.pms.profile import load_profile
from sandbox.practice import build_practice

DEFAULT_TARGET = "mariadb://root@127.0.0.1/bench_availability"
P95_TARGET = 2.0
DAYS = 60  # the default [bookings] availability_days
ROTATE_DAYS = 25  # edit i goes to local day 1 + i % ROTATE_DAYS
LA = ZoneInfo(h.TIMEZONE)


@dataclass
class Edit:
    action: str
    day: str
    committed_at: float  # epoch seconds


def free_slot(row: Any, rng: random.Random) -> tuple[str, str, datetime, int] | None:
    """(operatory, provider, start, minutes) of a slot the cloud shows free, or None."""
    data = row.data if row is not None else None
    openings = [o for o in (data or {}).get("openings", []) if o["slots"]]
    if not openings:
        return None
    opening = rng.choice(openings)
    slot = rng.choice(opening["slots"])
    start = datetime.fromisoformat(slot["start"]).astimezone(LA)
    return opening["operatory_id"], opening["provider_id"], start, opening["duration_minutes"]


def wall(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


class Desk:
    """Edits the diary through a raw connection (autocommit: each edit commits)."""

    def __init__(self, connstr: str, cloud: h.Cloud, seed: int) -> None:
        self.conn = h.pms_connect(connstr)
        self.cloud = cloud
        self.rng = random.Random(seed)
        self.booked: list[tuple[int, str]] = []  # (AptNum, day)

    def edit(self, day: date) -> Edit | None:
        key = day.isoformat()
        roll = self.rng.random()
        if roll < 0.3 and self.booked:
            return self._cancel()
        row = self.cloud.admin.mirror("availability").get(key)
        found = free_slot(row, self.rng)
        if found is None:
            return None
        op, prov, start, minutes = found
        if roll < 0.8:
            self.conn.execute(
                "INSERT INTO appointment (PatNum, AptStatus, Pattern, Op, ProvNum, ProvHyg,"
                " AptDateTime, IsHygiene, Note) VALUES (1, 1, ?, ?, ?, 0, ?, 0, '')",
                ("X" * max(1, minutes // 5), int(op), int(prov), wall(start)),
            )
            committed = time.time()
            num = int(self.conn.execute("SELECT LAST_INSERT_ID()").fetchone()[0])
            self.booked.append((num, key))
            return Edit("book", key, committed)
        stop = start + timedelta(minutes=minutes)
        self.conn.execute(
            "INSERT INTO schedule (SchedDate, StartTime, StopTime, SchedType, ProvNum,"
            " BlockoutType, Note, Status, EmployeeNum, ClinicNum)"
            " VALUES (?, ?, ?, 2, 0, 0, '', 0, 0, 0)",
            (key, start.strftime("%H:%M:%S"), stop.strftime("%H:%M:%S")),
        )
        num = int(self.conn.execute("SELECT LAST_INSERT_ID()").fetchone()[0])
        self.conn.execute(
            "INSERT INTO scheduleop (ScheduleNum, OperatoryNum) VALUES (?, ?)", (num, int(op))
        )
        return Edit("blockout", key, time.time())

    def _cancel(self) -> Edit:
        num, key = self.booked.pop(self.rng.randrange(len(self.booked)))
        self.conn.autocommit = False  # Open Dental deletes and writes its tombstone at once
        self.conn.execute("DELETE FROM appointment WHERE AptNum = ?", (num,))
        self.conn.execute("INSERT INTO deletedobject (ObjectNum, ObjectType) VALUES (?, 0)", (num,))
        self.conn.commit()
        committed = time.time()
        self.conn.autocommit = True
        return Edit("cancel", key, committed)

    def close(self) -> None:
        self.conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", default=DEFAULT_TARGET)
    parser.add_argument("--size", default="demo")
    parser.add_argument("--edits", type=int, default=100)
    parser.add_argument("--per-minute", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--grace", type=float, default=30.0, help="wait for stragglers")
    parser.add_argument("--first-sync-timeout", type=float, default=900.0)
    parser.add_argument("--work", type=Path, default=Path("var/bench/availability"))
    args = parser.parse_args()
    work = args.work.resolve()
    today = date.today()

    report = build_practice(args.target, size=args.size, today=today, replace=True)
    h.say(f"built the {args.size} practice in {report.seconds:.1f} s: {args.target}")
    connstr = h.connection_string(args.target)
    expected = h.entity_counts(connstr, list(load_profile("opendental").entities))

    cloud = h.Cloud(work / "cloud")
    home = h.BridgeHome(work / "home", connstr, cloud, poll_interval=args.poll_interval)
    engine = home.start_engine()
    edits: list[Edit] = []
    latencies: list[float | None] = []
    try:
        h.say(f"first sync of {sum(expected.values()):,} records ...")
        done = h.wait_for_first_sync(home, cloud, engine, expected, timeout=args.first_sync_timeout)
        if done is None:
            raise SystemExit("the first sync did not finish:\n" + engine.tail())
        deadline = time.monotonic() + 120
        while len(cloud.admin.mirror("availability")) < DAYS:
            if time.monotonic() > deadline:
                raise SystemExit("the availability did not reach the cloud:\n" + engine.tail())
            time.sleep(0.5)
        h.say(f"  done in {done - engine.started:.1f} s; {DAYS} days published; settling 5 s")
        time.sleep(5.0)
        position = cloud.log_position()
        cpu0, wall0 = engine.cpu(), time.monotonic()
        desk = Desk(connstr, cloud, args.seed)
        gap = 60.0 / args.per_minute
        try:
            for i in range(args.edits):
                made = desk.edit(today + timedelta(days=1 + i % ROTATE_DAYS))
                if made is not None:
                    edits.append(made)
                time.sleep(gap)
        finally:
            desk.close()
        h.say(f"  {len(edits)} edits made; waiting for the cloud")
        until = time.monotonic() + args.grace
        while True:
            applied: dict[str, list[float]] = {}
            for entity, key, received in cloud.applied_after(position):
                if entity == "availability":
                    applied.setdefault(key, []).append(datetime.fromisoformat(received).timestamp())
            latencies = []
            for made in edits:
                later = [t for t in applied.get(made.day, []) if t >= made.committed_at]
                latencies.append(min(later) - made.committed_at if later else None)
            if all(v is not None for v in latencies) or time.monotonic() > until:
                break
            time.sleep(1.0)
        window_cpu, window = engine.cpu() - cpu0, time.monotonic() - wall0
    finally:
        engine.stop()
        cloud.stop()

    seen = [v for v in latencies if v is not None]
    unseen = sum(1 for v in latencies if v is None)
    overall = stats(seen)
    by_action = {
        action: stats(
            [
                v
                for e, v in zip(edits, latencies, strict=True)
                if e.action == action and v is not None
            ]
        )
        for action in sorted({e.action for e in edits})
    }
    h.say("\nlatency (s) from COMMIT to the day's availability applied in the cloud:")
    h.say(f"  {'edit':<10}{'n':>5}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}")
    for name, s in [*by_action.items(), ("all", overall)]:
        if s["count"]:
            h.say(
                f"  {name:<10}{s['count']:>5}{s['p50']:>8.2f}{s['p95']:>8.2f}"
                f"{s['p99']:>8.2f}{s['max']:>8.2f}"
            )
    h.say(f"never seen: {unseen}")
    h.say(
        f"engine CPU while editing: {window_cpu:.1f} s in {window:.0f} s "
        f"({100 * window_cpu / window:.1f} % of one core)"
    )
    met = bool(overall["count"]) and overall["p95"] <= P95_TARGET and not unseen
    result = {
        "benchmark": "availability_latency",
        "date": date.today().isoformat(),
        "machine": h.machine(),
        "target": args.target,
        "size": args.size,
        "edits": len(edits),
        "per_minute": args.per_minute,
        "seed": args.seed,
        "poll_interval_s": args.poll_interval,
        "availability_days": DAYS,
        "latency_s": {"all": overall, "by_edit": by_action},
        "never_seen": unseen,
        "engine_cpu_pct_while_editing": round(100 * window_cpu / window, 1),
        "targets": {"p95_max_s": P95_TARGET, "never_seen": 0},
        "met": met,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
