"""``bridge logs``: read the bridge's local logs.

Shows the last 50 records (``-n``; with ``--since`` and no ``-n``, all
since then), filtered by ``--level`` (that level and worse), ``--grep``
(case-insensitive text), ``--since`` (``10m``, ``2h``, ``3d`` or an ISO
time) and ``--logger`` (that logger and its children). ``-f`` keeps
printing new records until Ctrl+C. Output is one line per record::

    2026-11-23 10:00:01 INFO  bridge.engine  message key=value

in local time, or the stored JSON lines with ``--json``. The logs hold no
secrets or personal data: they were masked when written.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import click

from bridge.commands.context import cli_paths
from bridge.logs import (
    LogEntry,
    follow_log_records,
    iter_log_records,
    log_files,
    parse_since,
    tail_log_records,
)

DEFAULT_LINES = 50


def _since(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_since(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.option(
    "-n", "--lines", type=click.IntRange(min=0), default=None,
    help=f"Show the last N records (default {DEFAULT_LINES}; all with --since).",
)  # fmt: skip
@click.option("-f", "--follow", is_flag=True, help="Keep printing new records (Ctrl+C stops).")
@click.option(
    "--level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
    case_sensitive=False), help="Only this level and more severe.",
)  # fmt: skip
@click.option("--grep", "text", help="Only records containing TEXT (case-insensitive).")
@click.option("--since", callback=_since, help="Only records since 10m, 2h, 3d or an ISO time.")
@click.option("--logger", help="Only this logger and its children, e.g. bridge.sync.")
@click.option("--json", "as_json", is_flag=True, help="Print the stored JSON lines.")
@click.option(
    "--log-dir", type=click.Path(path_type=Path, file_okay=False),
    help="Log folder (default: the bridge's log folder).",
)  # fmt: skip
@click.pass_context
def logs(
    ctx: click.Context,
    lines: int | None,
    follow: bool,
    level: str | None,
    text: str | None,
    since: datetime | None,
    logger: str | None,
    as_json: bool,
    log_dir: Path | None,
) -> None:
    """Show the bridge's recent log records."""
    folder = log_dir or cli_paths(ctx).log_dir
    count = lines if lines is not None else (None if since else DEFAULT_LINES)
    if not follow and not log_files(folder):
        click.echo(f"no log files in {folder}", err=True)
        return
    records: Iterable[LogEntry]
    if follow:
        records = follow_log_records(
            folder,
            lines=sys.maxsize if count is None else count,
            level=level,
            text=text,
            since=since,
            logger=logger,
        )
    elif count is None:
        records = iter_log_records(folder, level=level, text=text, since=since, logger=logger)
    else:
        records = tail_log_records(
            folder, count, level=level, text=text, since=since, logger=logger
        )
    try:
        for entry in records:
            click.echo(entry.json() if as_json else entry.human())
    except KeyboardInterrupt:
        pass
