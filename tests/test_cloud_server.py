"""Reference cloud: TLS, loopback only, the admin API in and out of process, the CLI, the spec."""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme
import yaml
from click.testing import CliRunner

from sandbox.cloud.admin_client import AdminClient
from sandbox.cloud.cli import cloud as cloud_command
from sandbox.cloud.models import CloudAdmin, Fault
from sandbox.cloud.server import ReferenceCloud
from sandbox.cloud.spec import SPEC_PATH, SpecChecker
from sandbox.cloud.testing import CloudProcess, batch, change, client_for, post_batch
from sandbox.cloud.tls import spki_pin_der

pytest_plugins = ["sandbox.cloud.fixtures"]


@pytest.fixture
def tls_cloud(tmp_path: Path) -> Iterator[ReferenceCloud]:
    with ReferenceCloud(tmp_path / "tls" / "cloud.sqlite3", tls=True) as cloud:
        yield cloud


def test_tls_verifies_against_the_generated_ca(
    tls_cloud: ReferenceCloud, cloud_spec: SpecChecker
) -> None:
    assert tls_cloud.url.startswith("https://127.0.0.1:")
    assert tls_cloud.ca_path is not None
    with client_for(tls_cloud.url, ca_path=tls_cloud.ca_path, checker=cloud_spec) as client:
        assert post_batch(client, batch([change()])).status_code == 200
    localhost = tls_cloud.url.replace("127.0.0.1", "localhost")
    with client_for(localhost, ca_path=tls_cloud.ca_path, checker=cloud_spec) as client:
        assert client.get("/v1/inbox").status_code == 200


def test_tls_fails_against_an_unknown_ca(tls_cloud: ReferenceCloud) -> None:
    other = ssl.create_default_context()
    trustme.CA().configure_trust(other)
    with httpx.Client(verify=other) as client, pytest.raises(httpx.ConnectError, match="CERT"):
        client.get(tls_cloud.url + "/v1/inbox")
    with httpx.Client() as client, pytest.raises(httpx.ConnectError):  # the system CAs
        client.get(tls_cloud.url + "/v1/inbox")
    # the server shrugs it off and keeps serving
    with client_for(tls_cloud.url, ca_path=tls_cloud.ca_path) as client:
        assert client.get("/v1/inbox").status_code == 200


def test_the_pin_is_the_server_keys_and_survives_a_restart(
    tls_cloud: ReferenceCloud, tmp_path: Path
) -> None:
    assert tls_cloud.ca_path is not None
    context = ssl.create_default_context(cafile=str(tls_cloud.ca_path))
    with (
        socket.create_connection((tls_cloud.host, tls_cloud.port)) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        presented = sock.getpeercert(binary_form=True)
    assert presented is not None
    assert spki_pin_der(presented) == tls_cloud.spki_sha256
    ca_before = tls_cloud.ca_path.read_bytes()
    pin_before = tls_cloud.spki_sha256
    tls_cloud.stop()
    with ReferenceCloud(tmp_path / "tls" / "cloud.sqlite3", tls=True) as again:
        assert again.spki_sha256 == pin_before
        assert again.ca_path is not None
        assert again.ca_path.read_bytes() == ca_before
    assert oct(tls_cloud.ca_path.parent.joinpath("server.key").stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "192.168.0.10", "::", "example.com"])
def test_it_refuses_to_bind_beyond_loopback(tmp_path: Path, host: str) -> None:
    with pytest.raises(ValueError, match="refusing to bind"):
        ReferenceCloud(tmp_path / "c.sqlite3", host=host)
    assert not (tmp_path / "c.sqlite3").exists()


def test_it_serves_on_ipv6_loopback_and_localhost(tmp_path: Path, cloud_spec: SpecChecker) -> None:
    with ReferenceCloud(tmp_path / "v6.sqlite3", host="::1") as cloud:
        assert cloud.url.startswith("http://[::1]:")
        with client_for(cloud.url, checker=cloud_spec) as client:
            assert client.get("/v1/inbox").status_code == 200
    with ReferenceCloud(tmp_path / "lh.sqlite3", host="localhost") as cloud:
        assert cloud.host == "127.0.0.1"


def test_a_connection_serves_many_requests(reference_cloud: ReferenceCloud) -> None:
    connection = http.client.HTTPConnection(reference_cloud.host, reference_cloud.port, timeout=10)
    try:
        sockets = set()
        for _ in range(3):
            connection.request("GET", "/v1/inbox", headers={"Authorization": "Bearer test-token"})
            response = connection.getresponse()
            response.read()
            assert response.status == 200
            sockets.add(id(connection.sock))
        assert len(sockets) == 1
    finally:
        connection.close()


@pytest.fixture(params=["in-process", "http"])
def admin(request: pytest.FixtureRequest, reference_cloud: ReferenceCloud) -> Iterator[CloudAdmin]:
    if request.param == "in-process":
        yield reference_cloud
    else:
        with AdminClient(reference_cloud.url) as client:
            yield client


def test_the_admin_api_is_the_same_in_and_out_of_process(
    admin: CloudAdmin, reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    item = admin.enqueue("booking.cancel", {"pms_appointment_id": "77"}, item_id="itm-1")
    assert (item.id, item.type, item.agent_id, item.deliveries) == (
        "itm-1",
        "booking.cancel",
        "agent-1",
        0,
    )
    cloud_client.get("/v1/inbox")
    assert [(i.id, i.deliveries, i.resulted) for i in admin.inbox()] == [("itm-1", 1, False)]
    cloud_client.post("/v1/inbox/itm-1/result", json={"status": "confirmed"})
    [result] = admin.results()
    assert (result.id, result.status, result.result["pms_ids"]) == ("itm-1", "confirmed", {})

    body = batch([change("5", "2", data={"n": 1}), change("6", "1", op="delete")], seq=9)
    post_batch(cloud_client, body)
    mirror = admin.mirror("patient")
    assert (mirror["5"].data, mirror["6"].deleted) == ({"n": 1}, True)
    assert [e.key for e in admin.change_log(entity="patient", key="5")] == ["5"]
    [record] = admin.batches()
    assert (record.batch_id, record.seq, record.changes) == (body["batch_id"], 9, 2)

    cloud_client.post("/v1/heartbeat", json={"agent_id": "agent-1", "version": "1.2.3"})
    latest = admin.heartbeat()
    assert latest is not None
    assert latest.body["version"] == "1.2.3"
    assert len(admin.heartbeats()) == 1

    rule = admin.set_fault(Fault("throttle", count=1, retry_after=4, path_prefix="/v1/heartbeat"))
    assert (rule.id != "", admin.faults()) == (True, [rule])
    assert admin.clear_faults(rule.id) == 1
    assert admin.set_limits(max_changes=7).max_changes == 7
    assert admin.limits().max_changes == 7
    with pytest.raises(ValueError, match="at least 1"):  # refused alike on both paths
        admin.set_limits(max_changes=0)
    with pytest.raises(ValueError, match="type"):
        admin.enqueue("Not A Type", {})

    stats = admin.stats()
    assert (stats.batches, stats.changes_applied, stats.results, stats.heartbeats) == (1, 2, 1, 1)
    assert stats.requests_by_status["200"] >= 4
    assert admin.files() == []

    admin.set_token("agent-1", "new-token")
    assert cloud_client.get("/v1/inbox").status_code == 401
    admin.set_token("agent-1", "test-token")
    admin.reset()
    assert (admin.inbox(), admin.results(), admin.mirror("patient"), admin.change_log()) == (
        [],
        [],
        {},
        [],
    )
    assert admin.heartbeat() is None


def test_the_admin_client_reports_refusals(reference_cloud: ReferenceCloud) -> None:
    with AdminClient(reference_cloud.url) as admin:
        with pytest.raises(ValueError, match="unknown limit"):
            admin._call("PUT", "limits", json={"max_everything": 1})
        with pytest.raises(ValueError, match="unknown fault field"):
            admin._call("POST", "faults", json={"kind": "error", "counts": 1})
        with pytest.raises(ValueError, match="kind"):
            admin._call("POST", "faults", json={"kind": "explode"})
        assert admin.health()["ok"] is True


def test_the_cli_runs_a_cloud_another_process_can_drive(
    tmp_path: Path, cloud_spec: SpecChecker
) -> None:
    with CloudProcess(tmp_path / "proc", tls=True, extra_args=["--max-changes", "3"]) as proc:
        assert proc.url.startswith("https://127.0.0.1:")
        assert proc.ca_path is not None
        with proc.admin() as admin:
            assert admin.limits().max_changes == 3
            item = admin.enqueue("sync.request", {"entities": ["patient"]})
            with client_for(proc.url, ca_path=proc.ca_path, checker=cloud_spec) as client:
                page = client.get("/v1/inbox", params={"wait": 5}).json()
                assert [i["id"] for i in page["items"]] == [item.id]
                assert post_batch(client, batch([change()] * 4)).status_code == 413
        code = proc.stop()
    assert code == 0
    log = (tmp_path / "proc" / "cloud.log").read_text()
    assert "reference cloud: https://127.0.0.1:" in log
    assert "reference cloud stopped" in log


def test_the_cli_refuses_bad_options(tmp_path: Path) -> None:
    runner = CliRunner()
    db = str(tmp_path / "c.sqlite3")
    public = runner.invoke(cloud_command, ["--db", db, "--host", "0.0.0.0"])
    assert public.exit_code == 2
    assert "refusing to bind" in public.output
    token = runner.invoke(cloud_command, ["--db", db, "--token", "no-equals-sign"])
    assert token.exit_code == 2
    assert "AGENT_ID=TOKEN" in token.output


def test_the_spec_is_valid_and_names_the_shared_schemas(cloud_spec: SpecChecker) -> None:
    document = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    assert document["openapi"].startswith("3.1")
    schemas = document["components"]["schemas"]
    for name in ("ChangeBatch", "Change", "ChangeAck", "InboxPage", "InboxItem", "InboxResult",
                 "Alternative", "Heartbeat", "Error"):  # fmt: skip
        assert name in schemas
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            codes = set(operation["responses"])
            assert {"401", "429", "500", "503"} <= codes, (method, path)
            for code in ("429", "503"):
                response = operation["responses"][code]
                if "$ref" in response:
                    name = response["$ref"].rsplit("/", 1)[1]
                    response = document["components"]["responses"][name]
                assert "Retry-After" in response["headers"], (method, path, code)
