"""On-demand record sync: named records pushed now, even if unchanged.

The first tests drive :func:`bridge.sync.on_demand.push_records` against the
demo practice through the SQLite3 ODBC driver; the rest run ``bridge run``
in a subprocess against the reference cloud and ask for records the way
people and the cloud do: ``bridge sync patient <key>`` and a cloud
``sync.request`` with ``keys``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from test_control_engine import AGENT, TOKEN, EngineProcess, World, make_world, wait_for

from bridge.control.errors import RequestRejected
from bridge.inbox.handlers import InvalidRequest, parse_keys
from bridge.pms.odbc import PmsConnection
from bridge.pms.profile import load_profile
from bridge.state import StateStore
from bridge.sync.on_demand import RecordRequests, RecordsOutcome, push_records
from bridge.sync.outbox import Outbox
from bridge.sync.records import RecordReader
from sandbox.cloud.server import ReferenceCloud
from sandbox.practice import BuildReport

LA = ZoneInfo("America/Los_Angeles")
ABSENT = "99999999"

pytestmark = pytest.mark.timeout(240)


def readers() -> dict[str, RecordReader]:
    profile = load_profile("opendental")
    return {name: RecordReader(profile, name, LA) for name in profile.entities}


def drain(outbox: Outbox) -> list[tuple[str, str, str]]:
    out = []
    while (batch := outbox.next_batch(max_changes=10_000, max_bytes=64 * 1024**2)) is not None:
        out.extend((c.entity, c.op, c.key) for c in batch.changes)
        outbox.acknowledge(batch.batch_id)
    return out


def patient_with_appointments(db: Path) -> tuple[str, set[str]]:
    with sqlite3.connect(db) as raw:
        pat = raw.execute(
            "SELECT PatNum FROM appointment GROUP BY PatNum HAVING COUNT(*) >= 2 "
            "ORDER BY PatNum LIMIT 1"
        ).fetchone()[0]
        apts = {
            str(r[0])
            for r in raw.execute("SELECT AptNum FROM appointment WHERE PatNum = ?", (pat,))
        }
    return str(pat), apts


# -- the push itself ----------------------------------------------------------------------


def test_a_patient_is_pushed_with_its_appointments_even_if_unchanged(
    conn: PmsConnection, store: StateStore, db: Path
) -> None:
    patient, appointments = patient_with_appointments(db)
    outbox = Outbox(store, "agent-1")
    first = push_records(conn, readers(), outbox, store, "patient", [patient])
    assert first.pushed == (patient,) and first.missing == ()
    assert first.related == {"appointment": len(appointments)}
    sent = drain(outbox)
    assert ("patient", "upsert", patient) in sent
    assert {k for e, _, k in sent if e == "appointment"} == appointments

    again = push_records(conn, readers(), outbox, store, "patient", [patient])  # nothing changed
    assert again.pushed == (patient,)
    resent = drain(outbox)
    assert ("patient", "upsert", patient) in resent  # force: sent again although unchanged
    assert {k for e, _, k in resent if e == "appointment"} == appointments


def test_a_missing_key_is_reported_and_a_record_the_cloud_had_is_deleted(
    conn: PmsConnection, store: StateStore, db: Path
) -> None:
    outbox = Outbox(store, "agent-1")
    push_records(conn, readers(), outbox, store, "appointment", ["10"])
    drain(outbox)
    with sqlite3.connect(db) as raw:
        raw.execute("DELETE FROM appointment WHERE AptNum = 10")
    outcome = push_records(conn, readers(), outbox, store, "appointment", ["10", ABSENT])
    assert outcome.pushed == () and outcome.missing == ("10", ABSENT)
    assert outcome.deleted == ("10",)  # the cloud was sent it: now it learns it is gone
    assert drain(outbox) == [("appointment", "delete", "10")]
    assert "2 appointment key(s) not in the PMS: 10, 99999999" in outcome.describe()


def test_requests_merge_and_waiters_see_only_pushes_taken_after_their_request() -> None:
    clock = [100.0]
    seen: list[RecordsOutcome] = []
    requests = RecordRequests(seen.append, clock=lambda: clock[0])
    early = requests.ask("patient", ["1"])
    taken_at, wanted = requests.take()
    requests.settle(RecordsOutcome("patient", ("1",), ()), taken_at)
    clock[0] = 101.0
    late = requests.ask("patient", ["1", "2"])
    requests.ask("patient", ["2"])
    assert requests.wait("patient", ["1"], early, timeout=0) == (("1",), ())
    assert requests.wait("patient", ["1"], late, timeout=0) is None  # not re-read since
    taken_at, wanted = requests.take()
    assert wanted == {"patient": {"1", "2"}}  # merged
    result: list[object] = []
    waiter = threading.Thread(
        target=lambda: result.append(requests.wait("patient", ["1", "2"], late, 5))
    )
    waiter.start()
    requests.settle(RecordsOutcome("patient", ("1",), ("2",)), taken_at)
    waiter.join(5)
    assert result == [(("1",), ("2",))] and len(seen) == 2


def test_keys_must_be_record_keys_of_one_entity() -> None:
    for keys, words in (
        (["abc"], "keys[0] is not a record key"),
        (["12", "0"], "keys[1] is not a record key"),
        (["-5"], "keys[0] is not a record key"),
    ):
        with pytest.raises(InvalidRequest, match=words.replace("[", r"\[").replace("]", r"\]")):
            parse_keys({"entities": ["patient"], "keys": keys}, ("patient",))
    assert parse_keys({"entities": ["patient"], "keys": ["7", "7", "12"]}, ("patient",)) == (
        "7",
        "12",
    )
    # an entity the bridge computes (not read from the PMS) takes any short key
    computed = {"entities": ["availability"], "keys": ["2026-12-01"]}
    assert parse_keys(computed, ("availability",), record_entities=("patient",)) == ("2026-12-01",)
    with pytest.raises(InvalidRequest, match="is not a record key"):
        parse_keys({"entities": ["patient"], "keys": ["x"]}, ("patient",), ("patient",))


# -- end to end: a real engine and the reference cloud -----------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, practice: BuildReport) -> Iterator[World]:
    root = tmp_path_factory.mktemp("on-demand")
    with ReferenceCloud(root / "cloud" / "cloud.sqlite3", tokens={AGENT: TOKEN}) as cloud:
        yield make_world(root, practice, cloud)


@pytest.fixture(scope="module")
def synced(world: World) -> Iterator[World]:
    process = EngineProcess(world).start()
    try:
        with sqlite3.connect(world.db) as raw:
            patients = raw.execute("SELECT COUNT(*) FROM patient").fetchone()[0]
            appointments = raw.execute("SELECT COUNT(*) FROM appointment").fetchone()[0]

        def delivered() -> bool:
            return (
                world.first_sync_done()
                and len(world.cloud.mirror("patient")) == patients
                and len(world.cloud.mirror("appointment")) == appointments
            )

        wait_for(delivered, 150, "first sync delivered")
        yield world
    finally:
        assert process.stop() == 0


def received(world: World, entity: str, key: str) -> int:
    return len(world.cloud.change_log(entity=entity, key=key))


def test_bridge_sync_patient_key_sends_the_unchanged_patient_and_appointments_again(
    synced: World,
) -> None:
    world = synced
    patient, appointments = patient_with_appointments(world.db)
    apt = sorted(appointments)[0]
    before = received(world, "patient", patient), received(world, "appointment", apt)
    assert before[0] >= 1  # the first sync sent it once

    done = world.cli("sync", "patient", patient, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"pushed patient {patient} with {len(appointments)} related record(s)" in done.stdout
    wait_for(
        lambda: (
            received(world, "patient", patient) == before[0] + 1
            and received(world, "appointment", apt) == before[1] + 1
        ),
        30,
        "the unchanged patient and its appointment received again",
    )
    last = world.cloud.change_log(entity="patient", key=patient)[-1]
    assert last.outcome == "applied" and last.op == "upsert"


def test_a_cloud_sync_request_with_keys_pushes_them_and_reports_a_missing_one(
    synced: World,
) -> None:
    world = synced
    patient, _ = patient_with_appointments(world.db)
    before = received(world, "patient", patient)
    item = world.cloud.enqueue("sync.request", {"entities": ["patient"], "keys": [patient, ABSENT]})
    none = world.cloud.enqueue("sync.request", {"entities": ["patient"], "keys": [ABSENT]})
    bad = world.cloud.enqueue("sync.request", {"entities": ["patient"], "keys": ["12a"]})

    def results() -> dict[str, tuple[str, str, str]]:
        return {
            r.id: (r.status, r.result["reason"]["code"], r.result["reason"]["message"])
            for r in world.cloud.results()
        }

    wait_for(lambda: {item.id, none.id, bad.id} <= set(results()), 60, "three results")
    answer = results()
    assert answer[item.id][:2] == ("confirmed", "records_partly_found")
    assert f"not in the PMS: {ABSENT}" in answer[item.id][2]
    assert answer[none.id][:2] == ("rejected", "records_not_found")
    assert answer[bad.id][:2] == ("rejected", "invalid_request")
    assert "keys[0] is not a record key" in answer[bad.id][2]
    wait_for(lambda: received(world, "patient", patient) == before + 1, 30, "patient re-sent")


def test_the_cli_says_what_is_wrong_with_a_request(synced: World) -> None:
    world = synced
    missing = world.cli("sync", "patient", ABSENT, timeout=60)
    assert missing.returncode == 1
    assert f"not in the PMS: patient {ABSENT}" in missing.stderr
    not_a_key = world.cli("sync", "patient", "--key", "abc", timeout=60)
    assert not_a_key.returncode == 1 and "keys[0] is not a record key" in not_a_key.stderr
    unknown = world.cli("sync", "patients", "12", timeout=60)
    assert unknown.returncode == 1 and "entities[0] is not an entity" in unknown.stderr
    two = world.cli("sync", "patient", "appointment", "12", timeout=60)
    assert two.returncode == 1 and "keys needs exactly one entity" in two.stderr


def test_the_engine_answers_the_booking_report_over_the_control_channel(synced: World) -> None:
    """The ``booking_report`` operation (its content: tests/test_booking_report*.py)."""
    with synced.client() as client:
        report = client.booking_report()
        assert report["kind"] == "bookings" and report["total"] == 0
        assert client.booking_report(date(2026, 1, 5))["date"] == "2026-01-05"
        with pytest.raises(RequestRejected, match='date must be a day as "YYYY-MM-DD"'):
            client.request("booking_report", {"date": "2026-13-01"})
