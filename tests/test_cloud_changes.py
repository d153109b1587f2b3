"""Reference cloud: POST /v1/changes - idempotency, version order, validation, limits, auth."""

from __future__ import annotations

import gzip
import json
import threading
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.cloud.server import ReferenceCloud
from sandbox.cloud.spec import SpecChecker, SpecViolation
from sandbox.cloud.testing import AGENT_ID, batch, change, client_for, post_batch
from sandbox.cloud.validation import version_key

pytest_plugins = ["sandbox.cloud.fixtures"]


def test_a_batch_is_applied_and_acknowledged(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    body = batch([change("1", "1", data={"name": "A"}), change("2", "1", entity="appointment")])
    response = post_batch(cloud_client, body)
    assert response.status_code == 200
    ack = response.json()
    assert ack["batch_id"] == body["batch_id"]
    assert (ack["accepted"], ack["applied"], ack["stale"], ack["duplicate"]) == (2, 2, 0, False)
    row = reference_cloud.mirror("patient")["1"]
    assert (row.data, row.version, row.deleted) == ({"name": "A"}, "1", False)
    assert list(reference_cloud.mirror("appointment")) == ["2"]
    log = reference_cloud.change_log()
    assert [(e.entity, e.key, e.batch_id, e.outcome) for e in log] == [
        ("patient", "1", body["batch_id"], "applied"),
        ("appointment", "2", body["batch_id"], "applied"),
    ]


def test_a_repeated_batch_is_acknowledged_again_and_applied_once(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    body = batch([change("1", "1"), change("2", "1")])
    first = post_batch(cloud_client, body).json()
    second = post_batch(cloud_client, body).json()
    assert first["duplicate"] is False
    assert second == {**first, "duplicate": True}
    assert len(reference_cloud.change_log(batch_id=body["batch_id"])) == 2
    stats = reference_cloud.stats()
    assert (stats.batches, stats.duplicate_batches, stats.changes_applied) == (1, 1, 2)


def test_the_same_batch_gzipped_is_still_the_same_batch(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    body = batch([change("1", "1")])
    assert post_batch(cloud_client, body).json()["duplicate"] is False
    response = cloud_client.post(
        "/v1/changes",
        content=gzip.compress(json.dumps(body, indent=2).encode()),
        headers={
            "Idempotency-Key": body["batch_id"],
            "Content-Encoding": "gzip",
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 200
    assert response.json()["duplicate"] is True
    assert len(reference_cloud.change_log()) == 1


def test_concurrent_duplicates_are_applied_exactly_once(
    reference_cloud: ReferenceCloud, cloud_spec: SpecChecker
) -> None:
    body = batch([change(str(k), "1") for k in range(50)])
    senders = 8
    barrier = threading.Barrier(senders)
    acks: list[dict[str, object]] = []
    lock = threading.Lock()

    def send() -> None:
        with client_for(reference_cloud.url, checker=cloud_spec, timeout=30) as client:
            barrier.wait()
            ack = post_batch(client, body).json()
        with lock:
            acks.append(ack)

    threads = [threading.Thread(target=send) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(acks) == senders
    assert sorted(bool(a["duplicate"]) for a in acks) == [False] + [True] * (senders - 1)
    assert all(a["applied"] == 50 for a in acks)
    log = reference_cloud.change_log(batch_id=body["batch_id"])
    assert len(log) == 50
    assert len({(e.key, e.version) for e in log}) == 50
    assert reference_cloud.stats().duplicate_batches == senders - 1


def test_a_batch_id_reused_for_another_body_is_409(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    body = batch([change("1", "1")])
    post_batch(cloud_client, body)
    response = post_batch(cloud_client, {**body, "changes": [change("1", "2")]})
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_key_reused"
    assert reference_cloud.mirror("patient")["1"].version == "1"


def test_an_older_version_never_overwrites_a_newer_one(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    post_batch(cloud_client, batch([change("1", "10", data={"v": 10})]))
    ack = post_batch(
        cloud_client,
        batch([change("1", "9", data={"v": 9}), change("1", "10", data={"v": "again"})]),
    ).json()
    assert (ack["applied"], ack["stale"]) == (0, 2)
    row = reference_cloud.mirror("patient")["1"]
    assert (row.version, row.data) == ("10", {"v": 10})
    assert [e.outcome for e in reference_cloud.change_log(key="1")] == ["applied", "stale", "stale"]


def test_changes_in_one_batch_apply_in_order(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    changes = [change("1", "1", data={"n": 1}), change("1", "2", data={"n": 2})]
    ack = post_batch(cloud_client, batch(changes)).json()
    assert ack["applied"] == 2
    assert reference_cloud.mirror("patient")["1"].data == {"n": 2}
    assert [e.position for e in reference_cloud.change_log()] == [0, 1]


def test_a_delete_leaves_a_tombstone_that_only_a_newer_upsert_lifts(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    post_batch(cloud_client, batch([change("7", "0001", data={"name": "X"})]))
    post_batch(cloud_client, batch([change("7", "0002", op="delete", data=None)]))
    row = reference_cloud.mirror("patient")["7"]
    assert (row.deleted, row.data, row.version) == (True, None, "0002")
    post_batch(cloud_client, batch([change("7", "0001", data={"name": "late"})]))
    assert reference_cloud.mirror("patient")["7"].deleted is True
    post_batch(cloud_client, batch([change("7", "0003", data={"name": "back"})]))
    row = reference_cloud.mirror("patient")["7"]
    assert (row.deleted, row.data) == (False, {"name": "back"})


def test_a_delete_of_an_unknown_key_is_a_tombstone(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    post_batch(cloud_client, batch([change("9", "5", op="delete")]))
    post_batch(cloud_client, batch([change("9", "4", data={"name": "older"})]))
    row = reference_cloud.mirror("patient")["9"]
    assert (row.deleted, row.version) == (True, "5")


def test_version_order_is_shortlex() -> None:
    ordered = ["1", "2", "9", "10", "11", "99", "100", "0000000002", "0000000010", "A", "a"]
    assert sorted(ordered[:7], key=version_key) == ordered[:7]
    assert version_key("0000000002") < version_key("0000000010")
    assert version_key("20261123T100000Z-0001") < version_key("20261123T100001Z-0000")
    assert version_key("Z") < version_key("a")


versions = st.integers(min_value=0, max_value=10_000).map(str)
history = st.lists(
    st.tuples(st.sampled_from(["1", "2", "3"]), versions, st.booleans()), min_size=1, max_size=25
)


@settings(
    max_examples=25,
    deadline=None,
    # One server for the test, reset for each example.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(history=history, batch_size=st.integers(min_value=1, max_value=6))
def test_the_mirror_holds_the_greatest_version_whatever_the_arrival_order(
    reference_cloud: ReferenceCloud,
    cloud_client: httpx.Client,
    history: list[tuple[str, str, bool]],
    batch_size: int,
) -> None:
    reference_cloud.reset()
    changes = [
        change(key, version, op="delete" if deleted else "upsert", data=None)
        if deleted
        else change(key, version, data={"v": version})
        for key, version, deleted in history
    ]
    for start in range(0, len(changes), batch_size):
        response = post_batch(cloud_client, batch(changes[start : start + batch_size]))
        assert response.status_code == 200
    mirror = reference_cloud.mirror("patient")
    for key in {k for k, _, _ in history}:
        mine = [(v, d) for k, v, d in history if k == key]
        # the first change with the greatest version wins; equal versions later are stale
        best = max(mine, key=lambda vd: version_key(vd[0]))
        first_best = next(vd for vd in mine if vd[0] == best[0])
        assert mirror[key].version == best[0]
        assert mirror[key].deleted is first_best[1]
    log = reference_cloud.change_log()
    assert len(log) == len(changes)
    assert sum(e.outcome == "applied" for e in log) == reference_cloud.stats().changes_applied


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.pop("agent_id"), "agent_id"),
        (lambda b: b.update(seq=-1), "seq"),
        (lambda b: b.update(seq="1"), "seq"),
        (lambda b: b.update(changes=[]), "changes"),
        (lambda b: b.update(changes={}), "changes"),
        (lambda b: b["changes"][1].update(op="merge"), "changes[1].op"),
        (lambda b: b["changes"][1].pop("key"), "changes[1].key"),
        (lambda b: b["changes"][1].update(key=12), "changes[1].key"),
        (lambda b: b["changes"][1].update(entity="Patient"), "changes[1].entity"),
        (lambda b: b["changes"][1].update(version="1 0"), "changes[1].version"),
        (lambda b: b["changes"][1].update(version=""), "changes[1].version"),
        (
            lambda b: b["changes"][1].update(observed_at="2026-11-23T10:00:00"),
            "changes[1].observed_at",
        ),
        (
            lambda b: b["changes"][1].update(observed_at="2026-13-23T10:00:00Z"),
            "changes[1].observed_at",
        ),
        (lambda b: b["changes"][1].update(data=None), "changes[1].data"),
        (lambda b: b["changes"][1].update(data=[1]), "changes[1].data"),
    ],
)
def test_validation_errors_name_the_field(
    reference_cloud: ReferenceCloud,
    cloud_client: httpx.Client,
    cloud_spec: SpecChecker,
    mutate: object,
    field: str,
) -> None:
    body = batch([change("1", "1"), change("2", "1")])
    mutate(body)  # type: ignore[operator]
    response = post_batch(cloud_client, body)
    assert response.status_code == 422
    error = response.json()
    assert error["code"] == "validation_failed"
    assert error["field"] == field
    assert error["message"].startswith(f"{field}: ")
    assert reference_cloud.change_log() == []
    with pytest.raises(SpecViolation):  # the contract refuses it too
        cloud_spec.check_request(response.request)


def test_a_batch_id_outside_the_pattern_is_422(cloud_client: httpx.Client) -> None:
    body = batch([change()], batch_id="no spaces please")
    response = post_batch(cloud_client, body, headers={"Idempotency-Key": "x"})
    assert response.status_code == 422
    assert response.json()["field"] == "batch_id"


def test_the_idempotency_key_must_be_there_and_match(cloud_client: httpx.Client) -> None:
    body = batch([change()])
    missing = cloud_client.post("/v1/changes", json=body)
    assert missing.status_code == 400
    assert missing.json()["field"] == "Idempotency-Key"
    other = cloud_client.post("/v1/changes", json=body, headers={"Idempotency-Key": "other"})
    assert other.status_code == 400
    assert other.json()["code"] == "idempotency_key_mismatch"


def test_malformed_bodies_are_400_or_415(cloud_client: httpx.Client) -> None:
    key = {"Idempotency-Key": "b1"}
    json_type = {"Content-Type": "application/json"}
    not_json = cloud_client.post("/v1/changes", content=b"{nope", headers={**key, **json_type})
    assert (not_json.status_code, not_json.json()["code"]) == (400, "invalid_json")
    bad_gzip = cloud_client.post(
        "/v1/changes", content=b"xx", headers={**key, **json_type, "Content-Encoding": "gzip"}
    )
    assert (bad_gzip.status_code, bad_gzip.json()["code"]) == (400, "invalid_gzip")
    brotli = cloud_client.post(
        "/v1/changes", content=b"{}", headers={**key, **json_type, "Content-Encoding": "br"}
    )
    assert brotli.status_code == 415
    text = cloud_client.post(
        "/v1/changes", content=b"{}", headers={**key, "Content-Type": "text/plain"}
    )
    assert (text.status_code, text.json()["field"]) == (415, "Content-Type")
    array = cloud_client.post("/v1/changes", content=b"[]", headers={**key, **json_type})
    assert (array.status_code, array.json()["field"]) == (422, "body")


def test_too_many_changes_is_413_with_the_limits(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    reference_cloud.set_limits(max_changes=3)
    response = post_batch(cloud_client, batch([change(str(k)) for k in range(4)]))
    assert response.status_code == 413
    error = response.json()
    assert (error["code"], error["field"], error["limits"]["max_changes"]) == (
        "batch_too_large",
        "changes",
        3,
    )
    assert post_batch(cloud_client, batch([change(str(k)) for k in range(3)])).status_code == 200


def test_too_large_a_body_is_413_also_when_gzipped(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    reference_cloud.set_limits(max_body_bytes=10_000)
    body = batch([change("1", data={"blob": "x" * 20_000})])
    plain = post_batch(cloud_client, body)
    assert (plain.status_code, plain.json()["code"]) == (413, "payload_too_large")
    assert plain.json()["limits"]["max_body_bytes"] == 10_000
    # 20 kB of 'x' gzips to a few hundred bytes: the decoded size counts too.
    packed = gzip.compress(json.dumps(body).encode())
    assert len(packed) < 10_000
    zipped = cloud_client.post(
        "/v1/changes",
        content=packed,
        headers={
            "Idempotency-Key": body["batch_id"],
            "Content-Encoding": "gzip",
            "Content-Type": "application/json",
        },
    )
    assert zipped.status_code == 413
    assert reference_cloud.change_log() == []


def test_a_chunked_json_body_is_read(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    body = batch([change("1")])
    raw = json.dumps(body).encode()
    response = cloud_client.post(
        "/v1/changes",
        content=iter([raw[:10], raw[10:]]),
        headers={"Idempotency-Key": body["batch_id"], "Content-Type": "application/json"},
    )
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert response.status_code == 200
    assert "1" in reference_cloud.mirror("patient")


def test_requests_without_a_valid_token_are_401(
    reference_cloud: ReferenceCloud, cloud_spec: SpecChecker
) -> None:
    body = batch([change()])
    for token in (None, "wrong"):
        with client_for(reference_cloud.url, token=token, checker=cloud_spec) as client:
            response = post_batch(client, body)
            assert response.status_code == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert response.json()["code"] == "unauthorized"
            assert client.get("/v1/inbox").status_code == 401
            assert client.head(f"/v1/files/{'0' * 64}").status_code == 401
    with client_for(reference_cloud.url, token=None, checker=cloud_spec) as client:
        basic = client.get("/v1/inbox", headers={"Authorization": "Basic dGVzdC10b2tlbg=="})
        assert basic.status_code == 401
    assert reference_cloud.change_log() == []


def test_a_revoked_token_stops_working_and_a_new_one_starts(
    reference_cloud: ReferenceCloud, cloud_spec: SpecChecker
) -> None:
    with client_for(reference_cloud.url, checker=cloud_spec) as client:
        assert client.get("/v1/inbox").status_code == 200
        reference_cloud.set_token(AGENT_ID, None)
        assert client.get("/v1/inbox").status_code == 401
    reference_cloud.set_token(AGENT_ID, "rotated")
    with client_for(reference_cloud.url, token="rotated", checker=cloud_spec) as client:
        assert client.get("/v1/inbox").status_code == 200


def test_a_token_may_not_write_for_another_agent(tmp_path: Path, cloud_spec: SpecChecker) -> None:
    tokens = {"agent-1": "t1", "agent-2": "t2"}
    with ReferenceCloud(tmp_path / "c.sqlite3", tokens=tokens) as cloud:
        with client_for(cloud.url, token="t1", checker=cloud_spec) as client:
            response = post_batch(client, batch([change()], agent_id="agent-2"))
            assert (response.status_code, response.json()["field"]) == (403, "agent_id")
            assert post_batch(client, batch([change("1", "1")])).status_code == 200
        with client_for(cloud.url, token="t2", checker=cloud_spec) as client:
            assert (
                post_batch(client, batch([change("1", "1")], agent_id="agent-2")).json()["applied"]
                == 1
            )
        assert cloud.mirror("patient", agent_id="agent-1")["1"].version == "1"
        assert cloud.mirror("patient", agent_id="agent-2")["1"].version == "1"
        with pytest.raises(ValueError, match="agent_id"):
            cloud.mirror("patient")


def test_unknown_paths_and_methods(reference_cloud: ReferenceCloud) -> None:
    # Not in the contract, so not checked against it.
    with client_for(reference_cloud.url) as client:
        assert client.get("/v1/nothing").json()["code"] == "not_found"
        wrong = client.get("/v1/changes")
        assert (wrong.status_code, wrong.headers["Allow"]) == (405, "POST")
