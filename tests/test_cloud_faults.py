"""Reference cloud: injected faults, each observed with a raw httpx client."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from sandbox.cloud.models import Fault
from sandbox.cloud.server import ReferenceCloud
from sandbox.cloud.spec import SpecChecker
from sandbox.cloud.testing import batch, change, client_for, post_batch

pytest_plugins = ["sandbox.cloud.fixtures"]


def test_error_answers_500_for_the_next_k_requests(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    rule = reference_cloud.set_fault(Fault("error", count=2, path_prefix="/v1/changes"))
    body = batch([change()])
    assert cloud_client.get("/v1/inbox").status_code == 200  # another path: untouched
    assert [post_batch(cloud_client, body).status_code for _ in range(3)] == [500, 500, 200]
    [listed] = reference_cloud.faults()
    assert (listed.id, listed.fired, listed.active) == (rule.id, 2, False)
    assert reference_cloud.stats().faults_fired == {"error": 2}
    assert len(reference_cloud.change_log()) == 1


@pytest.mark.parametrize(("kind", "status"), [("throttle", 429), ("unavailable", 503)])
def test_throttle_and_unavailable_carry_retry_after(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client, kind: str, status: int
) -> None:
    reference_cloud.set_fault(Fault(kind, count=2, retry_after=7))  # type: ignore[arg-type]
    response = post_batch(cloud_client, batch([change()]))
    assert response.status_code == status
    assert response.headers["Retry-After"] == "7"
    head = cloud_client.head(f"/v1/files/{'0' * 64}")
    assert (head.status_code, head.headers["Retry-After"]) == (status, "7")
    assert reference_cloud.change_log() == []
    assert post_batch(cloud_client, batch([change()])).status_code == 200


def test_a_fault_fires_before_the_token_is_checked(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    reference_cloud.set_fault(Fault("unavailable", count=1, retry_after=0))
    response = cloud_client.get("/v1/inbox", headers={"Authorization": "Bearer wrong"})
    assert (response.status_code, response.headers["Retry-After"]) == (503, "0")


def test_delay_slows_the_answer_after_the_work_is_done(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    reference_cloud.set_fault(Fault("delay", count=2, delay_ms=300))
    started = time.monotonic()
    assert cloud_client.get("/v1/inbox").status_code == 200
    assert time.monotonic() - started >= 0.3
    body = batch([change("1", "1")])
    with pytest.raises(httpx.ReadTimeout):
        post_batch(cloud_client, body, timeout=0.1)
    time.sleep(0.4)
    assert "1" in reference_cloud.mirror("patient")  # applied although the client gave up
    assert post_batch(cloud_client, body).json()["duplicate"] is True


def test_drop_before_closes_without_an_answer_and_applies_nothing(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    reference_cloud.set_fault(Fault("drop_before", count=1, path_prefix="/v1/changes"))
    body = batch([change("1", "1")])
    with pytest.raises(httpx.TransportError):
        post_batch(cloud_client, body)
    assert reference_cloud.change_log() == []
    retry = post_batch(cloud_client, body).json()
    assert (retry["duplicate"], retry["applied"]) == (False, 1)


def test_drop_after_applies_then_closes_and_the_retry_is_a_duplicate(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    reference_cloud.set_fault(Fault("drop_after", count=1, path_prefix="/v1/changes"))
    body = batch([change("1", "1"), change("2", "1")])
    with pytest.raises(httpx.RemoteProtocolError):
        post_batch(cloud_client, body)
    assert len(reference_cloud.change_log()) == 2  # applied, though nobody heard back
    retry = post_batch(cloud_client, body).json()
    assert (retry["duplicate"], retry["accepted"], retry["applied"]) == (True, 2, 2)
    log = reference_cloud.change_log()
    assert [(e.key, e.outcome) for e in log] == [("1", "applied"), ("2", "applied")]
    assert reference_cloud.stats().faults_fired == {"drop_after": 1}


def test_drop_after_on_the_inbox_loses_the_page_not_the_items(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    item = reference_cloud.enqueue("sync.request", {"entities": []})
    reference_cloud.set_fault(Fault("drop_after", count=1, path_prefix="/v1/inbox"))
    with pytest.raises(httpx.RemoteProtocolError):
        cloud_client.get("/v1/inbox")
    page = cloud_client.get("/v1/inbox").json()
    assert [(i["id"], i["deliveries"]) for i in page["items"]] == [(item.id, 2)]


def test_probability_faults_are_repeatable_with_a_seed(
    tmp_path: Path, cloud_spec: SpecChecker
) -> None:
    def run(folder: Path) -> list[int]:
        with (
            ReferenceCloud(folder / "c.sqlite3", seed=42) as cloud,
            client_for(cloud.url, checker=cloud_spec) as client,
        ):
            cloud.set_fault(Fault("error", probability=0.5))
            statuses = [client.get("/v1/inbox").status_code for _ in range(40)]
            assert cloud.faults()[0].fired == statuses.count(500)
            return statuses

    first, second = run(tmp_path / "a"), run(tmp_path / "b")
    assert first == second
    assert 5 < first.count(500) < 35


def test_method_and_prefix_narrow_a_rule(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    reference_cloud.set_fault(Fault("error", path_prefix="/v1/files/", method="PUT"))
    assert cloud_client.head(f"/v1/files/{'0' * 64}").status_code == 404
    assert cloud_client.get("/v1/inbox").status_code == 200
    put = cloud_client.put(f"/v1/files/{'0' * 64}", content=b"")
    assert put.status_code == 500
    assert reference_cloud.clear_faults() == 1
    assert reference_cloud.faults() == []


def test_delays_add_up_and_the_first_action_wins(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    reference_cloud.set_fault(Fault("delay", count=1, delay_ms=150))
    reference_cloud.set_fault(Fault("throttle", count=1, retry_after=2))
    second = reference_cloud.set_fault(Fault("error", count=1))
    started = time.monotonic()
    assert cloud_client.get("/v1/inbox").status_code == 429
    assert time.monotonic() - started >= 0.15
    assert cloud_client.get("/v1/inbox").status_code == 500
    assert [f.fired for f in reference_cloud.faults()] == [1, 1, 1]
    assert reference_cloud.clear_faults(second.id) == 1


def test_the_batch_limit_switch_forces_413(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    body = batch([change(str(k)) for k in range(5)])
    reference_cloud.set_limits(max_changes=4)
    too_big = post_batch(cloud_client, body)
    assert too_big.status_code == 413
    assert too_big.json()["limits"]["max_changes"] == 4
    reference_cloud.set_limits(max_changes=5)
    assert post_batch(cloud_client, body).status_code == 200


def test_fault_rules_are_checked(reference_cloud: ReferenceCloud) -> None:
    with pytest.raises(ValueError, match="kind"):
        Fault("explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not both"):
        Fault("error", count=1, probability=0.5)
    with pytest.raises(ValueError, match="probability"):
        Fault("error", probability=2)
