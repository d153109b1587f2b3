"""The daily booking report, from real pipeline runs to the cloud's mirror.

The real pipeline (:mod:`booking_world`: the demo practice over the SQLite3
ODBC driver, the Open Dental API Service stand-in, the state store) handles
one booking of every outcome; the report counts them from local state, holds
no personal data (a canary test with every name, birth date, phone, e-mail
and note sent), reaches the reference cloud as the ``report`` entity
(checked against docs/cloud-api.yaml), and is marked final once the day is
over. The CLI and the control operation show the same report.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from booking_world import TZ, World, booking, build, make_settings
from click.testing import CliRunner

from bridge.bookings import exceptions as desk
from bridge.bookings.policy import Policy
from bridge.bookings.report import BookingReportLoop, build_report, publish, report_key
from bridge.bookings.slots import Slot
from bridge.cli import cli
from bridge.cloud import CloudClient
from bridge.cloud.protocol import Change, ChangeBatch, InboxPage, InboxResult, Reason
from bridge.cloud.protocol import InboxItem as WireItem
from bridge.config.model import Cloud
from bridge.inbox import records
from bridge.paths import BridgePaths
from bridge.pms.odbc import PmsConnection
from bridge.secrets import MemorySecretStore
from bridge.state import StateStore
from bridge.sync.outbox import Outbox
from sandbox.cloud.server import ReferenceCloud
from sandbox.cloud.spec import SpecChecker
from sandbox.cloud.testing import AGENT_ID, TOKEN
from sandbox.odapi import OdApiServer
from sandbox.odapi.testing import CUSTOMER_KEY, DEVELOPER_KEY

pytest_plugins = ["sandbox.cloud.fixtures"]
pytestmark = pytest.mark.timeout(180)

NOTE = "Please call me after 5pm, my cat is unwell"
NEW_PATIENT = {
    "first_name": "Marguerite",
    "last_name": "Quillfeather",
    "date_of_birth": "1987-09-23",
    "phone": "+1 503 555 0144",
    "email": "marguerite.q@example.net",
}


@pytest.fixture
def world(db: Path, store: StateStore, conn: PmsConnection) -> Iterator[World]:
    with OdApiServer(db, keys=[(DEVELOPER_KEY, CUSTOMER_KEY)]) as api:
        pipeline = build(db, store, api)
        yield World(db, api, store, pipeline, conn)
        pipeline.shutdown()


def day_slots(world: World, minutes: int) -> list[Slot]:
    start = datetime.now(TZ) + timedelta(days=3)
    days: dict[date, Slot] = {}
    for slot in world.engine().free_slots(start, start + timedelta(days=21), minutes):
        days.setdefault(slot.start.date(), slot)  # one per day: the bookings never touch
    return list(days.values())


def known_patient(world: World) -> dict[str, Any]:
    rows = world.conn.execute(
        "SELECT p.FName, p.LName, p.Birthdate, p.WirelessPhone FROM patient p"
        " WHERE p.PatStatus = 0 AND p.WirelessPhone <> '' AND p.Birthdate > '1900-01-01'"
        " AND (SELECT COUNT(*) FROM patient q WHERE q.Birthdate = p.Birthdate"
        "      AND q.LName = p.LName) = 1 ORDER BY p.PatNum LIMIT 1"
    )
    row = rows[0]
    born = row["Birthdate"]
    return {
        "first_name": row["FName"],
        "last_name": row["LName"],
        "date_of_birth": (
            born if isinstance(born, date) else date.fromisoformat(str(born))
        ).isoformat()[:10],
        "phone": "+1 503 555 0177",  # not the phone on file: the match is not confirmed
    }


def refused_by_validation(world: World, payload: dict[str, Any]) -> None:
    """What the inbox loop does with a payload its handler refuses: a stored rejection."""
    world.seq += 1
    item_id = f"item-{world.seq}"
    page = InboxPage(
        (WireItem(item_id, "booking.request", datetime.now(UTC), payload),), "x", False
    )
    records.receive(world.store, page, world.handlers())
    assert records.begin_attempt(world.store, item_id) is not None
    records.finish(
        world.store,
        item_id,
        InboxResult("rejected", reason=Reason("invalid_request", "patient.phone is not valid")),
    )


def run_every_outcome(world: World, db: Path) -> list[dict[str, Any]]:
    """One booking of each outcome; returns every payload sent (for the canary)."""
    slots = day_slots(world, 30)
    assert len(slots) >= 5
    sent: list[dict[str, Any]] = []

    def send(kind: str, payload: dict[str, Any]) -> InboxResult:
        sent.append(payload)
        return world.send(kind, payload)

    landed = send("booking.request", booking(slots[0], NEW_PATIENT, source="online", notes=NOTE))
    assert landed.status == "confirmed", landed
    world.pipeline.policy = Policy.from_settings(
        make_settings(db, type_policies={"Recall": "approve"}).bookings
    )
    held = send("booking.request", booking(slots[1], NEW_PATIENT, source="phone-ai"))
    assert held.status == "held", held
    world.pipeline.policy = Policy.from_settings(make_settings(db).bookings)
    taken = Slot(slots[0].start, slots[0].end, slots[0].provider_id, slots[0].operatory_id)
    conflict = send("booking.request", booking(taken, NEW_PATIENT, source="google"))
    assert conflict.status == "conflict", conflict
    doubt = send("booking.request", booking(slots[2], known_patient(world)))
    assert doubt.status == "needs_review", doubt
    unknown = send("booking.request", booking(slots[3], NEW_PATIENT, appointment_type="Magic"))
    assert unknown.status == "rejected", unknown
    bad = {**booking(slots[4], {**NEW_PATIENT, "phone": "call me"}), "source": "jo@example.org"}
    sent.append(bad)
    refused_by_validation(world, bad)
    [approval] = [
        v for v in desk.list_exceptions(world.store) if v.reason_code == "approval_required"
    ]
    outcome = world.pipeline.resolve(approval.id, desk.Resolution("approve", by="reception"))
    assert outcome.status == "confirmed"
    return sent


def test_the_report_counts_every_outcome_of_real_pipeline_runs(world: World, db: Path) -> None:
    run_every_outcome(world, db)
    report = build_report(world.store, datetime.now(TZ).date(), TZ)
    assert report["total"] == 6 and report["final"] is False
    assert report["outcomes"] == {
        "landed_automatically": 1,
        "held_for_approval": 1,
        "conflicted": 1,
        "needed_person": 1,
        "rejected": 2,
        "waiting": 0,
    }
    assert report["reasons"]["held_for_approval"] == {"approval_required": 1}
    assert report["reasons"]["needed_person"] == {"unconfirmed_match": 1}
    assert report["reasons"]["rejected"] == {"invalid_request": 1, "unknown_appointment_type": 1}
    assert set(report["reasons"]["conflicted"]) <= {"slot_taken", "provider_busy"}
    assert report["front_desk"]["exceptions_opened"] == 3
    assert report["front_desk"]["resolved"] == 1 and report["front_desk"]["open"] == 2
    assert report["front_desk"]["resolutions"] == {"approve": 1}
    assert report["front_desk"]["results_after_decision"] == {"confirmed": 1}
    assert report["new_patients"] == 1  # the held request matched the patient the first created
    assert report["sources"] == {"google": 1, "online": 1, "other": 1, "phone-ai": 1}
    assert report["by_type"]["booking.request"]["rejected"] == 2
    yesterday = build_report(world.store, datetime.now(TZ).date() - timedelta(days=1), TZ)
    assert yesterday["total"] == 0 and yesterday["final"] is True


def test_the_report_holds_no_personal_data(world: World, db: Path) -> None:
    sent = run_every_outcome(world, db)
    text = json.dumps(build_report(world.store, datetime.now(TZ).date(), TZ)).casefold()
    canaries = {NOTE, "call me", "jo@example.org"}
    for payload in sent:
        for value in payload["patient"].values():
            canaries.add(str(value))
            canaries.add("".join(ch for ch in str(value) if ch.isdigit()))
    for canary in canaries:
        if len(canary) >= 4:
            assert canary.casefold() not in text, canary


def settings_for(cloud: ReferenceCloud) -> Cloud:
    return Cloud(url=cloud.url, agent_id=AGENT_ID, ca_bundle=cloud.ca_path, timeout_seconds=5)


def deliver(outbox: Outbox, client: CloudClient) -> int:
    sent = 0
    while (batch := outbox.next_batch()) is not None:
        client.post_changes(
            ChangeBatch(
                AGENT_ID,
                batch.batch_id,
                batch.seqs[0],
                tuple(
                    Change(c.entity, c.op, c.key, c.version, c.observed_at, c.data)  # type: ignore[arg-type]
                    for c in batch.changes
                ),
            )
        )
        outbox.acknowledge(batch.batch_id)
        sent += len(batch.changes)
    return sent


def test_the_report_reaches_the_cloud_mirror_and_is_final_after_the_day(
    world: World, db: Path, reference_cloud: ReferenceCloud, cloud_spec: SpecChecker
) -> None:
    run_every_outcome(world, db)
    outbox = Outbox(world.store, AGENT_ID)
    now = [datetime.now(UTC)]
    loop = BookingReportLoop(world.store, outbox, TZ, threading.Event(), clock=lambda: now[0])
    today = now[0].astimezone(TZ).date()
    client = CloudClient(
        settings_for(reference_cloud),
        MemorySecretStore({"cloud-token": TOKEN}),
        event_hooks={"response": [cloud_spec.hook]},
    )
    with client:
        assert loop.check() == 1
        assert deliver(outbox, client) == 1
        mirror = reference_cloud.mirror("report")
        assert set(mirror) == {report_key(today)} == {f"bookings-{today.isoformat()}"}
        data = mirror[report_key(today)].data
        assert data is not None and data["total"] == 6 and data["final"] is False
        assert loop.check() == 0  # nothing changed: nothing staged, nothing sent
        assert publish(world.store, outbox, TZ, [today], now[0]) == 0

        now[0] = datetime.combine(today + timedelta(days=1), datetime.min.time(), TZ) + timedelta(
            minutes=5
        )
        assert loop.check() == 1  # the day is over: its report once more, final
        deliver(outbox, client)
        data = reference_cloud.mirror("report")[report_key(today)].data
        assert data is not None and data["final"] is True and data["total"] == 6
        assert loop.check() == 0
    assert cloud_spec.requests_checked >= 2


def test_the_cli_shows_the_report_without_an_engine(world: World, db: Path, tmp_path: Path) -> None:
    run_every_outcome(world, db)
    home = tmp_path / "home"
    paths = BridgePaths(home / "config", world.store.path.parent, home / "logs").ensure()
    config = paths.config_file
    config.write_text(
        '[practice]\nname = "Test Dental"\ntimezone = "America/Los_Angeles"\n'
        'country = "US"\n[pms]\nprofile = "opendental"\n'
        f'connection_string = "Driver={{SQLite3}};Database={db}"\n'
        '[cloud]\nurl = "https://127.0.0.1:1"\nagent_id = "agent-1"\n'
    )
    runner = CliRunner()
    obj = {"paths": BridgePaths(paths.config_dir, world.store.path.parent, paths.log_dir)}
    result = runner.invoke(
        cli, ["--config", str(config), "bookings", "report"], obj=obj, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert f"bookings on {datetime.now(TZ).date().isoformat()}" in result.output
    assert re.search(r"landed automatically +1 ", result.output)
    assert re.search(r"rejected +2 +invalid_request 1, unknown_appointment_type 1", result.output)
    assert "sources: google 1, online 1, other 1, phone-ai 1" in result.output
    as_json = runner.invoke(cli, ["--config", str(config), "bookings", "report", "--json"], obj=obj)
    assert json.loads(as_json.output)["outcomes"]["conflicted"] == 1
    bad = runner.invoke(cli, ["bookings", "report", "--date", "23-11-2026"], obj=obj)
    assert bad.exit_code == 2 and "does not match the format '%Y-%m-%d'" in bad.output
