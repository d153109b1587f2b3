"""Reference cloud: the inbox long-poll, cursors, results, heartbeats, persistence."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import httpx
import pytest

from sandbox.cloud.server import ReferenceCloud
from sandbox.cloud.spec import SpecChecker, SpecViolation
from sandbox.cloud.testing import TOKEN, batch, change, client_for, post_batch

pytest_plugins = ["sandbox.cloud.fixtures"]

BOOKING = {
    "patient": {"first_name": "Ada", "last_name": "Byron", "date_of_birth": "1990-12-10"},
    "start": "2026-12-01T10:00:00-08:00",
    "appointment_type": "Cleaning",
}
CONFLICT = {
    "status": "conflict",
    "pms_ids": {},
    "alternatives": [
        {
            "start": "2026-12-01T11:00:00-08:00",
            "end": "2026-12-01T11:30:00-08:00",
            "provider_id": "3",
            "operatory_id": "5",
        }
    ],
    "reason": {"code": "slot_taken", "message": "The slot was booked meanwhile."},
}


def test_a_poll_returns_what_is_waiting_oldest_first(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    first = reference_cloud.enqueue("booking.request", BOOKING)
    second = reference_cloud.enqueue("sync.request", {"entities": []})
    page = cloud_client.get("/v1/inbox").json()
    assert [i["id"] for i in page["items"]] == [first.id, second.id]
    assert page["items"][0] == {
        "id": first.id,
        "type": "booking.request",
        "created_at": first.created_at,
        "payload": BOOKING,
        "deliveries": 1,
    }
    assert page["more"] is False


def test_the_cursor_moves_on_but_an_item_stays_until_its_result(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    item = reference_cloud.enqueue("booking.request", BOOKING)
    page = cloud_client.get("/v1/inbox").json()
    after = cloud_client.get("/v1/inbox", params={"after": page["cursor"]}).json()
    assert after["items"] == []
    assert after["cursor"] == page["cursor"]
    again = cloud_client.get("/v1/inbox").json()  # no cursor: everything without a result
    assert [i["id"] for i in again["items"]] == [item.id]
    assert again["items"][0]["deliveries"] == 2
    posted = cloud_client.post(f"/v1/inbox/{item.id}/result", json={"status": "confirmed"})
    assert posted.status_code == 200
    assert cloud_client.get("/v1/inbox").json()["items"] == []


def test_limit_cuts_a_page_and_says_so(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    ids = [reference_cloud.enqueue("sync.request", {"entities": [str(n)]}).id for n in range(5)]
    page = cloud_client.get("/v1/inbox", params={"limit": 2}).json()
    assert ([i["id"] for i in page["items"]], page["more"]) == (ids[:2], True)
    rest = cloud_client.get("/v1/inbox", params={"limit": 10, "after": page["cursor"]}).json()
    assert ([i["id"] for i in rest["items"]], rest["more"]) == (ids[2:], False)


def test_a_long_poll_wakes_as_soon_as_an_item_is_enqueued(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    start = cloud_client.get("/v1/inbox").json()["cursor"]
    got: dict[str, object] = {}

    def poll() -> None:
        response = cloud_client.get("/v1/inbox", params={"after": start, "wait": 20})
        got["page"] = response.json()
        got["at"] = time.monotonic()

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.3)
    assert poller.is_alive()
    enqueued_at = time.monotonic()
    item = reference_cloud.enqueue("booking.request", BOOKING)
    poller.join(10)
    assert not poller.is_alive()
    assert float(got["at"]) - enqueued_at < 1.0  # type: ignore[arg-type]
    page = got["page"]
    assert isinstance(page, dict)
    assert [i["id"] for i in page["items"]] == [item.id]


def test_a_long_poll_with_nothing_to_return_times_out_empty(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    started = time.monotonic()
    page = cloud_client.get("/v1/inbox", params={"wait": 0.5}).json()
    elapsed = time.monotonic() - started
    assert page["items"] == []
    assert 0.5 <= elapsed < 3


def test_the_wait_is_capped(reference_cloud: ReferenceCloud, cloud_client: httpx.Client) -> None:
    reference_cloud.set_limits(max_wait_seconds=0.2)
    started = time.monotonic()
    assert cloud_client.get("/v1/inbox", params={"wait": 600}).json()["items"] == []
    assert time.monotonic() - started < 3


def test_an_item_for_another_agent_does_not_wake_or_show(
    tmp_path: Path, cloud_spec: SpecChecker
) -> None:
    with (
        ReferenceCloud(tmp_path / "c.sqlite3", tokens={"a": "ta", "b": "tb"}) as cloud,
        client_for(cloud.url, token="ta", checker=cloud_spec) as client,
    ):
        cloud.enqueue("sync.request", {"entities": []}, agent_id="b")
        started = time.monotonic()
        assert client.get("/v1/inbox", params={"wait": 0.3}).json()["items"] == []
        assert time.monotonic() - started >= 0.3
        assert [i.agent_id for i in cloud.inbox()] == ["b"]


def test_stop_releases_a_waiting_long_poll(tmp_path: Path) -> None:
    cloud = ReferenceCloud(tmp_path / "c.sqlite3").start()
    finished = threading.Event()

    def poll() -> None:
        # an answer or a closed socket, but at once
        with client_for(cloud.url) as client, contextlib.suppress(httpx.TransportError):
            client.get("/v1/inbox", params={"wait": 30})
        finished.set()

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.3)
    started = time.monotonic()
    cloud.stop()
    assert finished.wait(5)
    assert time.monotonic() - started < 5
    poller.join()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"wait": "soon"}, "wait"),
        ({"wait": "-1"}, "wait"),
        ({"limit": "0"}, "limit"),
        ({"after": "garbage"}, "after"),
    ],
)
def test_bad_query_parameters_are_400(
    cloud_client: httpx.Client, params: dict[str, str], field: str
) -> None:
    response = cloud_client.get("/v1/inbox", params=params)
    assert (response.status_code, response.json()["field"]) == (400, field)


def test_results_are_idempotent_per_item(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    item = reference_cloud.enqueue("booking.request", BOOKING)
    url = f"/v1/inbox/{item.id}/result"
    first = cloud_client.post(url, json=CONFLICT)
    assert first.status_code == 200
    assert (first.json()["duplicate"], first.json()["status"]) == (False, "conflict")
    # the same result, keys in another order and defaults spelt out or not: a repeat
    repeat = cloud_client.post(url, json=dict(reversed(list(CONFLICT.items()))))
    assert repeat.status_code == 200
    assert repeat.json() == {**first.json(), "duplicate": True}
    [result] = reference_cloud.results()
    assert (result.id, result.status, result.repeats) == (item.id, "conflict", 1)
    assert result.result["alternatives"] == CONFLICT["alternatives"]


def test_a_provisional_result_is_replaced_once_a_final_one_comes(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    """The front desk's decision on a conflict or review reaches the cloud as a new result."""
    item = reference_cloud.enqueue("booking.request", BOOKING)
    url = f"/v1/inbox/{item.id}/result"
    assert cloud_client.post(url, json=CONFLICT).status_code == 200
    final = {"status": "confirmed", "pms_ids": {"appointment": "9"}}
    replaced = cloud_client.post(url, json=final)
    assert (replaced.status_code, replaced.json()["duplicate"]) == (200, False)
    assert cloud_client.post(url, json=final).json()["duplicate"] is True
    other = cloud_client.post(url, json={"status": "rejected", "reason": CONFLICT["reason"]})
    assert (other.status_code, other.json()["code"]) == (409, "result_conflict")
    back = cloud_client.post(url, json=CONFLICT)
    assert (back.status_code, back.json()["code"]) == (409, "result_conflict")
    [result] = reference_cloud.results()
    assert (result.status, result.result["pms_ids"]) == ("confirmed", {"appointment": "9"})


def test_a_result_with_defaults_equals_one_spelt_out(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    item = reference_cloud.enqueue("booking.request", BOOKING)
    url = f"/v1/inbox/{item.id}/result"
    assert cloud_client.post(url, json={"status": "held"}).json()["duplicate"] is False
    full = {"status": "held", "pms_ids": {}, "alternatives": [], "reason": None}
    assert cloud_client.post(url, json=full).json()["duplicate"] is True


def test_a_result_for_an_unknown_item_is_404(
    reference_cloud: ReferenceCloud, cloud_spec: SpecChecker, tmp_path: Path
) -> None:
    with client_for(reference_cloud.url, checker=cloud_spec) as client:
        response = client.post("/v1/inbox/itm_nope/result", json={"status": "confirmed"})
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    # nor may one agent answer another agent's item
    with (
        ReferenceCloud(tmp_path / "two.sqlite3", tokens={"a": "ta", "b": "tb"}) as cloud,
        client_for(cloud.url, token="tb", checker=cloud_spec) as client,
    ):
        item = cloud.enqueue("sync.request", {"entities": []}, agent_id="a")
        response = client.post(f"/v1/inbox/{item.id}/result", json={"status": "confirmed"})
        assert response.status_code == 404


LATE_ALTERNATIVE = {**CONFLICT["alternatives"][0], "end": "2026-12-01T10:00:00-08:00"}  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("body", "field", "schema_can_tell"),
    [
        ({}, "status", True),
        ({"status": "done"}, "status", True),
        ({"status": "rejected"}, "reason", True),
        (
            {"status": "rejected", "reason": {"code": "Bad Code", "message": ""}},
            "reason.code",
            True,
        ),
        ({"status": "confirmed", "pms_ids": {"appointment": 12}}, "pms_ids.appointment", True),
        # end before start: a rule the schema cannot state (the spec says it in words)
        (
            {
                "status": "conflict",
                "reason": {"code": "slot_taken", "message": ""},
                "alternatives": [LATE_ALTERNATIVE],
            },
            "alternatives[0].end",
            False,
        ),
    ],
)
def test_result_validation_names_the_field(
    reference_cloud: ReferenceCloud,
    cloud_client: httpx.Client,
    cloud_spec: SpecChecker,
    body: dict[str, object],
    field: str,
    schema_can_tell: bool,
) -> None:
    item = reference_cloud.enqueue("booking.request", BOOKING)
    response = cloud_client.post(f"/v1/inbox/{item.id}/result", json=body)
    assert response.status_code == 422
    assert response.json()["field"] == field
    assert reference_cloud.results() == []
    if schema_can_tell:
        with pytest.raises(SpecViolation):  # the contract refuses it too
            cloud_spec.check_request(response.request)


def test_enqueue_checks_type_and_id(reference_cloud: ReferenceCloud) -> None:
    with pytest.raises(ValueError, match="type"):
        reference_cloud.enqueue("Booking Request", {})
    reference_cloud.enqueue("sync.request", {}, item_id="fixed-1")
    with pytest.raises(ValueError, match="taken"):
        reference_cloud.enqueue("sync.request", {}, item_id="fixed-1")


def test_heartbeats_keep_the_latest_and_the_history(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    assert reference_cloud.heartbeat() is None
    beat = {
        "agent_id": "agent-1",
        "version": "0.1.0",
        "queue_depths": {"outbox": 12, "files": 0},
        "last_sync": {"patient": "2026-11-23T10:00:00+00:00", "claim": None},
        "lag_seconds": {"patient": 1.5},
        "errors": [{"component": "pms", "message": "ODBC timeout", "kind": "pms_unavailable"}],
    }
    for depth in (12, 3):
        response = cloud_client.post(
            "/v1/heartbeat", json={**beat, "queue_depths": {"outbox": depth}}
        )
        assert response.status_code == 200
    latest = reference_cloud.heartbeat()
    assert latest is not None
    assert latest.body["queue_depths"] == {"outbox": 3}
    assert latest.body["errors"][0]["since"] is None
    assert [h.body["queue_depths"]["outbox"] for h in reference_cloud.heartbeats()] == [12, 3]
    bad = cloud_client.post("/v1/heartbeat", json={**beat, "queue_depths": {"outbox": -1}})
    assert (bad.status_code, bad.json()["field"]) == (422, "queue_depths.outbox")
    other = cloud_client.post("/v1/heartbeat", json={**beat, "agent_id": "agent-9"})
    assert other.status_code == 403


def test_state_and_cursors_survive_a_restart(tmp_path: Path, cloud_spec: SpecChecker) -> None:
    db = tmp_path / "cloud.sqlite3"
    body = batch([change("1", "1")])
    with ReferenceCloud(db) as cloud, client_for(cloud.url, checker=cloud_spec) as client:
        items = [cloud.enqueue("sync.request", {"entities": [str(n)]}).id for n in range(3)]
        page = client.get("/v1/inbox", params={"limit": 2}).json()
        client.post(f"/v1/inbox/{items[0]}/result", json={"status": "confirmed"})
        assert post_batch(client, body).json()["duplicate"] is False
        cursor = page["cursor"]
    with (
        ReferenceCloud(db) as cloud,
        client_for(cloud.url, token=TOKEN, checker=cloud_spec) as client,
    ):
        after = client.get("/v1/inbox", params={"after": cursor}).json()
        assert [i["id"] for i in after["items"]] == [items[2]]
        everything = client.get("/v1/inbox").json()
        assert [i["id"] for i in everything["items"]] == items[1:]
        assert post_batch(client, body).json()["duplicate"] is True
        assert cloud.mirror("patient")["1"].version == "1"
        assert len(cloud.change_log()) == 1
        assert [r.id for r in cloud.results()] == [items[0]]
        # a reset forgets everything but the numbering: old cursors stay safe
        cloud.reset()
        fresh = cloud.enqueue("sync.request", {"entities": []})
        assert [
            i["id"] for i in client.get("/v1/inbox", params={"after": cursor}).json()["items"]
        ] == [fresh.id]


def test_a_cursor_from_another_cloud_reads_as_no_cursor(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    item = reference_cloud.enqueue("sync.request", {"entities": []})
    page = cloud_client.get("/v1/inbox", params={"after": "0123456789ab.999"}).json()
    assert [i["id"] for i in page["items"]] == [item.id]
