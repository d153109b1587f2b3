"""``bridge bookings report [--date YYYY-MM-DD] [--json]``: the daily booking report.

What the bridge did with one practice-local day's bookings (default today):
how many landed automatically, were held for approval, conflicted, needed
a person or were rejected, with the reason codes, the front desk's
decisions, new patients and the requests' sources
(:mod:`bridge.bookings.report`). Counts and codes only: nothing in it names
a patient. The running engine answers through the control channel; with
no engine running the command reads the local state itself (the practice's
time zone comes from the config file).
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import click

from bridge.bookings.report import OUTCOMES, build_report
from bridge.commands.context import cli_config_path, cli_paths
from bridge.config.load import load_settings
from bridge.control.client import ControlClient
from bridge.control.errors import ControlError, EngineNotRunning
from bridge.errors import BridgeError
from bridge.state import open_state

LABELS = {
    "landed_automatically": "landed automatically",
    "held_for_approval": "held for approval",
    "conflicted": "conflicted",
    "needed_person": "needed a person",
    "rejected": "rejected",
    "waiting": "not answered yet",
}


def render_report(report: dict[str, Any]) -> str:
    state = "final" if report.get("final") else "so far"
    lines = [
        f"bookings on {report['date']} ({report['timezone']}, {state}): {report['total']}",
    ]
    reasons = report.get("reasons", {})
    for name in OUTCOMES:
        count = report["outcomes"].get(name, 0)
        line = f"  {LABELS[name]:<22} {count:>5}"
        why = reasons.get(name) or {}
        if why:
            line += "   " + ", ".join(f"{code} {n}" for code, n in why.items())
        lines.append(line)
    desk = report.get("front_desk", {})
    if desk.get("exceptions_opened"):
        decided = ", ".join(f"{k} {v}" for k, v in desk.get("resolutions", {}).items())
        lines.append(
            f"front desk: {desk['exceptions_opened']} exception(s), {desk['resolved']} resolved"
            + (f" ({decided})" if decided else "")
            + f", {desk['open']} open"
        )
    if report.get("collisions_after_booking"):
        lines.append(f"collisions found after booking: {report['collisions_after_booking']}")
    lines.append(f"new patients created: {report.get('new_patients', 0)}")
    sources = report.get("sources") or {}
    if sources:
        lines.append("sources: " + ", ".join(f"{k} {v}" for k, v in sources.items()))
    return "\n".join(lines)


def _offline(ctx: click.Context, day: date | None) -> dict[str, Any]:
    try:
        settings = load_settings(cli_config_path(ctx))
        store = open_state(cli_paths(ctx).state_db)
    except BridgeError as exc:
        raise click.ClickException(exc.message + (f"\nfix: {exc.fix}" if exc.fix else "")) from None
    try:
        zone = settings.practice.zone
        return build_report(store, day or datetime.now(zone).date(), zone)
    finally:
        store.close()


@click.group()
def bookings() -> None:
    """What the bridge did with the cloud's bookings."""


@bookings.command()
@click.option(
    "--date", "day", type=click.DateTime(formats=["%Y-%m-%d"]),
    help="The practice-local day (YYYY-MM-DD); default today.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def report(ctx: click.Context, day: datetime | None, as_json: bool) -> None:
    """The daily booking report: outcomes, reasons, front-desk decisions (no personal data)."""
    wanted = day.date() if day is not None else None
    try:
        with ControlClient.connect(cli_paths(ctx)) as client:
            data = client.booking_report(wanted)
    except EngineNotRunning:
        data = _offline(ctx, wanted)
    except ControlError as exc:
        raise click.ClickException(exc.message + (f"\nfix: {exc.fix}" if exc.fix else "")) from None
    click.echo(json.dumps(data, indent=2, sort_keys=True) if as_json else render_report(data))
