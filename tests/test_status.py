"""Status is rebuilt from local state: running, stopped, crashed, health."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bridge.errors import LoginFailedError
from bridge.health import Health, record_health
from bridge.state import open_state
from bridge.state.models import EngineRun
from bridge.status import read_status


def test_status_reflects_runs_and_component_health(tmp_path: Path) -> None:
    store = open_state(tmp_path / "state.sqlite3")
    try:
        now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
        assert read_status(store, now).engine == "never-started"

        with store.write() as s:
            s.add(
                EngineRun(pid=7, version="0.1.0", started_at=now, heartbeat_at=now, state="running")
            )
        assert read_status(store, now + timedelta(seconds=10)).engine == "running"
        assert read_status(store, now + timedelta(minutes=5)).engine == "crashed"

        record_health(
            store, Health.from_error("pms", LoginFailedError("login failed for user")), now
        )
        snap = read_status(store, now + timedelta(seconds=1))
        (pms,) = snap.components
        assert (pms.status, pms.error_kind, pms.last_ok_at) == ("fail", "login_failed", None)
        assert "bridge secret set" in pms.fix
        assert not snap.healthy

        later = now + timedelta(seconds=2)
        record_health(store, Health("pms", "ok", "connected", details={"latency_ms": 3}), later)
        snap = read_status(store, later)
        (pms,) = snap.components
        assert (pms.status, pms.last_ok_at, pms.details) == ("ok", later, {"latency_ms": 3})
        assert snap.healthy
        assert '"engine": "running"' in snap.to_json()
    finally:
        store.close()
