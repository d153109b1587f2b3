"""Export folders under load, end to end: real watchdog events (or deliberately
none), a separate writer process, the real reference cloud.

* 500 files written three ways (slowly in place, to a temporary name then
  renamed, held open while growing with pauses longer than the settle
  time): every file reaches the cloud exactly once, and only complete: the
  cloud holds exactly the SHA-256 of each final local file and nothing else.
* The bridge stopped while 200 files arrive, 50 more arriving while it
  starts, every watcher event lost: all 250 uploaded within one rescan, none
  twice; another restart uploads nothing again.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from bridge.cloud.client import CloudClient
from bridge.config.model import Cloud, Folder
from bridge.files import FolderLoop, WatchdogWatcher, Watcher, recent_files
from bridge.secrets import MemorySecretStore
from bridge.state import StateStore
from sandbox.cloud.server import ReferenceCloud
from sandbox.cloud.testing import AGENT_ID, TOKEN

pytest_plugins = ["sandbox.cloud.fixtures"]

SETTLE = 0.3

WRITER = r"""
import json, os, random, sys, threading, time

HEADS = [
    b"ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       "
    b"*261123*1200*^*00501*000000001*0*P*:~GS*HP*S*R*20261123*1200*1*X*005010X221A1~ST*835*1~",
    b"%PDF-1.7\n",
    b"id,payer,amount\n",
    b"",
]

def content(index, size):
    rng = random.Random(index)
    head = HEADS[index % len(HEADS)]
    return head + f"file {index}\n".encode() + rng.randbytes(size)

def chunks(data, count):
    step = max(1, len(data) // count)
    return [data[i:i + step] for i in range(0, len(data), step)]

def slow_in_place(path, data, rng):
    for part in chunks(data, rng.randint(3, 6)):
        with open(path, "ab") as out:  # closed between the parts
            out.write(part)
        time.sleep(rng.uniform(0.02, 0.12))  # shorter than the settle time

def temp_then_rename(path, data, rng):
    temp = path + (".tmp" if rng.random() < 0.5 else ".partial")
    for part in chunks(data, 3):
        with open(temp, "ab") as out:
            out.write(part)
        time.sleep(rng.uniform(0.1, 0.5))
    os.replace(temp, path)

def held_open(path, data, rng):
    with open(path, "wb") as out:
        for part in chunks(data, rng.randint(2, 4)):
            out.write(part)
            out.flush()
            time.sleep(rng.uniform(1.0, 1.5))  # much longer than the settle time

WAYS = {"slow": slow_in_place, "rename": temp_then_rename, "held": held_open}

def write(item):
    rng = random.Random(item["index"] * 7919)
    time.sleep(item["start"])
    data = content(item["index"], item["size"])
    WAYS[item["way"]](os.path.join(sys.argv[1], item["name"]), data, rng)

plan = json.load(open(sys.argv[2]))
threads = [threading.Thread(target=write, args=(item,)) for item in plan]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("written", len(plan))
"""


class Traffic:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []

    def hook(self, response: httpx.Response) -> None:
        if "/v1/files/" in response.request.url.path:
            with self.lock:
                self.requests.append((response.request.method, response.status_code))  # type: ignore[arg-type]


class LossyWatcher:
    """The real watcher, with every event it reports thrown away."""

    def __init__(self, folder: Folder) -> None:
        self.inner = WatchdogWatcher(folder.path, recursive=folder.recursive)
        self.lost = 0

    def start(self, sink: Callable[[str], None]) -> None:
        def drop(path: str) -> None:
            self.lost += 1

        self.inner.start(drop)

    def stop(self) -> None:
        self.inner.stop()


@pytest.fixture
def traffic() -> Traffic:
    return Traffic()


@pytest.fixture
def client_factory(reference_cloud: ReferenceCloud, traffic: Traffic) -> Callable[[], CloudClient]:
    settings = Cloud(url=reference_cloud.url, agent_id=AGENT_ID)
    secrets = MemorySecretStore({"cloud-token": TOKEN})
    return lambda: CloudClient(settings, secrets, event_hooks={"response": [traffic.hook]})


class Running:
    """A folder loop in a thread, as the engine's supervisor runs it."""

    def __init__(self, loop: FolderLoop) -> None:
        self.loop = loop
        self.stop = threading.Event()
        self.thread = threading.Thread(target=loop, args=(self.stop,), name="folder-test")
        self.started = time.monotonic()
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


@pytest.fixture
def run_loop() -> Iterator[Callable[[FolderLoop], Running]]:
    running: list[Running] = []

    def start(loop: FolderLoop) -> Running:
        running.append(Running(loop))
        return running[-1]

    yield start
    for r in running:
        if r.thread.is_alive():
            r.close()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not reached in {timeout} s: {what}")
        time.sleep(0.05)
    return time.monotonic() - started


def local_shas(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()
    }


def _write(tmp_path: Path, exports: Path, plan: list[dict[str, object]]) -> None:
    """Run the writer process on ``plan`` and wait for it to finish."""
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan), encoding="utf-8")
    writer = subprocess.run(
        [sys.executable, "-c", WRITER, str(exports), str(plan_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert writer.stdout.strip() == f"written {len(plan)}", writer.stderr


def _plan(first: int, ways: list[str], spread: float) -> list[dict[str, object]]:
    return [
        {
            "index": i,
            "name": f"export-{i:03d}" + (".835", ".pdf", ".csv", ".dat")[i % 4],
            "way": way,
            "size": 2_000 + (i * 7_919) % 200_000,
            "start": (i * 37 % 100) / 100 * spread,
        }
        for i, way in enumerate(ways, start=first)
    ]


def test_500_files_written_three_ways_arrive_once_and_complete(
    tmp_path: Path,
    store: StateStore,
    reference_cloud: ReferenceCloud,
    client_factory: Callable[[], CloudClient],
    traffic: Traffic,
    run_loop: Callable[[FolderLoop], Running],
) -> None:
    """Two waves from a separate writer process. The held-open files come in the
    second wave, when the bridge has no backlog and looks at each file as soon
    as it has been unchanged for the settle time: they sit unchanged for up to
    five settle times while their writer still holds them, so only the check
    for programs holding a file open keeps their first parts from the cloud."""
    exports = tmp_path / "exports"
    exports.mkdir()
    folder = Folder(label="Exports", path=exports, settle_seconds=SETTLE, rescan_seconds=3600)
    loop = FolderLoop(folder, store, client_factory, quiet_seconds=0.1, max_delay_seconds=2)
    running = run_loop(loop)

    def arrived(count: int) -> Callable[[], bool]:
        return lambda: len(reference_cloud.files()) >= count

    _write(tmp_path, exports, _plan(0, ["slow"] * 150 + ["rename"] * 150, spread=3.0))
    wait_until(arrived(300), 90, "the first wave in the cloud")
    _write(tmp_path, exports, _plan(300, ["slow"] * 50 + ["held"] * 150, spread=6.0))
    finals = local_shas(exports)
    assert len(finals) == 500
    took = wait_until(
        lambda: {f.sha256 for f in reference_cloud.files()} >= set(finals.values()),
        timeout=90,
        what="every final file in the cloud",
    )
    time.sleep(2 * SETTLE)  # anything still in flight would show now
    running.close()

    stored = {f.sha256 for f in reference_cloud.files()}
    assert stored == set(finals.values())  # 0 truncated (or other partial) uploads
    receipts = reference_cloud.file_store.receipts()
    assert sorted(set(receipts.values())) == [1]  # 0 duplicates
    records = {v.path: v for v in recent_files(store, limit=1000)}
    assert {path: v.sha256 for path, v in records.items()} == finals
    assert {v.state for v in records.values()} == {"uploaded"}
    assert loop.worker is not None and loop.worker.scans == 1  # events found the files
    puts = [status for method, status in traffic.requests if method == "PUT"]
    assert puts == [201] * 500
    print(f"\n500 files: all in the cloud {took:.1f} s after the last write")


def test_files_arriving_while_stopped_with_events_lost_arrive_in_one_rescan(
    tmp_path: Path,
    store: StateStore,
    reference_cloud: ReferenceCloud,
    client_factory: Callable[[], CloudClient],
    traffic: Traffic,
    run_loop: Callable[[FolderLoop], Running],
) -> None:
    exports = tmp_path / "exports"
    exports.mkdir()
    rescan = 3.0
    folder = Folder(label="ERA", path=exports, settle_seconds=SETTLE, rescan_seconds=rescan)
    watchers: list[LossyWatcher] = []

    def lossy(f: Folder) -> Watcher:
        watchers.append(LossyWatcher(f))
        return watchers[-1]

    def write(first: int, count: int) -> None:
        for i in range(first, first + count):
            (exports / f"era-{i:03d}.835").write_bytes(f"ISA*remittance {i}~".encode() * 40)

    def in_cloud() -> int:
        return len(reference_cloud.files())

    # The bridge ran before and uploaded 10 files, then stopped.
    write(0, 10)
    first = run_loop(FolderLoop(folder, store, client_factory, watcher_factory=lossy))
    wait_until(lambda: in_cloud() == 10, 20, "the first 10 files")
    first.close()

    write(10, 200)  # while the bridge is stopped
    second_loop = FolderLoop(folder, store, client_factory, watcher_factory=lossy)
    second = run_loop(second_loop)
    write(210, 50)  # while it starts (its start-up scan may or may not see them)
    took = wait_until(lambda: in_cloud() == 260, rescan + 60, "all 260 files")
    assert second_loop.worker is not None
    # found by the start-up scan or the first rescan, uploaded before the second one
    assert second_loop.worker.scans <= 2
    time.sleep(rescan + 2 * SETTLE)  # another rescan: nothing more to send
    second.close()
    # events were made and every one was lost (how many depends on when the watcher
    # started relative to the writes; the files themselves all arrived above)
    assert watchers[1].lost > 0
    receipts = reference_cloud.file_store.receipts()
    assert len(receipts) == 260 and set(receipts.values()) == {1}  # 0 duplicates

    # Another restart: nothing is uploaded, nothing even asked about.
    before = len(traffic.requests)
    third_loop = FolderLoop(folder, store, client_factory, watcher_factory=lossy)
    third = run_loop(third_loop)
    wait_until(
        lambda: third_loop.worker is not None and third_loop.worker.scans >= 2,
        rescan + 10,
        "a rescan after the restart",
    )
    third.close()
    assert reference_cloud.file_store.receipts() == receipts  # 0 re-uploads
    assert len(traffic.requests) == before
    states = {v.state for v in recent_files(store, limit=1000)}
    assert states == {"uploaded"}
    print(f"\n250 files while stopped or starting: all in the cloud {took:.1f} s after the start")
