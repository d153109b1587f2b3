"""``bridge files``: the export folders' files and their state.

``bridge files`` lists the most recently changed files (read from local
state; works with the engine stopped): waiting (settling, held open by
another program, retrying), sending, uploaded, skipped as a duplicate (the
cloud already had the content), or quarantined, each with its reason.
``--state`` and ``--folder`` narrow the list; ``--json`` prints it for
scripts. The output names files, which may name patients: it is for the
practice's own staff, on the practice server.

``bridge files scan`` does one pass of the engine's folder work now,
without the engine: scan every folder (or ``--folder``), wait for files to
settle, upload them, and exit when nothing is left settling or after
``--timeout`` seconds. It refuses to run while the engine runs (the engine
is the only writer of the local state). Exit status: 0 when no file of the
folders waits or is quarantined, 1 otherwise.
"""

from __future__ import annotations

import json
import signal
import threading
from datetime import datetime
from types import FrameType

import click

from bridge.cloud.client import CloudClient
from bridge.commands.context import cli_config_path, cli_paths, cli_secret_store
from bridge.config import load_settings
from bridge.errors import BridgeError
from bridge.files import STATES, FileView, FolderMissingError, FolderWorker, recent_files, sweep
from bridge.files.records import folder_counts
from bridge.logs import setup_logging
from bridge.state import open_state

STATE_WORDS = {"duplicate": "skipped (duplicate)"}


def _when(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024**2:
        return f"{n / 1024:.1f} KiB"
    if n < 1024**3:
        return f"{n / 1024**2:.1f} MiB"
    return f"{n / 1024**3:.2f} GiB"


def render_files(views: list[FileView]) -> str:
    """The table ``bridge files`` prints (reasons on their own line)."""
    if not views:
        return "no export files recorded (is a [[folders]] table configured?)"
    width = max(8, *(len(v.folder) for v in views))
    lines = [f"{'id':>6}  {'updated':<19}  {'folder':<{width}}  {'state':<19}  {'size':>10}  file"]
    for v in views:
        state = STATE_WORDS.get(v.state, v.state)
        what = v.path
        if v.kind:
            what += f"  [{v.kind}]"
        if v.after_done == "moved":
            what += "  (moved to the archive)"
        elif v.after_done == "deleted":
            what += "  (deleted after upload)"
        lines.append(
            f"{v.id:>6}  {_when(v.updated_at):<19}  {v.folder:<{width}}  {state:<19}  "
            f"{_size(v.size):>10}  {what}"
        )
        if (
            v.reason and v.state not in ("uploaded", "duplicate")
        ) or v.reason_code == "after_failed":
            lines.append(f"{'':>6}  {v.reason_code}: {v.reason}")
    return "\n".join(lines)


@click.group(invoke_without_command=True)
@click.option("--folder", help="Only this folder (its label).")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(STATES),
    help="Only files in this state (repeat for several).",
)
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def files(
    ctx: click.Context, folder: str | None, states: tuple[str, ...], limit: int, as_json: bool
) -> None:
    """Files found in the export folders, newest first, with their state."""
    if ctx.invoked_subcommand is not None:
        return
    store = open_state(cli_paths(ctx).state_db)
    try:
        views = recent_files(store, limit=limit, folder=folder, states=states)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps([v.to_json() for v in views], indent=2))
    else:
        click.echo(render_files(views))


@files.command("scan")
@click.option("--folder", "only", help="Only this folder (its label).")
@click.option(
    "--timeout",
    type=click.FloatRange(0, 86_400),
    default=120.0,
    show_default=True,
    help="Stop waiting for files to settle after this many seconds.",
)
@click.pass_context
def scan_cmd(ctx: click.Context, only: str | None, timeout: float) -> None:
    """Upload what the folders hold now, once, without the engine."""
    paths = cli_paths(ctx).ensure()
    try:
        settings = load_settings(cli_config_path(ctx))
    except BridgeError as exc:
        raise click.ClickException(f"{exc.message}\nfix: {exc.fix}") from exc
    folders = [f for f in settings.folders if only is None or f.label == only]
    if not folders:
        raise click.ClickException(
            f"no export folder labelled {only!r}" if only else "no [[folders]] are configured"
        )
    setup_logging(
        paths.log_dir,
        level=settings.logging.level,
        max_bytes=settings.logging.max_bytes,
        backup_count=settings.logging.backup_count,
        console=False,
    )
    store = open_state(paths.state_db)
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    secrets = cli_secret_store(ctx)
    try:
        store.acquire_writer_lock()
        for folder in folders:
            worker = FolderWorker(
                folder,
                store,
                lambda: CloudClient(settings.cloud, secrets),
                ignored=(paths.data_dir, paths.log_dir, paths.config_dir),
                cancel=stop,
            )
            try:
                sweep(worker, stop, timeout)
                health = worker.health()
                click.echo(health.message)
            except FolderMissingError as exc:
                click.echo(f"folder {folder.label}: {exc}")
            finally:
                worker.close()
        counts = folder_counts(store)
    except BridgeError as exc:
        raise click.ClickException(f"{exc.message}\nfix: {exc.fix}") from exc
    finally:
        store.close()
    stuck = sum(
        c["waiting"] + c["sending"] + c["quarantined"]
        for label, c in counts.items()
        if any(f.label == label for f in folders)
    )
    if stuck:
        ctx.exit(1)
