"""The control channel against a real engine: ``bridge run`` in a subprocess on
the demo practice (SQLite3 ODBC driver) pushing to the reference cloud.

One engine serves most tests of this module (they run in file order and
leave it running, unpaused); the restart test runs engines of its own. The
helpers here (:class:`World`, :class:`EngineProcess`, :func:`raw_connection`)
are used by the other control tests too.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Client, Connection
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    bridge_env,
    outbox_depth,
    sqlite_connection_string,
    store_cloud_token,
    write_bridge_config,
)

from bridge import __version__
from bridge.bookings.exceptions import Resolution
from bridge.control import protocol
from bridge.control.client import ControlClient
from bridge.control.endpoint import Endpoint, endpoint_for, read_key
from bridge.control.errors import (
    BookingsDisabled,
    ControlAuthError,
    ControlConnectionLost,
    EngineFailed,
    EngineNotRunning,
    RequestRejected,
)
from bridge.control.events import (
    ComponentChanged,
    Event,
    Paused,
    Resumed,
    SyncFinished,
    SyncStarted,
)
from bridge.control.server import MAX_CONNECTIONS
from bridge.paths import BridgePaths
from sandbox.cloud.server import ReferenceCloud
from sandbox.practice import BuildReport

pytestmark = pytest.mark.timeout(240)

AGENT = "agent-control"
TOKEN = "control-token-0123456789"


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


@dataclass
class World:
    """A bridge home with a config, a cloud token in its file keyring, a PMS and a cloud."""

    home: Path
    env: dict[str, str]
    db: Path
    cloud: ReferenceCloud

    @property
    def paths(self) -> BridgePaths:
        return BridgePaths(self.home / "config", self.home / "data", self.home / "logs")

    @property
    def state_db(self) -> Path:
        return self.paths.state_db

    def client(self, **kwargs: Any) -> ControlClient:
        return ControlClient.connect(self.paths, **kwargs)

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bridge", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def state(self, sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(f"file:{self.state_db}?mode=ro", uri=True, timeout=10) as conn:
            return conn.execute(sql).fetchall()

    def rows_examined(self) -> dict[str, int]:
        return dict(self.state("SELECT entity, rows_examined FROM sync_cursor"))

    def first_sync_done(self) -> bool:
        return outbox_depth(self.state_db) == 0


def make_world(
    root: Path,
    practice: BuildReport,
    cloud: ReferenceCloud,
    *,
    level: str = "INFO",
    token: str = TOKEN,
) -> World:
    db = root / "practice.sqlite3"
    shutil.copy(practice.connection_string.split("Database=", 1)[1], db)
    home = root / "home"
    env = bridge_env(home)
    write_bridge_config(
        home,
        connection_string=sqlite_connection_string(db),
        cloud_url=cloud.url,
        agent_id=AGENT,
        poll_seconds=0.5,
        level=level,
    )
    store_cloud_token(env, token)
    return World(home, env, db, cloud)


class EngineProcess:
    """``bridge run`` for a world; :meth:`start` returns once the channel answers."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> EngineProcess:
        console = (self.world.home / "engine-console.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "run"],
            env=self.world.env,
            stdout=console,
            stderr=subprocess.STDOUT,
        )
        console.close()

        def answers() -> bool:
            assert self.process is not None and self.process.poll() is None, "engine exited"
            try:
                self.world.client(timeout=5).close()
            except (EngineNotRunning, ControlAuthError):
                return False
            return True

        wait_for(answers, timeout, "the engine's control channel answering")
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self, sig: int = signal.SIGINT) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(60)


def raw_connection(endpoint: Endpoint, key: bytes | None = None) -> tuple[Connection, Any]:
    """A connection through the handshake by hand; returns it and the engine's answer."""
    conn = Client(endpoint.address, family=endpoint.family)
    hello = protocol.decode(conn.recv_bytes())
    proof = protocol.client_proof(key or read_key(endpoint), hello["nonce"])
    mine = protocol.new_nonce()
    conn.send_bytes(protocol.encode({"protocol": protocol.PROTOCOL, "nonce": mine, "proof": proof}))
    return conn, protocol.decode(conn.recv_bytes())


def ask(conn: Connection, body: bytes) -> Any:
    conn.send_bytes(body)
    assert conn.poll(10), "no answer"
    return protocol.decode(conn.recv_bytes())


def events_until(
    client: ControlClient, after: int, done: Callable[[list[Event]], bool], timeout: float
) -> tuple[list[Event], int]:
    seen: list[Event] = []
    deadline = time.monotonic() + timeout
    while not done(seen):
        left = deadline - time.monotonic()
        assert left > 0, f"events so far: {[e.type for e in seen]}"
        batch, after = client.events(after, wait=min(left, 5.0))
        seen += batch
    return seen, after


# -- one engine for the module ---------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, practice: BuildReport) -> Iterator[World]:
    root = tmp_path_factory.mktemp("control")
    with ReferenceCloud(root / "cloud" / "cloud.sqlite3", tokens={AGENT: TOKEN}) as cloud:
        yield make_world(root, practice, cloud)


@pytest.fixture(scope="module")
def engine(world: World) -> Iterator[EngineProcess]:
    process = EngineProcess(world).start()
    try:
        yield process
    finally:
        assert process.stop() == 0


@pytest.fixture(scope="module")
def synced(world: World, engine: EngineProcess) -> World:
    """The module's engine once its first sync reached the cloud (steady state:
    during a first sync a requested pass waits for the chunks ahead of it)."""
    wait_for(world.first_sync_done, 150, "first sync delivered")
    return world


def test_version_and_status_come_from_the_running_engine(
    world: World, engine: EngineProcess
) -> None:
    with world.client() as client:
        version = client.version()
        snapshot = client.status()
    assert version.bridge == __version__ and version.pid == engine.pid
    assert version.protocol == protocol.PROTOCOL
    assert snapshot.engine == "running" and snapshot.pid == engine.pid and not snapshot.paused
    assert {e.entity for e in snapshot.entities} <= {
        "patient", "appointment", "provider", "operatory", "appointment_type", "schedule",
        "procedure", "procedure_code", "claim", "payment", "recall", "definition",
    }  # fmt: skip


def test_socket_and_key_are_private_to_the_engines_account(
    world: World, engine: EngineProcess
) -> None:
    endpoint = endpoint_for(world.paths.data_dir)
    info = os.stat(endpoint.address)
    assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
    assert stat.S_IMODE(endpoint.folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(endpoint.key_file.stat().st_mode) == 0o600
    assert info.st_uid == os.getuid() == endpoint.key_file.stat().st_uid


def test_a_wrong_key_is_refused_and_the_engine_keeps_serving(
    world: World, engine: EngineProcess, tmp_path: Path
) -> None:
    real = endpoint_for(world.paths.data_dir)
    conn, answer = raw_connection(real, key=b"0" * 64)
    assert answer["ok"] is False and answer["error"]["kind"] == "auth_failed"
    with pytest.raises(EOFError):
        conn.recv_bytes()  # closed by the engine
    conn.close()
    forged = tmp_path / "control"
    forged.mkdir()
    (forged / "engine.key").write_text("1" * 64)
    with pytest.raises(ControlAuthError, match="refused the control key"):
        ControlClient.connect(Endpoint(real.address, real.family, forged))
    # a client that connects and says nothing does not hold up others
    silent = Client(real.address, family=real.family)
    try:
        with world.client() as client:
            assert client.version().pid == engine.pid
    finally:
        silent.close()


def test_bad_requests_get_specific_errors_and_never_harm_the_engine(
    world: World, engine: EngineProcess
) -> None:
    endpoint = endpoint_for(world.paths.data_dir)
    conn, answer = raw_connection(endpoint)
    assert answer["ok"] is True
    try:
        cases: list[tuple[bytes, str, str]] = [
            (b"not json {", "malformed", "not JSON"),
            (b"\xff\xfe", "malformed", "not UTF-8"),
            (b"[1, 2]", "malformed", "JSON object"),
            (b'{"op": 5}', "malformed", "op must be"),
            (b'{"op": "status", "args": []}', "malformed", "args must be"),
            (b'{"op": "drop_tables"}', "unknown_op", "events, exceptions.list"),
            (b'{"op": "events", "args": {"after": -1}}', "invalid_request", "after must be"),
            (b'{"op": "events", "args": {"wait": "long"}}', "invalid_request", "wait must be"),
            (b'{"op": "status", "args": {"x": 1}}', "invalid_request", "takes no argument 'x'"),
            (b'{"op": "sync", "args": {"entities": ["nope"]}}', "invalid_request", "entities[0]"),
            (
                b'{"op": "sync", "args": {"keys": ["1"]}}',
                "invalid_request",
                "keys needs exactly one entity",
            ),
            (b'{"op": "logs", "args": {"after": "x"}}', "invalid_request", "cursor"),
            (b'{"op": "logs", "args": {"level": "LOUD"}}', "invalid_request", "level"),
            (b'{"op": "exceptions.list", "args": {"state": "x"}}', "invalid_request", "state"),
            (
                b'{"op": "exceptions.resolve", "args": {"id": 1, "action": "burn"}}',
                "invalid_request",
                "action must be one of",
            ),
        ]
        for body, kind, words in cases:
            reply = ask(conn, body)
            assert reply["ok"] is False, body
            assert reply["error"]["kind"] == kind, (body, reply)
            assert words in reply["error"]["message"], (body, reply)
        reply = ask(conn, b'{"op": "version"}')  # the same connection still works
        assert reply["ok"] is True and reply["result"]["pid"] == engine.pid
        # too large: answered, then closed (the body is never read)
        conn.send_bytes(b" " * (protocol.MAX_REQUEST_BYTES + 1))
        assert conn.poll(10)
        reply = protocol.decode(conn.recv_bytes())
        assert reply["error"]["kind"] == "too_large"
        with pytest.raises((EOFError, ConnectionResetError)):  # unread data: a reset
            conn.recv_bytes()
    finally:
        conn.close()
    with world.client() as client:
        with pytest.raises(RequestRejected, match="the limit is") as caught:
            client.sync_now(["patient"], ["k" * 90] * 1000)  # refused before sending
        assert caught.value.kind == "too_large"
        assert client.status().engine == "running"


def test_two_clients_at_once_and_a_busy_answer_past_the_limit(
    world: World, engine: EngineProcess
) -> None:
    with world.client() as watcher, world.client() as actor:
        _, after = watcher.events(0)
        got: list[Event] = []
        arrived: list[float] = []

        def long_poll() -> None:
            seen, _ = events_until(
                watcher, after, lambda s: any(isinstance(e, SyncStarted) for e in s), 20
            )
            arrived.append(time.monotonic())
            got.extend(seen)

        thread = threading.Thread(target=long_poll)
        thread.start()
        time.sleep(0.3)
        assert actor.status().engine == "running"  # served while the other waits
        asked = time.monotonic()
        actor.sync_now(["provider"])
        thread.join(25)
        assert any(isinstance(e, SyncStarted) for e in got)
        assert arrived[0] - asked < 3, "the long-poll returned with the event"
    endpoint = endpoint_for(world.paths.data_dir)
    opened = []
    try:
        for _ in range(MAX_CONNECTIONS):
            conn, answer = raw_connection(endpoint)
            assert answer["ok"] is True
            opened.append(conn)
        with pytest.raises(EngineFailed, match=f"already serves {MAX_CONNECTIONS}") as busy:
            world.client()
        assert busy.value.kind == "busy"
    finally:
        for conn in opened:
            conn.close()
    wait_for(lambda: _connects(world), 10, "a connection after the others closed")


def test_closing_a_client_ends_its_long_poll_at_once(world: World, engine: EngineProcess) -> None:
    client = world.client()
    _, after = client.events(0)
    raised: list[BaseException] = []

    def long_poll() -> None:
        cursor = after
        try:
            while True:
                _, cursor = client.events(cursor, wait=20)
        except ControlConnectionLost as exc:
            raised.append(exc)

    thread = threading.Thread(target=long_poll)
    thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    client.close()
    thread.join(10)
    assert raised and time.monotonic() - started < 3
    with pytest.raises(ControlConnectionLost, match="closed"):
        client.version()


def _connects(world: World) -> bool:
    try:
        world.client().close()
    except EngineFailed:
        return False
    return True


def test_sync_pressed_five_times_is_one_sync(synced: World) -> None:
    (rows,) = synced.state("SELECT rows_total FROM sync_cursor WHERE entity = 'appointment_type'")
    with synced.client() as client:
        _, after = client.events(0)
        # One sync first: the entity's next pass by its own cadence (60 s) is then
        # a minute away, so every pass below is one the presses caused.
        client.sync_now(["appointment_type"])
        _, after = events_until(
            client, after, lambda seen: any(isinstance(e, SyncFinished) for e in seen), 20
        )
        before = synced.rows_examined()["appointment_type"]
        answers = [client.sync_now(["appointment_type"]) for _ in range(5)]
        events, _ = events_until(
            client, after, lambda seen: any(isinstance(e, SyncFinished) for e in seen), 20
        )
    assert [a.merged for a in answers] == [False, True, True, True, True]
    assert all(a.entities == ("appointment_type",) and not a.paused for a in answers)
    started = [e for e in events if isinstance(e, SyncStarted)]
    finished = [e for e in events if isinstance(e, SyncFinished)]
    assert [e.entities for e in started] == [("appointment_type",)]
    assert [e.entities for e in finished] == [("appointment_type",)]
    time.sleep(1.0)
    # appointment_type is a snapshot entity: one pass reads every row once.
    assert synced.rows_examined()["appointment_type"] - before == rows[0]


def test_pause_stops_reads_sending_and_the_inbox_until_resumed(synced: World) -> None:
    cloud = synced.cloud
    with synced.client() as client:
        _, after = client.events(0)
        state = client.pause(by="front desk")
        assert state.paused and state.settled and state.by == "front desk"
        snapshot = client.status()
        assert snapshot.paused and snapshot.paused_by == "front desk"
        assert client.pause().since == state.since, "pausing again changes nothing"
        examined = synced.rows_examined()
        with sqlite3.connect(synced.db) as pms:
            pms.execute("UPDATE appointment SET Confirmed = 7 WHERE AptNum = 42")
        item = cloud.enqueue("sync.request", {"entities": ["provider"]}, agent_id=AGENT)
        scheduled = client.sync_now(["appointment"])
        assert scheduled.paused
        time.sleep(4)
        assert synced.rows_examined() == examined, "no PMS reads while paused"
        assert _confirmation(cloud, "42") != "7"
        assert [i.deliveries for i in cloud.inbox(agent_id=AGENT) if i.id == item.id] == [0]
    with synced.client() as client:
        resumed = client.resume(by="front desk")
        assert not resumed.paused and not client.status().paused

        wait_for(
            lambda: _confirmation(cloud, "42") == "7",
            90,
            "the edit made while paused reaching the cloud",
        )
        wait_for(
            lambda: any(r.id == item.id for r in cloud.results(agent_id=AGENT)),
            30,
            "the inbox item answered after resume",
        )
        events, _ = events_until(
            client, after, lambda seen: any(isinstance(e, Resumed) for e in seen), 5
        )
    assert [type(e) for e in events if isinstance(e, Paused | Resumed)] == [Paused, Resumed]
    assert synced.rows_examined()["appointment"] > examined["appointment"]


def _confirmation(cloud: ReferenceCloud, key: str) -> object:
    row = cloud.mirror("appointment", agent_id=AGENT).get(key)
    return (row.data or {}).get("confirmation_id") if row is not None else None


def test_exception_actions_need_bookings(synced: World) -> None:
    with synced.client() as client:
        with pytest.raises(BookingsDisabled, match="bookings are not enabled") as listing:
            client.exceptions()
        assert "[writer]" in listing.value.fix
        with pytest.raises(BookingsDisabled, match="bookings are not enabled"):
            client.resolve_exception(1, Resolution("reject", by="desk"))


def test_logs_page_forward_from_a_cursor(synced: World) -> None:
    with synced.client() as client:
        page = client.logs(limit=5)
        assert len(page) == 5 and all(r.raw["ts"] for r in page)
        assert [r.cursor for r in page] == sorted(r.cursor for r in page) or page.cursor
        client.pause(by="x")
        client.resume(by="x")
        newer = client.logs(after=page.cursor, text="bridge ", limit=50)
        messages = [r.msg for r in newer]
        assert "bridge paused" in messages and "bridge resumed" in messages
        assert client.logs(after=newer.cursor, text="bridge paused").records == ()
        warnings = client.logs(level="WARNING", limit=1000)
        assert all(r.level in ("WARNING", "ERROR", "CRITICAL") for r in warnings)


def test_support_bundle_is_made_by_the_engine_in_its_data_folder(synced: World) -> None:
    with synced.client() as client:
        path = client.support_bundle()
    assert path.parent == synced.paths.data_dir / "support" and path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with zipfile.ZipFile(path) as bundle:
        names = set(bundle.namelist())
        manifest = bundle.read("manifest.json").decode()
    assert {
        "manifest.json", "versions.json", "odbc.json", "config.toml", "status.json",
        "doctor.json", "doctor.txt", "logs/bridge.jsonl",
    } <= names  # fmt: skip
    assert '"made_by": "engine"' in manifest


def test_component_changes_become_events(synced: World) -> None:
    """The cloud refuses the token: the watcher reports the cloud component failing."""
    with synced.client() as client:
        _, after = client.events(0)
        synced.cloud.set_token(AGENT, "another-token")
        try:
            with sqlite3.connect(synced.db) as pms:
                pms.execute("UPDATE appointment SET Confirmed = 8 WHERE AptNum = 42")

            def cloud_failed(seen: list[Event]) -> bool:
                return any(isinstance(e, ComponentChanged) and e.status == "fail" for e in seen)

            events, _ = events_until(client, after, cloud_failed, 60)
        finally:
            synced.cloud.set_token(AGENT, TOKEN)
    changed = [e for e in events if isinstance(e, ComponentChanged) and e.status == "fail"]
    assert changed[0].component in ("cloud", "inbox", "cloud-heartbeat")


# -- restarts, crashes, an engine that is not running ----------------------------------------


def test_pause_persists_across_a_crash_and_a_restart(tmp_path: Path, practice: BuildReport) -> None:
    with ReferenceCloud(tmp_path / "cloud" / "cloud.sqlite3", tokens={AGENT: TOKEN}) as cloud:
        world = make_world(tmp_path, practice, cloud)
        with pytest.raises(EngineNotRunning, match="not running") as never:
            world.client()
        assert "bridge run" in never.value.fix
        offline = world.cli("pause", "--by", "it")  # no engine: the flag goes to the state
        assert offline.returncode == 0 and "will start paused" in offline.stdout

        endpoint = endpoint_for(world.paths.data_dir)
        first = EngineProcess(world).start()
        with world.client() as client:
            snapshot = client.status()
            assert snapshot.paused and snapshot.paused_by == "it"
            assert first.stop() == 0  # a paused engine stops at once
            with pytest.raises((ControlConnectionLost, EngineNotRunning)):
                client.status()
        assert not Path(endpoint.address).exists() and not endpoint.key_file.exists()
        assert world.rows_examined() == {}, "an engine started paused never read the PMS"
        with pytest.raises(EngineNotRunning, match="no control key"):
            world.client()

        second = EngineProcess(world).start()
        second.stop(signal.SIGKILL)  # a crash: socket and key are left behind
        assert Path(endpoint.address).exists() and endpoint.key_file.exists()
        with pytest.raises(EngineNotRunning, match="nothing answers"):
            world.client()
        status = world.cli("status")
        assert "paused" in status.stdout and "read from the local state" in status.stdout

        third = EngineProcess(world).start()  # clears the crashed engine's socket
        try:
            with world.client() as client:
                assert client.status().paused
                time.sleep(2)
                assert world.rows_examined() == {}, "still paused after the crash"
                assert not client.resume().paused
                wait_for(lambda: bool(world.rows_examined()), 30, "reads after resume")
        finally:
            third.stop(signal.SIGKILL)
