"""``bridge config check | init | show``: the configuration file from the
command line.

Each takes ``--config PATH``; without it the file comes from the CLI context
(``bridge --config``) or the default location. ``check`` exits 0 when there
are no errors (warnings are printed; ``--strict`` fails on them too) and 1
otherwise, one problem per line. ``init`` refuses to replace a file unless
``--force``. ``show`` never reads a secret: ``*_secret`` settings show names.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import click

from bridge.commands.context import cli_config_path, cli_secret_store
from bridge.config import (
    ConfigProblem,
    check_settings,
    load_settings,
    render_default_config,
    render_settings,
    write_config_file,
)
from bridge.config.load import validate_settings
from bridge.errors import BridgeError, ConfigError

_COLOURS = {"error": "red", "warning": "yellow"}

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Configuration file (default: the bridge's bridge.toml).",
)


def _path(ctx: click.Context, given: Path | None) -> Path:
    return given if given is not None else cli_config_path(ctx)


def click_error(exc: BridgeError) -> click.ClickException:
    """A bridge error as a click error: message, then the fix."""
    return click.ClickException(f"{exc.message}\nfix: {exc.fix}" if exc.fix else exc.message)


@click.group()
def config() -> None:
    """Check, create or show the configuration file."""


@config.command()
@config_option
@click.option("--strict", is_flag=True, help="Exit non-zero on warnings too.")
@click.pass_context
def check(ctx: click.Context, config_path: Path | None, strict: bool) -> None:
    """Report every problem in the configuration, one per line."""
    path = _path(ctx, config_path)
    problems = check_settings(path, cli_secret_store(ctx))
    for problem in problems:
        click.secho(problem.line(), fg=_COLOURS[problem.severity])
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    if not problems:
        click.echo(f"{path}: no problems")
    else:
        click.echo(f"{path}: {errors} error(s), {warnings} warning(s)")
    if errors or (strict and warnings):
        ctx.exit(1)


_INIT_VALUES = {
    "practice_name": "practice.name",
    "timezone": "practice.timezone",
    "country": "practice.country",
    "profile": "pms.profile",
    "dsn": "pms.dsn",
    "connection_string": "pms.connection_string",
    "pms_user": "pms.user",
    "password_secret": "pms.password_secret",
    "cloud_url": "cloud.url",
    "agent_id": "cloud.agent_id",
}


@config.command()
@config_option
@click.option("--force", is_flag=True, help="Replace an existing file.")
@click.option("--practice-name", help="practice.name")
@click.option("--timezone", help="practice.timezone, e.g. America/New_York")
@click.option("--country", help="practice.country (ISO 3166 alpha-2)")
@click.option("--profile", default="opendental", show_default=True, help="pms.profile")
@click.option("--dsn", help="pms.dsn (or give --connection-string)")
@click.option("--connection-string", help="pms.connection_string, without the password")
@click.option("--pms-user", help="pms.user")
@click.option("--password-secret", help="pms.password_secret, e.g. pms-password")
@click.option("--cloud-url", help="cloud.url")
@click.option("--agent-id", help="cloud.agent_id")
@click.pass_context
def init(ctx: click.Context, /, config_path: Path | None, force: bool, **given: str | None) -> None:
    """Write a commented configuration template (owner-only permissions)."""
    path = _path(ctx, config_path)
    values = {_INIT_VALUES[opt]: v for opt, v in given.items() if v is not None}
    text = render_default_config(values)
    remaining = _problems_in(text, path)
    bad = [p for p in remaining if p.key in values]
    if bad:
        for problem in bad:
            click.secho(problem.line(), fg="red", err=True)
        raise click.ClickException("nothing written: correct the values above")
    try:
        write_config_file(path, text, overwrite=force)
    except ConfigError as exc:
        raise click_error(exc) from exc
    click.echo(f"wrote {path}")
    if remaining:
        click.echo("still to do in the file:")
        for problem in remaining:
            click.echo(f"  {problem.key}: {problem.message}")
    click.echo("then store secrets with 'bridge secret set <name>' and run 'bridge config check'")


def _problems_in(text: str, path: Path) -> list[ConfigProblem]:
    data: dict[str, Any] = tomllib.loads(text)
    return validate_settings(data, base_dir=path.parent.resolve())[1]


@config.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML.")
@click.pass_context
def show(ctx: click.Context, config_path: Path | None, as_json: bool) -> None:
    """Print the effective settings, defaults included; secrets by name only."""
    path = _path(ctx, config_path)
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        raise click_error(exc) from exc
    if as_json:
        click.echo(json.dumps(settings.model_dump(mode="json"), indent=2))
    else:
        click.echo(f"# effective settings from {path}")
        click.echo(render_settings(settings), nl=False)
