"""The ``bridge`` command line: the one entry point for IT, support and the service."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bridge import __version__
from bridge.commands.audit_cmd import audit_group
from bridge.commands.bookings_cmd import bookings
from bridge.commands.config_cmd import config
from bridge.commands.control_cmds import bundle, pause, resume, sync
from bridge.commands.doctor_cmd import doctor
from bridge.commands.exceptions_cmd import exceptions
from bridge.commands.files_cmd import files
from bridge.commands.logs_cmd import logs
from bridge.commands.run_cmd import run
from bridge.commands.secret_cmd import secret
from bridge.commands.status_cmd import status
from bridge.paths import default_paths


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    __version__,
    "-V",
    "--version",
    prog_name="bridge",
    message=f"%(prog)s %(version)s (Python {sys.version.split()[0]}, {sys.platform})",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    envvar="BRIDGE_CONFIG",
    help="Configuration file (default: bridge.toml in the bridge's config folder).",
)
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None) -> None:
    """Dental PMS Bridge: sync a practice's PMS with the cloud."""
    obj = ctx.ensure_object(dict)
    paths = obj.setdefault("paths", default_paths())
    obj["config_path"] = config_path or obj.get("config_path") or paths.config_file


for command in (audit_group, config, doctor, exceptions, logs, run, secret, status):
    cli.add_command(command)
cli.add_command(files)  # export folders
cli.add_command(bookings)  # the daily booking report
for command in (sync, pause, resume, bundle):  # through the local control channel
    cli.add_command(command)


def main() -> None:
    cli()
