"""One export folder step by step, against the real reference cloud over HTTP.

The worker runs on a hand-moved clock (settle times pass when the test says
so) while the files, the holders of open files and the cloud are real. Every
/v1 exchange is checked against docs/cloud-api.yaml.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from conftest import bridge_env, store_cloud_token

from bridge.cli import cli
from bridge.cloud.client import CloudClient
from bridge.commands.files_cmd import render_files
from bridge.commands.status_cmd import render
from bridge.config import Settings
from bridge.config.model import Cloud, Folder
from bridge.engine import Engine
from bridge.files import FolderWorker, recent_files
from bridge.files.records import FileView
from bridge.pms.profile import load_profile
from bridge.secrets import MemorySecretStore
from bridge.state import StateStore
from bridge.status import read_status
from sandbox.cloud.models import Fault
from sandbox.cloud.server import ReferenceCloud
from sandbox.cloud.spec import SpecChecker
from sandbox.cloud.testing import AGENT_ID, TOKEN

pytest_plugins = ["sandbox.cloud.fixtures"]

SETTLE = 0.3
ERA = b"ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *261123*1200*^*00501*000000001*0*P*:~ST*835*0001~"  # noqa: E501


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def settle(self) -> None:
        self.now += SETTLE + 0.001


class Traffic:
    """Counts the bridge's file requests by method."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []

    def hook(self, response: httpx.Response) -> None:
        if "/v1/files/" in response.request.url.path:
            self.requests.append((response.request.method, response.request.url.path[10:]))

    def count(self, method: str) -> int:
        return sum(1 for m, _ in self.requests if m == method)


@pytest.fixture
def traffic() -> Traffic:
    return Traffic()


@pytest.fixture
def client_factory(
    reference_cloud: ReferenceCloud, cloud_spec: SpecChecker, traffic: Traffic
) -> Callable[[], CloudClient]:
    settings = Cloud(url=reference_cloud.url, agent_id=AGENT_ID)
    secrets = MemorySecretStore({"cloud-token": TOKEN})
    return lambda: CloudClient(
        settings, secrets, event_hooks={"response": [cloud_spec.hook, traffic.hook]}
    )


@pytest.fixture
def exports(tmp_path: Path) -> Path:
    folder = tmp_path / "exports"
    folder.mkdir()
    return folder


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_worker(
    exports: Path, store: StateStore, client_factory: Callable[[], CloudClient], clock: Clock
) -> Iterator[Callable[..., FolderWorker]]:
    workers: list[FolderWorker] = []

    def make(factory: Callable[[], CloudClient] | None = None, **settings: Any) -> FolderWorker:
        settings.setdefault("settle_seconds", SETTLE)
        folder = Folder(label="ERA", path=exports, **settings)
        worker = FolderWorker(folder, store, factory or client_factory, clock=clock)
        worker.start()
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.close()


def views(store: StateStore) -> dict[str, FileView]:
    return {v.path: v for v in recent_files(store, limit=1000)}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cloud_shas(cloud: ReferenceCloud) -> set[str]:
    return {f.sha256 for f in cloud.files()}


def test_a_file_is_uploaded_only_once_it_stopped_changing(
    make_worker: Callable[..., FolderWorker],
    exports: Path,
    store: StateStore,
    clock: Clock,
    reference_cloud: ReferenceCloud,
    traffic: Traffic,
) -> None:
    worker = make_worker()
    path = exports / "ERA 0001.835"
    path.write_bytes(ERA[:50])
    assert worker.scan() == 1
    assert views(store)["ERA 0001.835"].state == "waiting"
    assert worker.check() == []  # no settle time has passed
    clock.settle()
    with path.open("ab") as out:
        out.write(ERA[50:])
    assert worker.check() == []  # changed since the first look
    clock.settle()
    [ready] = worker.check()
    assert ready.rel == "ERA 0001.835"
    assert worker.upload_ready() == 1
    assert cloud_shas(reference_cloud) == {sha(ERA)}
    [stored] = reference_cloud.files()
    assert (stored.name, stored.kind, stored.source_folder, stored.size) == (
        "ERA 0001.835",
        "era835",
        "ERA",
        len(ERA),
    )
    view = views(store)["ERA 0001.835"]
    assert (view.state, view.kind, view.format, view.sha256) == (
        "uploaded",
        "era835",
        "x12-835",
        sha(ERA),
    )
    assert view.after_done == "kept" and path.exists()
    assert "uploaded" in render_files([view]) and "[era835]" in render_files([view])
    # scanning again reads nothing and asks the cloud nothing
    before = list(traffic.requests)
    worker.scan()
    assert worker.candidates == {} and worker.check() == [] and worker.upload_ready() == 0
    assert traffic.requests == before == [("HEAD", sha(ERA)), ("PUT", sha(ERA))]


def test_a_file_held_open_waits_and_says_by_whom(
    make_worker: Callable[..., FolderWorker],
    exports: Path,
    store: StateStore,
    clock: Clock,
    reference_cloud: ReferenceCloud,
) -> None:
    worker = make_worker()
    path = exports / "claims.837"
    with path.open("ab") as writer:
        writer.write(b"ISA*first part")
        writer.flush()
        worker.scan()
        for _ in range(3):  # unchanged for several settle times, but still open
            clock.settle()
            assert worker.check() == []
        view = views(store)["claims.837"]
        assert view.state == "waiting" and view.reason_code == "held_open"
        assert view.reason.startswith("open for writing by ")  # the process name, then
        assert f"(pid {os.getpid()}); waiting until it is closed" in view.reason
        assert "held_open: open for writing by" in render_files([view])
        writer.write(b" and the rest")
    clock.settle()
    assert worker.check() == []  # changed when it was closed
    clock.settle()
    assert len(worker.check()) == 1
    worker.upload_ready()
    assert cloud_shas(reference_cloud) == {sha(b"ISA*first part and the rest")}


class _ChangingClient(CloudClient):
    """A client during whose HEAD another program appends to the file."""

    victim: Path

    def head_file(self, sha256: str) -> bool:
        with self.victim.open("ab") as out:
            out.write(b"\n3,late row")
        return super().head_file(sha256)


def test_a_file_changed_between_hashing_and_sending_is_never_sent_changed(
    make_worker: Callable[..., FolderWorker],
    exports: Path,
    store: StateStore,
    clock: Clock,
    reference_cloud: ReferenceCloud,
) -> None:
    path = exports / "payments.csv"
    first = b"id,amount\n1,10.00\n2,20.00"
    path.write_bytes(first)
    settings = Cloud(url=reference_cloud.url, agent_id=AGENT_ID)
    _ChangingClient.victim = path
    worker = make_worker(
        lambda: _ChangingClient(settings, MemorySecretStore({"cloud-token": TOKEN}))
    )
    worker.scan()
    clock.settle()
    worker.check()
    assert worker.upload_ready() == 0
    view = views(store)["payments.csv"]
    assert (view.state, view.reason_code) == ("waiting", "changed_while_reading")
    assert reference_cloud.files() == [] and reference_cloud.file_store.receipts() == {}
    assert list(reference_cloud.file_store.incoming.iterdir()) == []
    worker.close()
    final = path.read_bytes()
    plain = make_worker()  # no more late rows
    plain.scan()
    clock.settle()
    plain.check()
    clock.settle()
    plain.check()
    assert plain.upload_ready() == 1
    assert cloud_shas(reference_cloud) == {sha(final)}


def test_a_file_that_vanishes_after_it_was_stable_is_quarantined(
    make_worker: Callable[..., FolderWorker],
    exports: Path,
    store: StateStore,
    clock: Clock,
    reference_cloud: ReferenceCloud,
) -> None:
    worker = make_worker()
    (exports / "gone.835").write_bytes(ERA)
    (exports / "tmp-name").write_bytes(b"renamed away while settling")
    worker.scan()
    (exports / "tmp-name").rename(exports / "final.csv")
    clock.settle()
    [ready] = worker.check()
    assert ready.rel == "gone.835"  # final.csv only now starts settling
    assert "tmp-name" not in views(store)  # a temporary name is forgotten, not reported
    worker.scan()
    (exports / "gone.835").unlink()
    worker.upload_ready()
    view = views(store)["gone.835"]
    assert (view.state, view.reason_code) == ("quarantined", "vanished")
    assert "disappeared" in view.reason
    assert reference_cloud.files() == []
    worker.scan()  # the report stays: the cloud never got that file
    assert views(store)["gone.835"].state == "quarantined"


def test_pipes_and_broken_links_are_quarantined_without_being_opened(
    make_worker: Callable[..., FolderWorker], exports: Path, store: StateStore, clock: Clock
) -> None:
    os.mkfifo(exports / "pipe.csv")  # opening it for reading would block forever
    (exports / "link.835").symlink_to(exports / "nowhere.835")
    worker = make_worker()
    worker.scan()
    found = views(store)
    assert (found["pipe.csv"].state, found["pipe.csv"].reason_code) == ("quarantined", "not_a_file")
    assert "a pipe" in found["pipe.csv"].reason
    assert (found["link.835"].state, found["link.835"].reason_code) == (
        "quarantined",
        "broken_link",
    )
    clock.settle()
    worker.scan()
    assert worker.check() == [] and worker.upload_ready() == 0
    assert views(store) == found  # nothing rewritten, nothing reported twice


def test_a_file_that_never_settles_is_quarantined_and_sent_once_it_does(
    make_worker: Callable[..., FolderWorker],
    exports: Path,
    store: StateStore,
    clock: Clock,
    reference_cloud: ReferenceCloud,
) -> None:
    worker = make_worker(give_up_seconds=1)
    path = exports / "log.csv"
    path.write_bytes(b"a,b\n")
    worker.scan()
    for row in range(5):
        clock.settle()
        with path.open("ab") as out:
            out.write(f"{row},x\n".encode())
        worker.check()
    view = views(store)["log.csv"]
    assert (view.state, view.reason_code) == ("quarantined", "never_stable")
    assert "it kept changing" in view.reason
    assert worker.candidates == {}
    worker.scan()  # the next full scan looks again; now it has stopped changing
    clock.settle()
    assert len(worker.check()) == 1
    worker.upload_ready()
    assert views(store)["log.csv"].state == "uploaded"
    assert cloud_shas(reference_cloud) == {sha(path.read_bytes())}


def test_content_the_cloud_has_is_skipped_as_a_duplicate(
    make_worker: Callable[..., FolderWorker],
    exports: Path,
    store: StateStore,
    clock: Clock,
    reference_cloud: ReferenceCloud,
    traffic: Traffic,
) -> None:
    (exports / "a.835").write_bytes(ERA)
    (exports / "copy of a.835").write_bytes(ERA)
    worker = make_worker()
    worker.scan()
    clock.settle()
    worker.check()
    assert worker.upload_ready() == 2
    states = sorted(v.state for v in views(store).values())
    assert states == ["duplicate", "uploaded"]
    assert reference_cloud.file_store.receipts() == {sha(ERA): 1}
    assert traffic.count("PUT") == 1
    assert "skipped (duplicate)" in render_files(list(views(store).values()))


def test_a_connection_lost_after_the_cloud_stored_a_file_neither_loses_nor_resends_it(
    make_worker: Callable[..., FolderWorker],
    exports: Path,
    store: StateStore,
    clock: Clock,
    reference_cloud: ReferenceCloud,
    traffic: Traffic,
) -> None:
    (exports / "a.835").write_bytes(ERA)
    reference_cloud.set_fault(Fault("drop_after", count=1, path_prefix="/v1/files", method="PUT"))
    worker = make_worker()
    worker.scan()
    clock.settle()
    worker.check()
    assert worker.upload_ready() == 0
    view = views(store)["a.835"]
    assert (view.state, view.reason_code) == ("sending", "cloud_unavailable")
    assert worker.health().status == "warn" and "uploads paused" in worker.health().message
    assert reference_cloud.file_store.receipts() == {sha(ERA): 1}  # it did arrive
    worker.close()
    restarted = make_worker()  # as after a restart: only local state carries over
    restarted.scan()
    clock.settle()
    restarted.check()
    assert restarted.upload_ready() == 1
    assert views(store)["a.835"].state == "uploaded"  # ours, not someone else's duplicate
    assert reference_cloud.file_store.receipts() == {sha(ERA): 1}
    # the dropped PUT got no answer; after the restart only a HEAD was needed
    assert (traffic.count("HEAD"), traffic.count("PUT")) == (2, 0)


def test_an_unavailable_cloud_pauses_uploads_and_files_wait(
    make_worker: Callable[..., FolderWorker],
    exports: Path,
    store: StateStore,
    clock: Clock,
    reference_cloud: ReferenceCloud,
) -> None:
    for name in ("a.csv", "b.csv"):
        (exports / name).write_bytes(f"name,n\n{name},1\n".encode())
    reference_cloud.set_fault(Fault("unavailable", path_prefix="/v1/files", retry_after=5))
    worker = make_worker()
    worker.scan()
    clock.settle()
    worker.check()
    assert worker.upload_ready() == 0
    assert worker.cloud_paused_until >= clock.now + 5  # Retry-After is honoured
    assert {v.reason_code for v in views(store).values()} == {"cloud_unavailable", "settling"}
    reference_cloud.clear_faults()
    assert worker.upload_ready() == 0  # still paused
    clock.now = worker.cloud_paused_until
    assert worker.upload_ready() == 2
    assert worker.health().status == "ok"
    assert len(reference_cloud.files()) == 2


def test_after_upload_files_are_moved_or_deleted_but_quarantined_ones_never(
    make_worker: Callable[..., FolderWorker],
    exports: Path,
    store: StateStore,
    clock: Clock,
    reference_cloud: ReferenceCloud,
) -> None:
    archive = exports / "uploaded"
    (exports / "2026").mkdir()
    (exports / "2026" / "a.835").write_bytes(ERA)
    mover = make_worker(recursive=True, after="move", archive_to=archive)
    mover.scan()
    clock.settle()
    mover.check()
    mover.upload_ready()
    assert (archive / "2026" / "a.835").read_bytes() == ERA
    assert not (exports / "2026" / "a.835").exists()
    assert views(store)["2026/a.835"].archived_to == str(archive / "2026" / "a.835")
    mover.scan()  # the archive inside the folder is never picked up
    assert mover.candidates == {}
    mover.close()

    reference_cloud.set_limits(max_file_bytes=100)
    (exports / "small.csv").write_bytes(b"a,b\n1,2\n")
    (exports / "big.csv").write_bytes(b"a,b\n" + b"1,2\n" * 100)
    deleter = make_worker(recursive=True, after="delete")
    deleter.scan()
    clock.settle()
    deleter.check()
    deleter.upload_ready()
    assert not (exports / "small.csv").exists()
    assert views(store)["small.csv"].after_done == "deleted"
    big = views(store)["big.csv"]
    assert (big.state, big.reason_code) == ("quarantined", "too_large")
    assert (exports / "big.csv").exists()  # a quarantined file is never deleted


def test_status_and_the_files_list_show_waiting_and_quarantined(
    make_worker: Callable[..., FolderWorker], exports: Path, store: StateStore, clock: Clock
) -> None:
    (exports / "a.835").write_bytes(ERA)
    os.mkfifo(exports / "b.csv")
    worker = make_worker()
    worker.scan()
    snapshot = read_status(store)
    [files] = snapshot.files
    assert (files.folder, files.waiting, files.quarantined) == ("ERA", 1, 1)
    assert "files    ERA: 1 waiting, 1 quarantined, 0 uploaded" in render(snapshot)
    assert type(snapshot).from_json(snapshot.to_json()).files == snapshot.files
    health = worker.health()
    assert (health.component, health.status) == ("folder:ERA", "warn")
    assert "1 waiting, 1 quarantined" in health.message


def test_a_missing_folder_is_reported_not_fatal(
    store: StateStore, client_factory: Callable[[], CloudClient], tmp_path: Path
) -> None:
    folder = Folder(label="Share", path=tmp_path / "not-mounted", settle_seconds=SETTLE)
    worker = FolderWorker(folder, store, client_factory)
    worker.start()
    with pytest.raises(OSError, match="does not exist"):
        worker.scan()
    health = worker.health()
    assert (health.status, health.error_kind) == ("fail", "config")
    assert "share is not connected" in health.message


# -- as separate processes: permission denied, the CLI, the engine ------------------------


def test_permission_denied_is_quarantined_and_kept(
    tmp_path: Path, reference_cloud: ReferenceCloud
) -> None:
    """Root ignores file mode bits, so the scan runs as root *without* the two
    capabilities that let it (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), through
    setpriv: the kernel then applies the mode bits to it like to anyone, and
    opening a mode-000 file fails with a real EACCES. (Switching to another
    user would also need every folder on the way to be open to that user.)"""
    home, exports = tmp_path / "home", tmp_path / "exports"
    exports.mkdir()
    (home / "config").mkdir(parents=True)
    (home / "config" / "bridge.toml").write_text(
        f"""[practice]
name = "Test Dental"
timezone = "America/Chicago"
[pms]
profile = "opendental"
connection_string = 'Driver={{SQLite3}};Database={tmp_path / "od.sqlite3"}'
[cloud]
url = "{reference_cloud.url}"
agent_id = "{AGENT_ID}"
[[folders]]
label = "ERA"
path = "{exports}"
after = "delete"
settle_seconds = 0.2
""",
        encoding="utf-8",
    )
    env = bridge_env(home)
    store_cloud_token(env, TOKEN)
    (exports / "readable.835").write_bytes(ERA)
    secret = exports / "locked-down.835"
    secret.write_bytes(ERA + b"other")
    secret.chmod(0)
    no_dac = "-dac_override,-dac_read_search"
    setpriv = ["setpriv", f"--bounding-set={no_dac}", f"--inh-caps={no_dac}"]
    scan = subprocess.run(
        [*setpriv, sys.executable, "-m", "bridge", "files", "scan", "--timeout", "20"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert scan.returncode == 1, scan.stderr  # something is quarantined
    assert "folder ERA: 0 waiting, 1 quarantined, 1 in the cloud" in scan.stdout
    listed = subprocess.run(
        [sys.executable, "-m", "bridge", "files", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    files = {f["path"]: f for f in json.loads(listed.stdout)}
    assert (files["locked-down.835"]["state"], files["locked-down.835"]["reason_code"]) == (
        "quarantined",
        "permission_denied",
    )
    assert files["readable.835"]["after_done"] == "deleted"
    assert secret.exists()  # after = delete never touches a quarantined file
    assert not (exports / "readable.835").exists()
    assert {f.sha256 for f in reference_cloud.files()} == {sha(ERA)}
    text = CliRunner().invoke(cli, ["files", "--state", "quarantined"], env=env).output
    assert "permission_denied: this account may not read the file" in text
    assert "readable.835" not in text


def test_the_engine_runs_one_loop_per_folder(
    tmp_path: Path, store: StateStore, reference_cloud: ReferenceCloud
) -> None:
    """With no PMS reachable at all, the folder loops still upload: one broken
    component never holds up another."""
    reference_cloud.set_limits(max_wait_seconds=1)  # the inbox long-poll ends soon at stop
    era, reports = tmp_path / "era", tmp_path / "reports"
    era.mkdir()
    reports.mkdir()
    settings = Settings.model_validate(
        {
            "practice": {"name": "Test Dental", "timezone": "America/Chicago"},
            "pms": {
                "profile": "opendental",
                "connection_string": f"Driver={{SQLite3}};Database={tmp_path / 'none.sqlite3'}",
            },
            "cloud": {"url": reference_cloud.url, "agent_id": AGENT_ID},
            "folders": [
                {"label": "ERA", "path": str(era), "settle_seconds": 0.2},
                {"label": "Reports", "path": str(reports), "settle_seconds": 0.2},
            ],
        }
    )
    engine = Engine(
        settings,
        store,
        MemorySecretStore({"cloud-token": TOKEN}),
        load_profile("opendental"),
        heartbeat_seconds=0.2,
        pms_ping_seconds=0.2,
        paths=None,
    )
    stop = threading.Event()
    runner = threading.Thread(target=engine.run, args=(stop,))
    runner.start()
    try:
        (era / "a.835").write_bytes(ERA)
        (reports / "aging.csv").write_bytes(b"patient,balance\n1,10\n")
        deadline = time.monotonic() + 20
        while len(reference_cloud.files()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert {(f.source_folder, f.kind) for f in reference_cloud.files()} == {
            ("ERA", "era835"),
            ("Reports", "report"),
        }
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            names = {c.component for c in read_status(store).components}
            if {"folder:ERA", "folder:Reports"} <= names:
                break
            time.sleep(0.1)
        assert {"folder:ERA", "folder:Reports"} <= names
    finally:
        stop.set()
        runner.join(30)
    assert not runner.is_alive()
