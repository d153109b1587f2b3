"""``bridge audit``: check and read the hash-chained audit trail.

``verify`` checks every entry's hash, the links between entries and the
head anchor (:func:`bridge.audit.verify`) and exits 0 when the trail is
intact, 1 when it found problems (each listed with its ``seq``), 2 when
the local state could not be read. ``list`` shows the newest entries.
Both only read, so they work beside a running engine. Entries hold ids,
codes and slot times, never personal data.
"""

from __future__ import annotations

import json

import click

from bridge import audit
from bridge.commands.context import cli_paths
from bridge.errors import BridgeError
from bridge.state import StateStore, open_state
from bridge.state.models import AuditEntry

EXIT_PROBLEMS = 1
EXIT_UNREADABLE = 2


def _open(ctx: click.Context) -> StateStore:
    try:
        return open_state(cli_paths(ctx).state_db)
    except BridgeError as exc:
        _fail(ctx, exc)
        raise  # unreachable: _fail exits


def _fail(ctx: click.Context, exc: BridgeError) -> None:
    click.secho(f"error: {exc.message}", fg="red", err=True)
    if exc.fix:
        click.echo(f"fix: {exc.fix}", err=True)
    ctx.exit(EXIT_UNREADABLE)


def render_report(report: audit.AuditReport) -> str:
    if report.ok:
        if not report.entries:
            return "audit trail ok: no entries yet"
        assert report.head is not None
        return (
            f"audit trail ok: {report.entries:,} entries, seq 1-{report.last_seq}, "
            f"head {report.head.hash[:16]}"
        )
    total = len(report.problems) + report.problems_not_listed
    lines = [f"audit trail FAILED verification: {total:,} problem(s) in {report.entries:,} entries"]
    lines.extend(f"  {problem}" for problem in report.problems)
    if report.problems_not_listed:
        lines.append(f"  ... and {report.problems_not_listed:,} more not listed")
    return "\n".join(lines)


def render_entry(entry: AuditEntry) -> str:
    when = entry.recorded_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"{entry.seq:>7}  {when}  {entry.kind:<30} {entry.actor:<16} {entry.subject}  {entry.data}"
    )


def _entry_json(entry: AuditEntry) -> dict[str, object]:
    try:
        data: object = json.loads(entry.data)
    except ValueError:
        data = entry.data  # tampered; 'bridge audit verify' reports it
    return {
        "seq": entry.seq,
        "recorded_at": entry.recorded_at.isoformat(),
        "kind": entry.kind,
        "actor": entry.actor,
        "subject": entry.subject,
        "data": data,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


@click.group("audit")
def audit_group() -> None:
    """The audit trail of every PMS write and booking decision."""


@audit_group.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def verify_cmd(ctx: click.Context, as_json: bool) -> None:
    """Check that no entry was edited, removed, inserted or reordered."""
    store = _open(ctx)
    try:
        report = audit.verify(store)
    except BridgeError as exc:
        _fail(ctx, exc)
        return
    finally:
        store.close()
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else render_report(report))
    if not report.ok:
        ctx.exit(EXIT_PROBLEMS)


@audit_group.command("list")
@click.option(
    "--limit",
    type=click.IntRange(1, 100_000),
    default=50,
    show_default=True,
    help="How many of the newest entries to show.",
)
@click.option(
    "--kind",
    default=None,
    help="Only this kind (pms.hold_written); a trailing '.' or '*' keeps a family (pms.).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines, one per entry.")
@click.pass_context
def list_cmd(ctx: click.Context, limit: int, kind: str | None, as_json: bool) -> None:
    """Show the newest entries, oldest first."""
    store = _open(ctx)
    try:
        entries = audit.recent(store, limit=limit, kind=kind)
    except BridgeError as exc:
        _fail(ctx, exc)
        return
    finally:
        store.close()
    if as_json:
        for entry in entries:
            click.echo(json.dumps(_entry_json(entry), ensure_ascii=False))
        return
    if not entries:
        click.echo("no audit entries" + (f" of kind {kind}" if kind else ""))
        return
    click.echo(f"{'seq':>7}  {'recorded (local)':<19}  {'kind':<30} {'actor':<16} subject  data")
    for entry in entries:
        click.echo(render_entry(entry))
