"""``bridge status``: what the engine is doing, read from local state."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from bridge.commands.context import cli_paths
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
    for comp in snapshot.components:
        checked = _ago(comp.checked_at, now)
        line = f"{comp.component:<8} {comp.status:<4} {comp.message} (checked {checked})"
        if comp.status != "ok" and comp.fix:
            line += f"\n{'':<14}fix: {comp.fix}"
        lines.append(line)
    return "\n".join(lines)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the snapshot as JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show whether the engine runs and the health of each component."""
    path: Path = cli_paths(ctx).state_db
    store = open_state(path)
    try:
        snapshot = read_status(store, datetime.now(UTC))
    finally:
        store.close()
    click.echo(snapshot.to_json() if as_json else render(snapshot))
    if snapshot.engine != "running":
        ctx.exit(3)
