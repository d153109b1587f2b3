"""``python -m sandbox practice``: build the sample practice from the shell."""

from __future__ import annotations

import contextlib
from datetime import datetime

import click

from sandbox.practice.build import BuildReport, build_practice
from sandbox.practice.target import DEFAULT_TARGET, PracticeError, parse_target


def summary(report: BuildReport, target: str) -> str:
    """A short human summary: where, how long, rows per table, how to connect."""
    width = max(len(name) for name in report.counts)
    lines = [
        f"Built the sample practice into {target} ({report.kind}) in {report.seconds:.1f} s",
        f"today {report.today.isoformat()}, times are local to {report.timezone}",
    ]
    lines += [f"  {name:<{width}} {count:>12,}" for name, count in report.counts.items()]
    lines.append(f"  {'total':<{width}} {sum(report.counts.values()):>12,}")
    lines.append(f"Connection string: {report.connection_string}")
    if report.password:
        lines.append("(the password is the one given in --target; it is not shown here)")
    return "\n".join(lines)


@click.command()
@click.option(
    "--target",
    default=str(DEFAULT_TARGET),
    show_default=True,
    help="An SQLite file (.sqlite3/.db) or mariadb://user[:password]@host[:port]/db.",
)
@click.option(
    "--size",
    type=click.Choice(["demo", "large"]),
    default="demo",
    show_default=True,
    help="demo: ~900 patients, builds in seconds; large: >=100k patients, >=1M appointments.",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Random seed.")
@click.option(
    "--today",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Anchor date YYYY-MM-DD (default: today); the diary spans about 18 months "
    "before it to 6 months after.",
)
@click.option("--clinics", is_flag=True, help="Two clinics instead of none.")
@click.option("--replace", is_flag=True, help="Overwrite an existing target.")
def practice(
    *, target: str, size: str, seed: int, today: datetime | None, clinics: bool, replace: bool
) -> None:
    """Build the Open Dental-shaped sample practice (synthetic patients)."""
    try:
        report = build_practice(
            target,
            size=size,
            seed=seed,
            today=today.date() if today else None,
            clinics=clinics,
            replace=replace,
        )
    except PracticeError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(summary(report, parse_target(target).describe()))


@click.command()
@click.option(
    "--target",
    default=str(DEFAULT_TARGET),
    show_default=True,
    help="The practice to edit: an SQLite file or mariadb://user[:password]@host[:port]/db.",
)
@click.option("--count", type=int, default=None, help="Stop after this many edits.")
@click.option("--per-minute", type=float, default=30.0, show_default=True, help="Edits per minute.")
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed.")
def simulate(*, target: str, count: int | None, per_minute: float, seed: int) -> None:
    """Edit the practice as the front desk does (until Ctrl+C or --count).

    Prints one line per committed edit: time, action, entity and key (no
    personal data).
    """
    from sandbox.practice.simulator import Receptionist  # noqa: PLC0415 - pyodbc only here

    where = parse_target(target)
    password = getattr(where, "password", None) or None
    try:
        receptionist = Receptionist(where.connection_string, seed=seed, password=password)
    except Exception as exc:  # pyodbc.Error and friends: say what failed, briefly
        raise click.ClickException(f"cannot open {where.describe()}: {exc}") from exc
    with receptionist, contextlib.suppress(KeyboardInterrupt):  # Ctrl+C ends the session
        receptionist.run(
            count,
            per_minute=per_minute,
            on_edit=lambda e: click.echo(
                f"{datetime.fromtimestamp(e.committed_at):%H:%M:%S} "
                f"{e.action:<18} {e.entity} {e.key} ({e.op})"
            ),
        )
