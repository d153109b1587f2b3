"""First sync of a large practice: raw ODBC read vs the bridge end to end.

    .venv/bin/python bench/snapshot.py                       # whole large practice
    .venv/bin/python bench/snapshot.py --entities appointment,patient --max-seconds 600

In one run, on the practice at ``--target`` (default: the large sample
practice in MariaDB, built by bench/build_practice.py):

1. **raw read**: the SELECT statements the bridge issues for each entity
   (``RecordReader.select()``) plus one plain SELECT per embedded child table,
   read with pyodbc ``fetchmany`` through the same driver and discarded; and
   the same statements through arrow-odbc if it is installed (``bench``
   extra).
2. **end to end**: the reference cloud as a process (HTTPS on loopback), the
   engine as a process (``bridge run``, configured through the CLI under a
   fresh ``BRIDGE_HOME``), timed from engine start until the cloud has
   applied every record, the first sync is over and the outbox is empty;
   then checked: mirror counts per entity = PMS counts, and
   ``bridge status --json``. py-spy samples both processes meanwhile.

A run that would outlast ``--max-seconds`` is cut there and extrapolated
from its rate (marked ``"extrapolated": true``). Targets: ratio =
raw_seconds / e2e_seconds >= 0.7, and < 120 s per 5M records end to end.
Records are entity rows (what the cloud receives; child rows travel inside
their parent). The last line printed is JSON. Results: bench/README.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import _harness as h

from bridge.pms.profile import load_profile
from bridge.sync.records import RecordReader

ARROW_INSTALLED = importlib.util.find_spec("arrow_odbc") is not None

DEFAULT_TARGET = "mariadb://root@127.0.0.1/opendental_large"
RATIO_TARGET = 0.7
PER_5M_TARGET = 120.0
FIVE_MILLION = 5_000_000


def statements(entities: list[str]) -> list[tuple[str, str]]:
    """(label, SQL) of what the bridge reads for ``entities``."""
    profile = load_profile("opendental")
    zone = ZoneInfo(h.TIMEZONE)
    result: list[tuple[str, str]] = []
    for name in entities:
        reader = RecordReader(profile, name, zone)
        result.append((name, reader.select()))
        for child_name, child in reader.spec.children.items():
            columns = ", ".join(child.columns)
            result.append((f"{name}.{child_name}", f"SELECT {columns} FROM {child.table}"))
    return result


def raw_pyodbc(connstr: str, sqls: list[tuple[str, str]], batch: int) -> dict[str, Any]:
    per: dict[str, dict[str, float]] = {}
    total_rows = 0
    with h.pms_connect(connstr) as conn:
        server = h.server_pid(conn)
        server_cpu = h.cpu_seconds(server) if server else None
        started = time.perf_counter()
        for label, sql in sqls:
            t0 = time.perf_counter()
            cursor = conn.cursor()
            cursor.execute(sql)
            t1 = time.perf_counter()
            rows = 0
            while chunk := cursor.fetchmany(batch):
                rows += len(chunk)
            cursor.close()
            t2 = time.perf_counter()
            total_rows += rows
            per[label] = {
                "rows": rows,
                "execute_s": round(t1 - t0, 2),
                "seconds": round(t2 - t0, 2),
            }
            h.say(
                f"  pyodbc  {label:<22} {rows:>10,} rows {t2 - t0:7.1f} s (execute {t1 - t0:.1f} s)"
            )
        seconds = time.perf_counter() - started
        server_used = None
        if server and server_cpu is not None:
            server_used = h.cpu_seconds(server) - server_cpu
    return {
        "seconds": round(seconds, 1),
        "odbc_rows": total_rows,
        "rows_per_s": round(total_rows / seconds),
        "server_cpu_s": round(server_used, 1) if server_used is not None else None,
        "fetchmany": batch,
        "per_statement": per,
    }


ARROW_CHILD = """
import json, sys, time
from arrow_odbc import read_arrow_batches_from_odbc
t0 = time.perf_counter()
rows = sum(b.num_rows for b in read_arrow_batches_from_odbc(
    query=sys.argv[2], connection_string=sys.argv[1], batch_size=100_000))
print(json.dumps({"rows": rows, "seconds": round(time.perf_counter() - t0, 2)}))
"""


def raw_arrow(connstr: str, sqls: list[tuple[str, str]]) -> dict[str, Any] | None:
    """Each statement in a child process: arrow-odbc panics (aborting its process)
    on some Open Dental values, e.g. year-0001 "no date" timestamps."""
    if not ARROW_INSTALLED:
        h.say("  arrow-odbc not installed (pip install arrow-odbc): skipped")
        return None
    total_rows = 0
    seconds = 0.0
    per: dict[str, dict[str, Any]] = {}
    for label, sql in sqls:
        child = subprocess.run(
            [sys.executable, "-c", ARROW_CHILD, connstr, sql],
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode != 0:
            panic = next((ln for ln in child.stderr.splitlines() if "panicked" in ln), "")
            per[label] = {"failed": f"exit {child.returncode}: {panic.strip()[:200]}"}
            h.say(f"  arrow   {label:<22} FAILED (exit {child.returncode}) {panic.strip()[:120]}")
            continue
        result = json.loads(child.stdout.strip().splitlines()[-1])
        total_rows += result["rows"]
        seconds += result["seconds"]
        per[label] = result
        h.say(f"  arrow   {label:<22} {result['rows']:>10,} rows {result['seconds']:7.1f} s")
    failed = [label for label, r in per.items() if "failed" in r]
    return {
        "seconds": round(seconds, 1),
        "odbc_rows": total_rows,
        "rows_per_s": round(total_rows / seconds) if seconds else None,
        "failed_statements": failed,
        "per_statement": per,
    }


def end_to_end(
    args: argparse.Namespace, connstr: str, entities: list[str], expected: dict[str, int]
) -> dict[str, Any]:
    work: Path = args.work
    total = sum(expected.values())
    cloud = h.Cloud(work / "cloud")
    subset = entities if args.entities else []
    home = h.BridgeHome(work / "home", connstr, cloud, entities=subset)
    with h.pms_connect(connstr) as conn:
        server = h.server_pid(conn)
    server_cpu0 = h.cpu_seconds(server) if server else 0.0
    cloud_cpu0 = h.cpu_seconds(cloud.pid)
    busy0 = h.machine_busy_seconds()
    engine = home.start_engine()
    started = engine.started
    profilers = []
    if args.profile_rate:
        profilers = [
            h.Profiler(engine.pid, work / "engine.pyspy.txt", rate=args.profile_rate),
            h.Profiler(cloud.pid, work / "cloud.pyspy.txt", rate=args.profile_rate),
        ]
    last_report = [time.monotonic()]

    def report(applied: int, want: int) -> None:
        now = time.monotonic()
        if now - last_report[0] >= args.report_every:
            last_report[0] = now
            elapsed = now - started
            p = home.progress()
            h.say(
                f"  {elapsed:6.0f} s  cloud applied {applied:>10,} of {want:,} "
                f"({applied / elapsed:,.0f}/s)  read {p.rows_done:,}  outbox {p.outbox:,}  "
                f"engine cpu {engine.cpu():.0f} s  rss {engine.sample_rss() / 2**20:.0f} MiB"
            )

    done_at = h.wait_for_first_sync(
        home, cloud, engine, expected, timeout=args.max_seconds, poll=0.5, on_poll=report
    )
    measured_at = done_at or time.monotonic()
    elapsed = measured_at - started
    applied = cloud.applied()
    engine_cpu = engine.cpu() if engine.alive() else None
    cloud_cpu = h.cpu_seconds(cloud.pid) - cloud_cpu0
    server_cpu = h.cpu_seconds(server) - server_cpu0 if server else None
    rss = engine.sample_rss()
    busy = h.machine_busy_seconds() - busy0
    ours = (engine_cpu or 0.0) + cloud_cpu + (server_cpu or 0.0)
    profile_files = [p.stop() for p in profilers]
    completed = done_at is not None
    check: dict[str, Any] = {}
    if completed:
        mirror = cloud.mirror_counts()
        status = home.status()
        components = {c["component"]: c for c in status.get("components", [])}
        check = {
            "mirror_equals_pms": {e: mirror.get(e, 0) for e in entities} == expected,
            "mirror_counts": mirror,
            "outbox_rows": home.progress().outbox,
            "status_engine": status.get("engine"),
            "status_sync": components.get("sync", {}).get("message"),
            "status_cloud": components.get("cloud", {}).get("message"),
        }
    http = cloud.requests_by_status()
    exit_code = engine.stop()
    cloud.stop()
    rate = applied / elapsed if elapsed else 0.0
    seconds = elapsed if completed else (total / rate if rate else float("inf"))
    result: dict[str, Any] = {
        "completed": completed,
        "extrapolated": not completed,
        "measured_seconds": round(elapsed, 1),
        "records_applied": applied,
        "seconds": round(seconds, 1),
        "records_per_s": round(total / seconds) if seconds else None,
        "seconds_per_5M": round(seconds * FIVE_MILLION / total, 1),
        "engine_cpu_s": round(engine_cpu, 1) if engine_cpu is not None else None,
        "cloud_cpu_s": round(cloud_cpu, 1),
        "mariadb_cpu_s": round(server_cpu, 1) if server_cpu is not None else None,
        "engine_peak_rss_mib": round(rss / 2**20),
        "machine_busy_cpu_s": round(busy, 1),
        "other_processes_cpu_s": round(busy - ours, 1),
        "engine_exit_code": exit_code,
        "http_status_counts": http,
        "check": check,
        "profile": {},
    }
    for name, path, stages in (
        ("engine", profile_files[0] if profile_files else None, h.ENGINE_STAGES),
        ("cloud", profile_files[1] if profile_files else None, h.CLOUD_STAGES),
    ):
        if path is not None:
            summary = h.summarise_profile(path, stages)
            result["profile"][name] = summary.to_json(args.profile_rate, applied)
            title = f"\n{name} profile (py-spy, {path}; per record of {applied:,} applied)"
            h.say(summary.render(title, args.profile_rate, records=applied))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", default=DEFAULT_TARGET)
    parser.add_argument("--entities", default="", help="comma-separated (default: all)")
    parser.add_argument("--work", type=Path, default=Path("var/bench/snapshot"))
    parser.add_argument("--fetchmany", type=int, default=10_000)
    parser.add_argument("--max-seconds", type=float, default=900.0)
    parser.add_argument("--profile-rate", type=int, default=25, help="py-spy Hz; 0: off")
    parser.add_argument("--report-every", type=float, default=30.0)
    parser.add_argument("--skip-raw", action="store_true")
    parser.add_argument("--skip-arrow", action="store_true")
    parser.add_argument("--skip-e2e", action="store_true")
    args = parser.parse_args()
    args.work = args.work.resolve()

    connstr = h.connection_string(args.target)
    entities = [e for e in args.entities.split(",") if e] or h.all_entities()
    h.say(f"practice {args.target}; entities: {', '.join(entities)}")
    try:
        expected = h.entity_counts(connstr, entities)
    except Exception as exc:  # tell how to build it
        raise SystemExit(
            f"cannot count rows in {args.target} ({exc}); build it first:\n"
            f"  .venv/bin/python bench/build_practice.py --size large --today 2026-11-23 "
            f"--target {args.target} --replace"
        ) from None
    total = sum(expected.values())
    h.say(f"records to sync: {total:,} " + json.dumps(expected))
    sqls = statements(entities)

    raw = arrow = e2e = None
    if not args.skip_raw:
        h.say("\n== raw read (pyodbc fetchmany, rows discarded)")
        raw = raw_pyodbc(connstr, sqls, args.fetchmany)
        h.say(
            f"  total {raw['odbc_rows']:,} ODBC rows in {raw['seconds']} s "
            f"({raw['rows_per_s']:,}/s)"
        )
    if not args.skip_arrow:
        h.say("\n== raw read (arrow-odbc)")
        arrow = raw_arrow(connstr, sqls)
        if arrow:
            h.say(
                f"  total {arrow['odbc_rows']:,} ODBC rows in {arrow['seconds']} s "
                f"({arrow['rows_per_s']:,}/s)"
            )
    if not args.skip_e2e:
        h.say("\n== end to end: bridge run -> reference cloud (first sync)")
        e2e = end_to_end(args, connstr, entities, expected)

    ratio = None
    if raw and e2e:
        ratio = round(raw["seconds"] / e2e["seconds"], 4)
    per_5m = e2e["seconds_per_5M"] if e2e else None
    h.say("\n== summary")
    if raw:
        h.say(
            f"raw pyodbc read:  {raw['seconds']} s for {total:,} records "
            f"({raw['odbc_rows']:,} ODBC rows incl. children)"
        )
    if arrow:
        h.say(f"raw arrow read:   {arrow['seconds']} s")
    if e2e:
        mark = " (EXTRAPOLATED from a cut-off run)" if e2e["extrapolated"] else ""
        h.say(
            f"end to end:       {e2e['seconds']} s{mark}, {e2e['records_per_s']:,} records/s, "
            f"{e2e['seconds_per_5M']} s per 5M records (target < {PER_5M_TARGET:.0f})"
        )
        h.say(
            f"CPU: engine {e2e['engine_cpu_s']} s, cloud {e2e['cloud_cpu_s']} s, "
            f"MariaDB {e2e['mariadb_cpu_s']} s, everything else on the machine "
            f"{e2e['other_processes_cpu_s']} s (py-spy, other work); "
            f"engine peak RSS {e2e['engine_peak_rss_mib']} MiB"
        )
    if ratio is not None:
        h.say(f"ratio raw/e2e:    {ratio} (target >= {RATIO_TARGET})")
    result = {
        "benchmark": "snapshot",
        "date": date.today().isoformat(),
        "machine": h.machine(),
        "target": args.target,
        "entities": entities,
        "records": total,
        "expected": expected,
        "raw_pyodbc": raw,
        "raw_arrow": arrow,
        "e2e": e2e,
        "ratio": ratio,
        "seconds_per_5M": per_5m,
        "targets": {"ratio_min": RATIO_TARGET, "seconds_per_5M_max": PER_5M_TARGET},
        "met": {
            "ratio": ratio is not None and ratio >= RATIO_TARGET,
            "seconds_per_5M": per_5m is not None and per_5m < PER_5M_TARGET,
        },
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
