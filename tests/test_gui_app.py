"""The panel application's wiring, with no engine running (the first thing IT sees).

No engine answers at the data folder, so the panel must say so in words
and in the tray, keep retrying, and open the setup wizard when there is no
configuration yet. Qt runs offscreen.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from bridge.paths import BridgePaths
from gui import tasks
from gui.app import PanelApp
from gui.panel import EXCEPTIONS
from gui.tray_state import TrayState


@pytest.fixture
def paths(tmp_path: Path) -> Iterator[BridgePaths]:
    yield BridgePaths(tmp_path / "config", tmp_path / "data", tmp_path / "logs").ensure()
    tasks.shutdown()


def test_panel_without_an_engine_says_so_and_how_to_start_it(
    qtbot: QtBot, qapp: QApplication, paths: BridgePaths
) -> None:
    panel = PanelApp(qapp, paths, use_tray=True)
    qtbot.addWidget(panel.window)
    panel.window.hide_on_close = False
    try:
        panel.start(setup=False, hidden=False)
        assert panel.window.isVisible()
        assert panel.wizard is None
        assert panel.tray is not None
        qtbot.waitUntil(lambda: "no control key" in panel.link.unreachable, timeout=20_000)
        assert not panel.link.connected
        assert panel.tray.verdict.state is TrayState.ERROR
        assert "not connected to the bridge engine" in panel.tray.toolTip()
        assert "Start it with 'bridge run'" in panel.tray.toolTip()
        assert panel.window.header.headline.text() == "Not connected to the bridge engine"
        assert not panel.window.header.sync_button.isEnabled()
        assert not panel.tray.sync_action.isEnabled()
        assert panel.window.exceptions.empty.text.text().startswith("Not connected to the bridge")
        panel.tray.messageClicked.emit()  # a notification's click opens the exceptions page
        assert panel.window.tabs.currentIndex() == EXCEPTIONS
    finally:
        panel.link.stop()
        if panel.tray is not None:
            panel.tray.hide()


def test_setup_opens_the_wizard_on_the_bridges_folders(
    qtbot: QtBot, qapp: QApplication, paths: BridgePaths
) -> None:
    panel = PanelApp(qapp, paths, use_tray=False)
    qtbot.addWidget(panel.window)
    try:
        panel.start(setup=True, hidden=False)
        assert panel.wizard is not None
        qtbot.addWidget(panel.wizard)
        assert panel.wizard.isVisible()
        assert panel.wizard.config_path == paths.config_file
        assert not panel.window.isVisible()  # the panel opens when the wizard finishes
        panel.wizard.reject()
        qtbot.waitUntil(panel.window.isVisible, timeout=5_000)
    finally:
        panel.link.stop()


def test_module_entry_point_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gui", "--version"],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, QT_QPA_PLATFORM="offscreen"),
    )
    assert done.stdout.startswith("bridge-panel ")
