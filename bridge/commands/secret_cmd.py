"""``bridge secret set | delete | check``: secrets in the OS keyring.

Values are never printed, logged or echoed: ``set`` prompts with hidden
input (twice) or reads ``--from-stdin`` for scripts (one trailing newline is
dropped); ``check`` says only whether a secret is stored. The store is the
OS keyring unless the CLI context provides ``secret_store`` (tests).
``check`` exits 1 when a secret is missing, so scripts can test for it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bridge.commands.config_cmd import click_error, config_option
from bridge.commands.context import cli_config_path, cli_secret_store
from bridge.config import load_settings, secret_ref_keys
from bridge.config.load import check_secret
from bridge.config.values import check_secret_name
from bridge.errors import ConfigError, SecretError


def _secret_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        return check_secret_name(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group()
def secret() -> None:
    """Store, check or delete secrets in the OS keyring (values are never shown)."""


@secret.command("set")
@click.argument("name", callback=_secret_name)
@click.option("--from-stdin", is_flag=True, help="Read the value from standard input.")
@click.pass_context
def set_command(ctx: click.Context, name: str, from_stdin: bool) -> None:
    """Store the secret NAME (asks for the value without showing it)."""
    if from_stdin:
        value = sys.stdin.read()
        value = value.removesuffix("\n").removesuffix("\r")
    else:
        value = click.prompt(
            f"Value for secret '{name}'", hide_input=True, confirmation_prompt=True
        )
    if not value:
        raise click.ClickException("the value is empty; nothing was stored")
    store = cli_secret_store(ctx)
    try:
        store.set(name, value)
    except SecretError as exc:
        raise click_error(exc) from exc
    click.echo(f"stored secret '{name}' in {store.describe()}")


@secret.command("delete")
@click.argument("name", callback=_secret_name)
@click.pass_context
def delete_command(ctx: click.Context, name: str) -> None:
    """Delete the secret NAME (no error if it is not stored)."""
    store = cli_secret_store(ctx)
    was_stored = check_secret(store, name, name) is None
    try:
        store.delete(name)
    except SecretError as exc:
        raise click_error(exc) from exc
    click.echo(f"deleted secret '{name}'" if was_stored else f"secret '{name}' was not stored")


@secret.command("check")
@click.argument("name", required=False, callback=lambda c, p, v: v and _secret_name(c, p, v))
@config_option
@click.pass_context
def check_command(ctx: click.Context, name: str | None, config_path: Path | None) -> None:
    """Say whether NAME is stored; without NAME, every secret the configuration names."""
    store = cli_secret_store(ctx)
    wanted: list[tuple[str, str]]  # (setting key or "", secret name)
    if name:
        wanted = [("", name)]
    else:
        path = config_path or cli_config_path(ctx)
        try:
            settings = load_settings(path)
        except ConfigError as exc:
            raise click_error(exc) from exc
        wanted = []
        for key in secret_ref_keys():
            section, _, field = key.partition(".")
            value = getattr(getattr(settings, section), field)
            if value:
                wanted.append((key, value))
    missing = 0
    for key, secret_name in wanted:
        label = f"{key}: " if key else ""
        problem = check_secret(store, secret_name, key or secret_name)
        if problem is None:
            click.echo(f"{label}secret '{secret_name}' is stored")
        else:
            missing += 1
            click.secho(f"{label}{problem.message} — {problem.fix}", fg="red")
    if missing:
        ctx.exit(1)
