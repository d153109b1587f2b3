"""``python -m sandbox``: the sandbox's command group.

Each part of the world around the bridge adds one subcommand here
(``practice`` builds the sample practice database, ``simulate`` edits it as
the front desk does, ``cloud`` serves the reference cloud, ``odapi`` serves
a stand-in of Open Dental's API Service, ``bookings`` queues booking
requests in a running cloud, ``demo`` runs the README's demo).
"""

from __future__ import annotations

from pathlib import Path

import click

from sandbox.bookings import bookings
from sandbox.cloud.cli import cloud
from sandbox.odapi.cli import odapi
from sandbox.practice.cli import practice, simulate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """The world around the bridge, for demos and tests."""


@click.command()
@click.option(
    "--root", type=click.Path(path_type=Path), default=Path("var/demo"), show_default=True
)
@click.option(
    "--run-seconds",
    type=float,
    default=60.0,
    show_default=True,
    help="Longest wait for the first sync before the demo edits the diary.",
)
def demo(root: Path, run_seconds: float) -> None:
    """Build the sample practice, point the bridge at it and run it."""
    from sandbox.demo import run_demo  # noqa: PLC0415 - keeps 'practice' light

    run_demo(root, run_seconds=run_seconds)


main.add_command(practice)
main.add_command(cloud)
main.add_command(demo)
main.add_command(simulate)
main.add_command(odapi)
main.add_command(bookings)

if __name__ == "__main__":
    main()
