"""Reference cloud: HEAD/PUT /v1/files/{sha256} - streaming, hashing, nothing kept on error."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from sandbox.cloud.server import ReferenceCloud
from sandbox.cloud.testing import TOKEN

pytest_plugins = ["sandbox.cloud.fixtures"]

MIB = 1024 * 1024
NAME = "Relevé 12+3 (ERA).835"
FOLDER = r"C:\OpenDental\Exports\ERA"


def file_headers(content_length: int, **overrides: str) -> dict[str, str]:
    headers = {
        "Content-Type": "application/octet-stream",
        "X-File-Name": quote(NAME, safe=""),
        "X-File-Size": str(content_length),
        "X-File-Kind": "era835",
        "X-Source-Folder": quote(FOLDER, safe=""),
    }
    headers.update(overrides)
    return headers


def put(client: httpx.Client, data: bytes, **overrides: str) -> httpx.Response:
    sha = overrides.pop("sha", hashlib.sha256(data).hexdigest())
    return client.put(
        f"/v1/files/{sha}", content=data, headers=file_headers(len(data), **overrides)
    )


def stored_paths(cloud: ReferenceCloud) -> list[Path]:
    return sorted(p for p in cloud.file_store.files_dir.rglob("*") if p.is_file())


def test_head_put_head_and_put_again(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    data = b"ISA*00*...~" * 1000
    sha = hashlib.sha256(data).hexdigest()
    assert cloud_client.head(f"/v1/files/{sha}").status_code == 404
    created = put(cloud_client, data)
    assert created.status_code == 201
    assert created.json() == {"sha256": sha, "size": len(data), "duplicate": False}
    head = cloud_client.head(f"/v1/files/{sha}")
    assert (head.status_code, head.headers["X-File-Size"]) == (200, str(len(data)))
    path = reference_cloud.file_store.path_of(sha)
    assert path.read_bytes() == data
    before = path.stat()
    again = put(cloud_client, data, **{"X-File-Name": "other.835"})
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert path.stat().st_mtime_ns == before.st_mtime_ns  # not stored again
    [record] = reference_cloud.files()
    assert (record.name, record.source_folder, record.kind, record.size) == (
        NAME,
        FOLDER,
        "era835",
        len(data),
    )
    assert stored_paths(reference_cloud) == [path]


def test_an_empty_file_is_a_file(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    assert put(cloud_client, b"").status_code == 201
    assert reference_cloud.files()[0].size == 0


def test_a_sha256_mismatch_is_422_and_nothing_is_kept(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    wrong = hashlib.sha256(b"something else").hexdigest()
    response = put(cloud_client, b"the real content", sha=wrong)
    assert response.status_code == 422
    assert (response.json()["code"], response.json()["field"]) == ("sha256_mismatch", "sha256")
    assert cloud_client.head(f"/v1/files/{wrong}").status_code == 404
    assert reference_cloud.files() == []
    assert stored_paths(reference_cloud) == []
    assert reference_cloud.stats().uploads_rejected == 1


def test_a_size_mismatch_is_400_and_nothing_is_kept(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    data = b"0123456789"
    sha = hashlib.sha256(data).hexdigest()
    declared = cloud_client.put(f"/v1/files/{sha}", content=data, headers=file_headers(9))
    assert (declared.status_code, declared.json()["field"]) == (400, "Content-Length")
    for size in (9, 11):  # chunked: only the byte count can tell
        chunked = cloud_client.put(
            f"/v1/files/{sha}", content=iter([data[:4], data[4:]]), headers=file_headers(size)
        )
        assert chunked.request.headers["Transfer-Encoding"] == "chunked"
        assert (chunked.status_code, chunked.json()["code"]) == (400, "size_mismatch")
        assert chunked.json()["field"] == "X-File-Size"
    assert stored_paths(reference_cloud) == []


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-File-Name", None),
        ("X-File-Name", "a%2Fb.txt"),
        ("X-File-Name", "%FF%FE"),
        ("X-File-Name", "%0Aevil"),
        ("X-File-Size", None),
        ("X-File-Size", "ten"),
        ("X-File-Kind", None),
        ("X-File-Kind", "photo"),
        ("X-Source-Folder", None),
    ],
)
def test_bad_upload_headers_are_400_naming_the_header(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client, header: str, value: str | None
) -> None:
    data = b"content"
    headers = file_headers(len(data))
    if value is None:
        del headers[header]
    else:
        headers[header] = value
    sha = hashlib.sha256(data).hexdigest()
    response = cloud_client.put(f"/v1/files/{sha}", content=data, headers=headers)
    assert (response.status_code, response.json()["field"]) == (400, header)
    assert reference_cloud.files() == []


def test_the_path_must_be_a_lowercase_sha256(cloud_client: httpx.Client) -> None:
    data = b"content"
    upper = hashlib.sha256(data).hexdigest().upper()
    response = cloud_client.put(f"/v1/files/{upper}", content=data, headers=file_headers(len(data)))
    assert (response.status_code, response.json()["field"]) == (400, "sha256")
    assert cloud_client.head(f"/v1/files/{upper}").status_code == 400


def test_uploads_must_be_octet_streams(cloud_client: httpx.Client) -> None:
    no_type = put(cloud_client, b"x", **{"Content-Type": "text/csv"})
    assert (no_type.status_code, no_type.json()["field"]) == (415, "Content-Type")
    gzipped = put(cloud_client, b"x", **{"Content-Encoding": "gzip"})
    assert (gzipped.status_code, gzipped.json()["field"]) == (415, "Content-Encoding")


def test_a_file_over_the_limit_is_413_before_any_byte_is_read(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    reference_cloud.set_limits(max_file_bytes=1000)
    response = put(cloud_client, b"x" * 1001)
    assert (response.status_code, response.json()["code"]) == (413, "file_too_large")
    assert response.json()["limits"]["max_file_bytes"] == 1000


def test_a_client_vanishing_mid_upload_leaves_nothing(reference_cloud: ReferenceCloud) -> None:
    sha = "ab" * 32
    head = (
        f"PUT /v1/files/{sha} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n"
        "X-File-Name: a.csv\r\nX-File-Size: 100000\r\nX-File-Kind: report\r\n"
        "X-Source-Folder: exports\r\n\r\n"
    )
    with socket.create_connection((reference_cloud.host, reference_cloud.port)) as sock:
        sock.sendall(head.encode() + b"x" * 5000)
        time.sleep(0.2)
    incoming = reference_cloud.file_store.incoming
    deadline = time.monotonic() + 5
    while any(incoming.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(incoming.iterdir()) == []
    assert reference_cloud.files() == []
    assert stored_paths(reference_cloud) == []


def test_racing_uploads_of_one_file_store_it_once(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    data = os.urandom(2 * MIB)
    barrier = threading.Barrier(4)
    statuses: list[int] = []

    def upload() -> None:
        barrier.wait()
        statuses.append(put(cloud_client, data).status_code)

    threads = [threading.Thread(target=upload) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(statuses) == [200, 200, 200, 201]
    assert len(reference_cloud.files()) == 1
    assert [p.read_bytes() == data for p in stored_paths(reference_cloud)] == [True]


def _pieces(count: int, piece: bytes) -> Iterator[bytes]:
    for index in range(count):
        yield index.to_bytes(8, "big") + piece[8:]


def test_a_200_mb_chunked_upload_keeps_memory_flat(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client
) -> None:
    count, piece = 200, os.urandom(MIB)
    digest = hashlib.sha256()
    for chunk in _pieces(count, piece):
        digest.update(chunk)
    sha = digest.hexdigest()
    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        response = cloud_client.put(
            f"/v1/files/{sha}", content=_pieces(count, piece), headers=file_headers(count * MIB)
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert response.status_code == 201
    # client and server together: a few 1 MiB pieces in flight, never the file
    assert peak - baseline < 16 * MIB
    assert reference_cloud.file_store.path_of(sha).stat().st_size == count * MIB


def test_a_large_upload_with_content_length_keeps_memory_flat(
    reference_cloud: ReferenceCloud, cloud_client: httpx.Client, tmp_path: Path
) -> None:
    source = tmp_path / "claims.dat"
    digest = hashlib.sha256()
    with source.open("wb") as out:
        for chunk in _pieces(64, os.urandom(MIB)):
            digest.update(chunk)
            out.write(chunk)
    size = source.stat().st_size
    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with source.open("rb") as body:
            response = cloud_client.put(
                f"/v1/files/{digest.hexdigest()}", content=body, headers=file_headers(size)
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.request.headers["Content-Length"] == str(size)
    assert response.status_code == 201
    assert peak - baseline < 16 * MIB
