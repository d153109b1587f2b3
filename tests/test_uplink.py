"""The uplink client (bridge.cloud) against the real reference cloud on loopback.

Every exchange is checked against docs/cloud-api.yaml with SpecChecker's hook.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import json
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.backoff import Backoff
from bridge.cloud import CloudClient, post_changes_splitting, send_with_retry
from bridge.cloud.client import _proxy, parse_retry_after
from bridge.cloud.protocol import (
    Change,
    ChangeBatch,
    Heartbeat,
    HeartbeatError,
    InboxResult,
    Reason,
)
from bridge.cloud.split import child_batch_id, split_batch
from bridge.cloud.tls import normalise_pin, spki_sha256
from bridge.config.model import Cloud
from bridge.errors import (
    BatchTooLargeError,
    CloudAuthError,
    CloudRejectedError,
    CloudTlsError,
    CloudUnavailableError,
    ConfigError,
    SecretError,
)
from bridge.secrets import MemorySecretStore
from sandbox.cloud import Fault
from sandbox.cloud.server import ReferenceCloud
from sandbox.cloud.spec import SpecChecker
from sandbox.cloud.testing import AGENT_ID, TOKEN
from sandbox.cloud.tls import spki_pin

pytest_plugins = ["sandbox.cloud.fixtures"]

OBSERVED = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def make_change(key: str, version: str = "1", *, data: dict[str, object] | None = None) -> Change:
    return Change("patient", "upsert", key, version, OBSERVED, data or {"key": key})


def make_batch(n: int, batch_id: str = "batch-1", *, prefix: str = "k") -> ChangeBatch:
    return ChangeBatch(AGENT_ID, batch_id, 1, tuple(make_change(f"{prefix}{i}") for i in range(n)))


def settings_for(cloud: ReferenceCloud, *, ca: bool = True) -> Cloud:
    return Cloud(
        url=cloud.url, agent_id=AGENT_ID, ca_bundle=cloud.ca_path if ca else None, timeout_seconds=5
    )


def client_for(
    cloud: ReferenceCloud,
    spec: SpecChecker,
    *,
    token: str = TOKEN,
    ca: bool = True,
    pin: str | None = None,
    requests: list[httpx.Request] | None = None,
    gzip_min_bytes: int = 1024,
) -> CloudClient:
    hooks: dict[str, list[Callable[..., Any]]] = {"response": [spec.hook]}
    if requests is not None:
        hooks["request"] = [requests.append]
    return CloudClient(
        settings_for(cloud, ca=ca),
        MemorySecretStore({"cloud-token": token}),
        pin=pin,
        event_hooks=hooks,
        gzip_min_bytes=gzip_min_bytes,
    )


class FakeSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []
        self.now = 0.0

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def fast_backoff() -> Backoff:
    return Backoff(base=0.01, cap=0.05)


@pytest.fixture
def client(reference_cloud: ReferenceCloud, cloud_spec: SpecChecker) -> Iterator[CloudClient]:
    with client_for(reference_cloud, cloud_spec) as c:
        yield c


@pytest.fixture
def tls_cloud(tmp_path: Path) -> Iterator[ReferenceCloud]:
    with ReferenceCloud(
        tmp_path / "tls" / "cloud.sqlite3", tokens={AGENT_ID: TOKEN}, tls=True
    ) as cloud:
        yield cloud


# -- changes ------------------------------------------------------------------


def test_batch_lands_in_mirror(
    client: CloudClient, reference_cloud: ReferenceCloud, cloud_spec: SpecChecker
) -> None:
    before = cloud_spec.requests_checked
    ack = client.post_changes(make_batch(3))
    assert (ack.batch_id, ack.accepted, ack.applied, ack.stale, ack.duplicate) == (
        "batch-1",
        3,
        3,
        0,
        False,
    )
    assert ack.received_at.tzinfo is not None
    mirror = reference_cloud.mirror("patient")
    assert sorted(mirror) == ["k0", "k1", "k2"]
    assert mirror["k1"].data == {"key": "k1"}
    assert cloud_spec.requests_checked == before + 1


def test_repeated_batch_is_duplicate(client: CloudClient, reference_cloud: ReferenceCloud) -> None:
    batch = make_batch(2)
    first = client.post_changes(batch)
    second = client.post_changes(batch)
    assert not first.duplicate
    assert second.duplicate
    assert (second.accepted, second.applied) == (2, 2)
    assert len(reference_cloud.change_log(entity="patient", key="k0")) == 1


def test_delete_and_stale(client: CloudClient, reference_cloud: ReferenceCloud) -> None:
    client.post_changes(ChangeBatch(AGENT_ID, "b1", 1, (make_change("a", "2"),)))
    ack = client.post_changes(
        ChangeBatch(
            AGENT_ID,
            "b2",
            2,
            (make_change("a", "1"), Change("patient", "delete", "a", "3", OBSERVED)),
        )
    )
    assert (ack.applied, ack.stale) == (1, 1)
    assert reference_cloud.mirror("patient")["a"].deleted


def test_500_is_retried(client: CloudClient, reference_cloud: ReferenceCloud) -> None:
    reference_cloud.set_fault(Fault("error", count=1, path_prefix="/v1/changes"))
    with pytest.raises(CloudUnavailableError) as info:
        client.post_changes(make_batch(1, "direct"))
    assert info.value.retryable and info.value.status == 500
    sleep = FakeSleep()
    reference_cloud.set_fault(Fault("error", count=2, path_prefix="/v1/changes"))
    ack = send_with_retry(
        lambda: client.post_changes(make_batch(1)), backoff=fast_backoff(), sleep=sleep
    )
    assert ack.applied == 1
    assert len(sleep.calls) == 2
    assert all(0 < s <= 0.05 for s in sleep.calls)


@pytest.mark.parametrize(("kind", "status"), [("throttle", 429), ("unavailable", 503)])
def test_retry_after_is_honoured(
    client: CloudClient, reference_cloud: ReferenceCloud, kind: str, status: int
) -> None:
    reference_cloud.set_fault(Fault(kind, count=1, path_prefix="/v1/changes", retry_after=7))  # type: ignore[arg-type]
    with pytest.raises(CloudUnavailableError) as info:
        client.post_changes(make_batch(1, "direct"))
    assert (info.value.status, info.value.retry_after) == (status, 7)

    reference_cloud.set_fault(Fault(kind, count=1, path_prefix="/v1/changes", retry_after=7))  # type: ignore[arg-type]
    sleep = FakeSleep()
    ack = send_with_retry(
        lambda: client.post_changes(make_batch(1)), backoff=fast_backoff(), sleep=sleep
    )
    assert ack.applied == 1
    assert sleep.calls == [7]


def test_dropped_connection_retried_applies_once(
    client: CloudClient, reference_cloud: ReferenceCloud
) -> None:
    reference_cloud.set_fault(Fault("drop_after", count=1, path_prefix="/v1/changes"))
    sleep = FakeSleep()
    ack = send_with_retry(
        lambda: client.post_changes(make_batch(2)), backoff=fast_backoff(), sleep=sleep
    )
    assert len(sleep.calls) == 1
    assert ack.duplicate  # the first attempt was applied, its answer lost
    for key in ("k0", "k1"):
        assert len(reference_cloud.change_log(entity="patient", key=key)) == 1


def test_retry_gives_up_after_max_elapsed(
    client: CloudClient, reference_cloud: ReferenceCloud
) -> None:
    reference_cloud.set_fault(Fault("unavailable", path_prefix="/v1/changes", retry_after=10))
    sleep = FakeSleep()
    with pytest.raises(CloudUnavailableError):
        send_with_retry(
            lambda: client.post_changes(make_batch(1)),
            backoff=fast_backoff(),
            sleep=sleep,
            max_elapsed=25,
            clock=sleep.clock,
        )
    assert sleep.calls == [10, 10]


def test_413_splits_until_everything_lands(
    client: CloudClient, reference_cloud: ReferenceCloud
) -> None:
    reference_cloud.set_limits(max_changes=2)
    batch = make_batch(7, "parent")
    with pytest.raises(BatchTooLargeError) as info:
        client.post_changes(batch)
    assert info.value.max_changes == 2 and not info.value.retryable

    acks = client.post_changes_splitting(batch)
    assert sum(a.applied for a in acks) == 7
    assert all(len(a.batch_id) <= 128 for a in acks)
    mirror = reference_cloud.mirror("patient")
    assert sorted(mirror) == sorted(f"k{i}" for i in range(7))
    for i in range(7):
        assert len(reference_cloud.change_log(entity="patient", key=f"k{i}")) == 1

    # A rebuilt split reuses the same ids: the cloud acknowledges duplicates.
    again = post_changes_splitting(batch, client.post_changes)
    assert [a.batch_id for a in again] == [a.batch_id for a in acks]
    assert all(a.duplicate for a in again)


def test_split_ids_are_deterministic_and_bounded() -> None:
    first, second = split_batch(make_batch(5, "p"))
    assert (first.batch_id, second.batch_id) == ("p.0", "p.1")
    assert (len(first.changes), len(second.changes)) == (3, 2)
    long_id = "x" * 127
    child = child_batch_id(long_id, 1)
    assert child == child_batch_id(long_id, 1) and len(child) <= 128
    assert child != child_batch_id(long_id, 0)


def test_single_change_too_large_is_rejected(
    client: CloudClient, reference_cloud: ReferenceCloud
) -> None:
    reference_cloud.set_limits(max_body_bytes=1000)
    secret_value = os.urandom(3000).hex()
    batch = ChangeBatch(AGENT_ID, "big", 1, (make_change("a", data={"notes": secret_value}),))
    with pytest.raises(CloudRejectedError) as info:
        client.post_changes_splitting(batch)
    assert not isinstance(info.value, BatchTooLargeError)
    assert not info.value.retryable
    assert secret_value not in str(info.value)


def test_invalid_change_is_rejected_without_payload(client: CloudClient) -> None:
    marker = "Jane-Doe-1970"
    bad = Change("Not An Entity", "upsert", "1", "1", OBSERVED, {"name": marker})
    with pytest.raises(CloudRejectedError) as info:
        client.post_changes(ChangeBatch(AGENT_ID, "bad", 1, (bad,)))
    assert info.value.status == 422 and not info.value.retryable
    assert info.value.field is not None
    assert marker not in str(info.value)
    sleep = FakeSleep()
    with pytest.raises(CloudRejectedError):
        send_with_retry(
            lambda: client.post_changes(ChangeBatch(AGENT_ID, "bad", 1, (bad,))),
            backoff=fast_backoff(),
            sleep=sleep,
        )
    assert sleep.calls == []


def test_wrong_token_is_auth_error(
    reference_cloud: ReferenceCloud, cloud_spec: SpecChecker
) -> None:
    sleep = FakeSleep()
    with (
        client_for(reference_cloud, cloud_spec, token="wrong-token") as bad,
        pytest.raises(CloudAuthError) as info,
    ):
        send_with_retry(
            lambda: bad.post_changes(make_batch(1)), backoff=fast_backoff(), sleep=sleep
        )
    assert info.value.status == 401 and not info.value.retryable
    assert info.value.kind == "cloud_auth"
    assert "wrong-token" not in str(info.value)
    assert sleep.calls == []


def test_other_agent_is_forbidden(client: CloudClient) -> None:
    batch = ChangeBatch("agent-2", "b", 1, (make_change("a"),))
    with pytest.raises(CloudAuthError) as info:
        client.post_changes(batch)
    assert info.value.status == 403


def test_large_bodies_are_gzipped(reference_cloud: ReferenceCloud, cloud_spec: SpecChecker) -> None:
    requests: list[httpx.Request] = []
    with client_for(reference_cloud, cloud_spec, requests=requests) as c:
        small = c.post_changes(make_batch(1, "small"))
        large = c.post_changes(make_batch(200, "large", prefix="L"))
    assert (small.applied, large.applied) == (1, 200)
    assert "content-encoding" not in requests[0].headers
    assert requests[1].headers["content-encoding"] == "gzip"
    raw = json.dumps(make_batch(200, "large", prefix="L").to_json()).encode()
    assert json.loads(gzip.decompress(requests[1].content)) == json.loads(raw)
    assert len(requests[1].content) < len(raw) / 3
    assert len(reference_cloud.mirror("patient")) == 201


# -- inbox, files, heartbeat --------------------------------------------------


def test_inbox_poll_and_result(client: CloudClient, reference_cloud: ReferenceCloud) -> None:
    item = reference_cloud.enqueue("sync.request", {"entities": []})
    page = client.poll_inbox(wait=0)
    assert [i.id for i in page.items] == [item.id]
    assert page.items[0].type == "sync.request"
    assert not page.more
    ack = client.post_result(item.id, InboxResult("confirmed", pms_ids={"patient": "7"}))
    assert (ack.id, ack.status, ack.duplicate) == (item.id, "confirmed", False)
    again = client.post_result(item.id, InboxResult("confirmed", pms_ids={"patient": "7"}))
    assert again.duplicate
    assert client.poll_inbox(after=page.cursor, wait=0).items == ()
    with pytest.raises(CloudRejectedError) as info:
        client.post_result(
            "no-such-item", InboxResult("rejected", reason=Reason("invalid_request", "bad"))
        )
    assert info.value.status == 404


def test_long_poll_wakes(client: CloudClient, reference_cloud: ReferenceCloud) -> None:
    timer = threading.Timer(0.2, reference_cloud.enqueue, ("sync.request", {"entities": []}))
    timer.start()
    try:
        page = client.poll_inbox(wait=5)
    finally:
        timer.join()
    assert len(page.items) == 1


def test_head_file(client: CloudClient, reference_cloud: ReferenceCloud) -> None:
    body = b"835 remittance"
    digest = hashlib.sha256(body).hexdigest()
    assert client.head_file(digest) is False
    with httpx.Client(base_url=reference_cloud.url) as raw:
        response = raw.put(
            f"/v1/files/{digest}",
            content=body,
            headers={
                "Authorization": f"Bearer {TOKEN}",
                "Content-Type": "application/octet-stream",
                "X-File-Name": "era.835",
                "X-File-Size": str(len(body)),
                "X-File-Kind": "era835",
                "X-Source-Folder": "exports",
            },
        )
    assert response.status_code == 201
    assert client.head_file(digest) is True


def test_heartbeat(client: CloudClient) -> None:
    ack = client.heartbeat(
        Heartbeat(
            AGENT_ID,
            "0.1.0",
            queue_depths={"outbox": 3},
            last_sync={"patient": OBSERVED, "claim": None},
            lag_seconds={"patient": 1.5},
            errors=(HeartbeatError("pms", "login failed", "login_failed", OBSERVED),),
        )
    )
    assert ack.received_at.tzinfo is not None


# -- TLS ------------------------------------------------------------------------


def test_tls_with_extra_ca_bundle(tls_cloud: ReferenceCloud, cloud_spec: SpecChecker) -> None:
    assert tls_cloud.url.startswith("https://")
    with client_for(tls_cloud, cloud_spec) as c:
        assert c.post_changes(make_batch(1)).applied == 1


def test_tls_without_ca_fails_verification(
    tls_cloud: ReferenceCloud, cloud_spec: SpecChecker
) -> None:
    with client_for(tls_cloud, cloud_spec, ca=False) as c, pytest.raises(CloudTlsError) as info:
        c.post_changes(make_batch(1))
    assert "verified" in str(info.value) and not info.value.retryable
    assert tls_cloud.mirror("patient") == {}


def test_pin_match(tls_cloud: ReferenceCloud, cloud_spec: SpecChecker) -> None:
    assert tls_cloud.spki_sha256 is not None
    with client_for(tls_cloud, cloud_spec, pin=f"sha256/{tls_cloud.spki_sha256}") as c:
        assert c.post_changes(make_batch(1)).applied == 1
        assert c.head_file("0" * 64) is False


def test_pin_mismatch_sends_nothing(tls_cloud: ReferenceCloud, cloud_spec: SpecChecker) -> None:
    wrong = base64.b64encode(b"\0" * 32).decode()
    with client_for(tls_cloud, cloud_spec, pin=wrong) as c, pytest.raises(CloudTlsError) as info:
        c.post_changes(make_batch(1))
    assert "pinned" in str(info.value)
    assert tls_cloud.mirror("patient") == {}


def test_spki_parser_matches_reference(tls_cloud: ReferenceCloud) -> None:
    assert tls_cloud.cert_path is not None
    pem = tls_cloud.cert_path.read_text().split("-----END CERTIFICATE-----")[0]
    der = ssl.PEM_cert_to_DER_cert(pem + "-----END CERTIFICATE-----\n")
    assert spki_sha256(der) == spki_pin(tls_cloud.cert_path.read_bytes()) == tls_cloud.spki_sha256


def test_bad_pin_is_config_error(reference_cloud: ReferenceCloud) -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        normalise_pin("not-a-pin")
    with pytest.raises(ConfigError):
        CloudClient(
            settings_for(reference_cloud), MemorySecretStore({"cloud-token": TOKEN}), pin="abc"
        )


# -- small units -------------------------------------------------------------


def test_parse_retry_after() -> None:
    assert parse_retry_after("5") == 5
    assert parse_retry_after(" 0 ") == 0
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT") is None
    assert parse_retry_after("nan") is None


def test_proxy_password_from_store() -> None:
    settings = Cloud(
        url="https://cloud.example.com",
        agent_id=AGENT_ID,
        proxy="http://user@proxy.local:3128",
        proxy_password_secret="proxy-password",
    )
    proxy = _proxy(settings, MemorySecretStore({"proxy-password": "pw-1234"}))
    assert proxy is not None
    assert proxy.url == httpx.URL("http://proxy.local:3128")
    assert proxy.auth == ("user", "pw-1234")


class ConnectProxy:
    """A tiny HTTP CONNECT proxy on loopback that records the Proxy-Authorization it got."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.05)
        self.stopping = threading.Event()
        self.port = self.server.getsockname()[1]
        self.auth: list[str] = []
        self.threads: list[threading.Thread] = []
        self.accepting = threading.Thread(target=self._accept, daemon=True)
        self.accepting.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            thread = threading.Thread(target=self._tunnel, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _tunnel(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            lines = head.split(b"\r\n")
            target = lines[0].split()[1].decode()
            for line in lines[1:]:
                if line.lower().startswith(b"proxy-authorization:"):
                    self.auth.append(line.split(b":", 1)[1].strip().decode())
            host, port = target.rsplit(":", 1)
            with socket.create_connection((host, int(port))) as upstream:
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                pump = threading.Thread(target=self._pump, args=(upstream, conn), daemon=True)
                pump.start()
                self._pump(conn, upstream)
                with contextlib.suppress(OSError):
                    upstream.shutdown(socket.SHUT_RDWR)
                pump.join(5)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.stopping.set()
        self.accepting.join(5)
        self.server.close()
        for thread in self.threads:
            thread.join(5)


def test_tls_and_pin_through_connect_proxy(
    tls_cloud: ReferenceCloud, cloud_spec: SpecChecker
) -> None:
    proxy = ConnectProxy()
    try:
        settings = Cloud(
            url=tls_cloud.url,
            agent_id=AGENT_ID,
            ca_bundle=tls_cloud.ca_path,
            proxy=f"http://user@127.0.0.1:{proxy.port}",
            proxy_password_secret="proxy-password",
            timeout_seconds=5,
        )
        store = MemorySecretStore({"cloud-token": TOKEN, "proxy-password": "pw-1234"})
        with CloudClient(
            settings,
            store,
            pin=tls_cloud.spki_sha256,
            event_hooks={"response": [cloud_spec.hook]},
        ) as c:
            assert c.post_changes(make_batch(1)).applied == 1
        wrong = base64.b64encode(b"\1" * 32).decode()
        with CloudClient(settings, store, pin=wrong) as c, pytest.raises(CloudTlsError):
            c.post_changes(make_batch(1, "other", prefix="z"))
    finally:
        proxy.close()
    expected = "Basic " + base64.b64encode(b"user:pw-1234").decode()
    assert proxy.auth and set(proxy.auth) == {expected}
    assert sorted(tls_cloud.mirror("patient")) == ["k0"]


def test_missing_token_is_secret_error(reference_cloud: ReferenceCloud) -> None:
    with pytest.raises(SecretError):
        CloudClient(settings_for(reference_cloud), MemorySecretStore())


def test_naive_time_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        Change("patient", "upsert", "1", "1", datetime(2026, 1, 1), {})
