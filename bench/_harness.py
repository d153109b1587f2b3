"""Shared machinery of the read-path benchmarks (snapshot, delta latency, idle).

Everything runs as it would on a practice server, each part in its own
process: the reference cloud (:class:`sandbox.cloud.testing.CloudProcess`,
HTTPS on loopback), and the engine (``python -m bridge run``) configured
through the real CLI under a throw-away ``BRIDGE_HOME``
(:class:`BridgeHome`). The benchmarks observe from outside:

* the cloud's progress through its admin API and, for bulk counts, its
  SQLite file opened read-only (:class:`Cloud`);
* the engine's local state through its SQLite file opened read-only
  (:meth:`BridgeHome.progress`), and ``bridge status --json`` to confirm;
* CPU seconds and peak RSS of a process from ``/proc`` (Linux only);
* a sampling profile of a process with py-spy (:class:`Profiler`), summarised
  into the read path's stages (:func:`summarise_profile`).

``python bench/_harness.py <bridge args>`` runs the bridge CLI with the
profile cut down to the entities named in ``BENCH_ENTITIES`` (comma
separated): the engine then syncs a subset of the practice with the same
code path. Benchmarks use it only when asked to (``--entities``).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyodbc

from bridge import cli as bridge_cli
from bridge.commands import run_cmd
from bridge.pms.profile import Profile, load_profile
from sandbox.cloud.testing import CloudProcess
from sandbox.practice.target import MariaDbTarget, parse_target

REPO = Path(__file__).resolve().parents[1]
AGENT_ID = "bench-agent"
TOKEN = "bench-token"  # the throw-away reference cloud's token
TIMEZONE = "America/Los_Angeles"
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
SUBSET_ENV = "BENCH_ENTITIES"


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    memory = 0
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            memory = int(meminfo.readline().split()[1]) * 1024
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory / 1024**3, 1),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


def say(text: str) -> None:
    print(text, flush=True)


# -- processes --------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_bytes(pid: int) -> int:
    """Peak resident set (VmHWM) of ``pid``, from /proc."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def machine_busy_seconds() -> float:
    """CPU seconds all processes have used on this machine (from /proc/stat)."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / CLK_TCK


class Cloud:
    """The reference cloud as a separate process (HTTPS), state under ``folder``."""

    def __init__(
        self,
        folder: Path,
        *,
        tls: bool = True,
        extra_args: Sequence[str] = (),
        fresh: bool = True,
    ) -> None:
        if fresh:
            shutil.rmtree(folder, ignore_errors=True)
        self.process = CloudProcess(
            folder, tls=tls, tokens={AGENT_ID: TOKEN}, extra_args=extra_args
        ).start()
        self.db_path = folder / "cloud.sqlite3"
        self.admin = self.process.admin()

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def pid(self) -> int:
        return self.process.pid

    def applied(self) -> int:
        """Changes applied to the mirror so far (cheap: sums the batch records)."""
        return self.admin.stats().changes_applied

    def mirror_counts(self) -> dict[str, int]:
        """Live rows per entity in the mirror (a scan: call it once, not in a loop)."""
        with self.read() as db:
            rows = db.execute(
                "SELECT entity, COUNT(*) FROM mirror WHERE agent_id = ? AND deleted = 0"
                " GROUP BY entity",
                (AGENT_ID,),
            ).fetchall()
        return {entity: int(count) for entity, count in rows}

    def log_position(self) -> int:
        """The id of the newest change-log entry (0 if none)."""
        with self.read() as db:
            row = db.execute("SELECT COALESCE(MAX(id), 0) FROM change_log").fetchone()
        return int(row[0])

    def applied_after(self, position: int) -> list[tuple[str, str, str]]:
        """(entity, key, received_at) of changes applied after log entry ``position``,
        in arrival order; received_at is the cloud's UTC ISO 8601 text."""
        with self.read() as db:
            rows = db.execute(
                "SELECT entity, key, received_at FROM change_log"
                " WHERE id > ? AND agent_id = ? AND outcome = 'applied' ORDER BY id",
                (position, AGENT_ID),
            ).fetchall()
        return [(str(e), str(k), str(r)) for e, k, r in rows]

    def requests_by_status(self) -> dict[str, int]:
        return dict(self.admin.stats().requests_by_status)

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection to the cloud's database, closed afterwards."""
        db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)
        try:
            db.execute("PRAGMA busy_timeout=30000")
            yield db
        finally:
            db.close()

    def stop(self) -> None:
        self.admin.close()
        self.process.stop()


@dataclass
class Progress:
    """The engine's local state, read from its SQLite file."""

    outbox: int
    cursors: int
    initial: int
    rows_done: int
    rows_total: int

    @property
    def first_sync_done(self) -> bool:
        return self.cursors > 0 and self.initial == 0


class BridgeHome:
    """A ``BRIDGE_HOME`` with a config file and the cloud token, set up through the CLI."""

    def __init__(
        self,
        root: Path,
        connection_string: str,
        cloud: Cloud,
        *,
        poll_interval: float = 2.0,
        fresh: bool = True,
        entities: Sequence[str] = (),
        log_level: str = "INFO",
    ) -> None:
        self.root = root.resolve()
        if fresh:
            shutil.rmtree(self.root, ignore_errors=True)
        self.entities = list(entities)
        self.env = dict(
            os.environ,
            BRIDGE_HOME=str(self.root),
            PYTHON_KEYRING_BACKEND="keyrings.alt.file.PlaintextKeyring",
            XDG_DATA_HOME=str(self.root / "xdg"),
        )
        if self.entities:
            self.env[SUBSET_ENV] = ",".join(self.entities)
        self.state_db = self.root / "data" / "state.sqlite3"
        config = self.root / "config" / "bridge.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        ca = f"ca_bundle = '{cloud.process.ca_path}'" if cloud.process.ca_path else ""
        config.write_text(
            "\n".join(
                [
                    "[practice]",
                    'name = "Benchmark Dental"',
                    f'timezone = "{TIMEZONE}"',
                    'country = "US"',
                    "",
                    "[pms]",
                    'profile = "opendental"',
                    f"connection_string = '{connection_string}'",
                    "",
                    "[cloud]",
                    f'url = "{cloud.url}"',
                    f'agent_id = "{AGENT_ID}"',
                    ca,
                    "",
                    "[engine]",
                    f"poll_interval_seconds = {poll_interval}",
                    "",
                    "[logging]",
                    f'level = "{log_level}"',
                    "",
                ]
            ),
            encoding="utf-8",
        )
        self.bridge("secret", "set", "cloud-token", "--from-stdin", input=TOKEN)
        self.bridge("config", "check")

    def bridge(self, *args: str, input: str | None = None, check: bool = True) -> str:
        """Run the bridge CLI; returns its standard output."""
        result = subprocess.run(
            [sys.executable, "-m", "bridge", *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=REPO,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"bridge {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    def status(self) -> dict[str, Any]:
        """``bridge status --json``."""
        data: dict[str, Any] = json.loads(self.bridge("status", "--json", check=False))
        return data

    def progress(self) -> Progress:
        try:
            db = sqlite3.connect(f"file:{self.state_db}?mode=ro", uri=True, timeout=30)
            with db:
                outbox = db.execute(
                    "SELECT (SELECT COUNT(*) FROM outbox)"
                    " + (SELECT COALESCE(SUM(changes), 0) FROM outbox_page)"
                ).fetchone()[0]
                cursors, initial, done, total = db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(phase = 'initial'), 0),"
                    " COALESCE(SUM(rows_done), 0), COALESCE(SUM(rows_total), 0)"
                    " FROM sync_cursor"
                ).fetchone()
            db.close()
        except sqlite3.Error:
            return Progress(0, 0, 0, 0, 0)
        return Progress(int(outbox), int(cursors), int(initial), int(done), int(total))

    def start_engine(self) -> Engine:
        return Engine(self)


class Engine:
    """``bridge run`` in a subprocess; output goes to ``engine.out`` under the home."""

    def __init__(self, home: BridgeHome) -> None:
        self.home = home
        if home.entities:
            cmd = [sys.executable, str(Path(__file__).resolve()), "run"]
        else:
            cmd = [sys.executable, "-m", "bridge", "run"]
        self.started = time.monotonic()
        with (home.root / "engine.out").open("ab") as out:
            self.process = subprocess.Popen(
                cmd, env=home.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT
            )
        self.peak_rss = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def sample_rss(self) -> int:
        """Refresh and return the peak RSS (call it before the process ends)."""
        with contextlib.suppress(OSError):
            self.peak_rss = max(self.peak_rss, peak_rss_bytes(self.pid))
        return self.peak_rss

    def stop(self, timeout: float = 120.0) -> int:
        """Stop as a service stop does (SIGINT); returns the exit code."""
        if self.alive():
            self.sample_rss()
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)

    def tail(self, lines: int = 20) -> str:
        text = (self.home.root / "engine.out").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


# -- the practice -------------------------------------------------------------------


def server_pid(conn: pyodbc.Connection) -> int | None:
    """The MariaDB server's pid (same machine), for its CPU seconds; None if unknown."""
    try:
        path = str(conn.execute("SELECT @@pid_file").fetchone()[0])
        return int(Path(path).read_text(encoding="ascii").strip())
    except (pyodbc.Error, OSError, ValueError, TypeError):
        return None


def connection_string(target: str) -> str:
    """The ODBC connection string of a ``--target`` (without any password)."""
    return parse_target(target).connection_string


def mariadb_target(target: str) -> MariaDbTarget:
    parsed = parse_target(target)
    if not isinstance(parsed, MariaDbTarget):
        raise SystemExit(f"{target}: this benchmark needs a mariadb:// target")
    return parsed


def pms_connect(connstr: str) -> pyodbc.Connection:
    """A raw pyodbc connection set up as the bridge sets up its own (UTF-8 text)."""
    conn = pyodbc.connect(connstr, autocommit=True)
    if "mariadb" in connstr.lower() or "mysql" in connstr.lower():
        conn.setencoding(encoding="utf-8")
        for sql_type in (pyodbc.SQL_CHAR, pyodbc.SQL_WCHAR):
            conn.setdecoding(sql_type, encoding="utf-8", ctype=pyodbc.SQL_CHAR)
    return conn


def entity_counts(connstr: str, entities: Iterable[str]) -> dict[str, int]:
    """Rows per profile entity in the PMS (the entity's WHERE applied)."""
    profile = load_profile("opendental")
    counts: dict[str, int] = {}
    with pms_connect(connstr) as conn:
        for name in entities:
            spec = profile.entities[name]
            where = f" WHERE {spec.where}" if spec.where else ""
            row = conn.execute(f"SELECT COUNT(*) FROM {spec.table}{where}").fetchone()
            counts[name] = int(row[0])
    return counts


def all_entities() -> list[str]:
    return list(load_profile("opendental").entities)


def wait_for_first_sync(
    home: BridgeHome,
    cloud: Cloud,
    engine: Engine,
    expected: Mapping[str, int],
    *,
    timeout: float,
    poll: float = 1.0,
    on_poll: Any = None,
) -> float | None:
    """Wait until the cloud has applied ``sum(expected)`` changes, the first sync is
    over and the outbox is empty; returns the monotonic time it was first seen,
    or None on timeout (or if the engine died)."""
    total = sum(expected.values())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and engine.alive():
        engine.sample_rss()
        applied = cloud.applied()
        if on_poll is not None:
            on_poll(applied, total)
        if applied >= total:
            progress = home.progress()
            if progress.first_sync_done and progress.outbox == 0:
                return time.monotonic()
        time.sleep(poll)
    return None


# -- profiling ----------------------------------------------------------------------


class Profiler:
    """``py-spy record`` attached to ``pid`` (raw collapsed stacks), if py-spy is installed."""

    def __init__(self, pid: int, output: Path, *, rate: int = 25) -> None:
        self.output = output
        exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.process: subprocess.Popen[bytes] | None = None
        if not Path(exe).exists():
            say("  (py-spy not installed: no profile; pip install py-spy)")
            return
        self.process = subprocess.Popen(
            [
                exe,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--output",
                str(output),
                "--nonblocking",
                "--threads",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> Path | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.output if self.output.exists() else None


# Stage rules: walking a stack from its innermost frame outwards, the first
# frame that matches a rule decides the stage. A rule is (stage, file
# fragment, function names or None for any, leaf file fragment or None): a
# function name matches a frame's qualified name or its last part; with a
# leaf fragment, the rule applies only when the innermost frame's file has it.
Rule = tuple[str, str, frozenset[str] | None, str | None]


def _rule(stage: str, where: str, funcs: str = "", leaf: str | None = None) -> Rule:
    return (stage, where, frozenset(funcs.split()) or None, leaf)


ENGINE_STAGES: tuple[Rule, ...] = (
    _rule("odbc: execute (server runs the query)", "odbc_session.py", "execute"),
    _rule("odbc: fetch (driver + pyodbc rows)", "odbc_session.py", "fetchmany fetchall"),
    _rule("odbc: value conversion (bridge)", "odbc_values.py"),
    _rule("odbc: streaming/paging", "odbc_stream.py"),
    _rule("odbc: other", "bridge/pms/odbc"),
    _rule("convert: canonical fields", "bridge/pms/convert.py"),
    _rule("hash: canonical JSON + sha256", "sync/records.py", "content_hash hash_text"),
    _rule("hash: canonical JSON + sha256", "sync/columns.py", "dumps"),
    _rule("records: column conversion", "sync/columns.py"),
    _rule("records: row -> record", "sync/records.py"),
    _rule(
        "outbox stage: first-sync pages (JSON lines, gzip, row states)",
        "outbox.py",
        "stage_pages _put_page",
    ),
    _rule("outbox: backpressure (pages waiting)", "outbox.py", "wait_for_pages pages_waiting"),
    _rule("outbox stage: room check (SUM over outbox)", "outbox.py", "_check_room"),
    _rule("outbox stage: payload JSON", "outbox.py", "_put_many", "json/"),
    _rule("outbox stage: delete superseded + insert + upsert", "outbox.py", "_put_many"),
    _rule("outbox stage: read stored hashes", "outbox.py", "_states"),
    _rule("outbox stage: other", "outbox.py", "stage stage_delete _next_version"),
    _rule("outbox batch: load (SQLite + ORM + json.loads)", "outbox.py", "next_batch _load"),
    _rule("outbox batch: split after 413", "outbox.py", "split"),
    _rule("outbox batch: acknowledge (delete)", "outbox.py", "acknowledge"),
    _rule("outbox batch: depth (COUNT/SUM)", "outbox.py", "depth"),
    _rule("health/status writes", "bridge/health.py"),
    _rule("uplink: gzip", "cloud/client.py", "_json_body", "gzip.py"),
    _rule("uplink: JSON encode", "cloud/client.py", "_json_body"),
    _rule("uplink: HTTP + TLS (httpx)", "httpx/"),
    _rule("uplink: HTTP + TLS (httpx)", "httpcore/"),
    _rule("uplink: HTTP + TLS (httpx)", "ssl.py"),
    _rule("uplink: client other", "cloud/client.py"),
    _rule("uplink: wire model (Change objects, times)", "cloud/protocol.py"),
    _rule("uplink: wire model (Change objects, times)", "sync/loops.py", "_deliver <genexpr>"),
    _rule("detector: cursor reads + other", "sync/detector.py"),
    _rule("state: session open/commit", "bridge/state/"),
    _rule("sync loop: status report", "sync/loops.py", "_report"),
    _rule("logging", "logging/"),
)

CLOUD_STAGES: tuple[Rule, ...] = (
    _rule("cloud: mirror versions lookup", "cloud/store.py", "_versions"),
    _rule("cloud: change log JSON (data re-encoded)", "cloud/store.py", "_dump"),
    _rule("cloud: apply_batch (change log inserts)", "cloud/store.py", "apply_batch"),
    _rule("cloud: commit", "cloud/db.py"),
    _rule("cloud: validate changes", "cloud/validation.py"),
    _rule("cloud: body hash (canonical JSON)", "cloud/wire.py", "canonical_sha256"),
    _rule("cloud: gunzip + JSON parse", "cloud/wire.py"),
    _rule("cloud: answer JSON", "cloud/handler.py", "", "json/"),
    _rule("cloud: handler other", "sandbox/cloud/"),
    _rule("cloud: HTTP server + TLS", "http/server.py"),
    _rule("cloud: HTTP server + TLS", "socketserver.py"),
    _rule("cloud: HTTP server + TLS", "ssl.py"),
)

LEAF_LIBRARIES = (
    (
        "SQLite C calls (execute/commit/fetch)",
        "sqlalchemy/engine/default.py",
        frozenset({"do_execute", "do_executemany", "do_commit"}),
    ),
    (
        "SQLite C calls (execute/commit/fetch)",
        "sqlalchemy/engine/cursor.py",
        frozenset({"fetchall", "fetchone", "fetchmany"}),
    ),
    ("SQLAlchemy Python (ORM/core)", "sqlalchemy/", None),
    ("pyodbc C calls (execute/fetch)", "odbc_session.py", frozenset({"<lambda>"})),
    ("json", "json/", None),
    ("gzip/zlib", "gzip.py", None),
    ("ssl/socket", "ssl.py", None),
    ("ssl/socket", "socket.py", None),
    ("httpx/httpcore", "httpx/", None),
    ("httpx/httpcore", "httpcore/", None),
    ("sqlite3 (cloud)", "sandbox/cloud/db.py", None),
    ("sqlite3 (cloud)", "sandbox/cloud/store.py", None),
    ("bridge Python", "bridge/", None),
    ("sandbox Python", "sandbox/", None),
)


def _matches(func: str, names: frozenset[str] | None) -> bool:
    if names is None:
        return True
    parts = func.split(".")
    return func in names or parts[-1] in names or any(p in names for p in parts)


@dataclass
class ProfileSummary:
    samples: int
    stages: dict[str, int] = field(default_factory=dict)
    threads: dict[str, int] = field(default_factory=dict)
    leaves: dict[str, int] = field(default_factory=dict)
    libraries: dict[str, int] = field(default_factory=dict)

    def shares(self, counts: Mapping[str, int] | None = None) -> dict[str, float]:
        counts = self.stages if counts is None else counts
        ordered = Counter(counts).most_common()
        return {k: round(100 * v / self.samples, 1) for k, v in ordered if self.samples}

    def to_json(self, rate: int, records: int = 0) -> dict[str, object]:
        """Shares in percent; with ``records``, also microseconds of thread time per record."""
        result: dict[str, object] = {
            "samples": self.samples,
            "rate_hz": rate,
            "stages_pct": self.shares(),
            "threads_pct": self.shares(self.threads),
            "leaf_library_pct": self.shares(self.libraries),
        }
        if records:
            result["stages_us_per_record"] = self.per_record(rate, records)
            result["total_us_per_record"] = round(1e6 * self.samples / rate / records, 1)
        return result

    def per_record(self, rate: int, records: int) -> dict[str, float]:
        ordered = Counter(self.stages).most_common()
        return {k: round(1e6 * v / rate / records, 1) for k, v in ordered}

    def render(self, title: str, rate: int, top: int = 15, records: int = 0) -> str:
        if not self.samples:
            return f"{title}: no samples"
        lines = [
            f"{title}: {self.samples} samples at {rate} Hz "
            f"(= {self.samples / rate:.0f} thread-seconds running or in C calls)"
        ]
        for heading, counts in (
            ("by thread", self.threads),
            ("by stage", self.stages),
            ("by library at the leaf", self.libraries),
        ):
            lines.append(f"  {heading}:")
            for name, count in Counter(counts).most_common():
                per = f"{1e6 * count / rate / records:8.1f} us/record  " if records else ""
                lines.append(f"    {100 * count / self.samples:5.1f} %  {per}{name}")
        lines.append(f"  hottest leaf frames (top {top}):")
        for name, count in Counter(self.leaves).most_common(top):
            lines.append(f"    {100 * count / self.samples:5.1f} %  {name}")
        return "\n".join(lines)


def _frames(stack: str) -> tuple[str, list[tuple[str, str]]]:
    """(thread name, [(function, file), ...] root first) of one py-spy collapsed stack."""
    parts = stack.split(";")
    thread = "?"
    if parts and parts[0].startswith("thread ("):
        thread = parts.pop(0).partition("): ")[2] or "?"
    frames = []
    for part in parts:
        name, _, where = part.partition(" (")
        frames.append((name.strip(), where.rstrip(")")))
    return thread, frames


def summarise_profile(path: Path, stages: Sequence[Rule]) -> ProfileSummary:
    """Group py-spy raw stacks (``--threads``) by stage, thread, leaf library and leaf."""
    summary = ProfileSummary(0)
    stage_count: Counter[str] = Counter()
    thread_count: Counter[str] = Counter()
    leaf_count: Counter[str] = Counter()
    library_count: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        thread, frames = _frames(stack)
        if not frames:
            continue
        summary.samples += count
        thread_count[thread] += count
        leaf_func, leaf_where = frames[-1]
        stage = "other"
        for func, where in reversed(frames):
            matched = next(
                (
                    label
                    for label, fragment, funcs, leaf in stages
                    if fragment in where
                    and _matches(func, funcs)
                    and (leaf is None or leaf in leaf_where)
                ),
                None,
            )
            if matched is not None:
                stage = matched
                break
        stage_count[stage] += count
        library = next(
            (
                label
                for label, fragment, funcs in LEAF_LIBRARIES
                if fragment in leaf_where and _matches(leaf_func, funcs)
            ),
            "other (stdlib, interpreter)",
        )
        library_count[library] += count
        leaf_count[f"{leaf_func} ({leaf_where.split(':')[0]})"] += count
    summary.stages = dict(stage_count)
    summary.threads = dict(thread_count)
    summary.leaves = dict(leaf_count)
    summary.libraries = dict(library_count)
    return summary


# -- the engine on a subset of entities -------------------------------------------------


def _run_bridge_on_subset() -> None:
    """``bridge`` CLI with the profile restricted to ``$BENCH_ENTITIES``."""
    wanted = [e for e in os.environ.get(SUBSET_ENV, "").split(",") if e]

    def subset(name: str) -> Profile:
        full = load_profile(name)
        if not wanted:
            return full
        data = full.model_dump()
        data["entities"] = {k: v for k, v in data["entities"].items() if k in wanted}
        for spec in data["entities"].values():
            if "related" in spec:
                spec["related"] = [r for r in spec["related"] if r["entity"] in wanted]
        tombstones = data.get("tombstones")
        if tombstones is not None:
            tombstones["types"] = {k: v for k, v in tombstones["types"].items() if v in wanted}
        return Profile.model_validate(data)

    setattr(run_cmd, "load_profile", subset)  # noqa: B010 - patch the name run_cmd looks up
    sys.argv = ["bridge", *sys.argv[1:]]
    bridge_cli.main()


if __name__ == "__main__":
    _run_bridge_on_subset()
