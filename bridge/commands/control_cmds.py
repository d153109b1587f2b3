"""``bridge sync``, ``bridge pause``, ``bridge resume`` and ``bridge bundle``.

They drive the running engine through the local control channel
(:mod:`bridge.control.client`):

* ``sync [ENTITY...] [KEY...] [--key K]... [--wait]`` asks for a sync now
  (every entity when none is named). Record keys (``bridge sync patient
  1234``, or ``--key``) name records of one entity to push at once even if
  unchanged (a patient with its appointments); the command waits for them
  and says which were pushed and which the PMS does not have (exit 1 if
  any is missing). Requests merge: pressing it again before the sync
  starts adds nothing. ``--wait`` waits for the engine to report the sync
  finished. Needs a running engine.
* ``pause`` / ``resume`` stop and restart PMS reads, sending and the inbox
  without stopping the engine; the flag is kept in the local state, so a
  restarted engine stays paused. With no engine running they set the flag
  in the local state directly (the engine starts paused or not).
* ``bundle [--output DIR]`` makes a support bundle (a zip with no personal
  data or secrets): the running engine makes it in its data folder; with no
  engine running this command makes it itself. ``--output`` copies it.

Exit codes: 0 done, 1 error (with a fix) or a record key not in the PMS,
4 ``--wait`` (or waiting for named records) timed out.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import click

from bridge.commands.context import cli_config_path, cli_paths, cli_secret_store
from bridge.control.client import ControlClient
from bridge.control.errors import ControlError, EngineNotRunning
from bridge.control.events import EventsMissed, RecordsSynced, SyncFinished
from bridge.control.pause import write_pause
from bridge.control.results import PauseState, SyncScheduled
from bridge.errors import BridgeError
from bridge.paths import BridgePaths
from bridge.state import open_state
from bridge.status import read_status


def _fail(error: ControlError | BridgeError) -> click.ClickException:
    text = error.message
    if error.fix:
        text += f"\nfix: {error.fix}"
    return click.ClickException(text)


def _connect(paths: BridgePaths) -> ControlClient:
    try:
        return ControlClient.connect(paths)
    except ControlError as exc:
        raise _fail(exc) from None


# -- sync ---------------------------------------------------------------------------


def describe_sync(scheduled: SyncScheduled) -> str:
    what = ", ".join(scheduled.entities)
    if scheduled.keys:
        what = f"{scheduled.keys} record(s) of {what}"
    line = f"sync of {what} requested"
    if scheduled.merged:
        line += " (merged with a sync that had not started yet)"
    if scheduled.paused:
        line += "; the bridge is paused: it runs when resumed ('bridge resume')"
    return line


@click.command()
@click.argument("entities", nargs=-1, metavar="[ENTITY]... [KEY]...")
@click.option(
    "--key", "keys", multiple=True,
    help="Push this record key now, even if unchanged (needs exactly one ENTITY); repeatable.",
)  # fmt: skip
@click.option("--wait", is_flag=True, help="Wait until the engine reports the sync finished.")
@click.option(
    "--timeout", type=click.FloatRange(min=1), default=120.0, show_default=True,
    help="Seconds --wait waits at most.",
)  # fmt: skip
@click.pass_context
def sync(
    ctx: click.Context, entities: tuple[str, ...], keys: tuple[str, ...], wait: bool, timeout: float
) -> None:
    """Sync ENTITY... now (every entity when none is named).

    Arguments that start with a digit are record keys: 'bridge sync patient
    1234' pushes patient 1234 and its appointments now, even if unchanged.
    """
    names = tuple(a for a in entities if not a[:1].isdigit())
    keys = (*(a for a in entities if a[:1].isdigit()), *keys)
    with _connect(cli_paths(ctx)) as client:
        try:
            _, after = client.events(0)
            scheduled = client.sync_now(names, keys)
            click.echo(describe_sync(scheduled))
            if scheduled.paused:
                return
            if keys:
                after = _report_records(ctx, client, after, scheduled.entities[0], keys, timeout)
            if not wait:
                return
            if not _wait_finished(client, after, set(scheduled.entities), timeout):
                click.echo(f"the sync has not finished after {timeout:.0f} s", err=True)
                ctx.exit(4)
        except ControlError as exc:
            raise _fail(exc) from None
    click.echo("sync finished")


def _report_records(
    ctx: click.Context,
    client: ControlClient,
    after: int,
    entity: str,
    keys: tuple[str, ...],
    timeout: float,
) -> int:
    """Wait until every key was pushed or found missing; say which. Returns ``after``."""
    deadline = time.monotonic() + timeout
    left = set(keys)
    pushed: set[str] = set()
    missing: set[str] = set()
    related = 0
    while left:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            click.echo(
                f"the records were not pushed within {timeout:.0f} s "
                "(is the PMS reachable? 'bridge status' says)",
                err=True,
            )
            ctx.exit(4)
        events, after = client.events(after, wait=min(remaining, 20.0))
        for event in events:
            if isinstance(event, RecordsSynced) and event.entity == entity:
                pushed |= left & set(event.pushed)
                missing |= left & set(event.missing)
                related += event.related if left & set(event.pushed) else 0
                left -= set(event.pushed) | set(event.missing)
    if pushed:
        line = f"pushed {entity} {', '.join(sorted(pushed, key=int))}"
        if related:
            line += f" with {related} related record(s)"
        click.echo(line)
    if missing:
        raise click.ClickException(
            f"not in the PMS: {entity} {', '.join(sorted(missing, key=int))} "
            "(nothing to push; a record the cloud had is deleted there)"
        )
    return after


def _wait_finished(client: ControlClient, after: int, entities: set[str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    left = set(entities)
    while left:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        events, after = client.events(after, wait=min(remaining, 20.0))
        for event in events:
            if isinstance(event, SyncFinished):
                left -= set(event.entities)
            elif isinstance(event, EventsMissed):
                click.echo("(some engine events were missed; still waiting)", err=True)
    return True


# -- pause / resume -------------------------------------------------------------------


def describe_pause(state: PauseState) -> str:
    if not state.paused:
        return "the bridge is running: PMS reads, sending and the inbox go on"
    line = "the bridge is paused: no PMS reads, no sending, no inbox handling"
    if not state.settled:
        line += " (some loops are still finishing their current step)"
    return line + "; 'bridge resume' continues"


def _set_pause(ctx: click.Context, paused: bool, by: str) -> None:
    paths = cli_paths(ctx)
    try:
        with ControlClient.connect(paths) as client:
            state = client.pause(by) if paused else client.resume(by)
    except EngineNotRunning:
        state = _set_pause_offline(paths, paused, by)
        click.echo(describe_pause(state))
        start = "paused" if paused else "normally"
        click.echo(f"(the engine is not running; it will start {start})")
        return
    except ControlError as exc:
        raise _fail(exc) from None
    click.echo(describe_pause(state))


def _set_pause_offline(paths: BridgePaths, paused: bool, by: str) -> PauseState:
    """Set the flag in the local state while no engine runs."""
    try:
        store = open_state(paths.state_db)
    except BridgeError as exc:
        raise _fail(exc) from None
    try:
        store.acquire_writer_lock()
        return write_pause(store, paused, by)
    except BridgeError as exc:
        raise click.ClickException(
            "an engine holds the local state but does not answer on its control channel; "
            f"try again in a moment ({exc.message})"
        ) from None
    finally:
        store.close()


_BY = click.option("--by", default="cli", show_default=True, help="Who did it (shown in status).")


@click.command()
@_BY
@click.pass_context
def pause(ctx: click.Context, by: str) -> None:
    """Pause PMS reads, sending and the inbox (the engine keeps running)."""
    _set_pause(ctx, True, by)


@click.command()
@_BY
@click.pass_context
def resume(ctx: click.Context, by: str) -> None:
    """Resume after 'bridge pause'."""
    _set_pause(ctx, False, by)


# -- bundle ---------------------------------------------------------------------------


@click.command()
@click.option(
    "--output", type=click.Path(path_type=Path, file_okay=False),
    help="Also copy the bundle into this folder.",
)  # fmt: skip
@click.pass_context
def bundle(ctx: click.Context, output: Path | None) -> None:
    """Make a support bundle (logs, masked config, status, versions, ODBC, doctor)."""
    paths = cli_paths(ctx)
    try:
        with ControlClient.connect(paths) as client:
            path = client.support_bundle()
        made_by = "made by the running engine"
    except EngineNotRunning:
        path = _bundle_offline(ctx, paths)
        made_by = "made by this command (the engine is not running)"
    except ControlError as exc:
        raise _fail(exc) from None
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        try:
            path = Path(shutil.copy2(path, output / path.name))
        except OSError as exc:
            raise click.ClickException(
                f"the bundle {path} could not be copied to {output} ({exc.strerror})"
            ) from None
    click.echo(f"support bundle: {path}")
    click.echo(f"({made_by}; it holds no personal data or secrets)")


def _bundle_offline(ctx: click.Context, paths: BridgePaths) -> Path:
    from bridge.support_bundle import write_support_bundle  # noqa: PLC0415 - heavy, rare

    status = None
    try:
        store = open_state(paths.state_db)
        try:
            status = read_status(store)
        finally:
            store.close()
    except BridgeError:
        status = None  # the bundle says there was none; doctor's state check says why
    try:
        return write_support_bundle(
            paths, cli_config_path(ctx), cli_secret_store(ctx), status=status, made_by="cli"
        )
    except OSError as exc:
        raise click.ClickException(
            f"the support bundle could not be written in {paths.data_dir} ({exc.strerror})"
        ) from None
