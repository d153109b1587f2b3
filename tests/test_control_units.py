"""The control channel's parts on their own: events, merged syncs, the pause
gate, the endpoint and key file, the log view, and the JSON forms that cross
the channel. (The channel against a real engine: test_control_engine.py.)"""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Listener
from pathlib import Path

import pytest

from bridge.bookings.exceptions import Resolution, ResolveOutcome
from bridge.control import endpoint as ep
from bridge.control import protocol
from bridge.control.client import ControlClient
from bridge.control.errors import ControlAuthError, ControlProtocolError, EngineNotRunning
from bridge.control.events import (
    ComponentChanged,
    Event,
    EventLog,
    EventsMissed,
    Paused,
    SyncFinished,
    SyncStarted,
)
from bridge.control.logview import BadCursor, read_page
from bridge.control.pause import PauseGate, read_pause, write_pause
from bridge.control.results import (
    LogPage,
    PauseState,
    SyncScheduled,
    VersionInfo,
    outcome_from_json,
    outcome_to_json,
    resolution_to_json,
)
from bridge.control.syncs import SyncCoalescer
from bridge.health import Health, record_health
from bridge.logs import setup_logging, shutdown_logging
from bridge.state import StateStore
from bridge.status import StatusSnapshot, read_status

# -- events -----------------------------------------------------------------------------


def test_events_have_increasing_seqs_per_run_and_round_trip_as_json() -> None:
    log = EventLog(run_id=7)
    first = log.emit(SyncStarted, entities=("patient",), keys=0)
    second = log.emit(ComponentChanged, component="pms", status="fail", previous="ok")
    assert (first.seq, second.seq) == (7_000_000_001, 7_000_000_002)
    events, next_after = log.since(0)
    assert events == [first, second] and next_after == second.seq
    wire = json.loads(json.dumps([e.to_json() for e in events]))
    assert [Event.from_json(e) for e in wire] == events
    assert Event.from_json({"type": "from.a.newer.engine", "seq": 1}) is None
    with pytest.raises(ValueError, match="no entities"):
        Event.from_json({"type": "sync.started", "seq": 1, "at": first.at.isoformat()})


def test_events_after_a_seq_and_nothing_new() -> None:
    log = EventLog(run_id=1)
    a = log.emit(Paused, by="desk")
    b = log.emit(SyncFinished, entities=("patient",))
    assert log.since(a.seq) == ([b], b.seq)
    assert log.since(b.seq) == ([], b.seq)
    empty = EventLog(run_id=3)
    assert empty.since(0) == ([], 3_000_000_000)


def test_a_client_behind_the_ring_buffer_is_told_it_missed_events() -> None:
    log = EventLog(run_id=1, capacity=3)
    emitted = [log.emit(Paused, by=str(i)) for i in range(6)]
    events, next_after = log.since(emitted[0].seq)
    assert isinstance(events[0], EventsMissed) and events[0].reason == "dropped"
    assert events[1:] == emitted[3:] and next_after == emitted[-1].seq


def test_a_seq_from_an_earlier_run_is_recognised_as_a_restart() -> None:
    old = EventLog(run_id=4)
    seen = old.emit(Paused, by="x").seq
    new = EventLog(run_id=5)
    fresh = new.emit(Paused, by="y")
    events, _ = new.since(seen)
    assert isinstance(events[0], EventsMissed) and events[0].reason == "restart"
    assert events[1:] == [fresh]
    # and a seq from a *later* run (state file replaced by an older one)
    events, _ = old.since(fresh.seq)
    assert isinstance(events[0], EventsMissed) and events[0].reason == "restart"


def test_events_long_poll_returns_when_an_event_arrives() -> None:
    log = EventLog(run_id=1)
    threading.Timer(0.2, lambda: log.emit(Paused, by="x")).start()
    started = time.monotonic()
    events, _ = log.since(log.last_seq, wait=5.0)
    took = time.monotonic() - started
    assert [e.type for e in events] == ["engine.paused"] and 0.1 < took < 2.0
    started = time.monotonic()
    assert log.since(log.last_seq, wait=0.3)[0] == []
    assert time.monotonic() - started >= 0.25


# -- merged syncs ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_five_presses_before_the_hand_over_are_one_sync() -> None:
    handed: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    log = EventLog()
    clock = Clock()
    syncs = SyncCoalescer(
        lambda e, k: handed.append((tuple(e), tuple(k))), log, merge_seconds=0.3, clock=clock
    )
    merged = [syncs.request(["patient"]) for _ in range(5)]
    assert merged == [False, True, True, True, True]
    assert syncs.flush() == pytest.approx(0.3) and handed == []
    clock.now += 0.3
    assert syncs.flush() is None
    assert handed == [(("patient",), ())]
    started = [e for e in log.since(0)[0] if isinstance(e, SyncStarted)]
    assert len(started) == 1 and started[0].entities == ("patient",)


def test_keys_merge_and_a_press_during_a_sync_waits_for_it_to_finish() -> None:
    handed: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    log = EventLog()
    clock = Clock()
    syncs = SyncCoalescer(
        lambda e, k: handed.append((tuple(e), tuple(k))),
        log,
        merge_seconds=0.3,
        max_hold_seconds=30.0,
        clock=clock,
    )
    syncs.request(["appointment"], ["7"])
    syncs.request(["appointment"], ["8", "7"])
    clock.now += 1
    syncs.flush()
    assert handed == [(("appointment",), ("7", "8"))]
    handed_at = datetime.now(UTC)
    syncs.request(["appointment"])  # pressed again while the first is in flight
    clock.now += 1
    syncs.flush()
    assert len(handed) == 1, "held behind the sync in flight"
    assert syncs.observe({"appointment": handed_at - timedelta(seconds=1)}) == []
    assert syncs.observe({"appointment": datetime.now(UTC)}) == ["appointment"]
    syncs.flush()
    assert handed[1] == (("appointment",), ())
    finished = [e for e in log.since(0)[0] if isinstance(e, SyncFinished)]
    assert [f.entities for f in finished] == [("appointment",)]


def test_a_sync_in_flight_too_long_no_longer_holds_the_next() -> None:
    handed: list[tuple[str, ...]] = []
    clock = Clock()
    syncs = SyncCoalescer(
        lambda e, k: handed.append(tuple(e)),
        EventLog(),
        merge_seconds=0.1,
        max_hold_seconds=5.0,
        clock=clock,
    )
    syncs.request(["patient"])
    clock.now += 1
    syncs.flush()
    syncs.request(["patient"])
    clock.now += 1
    syncs.flush()
    assert handed == [("patient",)]
    clock.now += 5
    syncs.flush()
    assert handed == [("patient",), ("patient",)]


def test_nothing_is_handed_over_while_paused() -> None:
    handed: list[tuple[str, ...]] = []
    paused = True
    clock = Clock()
    syncs = SyncCoalescer(
        lambda e, k: handed.append(tuple(e)),
        EventLog(),
        held=lambda: paused,
        merge_seconds=0.1,
        clock=clock,
    )
    syncs.request([])  # nothing named: nothing merged, nothing pending
    syncs.request(["patient", "appointment"])
    clock.now += 10
    assert syncs.flush() is None and handed == []
    paused = False
    syncs.flush()
    assert handed == [("patient", "appointment")]


# -- pause -----------------------------------------------------------------------------


def test_the_pause_flag_persists_in_the_state_store(store: StateStore) -> None:
    assert read_pause(store) == PauseState(False)
    state = write_pause(store, True, "front desk")
    assert read_pause(store) == state and state.paused and state.by == "front desk"
    snapshot = read_status(store)
    assert snapshot.paused and snapshot.paused_by == "front desk"
    assert snapshot.paused_since == state.since
    write_pause(store, False)
    assert read_pause(store) == PauseState(False) and not read_status(store).paused


def test_a_paused_loop_ends_and_starts_again_on_resume() -> None:
    gate = PauseGate(PauseState(False))
    stop = threading.Event()
    runs: list[str] = []
    running = threading.Event()

    def target(run: threading.Event) -> None:
        runs.append("start")
        running.set()
        run.wait()
        running.clear()
        runs.append("end")

    gate.close_when(stop)
    thread = threading.Thread(target=gate.pausable("pms-sync", target), args=(stop,))
    thread.start()
    try:
        assert running.wait(5)
        assert gate.active_loops() == ["pms-sync"]
        gate.set(PauseState(True, datetime.now(UTC), "x"))
        assert gate.wait_settled(5) and gate.active_loops() == []
        time.sleep(0.2)
        assert runs == ["start", "end"], "stays parked while paused"
        gate.set(PauseState(False))
        assert running.wait(5) and runs == ["start", "end", "start"]
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive() and runs[-1] == "end"


def test_stop_releases_a_loop_parked_by_a_pause() -> None:
    gate = PauseGate(PauseState(True, datetime.now(UTC), ""))
    stop = threading.Event()
    called: list[threading.Event] = []
    gate.close_when(stop)
    thread = threading.Thread(target=gate.pausable("inbox", called.append), args=(stop,))
    thread.start()
    time.sleep(0.2)
    stop.set()
    thread.join(5)
    assert not thread.is_alive() and called == []


# -- endpoint and key --------------------------------------------------------------------


def test_key_file_is_written_atomically_owner_only_and_read_back(tmp_path: Path) -> None:
    endpoint = ep.endpoint_for(tmp_path / "data")
    with pytest.raises(EngineNotRunning, match="no control key"):
        ep.read_key(endpoint)
    mode = ep.prepare(endpoint)
    assert mode == 0o600
    assert stat.S_IMODE(endpoint.folder.stat().st_mode) == 0o700
    key = ep.write_key(endpoint, ep.key_mode(mode))
    assert stat.S_IMODE(endpoint.key_file.stat().st_mode) == 0o600
    assert ep.read_key(endpoint) == key and len(key) == 64
    assert [p.name for p in endpoint.folder.iterdir()] == ["engine.key"], "no temporary left"
    second = ep.write_key(endpoint)
    assert second != key
    ep.remove_key(endpoint, key)  # an older engine's key: the newer one stays
    assert ep.read_key(endpoint) == second
    endpoint.key_file.write_text("short")
    with pytest.raises(ControlAuthError, match="damaged"):
        ep.read_key(endpoint)


def test_a_group_given_control_folder_keeps_group_access_never_others(tmp_path: Path) -> None:
    endpoint = ep.endpoint_for(tmp_path / "data")
    endpoint.folder.mkdir(parents=True)
    os.chmod(endpoint.folder, 0o757)
    mode = ep.prepare(endpoint)
    assert mode == 0o660 and ep.key_mode(mode) == 0o640
    assert stat.S_IMODE(endpoint.folder.stat().st_mode) == 0o750


def test_a_socket_path_too_long_for_unix_sockets_moves_to_a_private_tmp_folder(
    tmp_path: Path,
) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60) / "data"
    endpoint = ep.endpoint_for(deep)
    assert endpoint.folder == deep / "control"
    assert len(endpoint.address) < 100 and endpoint.address.startswith("/tmp/dental-pms-bridge-")
    assert endpoint == ep.endpoint_for(deep), "engine and clients agree"
    assert ep.endpoint_for(tmp_path / "other").address != endpoint.address
    ep.prepare(endpoint)
    socket_dir = Path(endpoint.address).parent
    assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700


# -- log view --------------------------------------------------------------------------


def test_log_pages_follow_new_records_across_a_rotation(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    setup_logging(folder, level="DEBUG", max_bytes=4096, backup_count=5)
    logger = logging.getLogger("bridge.test.logview")
    try:
        logger.info("first", extra={"n": 1})
        logger.warning("second", extra={"n": 2})
        page = read_page(folder, limit=10)
        assert [r.msg for r in page] == ["first", "second"]
        assert read_page(folder, after=page.cursor).records == ()
        only_warnings = read_page(folder, limit=1, level="WARNING")
        assert [r.msg for r in only_warnings] == ["second"]
        for n in range(60):  # about 8 KiB: rotates at least once
            logger.info("filler %d", n, extra={"pad": "x" * 100})
        logger.error("after rotation")
        assert (folder / "bridge.jsonl.1").exists()
        seen: list[str] = []
        cursor = page.cursor
        for _ in range(20):
            more = read_page(folder, after=cursor, limit=7)
            seen += [r.msg for r in more]
            if not more.records:
                break
            cursor = more.cursor
        assert seen == [f"filler {n}" for n in range(60)] + ["after rotation"]
        texts = read_page(folder, after=page.cursor, text="ROTATION")
        assert [r.msg for r in texts] == ["after rotation"]
        assert "after rotation" in texts.records[0].human()
    finally:
        shutdown_logging()
    with pytest.raises(BadCursor):
        read_page(folder, after="not-a-cursor")
    with pytest.raises(ValueError, match="level"):
        read_page(folder, level="LOUD")
    assert read_page(tmp_path / "no-logs") == LogPage((), "")


# -- JSON forms ---------------------------------------------------------------------------


def test_status_snapshot_round_trips_through_json(store: StateStore) -> None:
    record_health(store, Health("pms", "fail", "login failed", "store the password", "login"))
    write_pause(store, True, "desk")
    snapshot = read_status(store)
    assert StatusSnapshot.from_json(snapshot.to_json()) == snapshot
    assert StatusSnapshot.from_json(json.loads(snapshot.to_json())) == snapshot
    with pytest.raises(KeyError):
        StatusSnapshot.from_json("{}")


def test_results_round_trip_through_json() -> None:
    now = datetime.now(UTC)
    for value in (
        SyncScheduled(("patient",), 2, True, False),
        PauseState(True, now, "desk", False),
        PauseState(False),
        VersionInfo("0.1.0", "3.11.7", "Linux", "bridge-control/1", 42),
    ):
        assert type(value).from_json(json.loads(json.dumps(value.to_json()))) == value
    outcome = ResolveOutcome(3, "confirmed", "", "booked", {"appointment": "12"})
    assert outcome_from_json(json.loads(json.dumps(outcome_to_json(outcome)))) == outcome
    assert resolution_to_json(3, Resolution("choose_patient", "17", "", "desk")) == {
        "id": 3, "action": "choose_patient", "choice": "17", "message": "", "by": "desk",
    }  # fmt: skip


# -- the client against an impostor --------------------------------------------------------


def _impostor(tmp_path: Path, hello: dict[str, object]) -> tuple[ep.Endpoint, threading.Thread]:
    """A listener at an endpoint that answers the handshake without the key."""
    endpoint = ep.Endpoint(str(tmp_path / "s.sock"), "AF_UNIX", tmp_path / "control")
    ep.prepare(endpoint)
    ep.write_key(endpoint)
    listener = Listener(endpoint.address, family="AF_UNIX")

    def serve() -> None:
        with listener, listener.accept() as conn:
            conn.send_bytes(protocol.encode(hello))
            try:
                conn.recv_bytes()
                conn.send_bytes(protocol.encode({"ok": True, "proof": "0" * 64}))
                conn.poll(5)
            except EOFError:  # the client hung up first
                pass

    thread = threading.Thread(target=serve)
    thread.start()
    return endpoint, thread


def test_the_client_does_not_believe_a_process_without_the_key(tmp_path: Path) -> None:
    hello = {"protocol": protocol.PROTOCOL, "nonce": protocol.new_nonce()}
    endpoint, thread = _impostor(tmp_path, hello)
    with pytest.raises(ControlAuthError, match="does not hold the engine's key"):
        ControlClient.connect(endpoint)
    thread.join(10)


def test_the_client_names_a_protocol_it_does_not_speak(tmp_path: Path) -> None:
    endpoint, thread = _impostor(tmp_path, {"protocol": "bridge-control/9", "nonce": "x"})
    with pytest.raises(ControlProtocolError, match="bridge-control/9"):
        ControlClient.connect(endpoint)
    thread.join(10)
