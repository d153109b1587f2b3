"""The tray icon: the bridge's state at a glance, a short menu, and notifications.

The icon and tooltip come from :func:`gui.tray_state.tray_verdict` on the
link's latest values (one of five states, each with its own shape; see
:mod:`gui.icons`). The menu: Open panel, Sync now, Pause/Resume, Quit. Quit
ends the panel only: the engine runs as a service and keeps syncing.

When a new exception appears (found by the link comparing ids, so a missed
event cannot hide one), a desktop notification says that a booking needs the
front desk, and why, but never who: the screen at a front desk can be seen
by patients. Clicking it opens the Exceptions page.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from bridge.bookings.exceptions import ExceptionView
from gui import wording
from gui.engine_link import EngineLink
from gui.icons import level_icon
from gui.panel import EXCEPTIONS, OVERVIEW, current_verdict
from gui.tray_state import APP_TITLE, TrayVerdict


class BridgeTray(QSystemTrayIcon):
    def __init__(
        self,
        link: EngineLink,
        open_panel: Callable[[int], None],
        quit_panel: Callable[[], None],
    ) -> None:
        super().__init__()
        self.link = link
        self.open_panel = open_panel
        self.verdict: TrayVerdict = current_verdict(link)
        self.last_notification: tuple[str, str] | None = None
        menu = QMenu()
        self.open_action = QAction("Open panel", menu)
        self.sync_action = QAction("Sync now", menu)
        self.pause_action = QAction("Pause", menu)
        self.quit_action = QAction("Quit (the bridge keeps running)", menu)
        for action in (self.open_action, self.sync_action, self.pause_action):
            menu.addAction(action)
        menu.addSeparator()
        menu.addAction(self.quit_action)
        self.menu = menu
        self.setContextMenu(menu)

        self.open_action.triggered.connect(lambda: open_panel(OVERVIEW))
        self.sync_action.triggered.connect(lambda: link.sync_now(()))
        self.pause_action.triggered.connect(self.toggle_pause)
        self.quit_action.triggered.connect(quit_panel)
        self.activated.connect(self._activated)
        self.messageClicked.connect(lambda: open_panel(EXCEPTIONS))
        for signal in (link.status_changed, link.exceptions_changed, link.syncing_changed):
            signal.connect(lambda _: self.refresh())
        link.connection_changed.connect(lambda *_: self.refresh())
        link.new_exceptions.connect(self.notify_new)
        self.refresh()

    def refresh(self) -> None:
        self.verdict = current_verdict(self.link)
        self.setIcon(level_icon(self.verdict.state.level))
        self.setToolTip(self.verdict.tooltip)
        connected = self.link.connected
        paused = bool(self.link.snapshot and self.link.snapshot.paused)
        self.sync_action.setEnabled(connected and not self.link.sync_pending(()))
        self.pause_action.setEnabled(connected)
        self.pause_action.setText("Resume" if paused else "Pause")

    def toggle_pause(self) -> None:
        if self.link.snapshot is not None and self.link.snapshot.paused:
            self.link.resume()
        else:
            self.link.pause()

    def notify_new(self, views: tuple[ExceptionView, ...]) -> None:
        if len(views) == 1:
            title = "A booking needs the front desk"
            body = wording.reason_title(views[0].reason_code) + ". Open the panel to decide."
        else:
            title = f"{len(views)} bookings need the front desk"
            body = "Open the panel's Exceptions page to decide."
        self.last_notification = (title, body)
        self.showMessage(title, body, level_icon(self.verdict.state.level), 15_000)

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (
            QSystemTrayIcon.ActivationReason.Trigger,
            QSystemTrayIcon.ActivationReason.DoubleClick,
        ):
            self.open_panel(EXCEPTIONS if self.link.exceptions else OVERVIEW)


__all__ = ["APP_TITLE", "BridgeTray"]
