"""``bridge doctor``: one line per check with ok/warn/fail and the fix."""

from __future__ import annotations

import click

from bridge.commands.context import cli_config_path, cli_paths, cli_secret_store
from bridge.doctor import run_doctor

_COLOURS = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "bright_black"}


@click.command()
@click.pass_context
def doctor(ctx: click.Context) -> None:
    """Check drivers, PMS connection, schema, keyring, disk, clock and state."""
    failures = 0
    for result in run_doctor(cli_paths(ctx), cli_config_path(ctx), cli_secret_store(ctx)):
        click.secho(result.line(), fg=_COLOURS[result.status])
        failures += result.status == "fail"
    if failures:
        click.echo(f"{failures} check(s) failed")
        ctx.exit(1)
