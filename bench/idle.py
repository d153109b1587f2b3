"""Idle cost: the engine watching a practice where nothing changes.

    .venv/bin/python bench/idle.py                               # demo practice, 5 min
    .venv/bin/python bench/idle.py --target mariadb://root@127.0.0.1/opendental_large \\
        --entities patient,schedule,provider,operatory --window 300

Starts the reference cloud and the engine as processes on a fresh
``BRIDGE_HOME`` (default poll interval, 2 s), waits for the first sync to
finish and for ``--settle`` seconds more (so every cadence has polled once),
then measures a window of ``--window`` seconds with no edits:

* the engine's CPU share of one core (``/proc/<pid>/stat`` utime+stime), and
  its CPU seconds per 100 polls (one poll = one ``--poll-interval``), which
  other load on the machine disturbs less than a share of wall time;
* on MariaDB's side, per minute: rows examined (``SHOW GLOBAL STATUS``
  ``Handler_read_*`` deltas, minus the cost of the benchmark's own status
  query, measured once) and queries (``Com_select``, ``Questions``). Those
  are server-wide, so the engine logs in as its own read-only user
  (``--bridge-user``, created with SELECT on the database if missing) and the
  server's user statistics (``userstat``, switched on for the window) give
  the engine's own rows read and SELECTs (also per poll: its statements per
  poll, including the engine's PMS health ping every 15 s), and table
  statistics the rows read per table (per entity).

Target: <= 1 % of one core. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import _harness as h
import pyodbc

from bridge.pms.profile import load_profile

DEFAULT_TARGET = "mariadb://root@127.0.0.1/bench_idle"
CPU_TARGET_PCT = 1.0
HANDLER_READS = (
    "Handler_read_first",
    "Handler_read_key",
    "Handler_read_last",
    "Handler_read_next",
    "Handler_read_prev",
    "Handler_read_rnd",
    "Handler_read_rnd_next",
)
COUNTERS = (*HANDLER_READS, "Com_select", "Questions")


def global_status(conn: pyodbc.Connection) -> dict[str, int]:
    names = ", ".join(f"'{n}'" for n in COUNTERS)
    rows = conn.execute(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names})").fetchall()
    return {str(name): int(value) for name, value in rows}


def minus(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a[k] - b.get(k, 0) for k in a}


def ensure_user(conn: pyodbc.Connection, user: str, database: str) -> None:
    for host in ("localhost", "127.0.0.1", "%"):
        conn.execute(f"CREATE USER IF NOT EXISTS '{user}'@'{host}'")
        conn.execute(f"GRANT SELECT ON `{database}`.* TO '{user}'@'{host}'")


def user_stats(conn: pyodbc.Connection, user: str) -> dict[str, int]:
    row = conn.execute(
        "SELECT ROWS_READ, ROWS_SENT, SELECT_COMMANDS, OTHER_COMMANDS, TOTAL_CONNECTIONS"
        " FROM information_schema.USER_STATISTICS WHERE USER = ?",
        user,
    ).fetchone()
    names = ("rows_read", "rows_sent", "select_commands", "other_commands", "connections")
    return dict.fromkeys(names, 0) if row is None else dict(zip(names, map(int, row), strict=True))


def table_stats(conn: pyodbc.Connection, database: str) -> dict[str, int]:
    rows = conn.execute(
        "SELECT TABLE_NAME, ROWS_READ FROM information_schema.TABLE_STATISTICS"
        " WHERE TABLE_SCHEMA = ?",
        database,
    ).fetchall()
    return {str(t): int(r) for t, r in rows}


def statement_shapes(
    admin: pyodbc.Connection, user: str, seconds: float
) -> tuple[dict[str, float], float]:
    """Statements per minute by shape from the general log (all sessions log while it is
    on, so only the engine's user is counted); literals become N/'S', IN lists (N, ...)."""
    old = admin.execute("SELECT @@general_log, @@log_output").fetchone()
    admin.execute("TRUNCATE TABLE mysql.general_log")
    admin.execute("SET GLOBAL log_output = 'TABLE'")
    admin.execute("SET GLOBAL general_log = 1")
    started = time.monotonic()
    try:
        time.sleep(seconds)
    finally:
        admin.execute("SET GLOBAL general_log = 0")
        elapsed = time.monotonic() - started
        rows = admin.execute(
            "SELECT command_type, CONVERT(argument USING utf8mb4) FROM mysql.general_log"
            " WHERE user_host LIKE ?",
            f"{user}[%",
        ).fetchall()
        admin.execute(f"SET GLOBAL log_output = '{old[1]}'")
        admin.execute(f"SET GLOBAL general_log = {int(old[0])}")
        admin.execute("TRUNCATE TABLE mysql.general_log")
    shapes: Counter[str] = Counter()
    for command, argument in rows:
        if command not in ("Query", "Execute"):
            continue
        text = re.sub(r"'[^']*'", "'S'", str(argument))
        text = re.sub(r"\b\d+(\.\d+)?\b", "N", text)
        text = re.sub(r"\((N|'S')(, *(N|'S'))+\)", "(N, ...)", text)
        text = re.sub(r"SELECT (`?\w+`?, ){3,}`?\w+`? FROM", "SELECT <columns> FROM", text)
        shapes[re.sub(r"\s+", " ", text)[:220]] += 1
    minutes = elapsed / 60
    return {k: round(v / minutes, 1) for k, v in shapes.most_common(25)}, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", default=DEFAULT_TARGET)
    parser.add_argument(
        "--build",
        choices=("demo", "large", "none"),
        default="demo",
        help="build the practice first (demo: seconds; none: use as is)",
    )
    parser.add_argument("--today", type=date.fromisoformat, default=None)
    parser.add_argument("--entities", default="", help="comma-separated subset (default: all)")
    parser.add_argument("--window", type=float, default=300.0)
    parser.add_argument("--settle", type=float, default=75.0)
    parser.add_argument("--poll-interval", type=float, default=2.0)
    parser.add_argument("--bridge-user", default="bridge_bench")
    parser.add_argument("--profile-rate", type=int, default=25, help="py-spy Hz; 0: off")
    parser.add_argument(
        "--log-seconds",
        type=float,
        default=60.0,
        help="after the window, sample the general log this long for statement shapes (0: off)",
    )
    parser.add_argument("--first-sync-timeout", type=float, default=3600.0)
    parser.add_argument("--work", type=Path, default=Path("var/bench/idle"))
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the home and cloud under --work (e.g. var/bench/snapshot after a completed "
        "snapshot run with the same --entities): no new first sync",
    )
    args = parser.parse_args()
    work = args.work.resolve()
    if args.reuse and args.build != "none":
        raise SystemExit("--reuse needs --build none (the practice must stay as it was synced)")

    target = h.mariadb_target(args.target)
    if args.build != "none":
        from sandbox.practice import build_practice  # noqa: PLC0415 - only when building

        report = build_practice(args.target, size=args.build, today=args.today, replace=True)
        h.say(f"built the {args.build} practice in {report.seconds:.1f} s")
    admin = h.pms_connect(target.server_connection_string(target.database))
    ensure_user(admin, args.bridge_user, target.database)
    bridge_connstr = target.connection_string.replace(
        f"User={target.user}", f"User={args.bridge_user}"
    )
    entities = [e for e in args.entities.split(",") if e] or h.all_entities()
    expected = h.entity_counts(target.connection_string, entities)
    profile = load_profile("opendental")
    tables = {profile.entities[e].table: e for e in entities}
    for e in entities:
        for child in profile.entities[e].children.values():
            tables[child.table] = f"{e} (child {child.table})"

    cloud = h.Cloud(work / "cloud", fresh=not args.reuse)
    home = h.BridgeHome(
        work / "home",
        bridge_connstr,
        cloud,
        poll_interval=args.poll_interval,
        entities=entities if args.entities else (),
        fresh=not args.reuse,
    )
    engine = home.start_engine()
    previous_userstat = int(admin.execute("SELECT @@userstat").fetchone()[0])
    try:
        h.say(f"first sync of {sum(expected.values()):,} records ({', '.join(entities)}) ...")
        done = h.wait_for_first_sync(
            home, cloud, engine, expected, timeout=args.first_sync_timeout, poll=2.0
        )
        if done is None:
            raise SystemExit("the first sync did not finish:\n" + engine.tail())
        h.say(f"  done in {done - engine.started:.0f} s; settling {args.settle:.0f} s")
        time.sleep(args.settle)
        admin.execute("SET GLOBAL userstat = 1")
        admin.execute("FLUSH USER_STATISTICS")
        admin.execute("FLUSH TABLE_STATISTICS")
        first = global_status(admin)
        own_cost = minus(global_status(admin), first)  # one status query's own counts
        start = global_status(admin)
        cpu0, applied0, wall0 = engine.cpu(), cloud.applied(), time.monotonic()
        profiler = None
        if args.profile_rate:
            profiler = h.Profiler(engine.pid, work / "idle.pyspy.txt", rate=args.profile_rate)
        h.say(f"idle window: {args.window:.0f} s, no edits")
        time.sleep(args.window)
        wall = time.monotonic() - wall0
        cpu = engine.cpu() - cpu0
        profile_file = profiler.stop() if profiler else None
        end = global_status(admin)
        users = user_stats(admin, args.bridge_user)
        per_table = table_stats(admin, target.database)
        applied = cloud.applied() - applied0
        shapes: dict[str, float] = {}
        if args.log_seconds:
            h.say(f"sampling the general log for {args.log_seconds:.0f} s ...")
            shapes, _ = statement_shapes(admin, args.bridge_user, args.log_seconds)
    finally:
        admin.execute(f"SET GLOBAL userstat = {previous_userstat}")
        engine.stop()
        cloud.stop()
        admin.close()

    server = minus(minus(end, start), own_cost)
    minutes = wall / 60
    examined = sum(server[k] for k in HANDLER_READS)
    cpu_pct = 100 * cpu / wall
    polls = wall / args.poll_interval
    cpu_per_100_polls = 100 * cpu / polls
    statements_per_poll = (users["select_commands"] + users["other_commands"]) / polls
    per_entity = {
        tables.get(t, t): round(r / minutes)
        for t, r in sorted(per_table.items(), key=lambda i: -i[1])
    }
    h.say(
        f"\nengine CPU: {cpu:.2f} s in {wall:.0f} s = {cpu_pct:.2f} % of one core "
        f"(target <= {CPU_TARGET_PCT} %)"
    )
    h.say(
        f"per poll ({polls:.0f} polls of {args.poll_interval:g} s): engine CPU "
        f"{cpu_per_100_polls:.2f} s per 100 polls, {statements_per_poll:.2f} statements"
    )
    h.say(
        f"server-wide, per minute: {examined / minutes:,.0f} rows examined (Handler_read_*), "
        f"{server['Com_select'] / minutes:,.0f} SELECTs, {server['Questions'] / minutes:,.0f} "
        f"statements"
    )
    h.say(
        f"the engine's user, per minute: {users['rows_read'] / minutes:,.0f} rows read, "
        f"{users['select_commands'] / minutes:,.0f} SELECTs, "
        f"{users['other_commands'] / minutes:,.0f} other commands"
    )
    h.say("rows read per minute by table (entity):")
    for name, rate in per_entity.items():
        h.say(f"  {rate:>12,}  {name}")
    h.say(f"changes the cloud applied during the window: {applied} (expected 0)")
    if shapes:
        h.say("the engine's statements per minute, by shape (general log sample):")
        for shape, per_minute in shapes.items():
            h.say(f"  {per_minute:>8.1f}  {shape}")
    engine_profile: dict[str, object] = {}
    if profile_file is not None:
        summary = h.summarise_profile(profile_file, h.ENGINE_STAGES)
        engine_profile = summary.to_json(args.profile_rate)
        h.say(summary.render(f"\nengine profile in the window ({profile_file})", args.profile_rate))
    result: dict[str, Any] = {
        "benchmark": "idle",
        "date": date.today().isoformat(),
        "machine": h.machine(),
        "target": args.target,
        "entities": entities,
        "records": sum(expected.values()),
        "poll_interval_s": args.poll_interval,
        "window_s": round(wall, 1),
        "engine_cpu_s": round(cpu, 2),
        "engine_cpu_pct_of_core": round(cpu_pct, 3),
        "polls": round(polls),
        "engine_cpu_s_per_100_polls": round(cpu_per_100_polls, 3),
        "engine_statements_per_poll": round(statements_per_poll, 2),
        "server_per_minute": {k: round(v / minutes) for k, v in server.items()},
        "server_rows_examined_per_minute": round(examined / minutes),
        "own_status_query_cost": own_cost,
        "engine_user_per_minute": {k: round(v / minutes, 1) for k, v in users.items()},
        "rows_read_per_minute_by_table": per_entity,
        "changes_applied_during_window": applied,
        "statements_per_minute_by_shape": shapes,
        "profile": engine_profile,
        "targets": {"engine_cpu_pct_max": CPU_TARGET_PCT},
        "met": cpu_pct <= CPU_TARGET_PCT,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
