"""The panel's "Sync one record" against a real engine on the demo practice.

The engine (``bridge run`` in a subprocess, :class:`gui.demo_world.DemoWorld`)
reads the sample practice through the SQLite3 ODBC driver and pushes to the
reference cloud; the widget talks to it only through the engine link.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from gui import tasks
from gui.demo_world import DemoWorld
from gui.engine_link import EngineLink
from gui.panel import PanelWindow
from sandbox.practice import BuildReport

WAIT_MS = 30_000
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, practice: BuildReport) -> Iterator[DemoWorld]:
    db = Path(practice.connection_string.split("Database=", 1)[1])
    with DemoWorld(tmp_path_factory.mktemp("record-sync"), practice_db=db) as demo:
        demo.start_engine()
        demo.wait_synced()
        yield demo
    tasks.shutdown()


@pytest.fixture
def panel(qtbot: QtBot, world: DemoWorld) -> Iterator[PanelWindow]:
    link = EngineLink(world.paths, refresh_seconds=1.0, wait_seconds=1.0, retry_seconds=0.3)
    link.start()
    window = PanelWindow(link, world.paths.log_dir, hide_on_close=False)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: link.connected and link.snapshot is not None, timeout=WAIT_MS)
    yield window
    link.stop()


def test_sync_one_record_pushes_an_unchanged_patient_and_says_so(
    qtbot: QtBot, panel: PanelWindow, world: DemoWorld
) -> None:
    row = panel.overview.record_sync
    qtbot.waitUntil(lambda: row.entity.count() >= 10, timeout=WAIT_MS)
    assert row.entity.currentText() == "patient"  # what the front desk asks for most
    with sqlite3.connect(world.db) as raw:
        patient = str(raw.execute("SELECT MIN(PatNum) FROM appointment").fetchone()[0])
    with world.admin() as admin:
        before = len(admin.change_log(entity="patient", key=patient))

        row.key.setText(patient)
        qtbot.mouseClick(row.button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: row.answer.text().startswith("Sent "), timeout=WAIT_MS)
        assert f"Sent patient {patient} to the cloud with" in row.answer.text()
        qtbot.waitUntil(
            lambda: len(admin.change_log(entity="patient", key=patient)) == before + 1,
            timeout=WAIT_MS,
        )

    row.key.setText("99999999")
    qtbot.mouseClick(row.button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "There is no patient 99999999" in row.answer.text(), timeout=WAIT_MS)


def test_a_record_number_that_is_not_a_number_is_refused_before_sending(
    qtbot: QtBot, panel: PanelWindow
) -> None:
    row = panel.overview.record_sync
    qtbot.waitUntil(lambda: row.entity.count() >= 1, timeout=WAIT_MS)
    row.key.setText("")
    qtbot.keyClicks(row.key, "abc")  # the validator refuses the letters
    assert row.key.text() == ""
    qtbot.mouseClick(row.button, Qt.MouseButton.LeftButton)
    assert row.answer.text() == "A record number is a whole number such as 1234."
