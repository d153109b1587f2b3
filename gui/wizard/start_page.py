"""Setup page 6: start syncing.

"Start the bridge" starts the engine (``bridge run``, its own process, which
outlives the wizard) and waits until it answers on the control channel with
a running status: from then on the panel shows it. If an engine already
answers, it is not started twice; the page says to restart it so that it
reads the new configuration. Finishing the wizard opens the panel.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from bridge.control.client import ControlClient
from bridge.control.errors import ControlError
from bridge.paths import BridgePaths
from bridge.status import StatusSnapshot
from gui.health_rules import Level
from gui.status_badge import StatusBadge
from gui.tasks import run_in_background
from gui.wizard.base import AnswersSource, SetupPage
from gui.wizard.setup import start_engine

START_TIMEOUT_SECONDS = 60.0

Starter = Callable[[Path], "subprocess.Popen[bytes]"]


class StartPage(SetupPage):
    def __init__(
        self,
        answers: AnswersSource,
        paths: BridgePaths,
        config_path: Path,
        *,
        starter: Starter = start_engine,
    ) -> None:
        super().__init__(answers)
        self.paths = paths
        self.config_path = config_path
        self.starter = starter
        self.setTitle("Start syncing")
        self.setSubTitle(
            "The bridge runs in the background, whether or not anyone is logged in. "
            "The first sync reads every record once; then only changes are sent."
        )
        intro = QLabel(
            "Press Start: the bridge connects to the PMS database and the cloud and begins "
            "its first sync. The panel then shows its progress."
        )
        intro.setWordWrap(True)
        self.start_button = QPushButton("Start the bridge")
        self.result = StatusBadge()
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(buttons)
        layout.addWidget(self.result)
        layout.addStretch(1)
        self.start_button.clicked.connect(self.start)
        self.running = False
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.start_button.setEnabled(False)
        self.result.set_status(Level.BUSY, "Starting the bridge...")
        paths, config = self.paths, self.config_path

        def done(outcome: tuple[Level, str, str, subprocess.Popen[bytes] | None]) -> None:
            level, text, detail, process = outcome
            self.process = process
            self.running = level in (Level.OK, Level.WARN)
            self.start_button.setEnabled(not self.running)
            self.result.set_status(level, text, detail)
            self.completeChanged.emit()

        def failed(error: BaseException) -> None:
            self.start_button.setEnabled(True)
            self.result.set_status(Level.FAIL, f"The bridge did not start: {error}")

        run_in_background(lambda: _start_and_wait(paths, config, self.starter), done, failed)

    def isComplete(self) -> bool:
        return True  # finishing without starting is allowed (IT may start the service later)


def _running(paths: BridgePaths) -> StatusSnapshot | None:
    try:
        with ControlClient.connect(paths, timeout=5.0) as client:
            snapshot = client.status()
    except ControlError:
        return None
    return snapshot if snapshot.engine == "running" else None


def _start_and_wait(
    paths: BridgePaths, config: Path, starter: Starter
) -> tuple[Level, str, str, subprocess.Popen[bytes] | None]:
    """Worker thread: start the engine unless one answers, then wait for it."""
    if _running(paths) is not None:
        return (
            Level.WARN,
            "A bridge engine is already running.",
            "Restart it (the Dental PMS Bridge service) so that it reads the new settings.",
            None,
        )
    process = starter(config)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            return (
                Level.FAIL,
                f"The bridge stopped at once (exit code {code}).",
                f"See the log in {paths.log_dir}, or run 'bridge doctor'.",
                process,
            )
        snapshot = _running(paths)
        if snapshot is not None:
            return (
                Level.OK,
                "The bridge is running and has begun its first sync.",
                f"Engine version {snapshot.version}, process {snapshot.pid}.",
                process,
            )
        time.sleep(0.5)
    return (
        Level.WARN,
        "The bridge started but does not answer yet.",
        f"It may still be starting; the panel will show it. Its log is in {paths.log_dir}.",
        process,
    )
