"""The panel application: tray icon, panel window, setup wizard.

``bridge-panel`` (or ``python -m gui``) starts it. With no configuration
file yet (or ``--setup``) the setup wizard opens first; otherwise the tray
icon appears and the panel opens (``--hidden`` starts in the tray only, for
the logon autostart). Where the desktop has no system tray the panel window
is the application: closing it quits. Quitting never stops the engine.

Folders come from :func:`bridge.paths.default_paths` (``BRIDGE_HOME``
honoured), the same as the engine's and the CLI's.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from bridge import __version__
from bridge.paths import BridgePaths, default_paths
from bridge.secrets import KeyringSecretStore
from gui import tasks
from gui.engine_link import EngineLink
from gui.panel import OVERVIEW, PanelWindow
from gui.tray import BridgeTray
from gui.tray_state import APP_TITLE
from gui.wizard.wizard import SetupWizard


class PanelApp:
    """The running panel: one link, one window, one tray icon (if there is a tray)."""

    def __init__(self, app: QApplication, paths: BridgePaths, *, use_tray: bool) -> None:
        self.app = app
        self.paths = paths
        self.link = EngineLink(paths)
        self.window = PanelWindow(self.link, paths.log_dir, hide_on_close=use_tray)
        self.tray: BridgeTray | None = None
        if use_tray:
            self.tray = BridgeTray(self.link, self.open_panel, self.quit)
            self.tray.show()
        self.wizard: SetupWizard | None = None

    def open_panel(self, page: int = OVERVIEW) -> None:
        self.window.show_page(page)

    def open_setup(self) -> None:
        self.wizard = SetupWizard(self.paths, KeyringSecretStore())
        self.wizard.finished.connect(lambda _: self.open_panel())
        self.wizard.show()

    def start(self, *, setup: bool, hidden: bool) -> None:
        self.link.start()
        if setup:
            self.open_setup()
        elif not hidden or self.tray is None:
            self.open_panel()

    def quit(self) -> None:
        self.link.stop()
        if self.tray is not None:
            self.tray.hide()
        self.app.quit()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bridge-panel", description=f"{APP_TITLE} panel")
    parser.add_argument("--setup", action="store_true", help="open the setup wizard")
    parser.add_argument("--hidden", action="store_true", help="start in the tray only")
    parser.add_argument("--version", action="version", version=f"bridge-panel {__version__}")
    args = parser.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.WARNING)
    app = QApplication(sys.argv[:1])
    app.setApplicationName(APP_TITLE)
    app.setApplicationVersion(__version__)
    use_tray = QSystemTrayIcon.isSystemTrayAvailable()
    app.setQuitOnLastWindowClosed(not use_tray)
    paths = default_paths()
    panel = PanelApp(app, paths, use_tray=use_tray)
    panel.start(setup=args.setup or not paths.config_file.exists(), hidden=args.hidden)
    try:
        return app.exec()
    finally:
        panel.link.stop()
        tasks.shutdown()
