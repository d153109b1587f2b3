"""Delta latency: a receptionist's edit in the PMS -> applied in the cloud.

    .venv/bin/python bench/delta_latency.py                   # demo practice in MariaDB
    .venv/bin/python bench/delta_latency.py --target var/bench/delta.sqlite3 --edits 100

Builds the sample practice (``--size demo`` by default, rebuilt each run so
the edits are reproducible), starts the reference cloud and the engine as
processes (``[engine] poll_interval_seconds`` = ``--poll-interval``, default
the allowed minimum 0.5 s), waits for the first sync, then lets the
receptionist simulator (:class:`sandbox.practice.simulator.Receptionist`)
make ``--edits`` edits at ``--per-minute``. For each edit, latency = the
cloud's ``received_at`` of the first change it *applied* to that entity and
key after the edit's commit, minus ``committed_at`` (both clocks are this
machine's). An edit with no such change within ``--grace`` seconds after the
last edit is *never seen* (must be 0).

Target: p95 <= 2 s for the real-time entities (profile cadence ``realtime``:
appointment, patient, schedule, ...). Entities on a slower cadence (claim
and payment: ``frequent``, polled every 60 s) are reported but judged
against their cadence, not the target. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import defaultdict
from datetime import date, datetime
from pathlib import Path
from typing import Any

import _harness as h

from bridge.pms.profile import load_profile
from sandbox.practice import build_practice
from sandbox.practice.simulator import Edit, Receptionist, summarize

DEFAULT_TARGET = "mariadb://root@127.0.0.1/bench_delta"
P95_TARGET = 2.0


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "p50": round(percentile(values, 0.50), 3),
        "p95": round(percentile(values, 0.95), 3),
        "p99": round(percentile(values, 0.99), 3),
        "max": round(max(values), 3),
    }


def applied_since(cloud: h.Cloud, position: int) -> dict[tuple[str, str], list[float]]:
    """(entity, key) -> epoch seconds of the changes the cloud applied after ``position``."""
    found: dict[tuple[str, str], list[float]] = defaultdict(list)
    for entity, key, received in cloud.applied_after(position):
        found[(entity, key)].append(datetime.fromisoformat(received).timestamp())
    return found


def match(edits: list[Edit], applied: dict[tuple[str, str], list[float]]) -> list[float | None]:
    """Per edit: seconds from commit to the first applied change of its key after it."""
    latencies: list[float | None] = []
    for made in edits:
        times = applied.get((made.entity, made.key), [])
        later = [t for t in times if t >= made.committed_at]
        latencies.append(min(later) - made.committed_at if later else None)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", default=DEFAULT_TARGET)
    parser.add_argument("--size", default="demo")
    parser.add_argument("--today", type=date.fromisoformat, default=None)
    parser.add_argument("--no-rebuild", action="store_true", help="reuse the practice as it is")
    parser.add_argument("--edits", type=int, default=200)
    parser.add_argument("--per-minute", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--grace", type=float, default=90.0, help="wait for stragglers")
    parser.add_argument("--first-sync-timeout", type=float, default=900.0)
    parser.add_argument("--work", type=Path, default=Path("var/bench/delta"))
    args = parser.parse_args()
    work = args.work.resolve()
    today = args.today or date.today()

    if not args.no_rebuild:
        report = build_practice(args.target, size=args.size, today=today, replace=True)
        h.say(f"built the {args.size} practice in {report.seconds:.1f} s: {args.target}")
    connstr = h.connection_string(args.target)
    profile = load_profile("opendental")
    realtime = {name for name, spec in profile.entities.items() if spec.cadence == "realtime"}
    entities = list(profile.entities)
    expected = h.entity_counts(connstr, entities)

    cloud = h.Cloud(work / "cloud")
    home = h.BridgeHome(work / "home", connstr, cloud, poll_interval=args.poll_interval)
    engine = home.start_engine()
    edits: list[Edit] = []
    try:
        h.say(f"first sync of {sum(expected.values()):,} records ...")
        done = h.wait_for_first_sync(home, cloud, engine, expected, timeout=args.first_sync_timeout)
        if done is None:
            raise SystemExit("the first sync did not finish:\n" + engine.tail())
        h.say(f"  done in {done - engine.started:.1f} s; settling 5 s")
        time.sleep(5.0)
        position = cloud.log_position()
        cpu0, wall0 = engine.cpu(), time.monotonic()
        h.say(f"receptionist: {args.edits} edits at {args.per_minute:g}/min (seed {args.seed})")
        with Receptionist(connstr, seed=args.seed, today=today) as desk:
            edits = desk.run(args.edits, per_minute=args.per_minute)
        last = time.time()
        h.say(f"  edits done: {json.dumps(summarize(edits))}")
        deadline = time.monotonic() + args.grace
        while True:
            latencies = match(edits, applied_since(cloud, position))
            missing = sum(1 for v in latencies if v is None)
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        window_cpu = engine.cpu() - cpu0
        window = time.monotonic() - wall0
        h.say(f"  waited {time.time() - last:.1f} s after the last edit; {missing} never seen")
    finally:
        engine.stop()
        cloud.stop()

    by_entity: dict[str, list[float]] = defaultdict(list)
    unseen: dict[str, int] = defaultdict(int)
    for made, latency in zip(edits, latencies, strict=True):
        if latency is None:
            unseen[f"{made.entity}/{made.action}"] += 1
        else:
            by_entity[made.entity].append(latency)
    every = [v for v in latencies if v is not None]
    rt = [v for e, vs in by_entity.items() if e in realtime for v in vs]
    overall, realtime_stats = stats(every), stats(rt)
    per_entity = {e: stats(vs) for e, vs in sorted(by_entity.items())}
    h.say("\nlatency (s) from COMMIT to applied in the cloud:")
    h.say(f"  {'entity':<14}{'n':>5}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}")
    rows = [*per_entity.items(), ("real-time", realtime_stats), ("all", overall)]
    for name, s in rows:
        if s["count"]:
            h.say(
                f"  {name:<14}{s['count']:>5}{s['p50']:>8.2f}{s['p95']:>8.2f}"
                f"{s['p99']:>8.2f}{s['max']:>8.2f}"
            )
    h.say(f"never seen: {sum(unseen.values())} {dict(unseen) if unseen else ''}")
    h.say(
        f"engine CPU while editing: {window_cpu:.1f} s in {window:.0f} s "
        f"({100 * window_cpu / window:.1f} % of one core)"
    )
    met = bool(realtime_stats["count"]) and realtime_stats["p95"] <= P95_TARGET and not unseen
    result = {
        "benchmark": "delta_latency",
        "date": date.today().isoformat(),
        "machine": h.machine(),
        "target": args.target,
        "size": args.size,
        "edits": len(edits),
        "per_minute": args.per_minute,
        "seed": args.seed,
        "poll_interval_s": args.poll_interval,
        "actions": summarize(edits),
        "realtime_entities": sorted(realtime),
        "latency_s": {"all": overall, "realtime": realtime_stats, "per_entity": per_entity},
        "never_seen": sum(unseen.values()),
        "never_seen_by_action": dict(unseen),
        "engine_cpu_pct_while_editing": round(100 * window_cpu / window, 1),
        "targets": {"realtime_p95_max_s": P95_TARGET, "never_seen": 0},
        "met": met,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
