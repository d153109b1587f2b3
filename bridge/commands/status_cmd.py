"""``bridge status``: what the engine is doing, from the engine's control
channel or, when no engine answers, from the local state."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from bridge.commands.context import cli_paths
from bridge.control.client import ControlClient
from bridge.control.errors import ControlError, EngineNotRunning
from bridge.paths import BridgePaths
from bridge.state import open_state
from bridge.status import StatusSnapshot, read_status


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    seconds = int((now - moment).total_seconds())
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def render(snapshot: StatusSnapshot) -> str:
    now = snapshot.taken_at
    lines = []
    if snapshot.engine == "running":
        lines.append(
            f"engine   running (pid {snapshot.pid}, version {snapshot.version}, "
            f"started {_ago(snapshot.started_at, now)}, "
            f"heartbeat {_ago(snapshot.heartbeat_at, now)})"
        )
    elif snapshot.engine == "crashed":
        lines.append(
            f"engine   not running: it stopped without shutting down "
            f"(last heartbeat {_ago(snapshot.heartbeat_at, now)})"
        )
    elif snapshot.engine == "stopped":
        lines.append(f"engine   stopped ({_ago(snapshot.stopped_at, now)})")
    else:
        lines.append("engine   never started on this machine (run 'bridge run')")
    if snapshot.paused:
        by = f" by {snapshot.paused_by}" if snapshot.paused_by else ""
        lines.append(
            f"paused   since {_ago(snapshot.paused_since, now)}{by}: no PMS reads, no sending, "
            "no inbox ('bridge resume' continues)"
        )
    for comp in snapshot.components:
        checked = _ago(comp.checked_at, now)
        line = f"{comp.component:<8} {comp.status:<4} {comp.message} (checked {checked})"
        if comp.status != "ok" and comp.fix:
            line += f"\n{'':<14}fix: {comp.fix}"
        lines.append(line)
        if comp.component == "sync":
            progress = _progress(comp.details)
            if progress:
                lines.append(f"{'':<14}{progress}")
    if snapshot.queue is not None:
        q = snapshot.queue
        line = f"queue    {q.outbox_changes:,} change(s) ({_size(q.outbox_bytes)}) for the cloud"
        if q.inbox_pending:
            waiting = ", ".join(f"{n} {t}" for t, n in sorted(q.inbox_waiting.items()))
            line += f"; {q.inbox_pending} inbox item(s) pending" + (
                f" ({waiting} waiting)" if waiting else ""
            )
        lines.append(line)
    for f in snapshot.files:  # export folders; 'bridge files' lists the files
        lines.append(
            f"files    {f.folder}: {f.waiting + f.sending} waiting, {f.quarantined} quarantined, "
            f"{f.uploaded} uploaded, {f.duplicate} already in the cloud"
        )
    if snapshot.entities:
        lines.append("")
        lines.append(f"{'entity':<18}{'phase':<9}{'rows':>12}  {'last read':<12}in sync")
        for e in snapshot.entities:
            rows = (
                f"{e.rows_done:,}"
                if e.phase == "delta"
                else f"{e.rows_done:,}/{e.rows_total or 0:,}"
            )
            in_sync = (
                f"{e.in_sync_percent:.2f}% (verified {_ago(e.verified_at, now)})"
                if e.in_sync_percent is not None
                else "not verified yet"
            )
            lines.append(
                f"{e.entity:<18}{e.phase:<9}{rows:>12}  {_ago(e.last_success_at, now):<12}{in_sync}"
            )
    return "\n".join(lines)


def _progress(details: dict[str, object]) -> str:
    """A text progress bar for the first sync (empty once it has finished)."""
    done, total = details.get("rows_done"), details.get("rows_total")
    if not details.get("entities_in_first_sync") or not isinstance(done, int):
        return ""
    if not isinstance(total, int) or total <= 0:
        return ""
    share = min(done / total, 1.0)
    bar = "#" * round(share * 30)
    text = f"[{bar:<30}] {share:6.1%}"
    rate, eta = details.get("rate_rows_per_s"), details.get("eta_seconds")
    if isinstance(rate, int | float) and rate > 0:
        text += f"  {rate:,.0f} rows/s"
    if isinstance(eta, int | float):
        text += f"  about {_duration(float(eta))} left"
    return text


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _size(n: int) -> str:
    if n < 1024:
        return f"{n:,} bytes"
    if n < 1024**2:
        return f"{n / 1024:,.1f} KiB"
    return f"{n / 1024**2:,.1f} MiB"


def _snapshot(paths: BridgePaths) -> tuple[StatusSnapshot, str]:
    """The snapshot from the running engine (control channel), else from the
    local state; and a line saying which."""
    try:
        with ControlClient.connect(paths, timeout=5.0) as client:
            return client.status(), "(from the running engine, through its control channel)"
    except EngineNotRunning:
        source = "(read from the local state: the engine does not answer)"
    except ControlError as exc:
        source = f"(read from the local state: the control channel failed: {exc})"
    path: Path = paths.state_db
    store = open_state(path)
    try:
        return read_status(store, datetime.now(UTC)), source
    finally:
        store.close()


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the snapshot as JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show whether the engine runs and the health of each component.

    Asks the running engine through its control channel; when none answers,
    reads the local state (the last line says which).
    """
    snapshot, source = _snapshot(cli_paths(ctx))
    click.echo(snapshot.to_json() if as_json else f"{render(snapshot)}\n{source}")
    if snapshot.engine != "running":
        ctx.exit(3)
