"""The panel, tray and log view against a real engine on the demo practice.

The engine (:class:`bridge.engine.Engine` in a thread, with its control
channel) reads the sample Open Dental practice through the SQLite3 ODBC
driver and pushes to the reference cloud on loopback (:mod:`gui.demo_world`);
the widgets talk to it only through the engine link, as the panel does in
production. Qt runs offscreen.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from bridge.control.client import ControlClient
from bridge.control.events import SyncStarted
from gui import tasks
from gui.demo_world import DemoWorld
from gui.engine_link import EngineLink
from gui.health_rules import Level
from gui.log_page import LogPageWidget
from gui.panel import PanelWindow
from gui.tray import BridgeTray
from gui.tray_state import TrayState
from sandbox.practice import BuildReport

WAIT_MS = 30_000
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, practice: BuildReport) -> Iterator[DemoWorld]:
    """One running engine for the module (tests leave it running and unpaused)."""
    db = Path(practice.connection_string.split("Database=", 1)[1])
    with DemoWorld(tmp_path_factory.mktemp("world"), practice_db=db) as demo:
        demo.start_engine()
        demo.wait_synced()
        yield demo
    tasks.shutdown()


@pytest.fixture
def link(world: DemoWorld) -> Iterator[EngineLink]:
    engine_link = EngineLink(world.paths, refresh_seconds=1.0, wait_seconds=1.0, retry_seconds=0.3)
    engine_link.start()
    yield engine_link
    engine_link.stop()


@pytest.fixture
def panel(qtbot: QtBot, link: EngineLink, world: DemoWorld) -> PanelWindow:
    window = PanelWindow(link, world.paths.log_dir, hide_on_close=False)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: link.connected and link.snapshot is not None, timeout=WAIT_MS)
    return window


def test_overview_shows_a_healthy_bridge_at_a_glance(
    qtbot: QtBot, panel: PanelWindow, link: EngineLink
) -> None:
    qtbot.waitUntil(lambda: panel.header.headline.text() == "In sync", timeout=WAIT_MS)
    overview = panel.overview
    assert "Practice database: connected to the Open Dental database" in overview.pms.text.text()
    assert overview.cloud.level is Level.OK and overview.cloud.text.text().startswith("Cloud: ")
    assert not overview.first_sync.isVisible()  # the first sync has finished
    snapshot = link.snapshot
    assert snapshot is not None
    table = overview.table
    shown = {
        table.item(row, 0).data(Qt.ItemDataRole.UserRole): table.item(row, 1).text()
        for row in range(table.rowCount())
    }
    assert set(shown) == {e.entity for e in snapshot.entities}
    assert len(shown) >= 10
    assert all(text.endswith("ago") or text == "just now" for text in shown.values()), shown
    assert table.item(0, 0).text() == "Appointments"  # what the front desk cares about first
    assert "To the cloud: 0 changes waiting" in overview.queues.text()
    assert overview.problem_badges[0].text.text() == "No problems."
    assert panel.header.sync_button.isEnabled()
    assert panel.header.pause_button.text() == "Pause"


def test_sync_patients_pressed_five_times_is_one_sync_with_feedback(
    qtbot: QtBot, panel: PanelWindow, link: EngineLink, world: DemoWorld
) -> None:
    overview = panel.overview
    with ControlClient.connect(world.paths) as watcher:
        _, after = watcher.events(0)
        for _ in range(5):
            qtbot.mouseClick(overview.sync_patients, Qt.MouseButton.LeftButton)
        assert overview.sync_patients.text() == "Syncing patients..."
        assert not overview.sync_patients.isEnabled()
        assert overview.sync_buttons["patient"].text() == "Syncing..."
        assert link.sync_now(("patient",)) is False  # pending: not sent again
        qtbot.waitUntil(overview.sync_patients.isEnabled, timeout=WAIT_MS)
        assert overview.sync_patients.text() == "Sync patients"
        events, _ = watcher.events(after)
    started = [e for e in events if isinstance(e, SyncStarted)]
    assert [e.entities for e in started] == [("patient",)]


def test_sync_now_for_everything_from_the_header(
    qtbot: QtBot, panel: PanelWindow, link: EngineLink
) -> None:
    qtbot.mouseClick(panel.header.sync_button, Qt.MouseButton.LeftButton)
    assert panel.header.sync_button.text() == "Syncing..."
    assert all(b.text() == "Syncing..." for b in panel.overview.sync_buttons.values())
    qtbot.waitUntil(lambda: panel.header.sync_button.text() == "Sync now", timeout=60_000)
    assert not link.syncing


def test_pause_and_resume_show_in_header_and_tray(
    qtbot: QtBot, panel: PanelWindow, link: EngineLink
) -> None:
    tray = BridgeTray(link, lambda page: None, lambda: None)
    try:
        qtbot.mouseClick(panel.header.pause_button, Qt.MouseButton.LeftButton)
        assert panel.header.pause_button.text() == "Pausing..."
        qtbot.waitUntil(lambda: bool(link.snapshot and link.snapshot.paused), timeout=WAIT_MS)
        qtbot.waitUntil(lambda: panel.header.pause_button.text() == "Resume", timeout=WAIT_MS)
        assert panel.header.headline.text() == "Paused"
        assert tray.verdict.state is TrayState.OFFLINE
        assert tray.pause_action.text() == "Resume"
        assert "until you press Resume" in tray.toolTip()

        tray.pause_action.trigger()  # resume from the tray menu
        qtbot.waitUntil(lambda: not (link.snapshot and link.snapshot.paused), timeout=WAIT_MS)
        qtbot.waitUntil(lambda: panel.header.pause_button.text() == "Pause", timeout=WAIT_MS)
        assert tray.verdict.state is not TrayState.OFFLINE
        assert tray.pause_action.text() == "Pause"
    finally:
        tray.hide()


def test_log_view_is_live_and_filters(qtbot: QtBot, panel: PanelWindow, link: EngineLink) -> None:
    logs = panel.logs
    panel.tabs.setCurrentWidget(logs)
    qtbot.waitUntil(lambda: logs.table.rowCount() > 0, timeout=WAIT_MS)
    assert logs.source.text() == "Live from the running engine."
    assert any(m.startswith("engine started") for m in _messages(logs))

    # The engine logs a pause and a resume: both appear while the view is open.
    paused_before = _messages(logs).count("bridge paused")
    resumed_before = _messages(logs).count("bridge resumed")
    link.pause()
    qtbot.waitUntil(lambda: _messages(logs).count("bridge paused") > paused_before, timeout=WAIT_MS)
    link.resume()
    qtbot.waitUntil(
        lambda: _messages(logs).count("bridge resumed") > resumed_before, timeout=WAIT_MS
    )
    shown = _messages(logs)
    last_pause = len(shown) - 1 - shown[::-1].index("bridge paused")
    assert "bridge resumed" in shown[last_pause:]  # appended in order, live
    assert logs.table.item(0, 2).text()  # where it comes from, without "bridge."

    logs.level.setCurrentIndex(2)  # warnings and errors
    qtbot.waitUntil(lambda: "bridge paused" not in _messages(logs), timeout=WAIT_MS)
    assert all(
        logs.table.item(r, 1).text() in ("WARNING", "ERROR", "CRITICAL")
        for r in range(logs.table.rowCount())
    )
    logs.level.setCurrentIndex(0)
    logs.text.setText("bridge paused")
    qtbot.waitUntil(
        lambda: bool(_messages(logs)) and all("bridge paused" in m for m in _messages(logs)),
        timeout=WAIT_MS,
    )


def test_support_bundle_and_folders(qtbot: QtBot, link: EngineLink, world: DemoWorld) -> None:
    opened: list[Path] = []
    logs = LogPageWidget(link, world.paths.log_dir, open_folder=opened.append)
    qtbot.addWidget(logs)
    logs.show()
    qtbot.waitUntil(lambda: link.connected, timeout=WAIT_MS)
    qtbot.mouseClick(logs.open_logs, Qt.MouseButton.LeftButton)
    assert opened == [world.paths.log_dir]
    qtbot.mouseClick(logs.bundle_button, Qt.MouseButton.LeftButton)
    assert not logs.bundle_button.isEnabled()
    qtbot.waitUntil(lambda: logs.bundle_path is not None, timeout=120_000)
    assert logs.bundle_path is not None and logs.bundle_path.exists()
    assert logs.bundle.text.text().startswith("Support bundle created:")
    with zipfile.ZipFile(logs.bundle_path) as bundle:
        assert bundle.namelist()
    qtbot.mouseClick(logs.open_bundle, Qt.MouseButton.LeftButton)
    assert opened[-1] == logs.bundle_path.parent


def test_engine_stopping_and_coming_back(
    qtbot: QtBot, panel: PanelWindow, link: EngineLink, world: DemoWorld
) -> None:
    """Run last in this module: it stops the shared engine and starts it again."""
    tray = BridgeTray(link, lambda page: None, lambda: None)
    panel.tabs.setCurrentWidget(panel.logs)
    try:
        qtbot.waitUntil(lambda: tray.verdict.state is TrayState.IN_SYNC, timeout=WAIT_MS)
        world.stop_engine()
        qtbot.waitUntil(lambda: not link.connected, timeout=WAIT_MS)
        assert tray.verdict.state is TrayState.ERROR
        assert "not connected to the bridge engine" in tray.toolTip()
        assert "The engine is not running" in tray.toolTip()
        assert "What to do: Start it with 'bridge run'" in tray.toolTip()
        assert panel.header.headline.text() == "Not connected to the bridge engine"
        assert not panel.header.sync_button.isEnabled()
        assert not tray.sync_action.isEnabled()
        assert panel.overview.pms.level is not None and panel.overview.pms.level.word == "paused"
        qtbot.waitUntil(
            lambda: panel.logs.source.text().startswith("The engine is not running"),
            timeout=WAIT_MS,
        )
        qtbot.waitUntil(lambda: "engine stopped" in _messages(panel.logs), timeout=WAIT_MS)

        world.start_engine()
        qtbot.waitUntil(lambda: link.connected, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: tray.verdict.state is TrayState.IN_SYNC, timeout=WAIT_MS)
        assert panel.header.sync_button.isEnabled()
    finally:
        tray.hide()


def _messages(logs: LogPageWidget) -> list[str]:
    return [logs.table.item(r, 3).text() for r in range(logs.table.rowCount())]
