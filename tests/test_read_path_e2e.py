"""Read path end to end: a real SQLite practice over ODBC -> engine -> outbox ->
httpx -> the reference cloud over loopback; the cloud's mirror equals the PMS."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bridge.config import load_settings
from bridge.engine import Engine
from bridge.pms.profile import load_profile
from bridge.secrets import MemorySecretStore
from bridge.state import open_state
from bridge.status import read_status
from sandbox.cloud.server import ReferenceCloud
from sandbox.practice import BuildReport


def wait_for(predicate: Callable[[], bool], timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_practice_reaches_the_cloud_and_edits_follow_within_seconds(
    tmp_path: Path, practice: BuildReport
) -> None:
    db = tmp_path / "od.sqlite3"
    shutil.copy(practice.connection_string.split("Database=", 1)[1], db)
    with ReferenceCloud(tmp_path / "cloud.sqlite3", tokens={"agent-1": "tok-123456"}) as cloud:
        config = tmp_path / "bridge.toml"
        config.write_text(
            f"""
[practice]
name = "Test Dental"
timezone = "America/Los_Angeles"
[pms]
profile = "opendental"
connection_string = 'Driver={{SQLite3}};Database={db}'
[cloud]
url = "{cloud.url}"
agent_id = "agent-1"
""",
            encoding="utf-8",
        )
        store = open_state(tmp_path / "state.sqlite3")
        engine = Engine(
            load_settings(config),
            store,
            MemorySecretStore({"cloud-token": "tok-123456"}),
            load_profile("opendental"),
            realtime_seconds=0.2,
        )
        stop = threading.Event()
        runner = threading.Thread(target=engine.run, args=(stop,))
        runner.start()
        try:
            expected = practice.counts["appointment"]
            wait_for(lambda: len(cloud.mirror("appointment")) == expected, timeout=120)
            wait_for(lambda: len(cloud.mirror("patient")) == practice.counts["patient"], 60)

            def first_sync_done() -> bool:
                health = {c.component: c for c in read_status(store).components}
                return "sync" in health and health["sync"].message.startswith("watching")

            wait_for(first_sync_done, timeout=120)
            patient = next(iter(cloud.mirror("patient").values())).data
            assert patient is not None
            assert "id" in patient and not {"SSN", "Address", "address"} & set(patient)

            with sqlite3.connect(db) as raw:
                raw.execute("UPDATE appointment SET AptStatus = 5 WHERE AptNum = 42")

            def broken() -> bool:
                log = cloud.change_log(entity="appointment", key="42")
                return len(log) == 2

            latency = wait_for(broken, timeout=10)
            print(f"edit reached the cloud in {latency:.2f} s")
            assert latency < 5, f"edit took {latency:.1f} s to reach the cloud"
            stats = cloud.stats()
            assert stats is not None
        finally:
            stop.set()
            runner.join(30)
            store.close()
        assert not runner.is_alive()
        log = cloud.change_log(entity="appointment", key="42")
        assert len(log) == 2  # first sync + the edit: nothing applied twice
        row = cloud.mirror("appointment")["42"]
        assert row.data is not None and row.data["status"] == "broken"
