"""``bridge doctor``: every check practice IT needs, one line each, with a fix.

Checks run in order and never raise: each returns a :class:`CheckResult`
with ``ok``, ``warn``, ``fail`` or ``skip`` (skipped because an earlier check
it depends on failed, saying which). Messages name drivers, tables, columns
and settings, never personal data or secrets.

The checks: configuration, ODBC driver, PMS connection, read-only login,
profile tables and columns, keyring, diary writer (only when ``[writer]`` is
configured), disk space, clock and time zone, local state.
"""

from __future__ import annotations

import secrets as pysecrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from bridge.config import Settings, check_settings, load_settings
from bridge.errors import BridgeError, ConfigError, PmsError
from bridge.paths import BridgePaths
from bridge.pms.odbc import PmsConnection, installed_drivers
from bridge.pms.profile import Profile, load_profile
from bridge.pms.source import configured_driver, connect_pms, profile_problems, server_clock
from bridge.pms.writers.factory import probe_writer
from bridge.secrets import SecretStore
from bridge.state import head_revision, open_state

CheckStatus = Literal["ok", "warn", "fail", "skip"]

DISK_FAIL_BYTES = 200 * 1024**2
DISK_WARN_BYTES = 2 * 1024**3
CLOCK_WARN_SECONDS = 30
CLOCK_FAIL_SECONDS = 300


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: CheckStatus
    message: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status.upper():<4}  {self.name:<14} {self.message}"
        if self.fix and self.status in ("warn", "fail"):
            text += f"\n      {'':<14} fix: {self.fix}"
        return text


@dataclass
class _Context:
    paths: BridgePaths
    config_path: Path
    secret_store: SecretStore
    settings: Settings | None = None
    profile: Profile | None = None
    conn: PmsConnection | None = None
    failed: set[str] = field(default_factory=set)


Check = Callable[[_Context], CheckResult | None]
"""A check; None means it does not apply (e.g. no writer configured) and prints nothing."""


def run_doctor(
    paths: BridgePaths, config_path: Path, secret_store: SecretStore
) -> Iterator[CheckResult]:
    """Yield each check's result as soon as it is known."""
    ctx = _Context(paths, config_path, secret_store)
    try:
        for check in CHECKS:
            result = check(ctx)
            if result is None:
                continue
            if result.status == "fail":
                ctx.failed.add(result.name)
            yield result
    finally:
        if ctx.conn is not None:
            ctx.conn.close()


def _skip(name: str, because: str) -> CheckResult:
    return CheckResult(name, "skip", f"not checked: {because}")


def check_config(ctx: _Context) -> CheckResult:
    problems = check_settings(ctx.config_path, ctx.secret_store)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        first = errors[0]
        more = (
            f" (and {len(errors) - 1} more; run 'bridge config check')" if len(errors) > 1 else ""
        )
        return CheckResult("config", "fail", f"{first.key}: {first.message}{more}", first.fix)
    try:
        ctx.settings = load_settings(ctx.config_path)
        ctx.profile = load_profile(ctx.settings.pms.profile)
    except ConfigError as exc:
        return CheckResult("config", "fail", exc.message, exc.fix)
    warnings = [p for p in problems if p.severity == "warning"]
    if warnings:
        return CheckResult(
            "config", "warn", f"{warnings[0].key}: {warnings[0].message}", warnings[0].fix
        )
    return CheckResult("config", "ok", f"{ctx.config_path} is valid")


def check_driver(ctx: _Context) -> CheckResult:
    installed = installed_drivers()
    if ctx.settings is None:
        listed = ", ".join(installed) or "none"
        return CheckResult(
            "odbc-driver", "warn", f"configuration invalid; installed drivers: {listed}"
        )
    wanted = configured_driver(ctx.settings)
    if wanted is None:
        return CheckResult(
            "odbc-driver",
            "ok",
            f"driver comes from the data source; installed: {', '.join(installed)}",
        )
    if wanted in installed:
        return CheckResult("odbc-driver", "ok", f"'{wanted}' is installed")
    return CheckResult(
        "odbc-driver",
        "fail",
        f"'{wanted}' is not installed (installed: {', '.join(installed) or 'none'})",
        f"Install the ODBC driver '{wanted}' or name an installed one in pms.connection_string.",
    )


def check_connect(ctx: _Context) -> CheckResult:
    if ctx.settings is None:
        return _skip("pms-connect", "configuration invalid")
    try:
        ctx.conn = connect_pms(ctx.settings, ctx.secret_store)
    except BridgeError as exc:
        return CheckResult("pms-connect", "fail", exc.message, exc.fix)
    return CheckResult("pms-connect", "ok", f"connected ({ctx.conn.family})")


def check_read_only(ctx: _Context) -> CheckResult:
    if ctx.conn is None:
        return _skip("read-only", "no PMS connection")
    try:
        capability = ctx.conn.login_can_write()
    except PmsError as exc:
        return CheckResult("read-only", "warn", f"could not inspect the login: {exc.message}")
    session = "session is read-only" if ctx.conn.read_only_enforced else "session not read-only"
    if capability.can_write is None:
        return CheckResult("read-only", "warn", f"{session}; {capability.detail}")
    if capability.can_write:
        return CheckResult(
            "read-only",
            "warn",
            f"{session}, but the login itself can write: {capability.detail}",
            "Give the bridge a dedicated database login with SELECT rights only.",
        )
    return CheckResult("read-only", "ok", f"{session}; {capability.detail}")


def check_schema(ctx: _Context) -> CheckResult:
    if ctx.conn is None or ctx.profile is None:
        return _skip("profile", "no PMS connection")
    problems = profile_problems(ctx.conn, ctx.profile)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return CheckResult("profile", "fail", problems[0].message + more, problems[0].fix)
    return CheckResult(
        "profile",
        "ok",
        f"all {len(ctx.profile.entities)} entities of '{ctx.profile.name}' "
        "found with their columns",
    )


def check_keyring(ctx: _Context) -> CheckResult:
    store = ctx.secret_store
    name = f"doctor-probe-{pysecrets.token_hex(4)}"
    value = pysecrets.token_urlsafe(16)
    try:
        store.set(name, value)
        ok = store.get(name).reveal() == value
        store.delete(name)
    except BridgeError as exc:
        return CheckResult("keyring", "fail", exc.message, exc.fix)
    backend = store.describe()
    if not ok:
        return CheckResult("keyring", "fail", f"{backend} returned a different value than stored")
    if "plaintext" in backend.lower():
        return CheckResult(
            "keyring",
            "warn",
            f"{backend} stores secrets unencrypted",
            "Use the OS keyring (Windows Credential Manager) on a production server.",
        )
    return CheckResult("keyring", "ok", f"{backend} stores and returns secrets")


def check_writer(ctx: _Context) -> CheckResult | None:
    """The diary writer answers and accepts its credentials (nothing is written).

    Open Dental's API: ``GET /definitions?Category=2``; the SQL writer:
    connect with the write login and inspect its grants. Not shown when no
    ``[writer]`` is configured.
    """
    if ctx.settings is None:
        return _skip("writer", "configuration invalid")
    if ctx.settings.writer.kind is None:
        return None
    try:
        message = probe_writer(ctx.settings, ctx.secret_store)
    except BridgeError as exc:
        return CheckResult("writer", "fail", exc.message, exc.fix)
    except Exception as exc:  # a doctor check never raises
        return CheckResult("writer", "fail", f"the writer check failed ({type(exc).__name__})")
    return CheckResult("writer", "ok", message)


def check_disk(ctx: _Context) -> CheckResult:
    folder = ctx.paths.data_dir
    probe = folder if folder.exists() else next(p for p in folder.parents if p.exists())
    free = shutil.disk_usage(probe).free
    gib = free / 1024**3
    if free < DISK_FAIL_BYTES:
        return CheckResult(
            "disk",
            "fail",
            f"{gib:.2f} GiB free at {probe}",
            "Free disk space on the bridge's drive.",
        )
    if free < DISK_WARN_BYTES:
        return CheckResult(
            "disk", "warn", f"only {gib:.2f} GiB free at {probe}", "Free disk space soon."
        )
    return CheckResult("disk", "ok", f"{gib:.1f} GiB free at {probe}")


def check_clock(ctx: _Context) -> CheckResult:
    if ctx.settings is None:
        return _skip("clock", "configuration invalid")
    zone = ZoneInfo(ctx.settings.practice.timezone)
    now = datetime.now(UTC)
    practice_offset = now.astimezone(zone).utcoffset()
    if ctx.conn is None:
        return CheckResult("clock", "warn", "PMS clock not compared (no connection)")
    try:
        clock = server_clock(ctx.conn)
    except PmsError as exc:
        return CheckResult("clock", "warn", f"could not read the PMS clock: {exc.message}")
    if clock is None:
        return CheckResult(
            "clock", "ok", f"embedded database uses this machine's clock; practice zone {zone.key}"
        )
    skew = abs((clock.utc_now - now).total_seconds())
    offset_note = ""
    if practice_offset is not None and clock.local_offset != practice_offset:
        offset_note = (
            f"; PMS server runs at UTC{_fmt(clock.local_offset.total_seconds())}, "
            f"practice.timezone {zone.key} is UTC{_fmt(practice_offset.total_seconds())}"
        )
    status: CheckStatus = "ok"
    if skew > CLOCK_FAIL_SECONDS:
        status = "fail"
    elif skew > CLOCK_WARN_SECONDS or offset_note:
        status = "warn"
    fix = ""
    if status != "ok":
        fix = (
            "Synchronise the clocks (Windows Time / NTP) and set practice.timezone "
            "to the PMS server's zone."
        )
    return CheckResult("clock", status, f"PMS clock differs by {skew:.0f} s{offset_note}", fix)


def _fmt(seconds: float) -> str:
    sign = "+" if seconds >= 0 else "-"
    minutes = int(abs(seconds)) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def check_state(ctx: _Context) -> CheckResult:
    path = ctx.paths.state_db
    if ctx.settings is not None and ctx.settings.state.path is not None:
        path = Path(ctx.settings.state.path)
    try:
        store = open_state(path)
    except BridgeError as exc:
        return CheckResult("state", "fail", exc.message, exc.fix)
    try:
        mode = store.pragma("journal_mode")
        revision = store.revision()
    finally:
        store.close()
    if revision != head_revision() or mode != "wal":
        return CheckResult("state", "fail", f"{path}: revision {revision}, journal {mode}")
    return CheckResult("state", "ok", f"{path} (schema {revision}, WAL)")


CHECKS: tuple[Check, ...] = (
    check_config,
    check_driver,
    check_connect,
    check_read_only,
    check_schema,
    check_keyring,
    check_writer,
    check_disk,
    check_clock,
    check_state,
)
