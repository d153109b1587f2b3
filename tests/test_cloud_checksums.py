"""The reconciliation checksums of the Cloud API: reference cloud and bridge client.

Every /v1 exchange is checked against docs/cloud-api.yaml (SpecChecker), from
the raw httpx client (the server's side) and from the bridge's CloudClient.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bridge.cloud import CloudClient
from bridge.cloud.protocol import EMPTY_DIGEST, KeyRange, RangeDigest, key_order
from bridge.config.model import Cloud
from bridge.errors import CloudRejectedError, CloudUnavailableError
from bridge.secrets import MemorySecretStore
from bridge.sync.records import content_hash
from sandbox.cloud import AdminClient, ReferenceCloud
from sandbox.cloud import checksums as cloud_checksums
from sandbox.cloud.models import CloudAdmin
from sandbox.cloud.spec import SpecChecker
from sandbox.cloud.testing import AGENT_ID, TOKEN, batch, change, post_batch

pytest_plugins = ["sandbox.cloud.fixtures"]

TRICKY: list[dict[str, Any]] = [
    {},
    {"b": 1, "a": None, "c": True, "d": False},
    {"name": "Zoë Ørsted 山田", "emoji": "🦷", "quote": 'a "b" \\ c'},
    {"amount": 12.5, "tiny": 1e-7, "big": 12345678901234567890, "neg": -0.25},
    {"procedures": [{"z": 1, "a": [3, 2, 1]}, {"k": {"y": None, "x": "é"}}], "id": "7"},
]

ROWS = {"1": {"n": 1}, "2": {"n": 2}, "9": {"n": 9}, "10": {"n": 10}, "11": {"n": 11}}


def digest_of(rows: dict[str, dict[str, Any]]) -> tuple[int, str]:
    acc = RangeDigest()
    for key, data in rows.items():
        acc.add(key, content_hash(data))
    return acc.count, acc.digest


def seed(client: httpx.Client, rows: dict[str, dict[str, Any]] = ROWS) -> None:
    changes = [change(k, "5", entity="appointment", data=d) for k, d in rows.items()]
    changes.append(change("100", "5", entity="appointment", op="delete"))  # a tombstone
    changes.append(change("3", "5", entity="patient", data={"other": "entity"}))
    assert post_batch(client, batch(changes)).status_code == 200


@pytest.fixture
def bridge_client(
    reference_cloud: ReferenceCloud, cloud_spec: SpecChecker
) -> Iterator[CloudClient]:
    settings = Cloud(url=reference_cloud.url, agent_id=AGENT_ID, timeout_seconds=5)
    secrets = MemorySecretStore({"cloud-token": TOKEN})
    with CloudClient(settings, secrets, event_hooks={"response": [cloud_spec.hook]}) as client:
        yield client


def test_row_hash_and_digest_are_the_same_on_both_sides() -> None:
    for data in TRICKY:
        assert cloud_checksums.content_hash(data) == content_hash(data), data
        # what the cloud stores is the JSON the agent sent: the hash survives the trip
        assert cloud_checksums.content_hash(json.loads(json.dumps(data))) == content_hash(data)
    acc, term = RangeDigest(), 0
    for i, data in enumerate(TRICKY):
        acc.add(str(i), content_hash(data))
        term ^= cloud_checksums.row_term(str(i), cloud_checksums.content_hash(data))
    assert acc.digest == cloud_checksums.format_digest(term)
    assert RangeDigest().digest == EMPTY_DIGEST == cloud_checksums.EMPTY_DIGEST
    keys = ["10", "9", "100", "0", "11", "2"]
    assert sorted(keys, key=key_order) == ["0", "2", "9", "10", "11", "100"]
    assert sorted(keys, key=key_order) == sorted(keys, key=cloud_checksums.key_order)


def test_checksums_cover_ascending_ranges_of_live_rows(
    cloud_client: httpx.Client, cloud_spec: SpecChecker
) -> None:
    seed(cloud_client)
    ranges: list[dict[str, str | None]] = [
        {"after": None, "upto": "2"},
        {"after": "2", "upto": "10"},  # 9 and 10: numeric, not string, order
        {"after": "10", "upto": None},  # 11 (100 is a tombstone)
    ]
    response = cloud_client.post("/v1/checksums", json={"entity": "appointment", "ranges": ranges})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["entity"] == "appointment"
    got = [(r["after"], r["upto"], r["count"], r["digest"]) for r in body["ranges"]]
    parts = [
        {k: ROWS[k] for k in ("1", "2")},
        {k: ROWS[k] for k in ("9", "10")},
        {"11": ROWS["11"]},
    ]
    assert got == [
        (r["after"], r["upto"], *digest_of(p)) for r, p in zip(ranges, parts, strict=True)
    ]
    # gaps between ranges are allowed; an unknown entity has empty ranges
    gappy = [{"after": None, "upto": "1"}, {"after": "9", "upto": "11"}]
    body = cloud_client.post(
        "/v1/checksums", json={"entity": "appointment", "ranges": gappy}
    ).json()
    assert [r["count"] for r in body["ranges"]] == [1, 2]
    body = cloud_client.post(
        "/v1/checksums", json={"entity": "recall", "ranges": [{"after": None, "upto": None}]}
    ).json()
    assert body["ranges"] == [{"after": None, "upto": None, "count": 0, "digest": EMPTY_DIGEST}]
    assert cloud_spec.responses_checked >= 3


def test_key_lists_page_in_key_order(cloud_client: httpx.Client) -> None:
    seed(cloud_client)
    seen: list[tuple[str, str]] = []
    after = None
    while True:
        response = cloud_client.post(
            "/v1/checksums/keys",
            json={"entity": "appointment", "after": after, "upto": None, "limit": 2},
        )
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [(r["key"], r["hash"]) for r in page["rows"]]
        if not page["more"]:
            break
        after = page["rows"][-1]["key"]
    assert seen == [(k, content_hash(d)) for k, d in ROWS.items()]
    one = cloud_client.post(
        "/v1/checksums/keys", json={"entity": "appointment", "after": "2", "upto": "9"}
    ).json()
    assert (one["rows"], one["more"]) == ([{"key": "9", "hash": content_hash(ROWS["9"])}], False)


OVERLAPPING = [{"after": "9", "upto": "10"}, {"after": "9", "upto": None}]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/checksums", {"entity": "appointment", "ranges": []}, "ranges"),
        ("/v1/checksums", {"ranges": [{}]}, "entity"),
        ("/v1/checksums", {"entity": "appointment", "ranges": OVERLAPPING}, "ranges[1].after"),
        ("/v1/checksums", {"entity": "appointment", "ranges": [{"after": "10", "upto": "9"}]},
         "ranges[0].upto"),
        ("/v1/checksums", {"entity": "appointment", "ranges": [{}] * 1001}, "ranges"),
        ("/v1/checksums", {"entity": "appointment", "ranges": [{"upto": 5}]}, "ranges[0].upto"),
        ("/v1/checksums/keys", {"entity": "appointment", "limit": 0}, "limit"),
        ("/v1/checksums/keys", {"entity": "appointment", "limit": 10_001}, "limit"),
        ("/v1/checksums/keys", {"entity": "Bad Name"}, "entity"),
    ],
)  # fmt: skip
def test_checksum_requests_are_checked(
    cloud_client: httpx.Client, path: str, body: dict[str, Any], field: str
) -> None:
    response = cloud_client.post(path, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_checksums_need_the_token(reference_cloud: ReferenceCloud) -> None:
    body = {"entity": "appointment", "ranges": [{}]}
    response = httpx.post(f"{reference_cloud.url}/v1/checksums", json=body)
    assert response.status_code == 401


def test_the_bridge_client_reads_checksums_and_key_lists(
    cloud_client: httpx.Client, bridge_client: CloudClient, cloud_spec: SpecChecker
) -> None:
    seed(cloud_client)
    before = cloud_spec.requests_checked
    ranges = [KeyRange(None, "2"), KeyRange("2", "10"), KeyRange("10", None)]
    page = bridge_client.checksums("appointment", ranges)
    assert page.entity == "appointment"
    assert [c.range for c in page.ranges] == ranges
    assert [(c.count, c.digest) for c in page.ranges][1] == digest_of(
        {k: ROWS[k] for k in ("9", "10")}
    )
    keys = bridge_client.checksum_keys("appointment", KeyRange("1", None), limit=3)
    assert [r.key for r in keys.rows] == ["2", "9", "10"]
    assert keys.more and keys.range == KeyRange("1", None)
    assert keys.rows[0].hash == content_hash(ROWS["2"])
    assert cloud_spec.requests_checked == before + 2  # the client's requests obey the spec
    with pytest.raises(CloudRejectedError) as refused:
        bridge_client.checksum_keys("Bad Name", KeyRange(None, None))
    assert refused.value.status == 422
    with pytest.raises(ValueError, match="after"):
        KeyRange("10", "9")


def test_the_bridge_client_refuses_an_answer_for_other_ranges() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"entity": "appointment", "ranges": [{"after": None, "upto": "5", "count": 0,
                "digest": EMPTY_DIGEST}]}  # fmt: skip
        return httpx.Response(200, json=body)

    settings = Cloud(url="https://cloud.invalid", agent_id=AGENT_ID, timeout_seconds=5)
    secrets = MemorySecretStore({"cloud-token": TOKEN})
    with CloudClient(settings, secrets, transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(CloudUnavailableError, match="ranges differ"):
            client.checksums("appointment", [KeyRange(None, "6")])
        with pytest.raises(CloudUnavailableError, match="not understood"):
            client.checksum_keys("appointment", KeyRange(None, None))


@pytest.fixture(params=["in-process", "http"])
def admin(request: pytest.FixtureRequest, reference_cloud: ReferenceCloud) -> Iterator[CloudAdmin]:
    if request.param == "in-process":
        yield reference_cloud
    else:
        with AdminClient(reference_cloud.url) as client:
            yield client


def test_the_admin_api_can_tamper_with_the_mirror(
    admin: CloudAdmin, cloud_client: httpx.Client
) -> None:
    seed(cloud_client)
    altered = admin.set_mirror_row("appointment", "9", {"n": "altered"})
    assert (altered.data, altered.version, altered.deleted) == ({"n": "altered"}, "5", False)
    phantom = admin.set_mirror_row("appointment", "55", {"n": 55})
    assert (phantom.version, phantom.batch_id) == ("0", "admin")
    assert admin.drop_mirror_row("appointment", "10") is True
    assert admin.drop_mirror_row("appointment", "10") is False
    mirror = admin.mirror("appointment")
    assert "10" not in mirror and mirror["9"].data == {"n": "altered"}
    assert [e.key for e in admin.change_log(entity="appointment", key="55")] == []
    body = cloud_client.post(
        "/v1/checksums/keys", json={"entity": "appointment", "after": None, "upto": None}
    ).json()
    assert [r["key"] for r in body["rows"]] == ["1", "2", "9", "11", "55"]
    # a newer change from the agent wins over the tampered row
    post_batch(cloud_client, batch([change("55", "6", entity="appointment", op="delete")]))
    assert admin.mirror("appointment")["55"].deleted
