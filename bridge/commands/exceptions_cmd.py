"""``bridge exceptions``: the front desk's queue from the command line.

``list`` and ``show`` read the local state (they work with the engine
stopped); the actions ask the running engine through the control channel,
because only the engine writes to the PMS: ``approve``, ``choose`` (a
candidate's patient id, or the number of an alternative slot as listed),
``new-patient`` and ``reject``. This output names patients: it is for the
practice's own staff, on the practice server.
"""

from __future__ import annotations

import json
from typing import Any

import click

from bridge.bookings.exceptions import (
    PATIENT_REASONS,
    ExceptionView,
    Resolution,
    get_exception,
    list_exceptions,
)
from bridge.commands.context import cli_paths
from bridge.control.client import ControlClient
from bridge.control.errors import ControlError, EngineNotRunning
from bridge.state import open_state


def _store(ctx: click.Context) -> Any:
    return open_state(cli_paths(ctx).state_db)


def _when(view: ExceptionView) -> str:
    return view.created_at.astimezone().strftime("%Y-%m-%d %H:%M")


def _request_line(view: ExceptionView) -> str:
    request = view.context.get("request") or {}
    patient = request.get("patient") or {}
    who = " ".join(str(patient.get(k, "")) for k in ("first_name", "last_name")).strip()
    what = (view.context.get("appointment_type") or {}).get("name") or request.get(
        "appointment_type", ""
    )
    start = request.get("start") or (view.context.get("slot") or {}).get("start", "")
    parts = [p for p in (who, str(what), str(start)) if p]
    if request.get("pms_appointment_id"):
        parts.append(f"appointment {request['pms_appointment_id']}")
    return ", ".join(parts)


def render_list(views: list[ExceptionView]) -> str:
    if not views:
        return "no exceptions waiting"
    lines = [f"{'id':>5}  {'since':<16}  {'reason':<20}  request"]
    for view in views:
        lines.append(
            f"{view.id:>5}  {_when(view):<16}  {view.reason_code:<20}  {_request_line(view)}"
        )
    return "\n".join(lines)


def render_one(view: ExceptionView) -> str:
    lines = [
        f"exception {view.id} ({view.state}), since {_when(view)}",
        f"reason     {view.reason_code}",
        f"request    {_request_line(view)}",
    ]
    slot = view.context.get("slot")
    if slot:
        lines.append(
            f"slot       {slot['start']} operatory {slot['operatory_id']} "
            f"provider {slot['provider_id']}"
        )
    ids = view.context.get("pms_ids") or {}
    if ids:
        lines.append("pms ids    " + ", ".join(f"{k} {v}" for k, v in ids.items()))
    for candidate in view.candidates:
        reasons = ", ".join(candidate.get("reasons", []))
        shown = ", ".join(
            str(candidate[k]) for k in ("name", "birth_date", "phone", "email") if candidate.get(k)
        )
        lines.append(f"candidate  patient {candidate['patient_id']}: {shown} ({reasons})")
    for number, alternative in enumerate(view.alternatives, start=1):
        lines.append(
            f"option {number:<3} {alternative['start']} to {alternative['end']}, operatory "
            f"{alternative['operatory_id']}, provider {alternative['provider_id']}"
        )
    if view.state == "open":
        lines.append("actions    " + ", ".join(a.replace("_", "-") for a in view.actions))
    else:
        lines.append(f"resolved   {view.resolution} by {view.resolved_by or 'unknown'}")
    return "\n".join(lines)


@click.group()
def exceptions() -> None:
    """Bookings waiting for the front desk: list, show and resolve them."""


@exceptions.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include resolved exceptions.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_cmd(ctx: click.Context, show_all: bool, as_json: bool) -> None:
    """List open exceptions, oldest first."""
    store = _store(ctx)
    try:
        views = list_exceptions(store, state=None if show_all else "open")
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps([v.to_json() for v in views], indent=2))
    else:
        click.echo(render_list(views))


@exceptions.command("show")
@click.argument("exception_id", type=int)
@click.pass_context
def show_cmd(ctx: click.Context, exception_id: int) -> None:
    """Show one exception with its candidates or alternatives."""
    store = _store(ctx)
    try:
        view = get_exception(store, exception_id)
    finally:
        store.close()
    if view is None:
        raise click.ClickException(f"there is no exception {exception_id}")
    click.echo(render_one(view))


def _resolve(ctx: click.Context, exception_id: int, resolution: Resolution) -> None:
    try:
        client = ControlClient.connect(cli_paths(ctx))
        try:
            outcome = client.resolve_exception(exception_id, resolution)
        finally:
            client.close()
    except EngineNotRunning as exc:
        raise click.ClickException(
            f"{exc} Only the running engine writes to the PMS; start it, then try again."
        ) from None
    except ControlError as exc:
        raise click.ClickException(str(exc)) from None
    ids = ", ".join(f"{k} {v}" for k, v in outcome.pms_ids.items())
    line = f"exception {exception_id}: {outcome.status}"
    if outcome.reason_code:
        line += f" ({outcome.reason_code}: {outcome.message})"
    if ids:
        line += f"; {ids}"
    click.echo(line)


_BY = click.option("--by", default="cli", show_default=True, help="Who decided (audit trail).")


@exceptions.command("approve")
@click.argument("exception_id", type=int)
@_BY
@click.pass_context
def approve_cmd(ctx: click.Context, exception_id: int, by: str) -> None:
    """Approve a held booking or a late change."""
    _resolve(ctx, exception_id, Resolution("approve", by=by))


@exceptions.command("choose")
@click.argument("exception_id", type=int)
@click.argument("choice")
@_BY
@click.pass_context
def choose_cmd(ctx: click.Context, exception_id: int, choice: str, by: str) -> None:
    """Choose a candidate patient (by patient id) or an alternative slot (by option number)."""
    store = _store(ctx)
    try:
        view = get_exception(store, exception_id)
    finally:
        store.close()
    if view is None:
        raise click.ClickException(f"there is no exception {exception_id}")
    if view.reason_code in PATIENT_REASONS:
        resolution = Resolution("choose_patient", choice=choice, by=by)
    else:
        if not choice.isdigit() or not 1 <= int(choice) <= len(view.alternatives):
            raise click.ClickException(
                f"choose an option number from 1 to {len(view.alternatives)} "
                f"(see 'bridge exceptions show {exception_id}')"
            )
        resolution = Resolution("choose_alternative", choice=str(int(choice) - 1), by=by)
    _resolve(ctx, exception_id, resolution)


@exceptions.command("new-patient")
@click.argument("exception_id", type=int)
@_BY
@click.pass_context
def new_patient_cmd(ctx: click.Context, exception_id: int, by: str) -> None:
    """Book as a new patient (none of the candidates is this person)."""
    _resolve(ctx, exception_id, Resolution("new_patient", by=by))


@exceptions.command("reject")
@click.argument("exception_id", type=int)
@click.option("--message", default="", help="A note for the cloud (no personal data).")
@_BY
@click.pass_context
def reject_cmd(ctx: click.Context, exception_id: int, message: str, by: str) -> None:
    """Decline the request; a hold already written is taken out of the diary."""
    _resolve(ctx, exception_id, Resolution("reject", message=message, by=by))
