"""The panel window: a status header over four pages (Overview, Exceptions, Bookings, Logs).

The header says the same as the tray icon (:func:`gui.tray_state.tray_verdict`
on the link's latest values): the state's icon, a headline and what to do,
with "Sync now" (everything) and "Pause"/"Resume". Closing the window only
hides it; the tray's "Quit" ends the panel, never the engine.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from bridge.control.results import PauseState
from gui.bookings_page import BookingsPage
from gui.engine_link import EngineLink
from gui.exceptions_page import ExceptionsPage
from gui.icons import level_icon, level_pixmap
from gui.log_page import LogPageWidget
from gui.overview import OverviewPage
from gui.tray_state import APP_TITLE, TrayVerdict, tray_verdict

OVERVIEW, EXCEPTIONS, BOOKINGS, LOGS = range(4)


def current_verdict(link: EngineLink) -> TrayVerdict:
    """The tray/header verdict from the link's latest values."""
    snapshot = link.snapshot if link.connected else None
    return tray_verdict(
        snapshot,
        len(link.exceptions),
        unreachable=link.unreachable,
        unreachable_fix=link.unreachable_fix,
        sync_running=bool(link.syncing),
    )


class StatusHeader(QWidget):
    def __init__(self, link: EngineLink, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.link = link
        self.icon = QLabel()
        self.icon.setFixedSize(48, 48)
        self.headline = QLabel()
        font = self.headline.font()
        font.setPointSizeF(font.pointSizeF() * 1.35)
        font.setBold(True)
        self.headline.setFont(font)
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.sync_button = QPushButton("Sync now")
        self.sync_button.setToolTip("Read everything from the PMS again and send what changed")
        self.pause_button = QPushButton("Pause")
        self.note = QLabel()
        self.note.setWordWrap(True)
        words = QVBoxLayout()
        words.addWidget(self.headline)
        words.addWidget(self.details)
        words.addWidget(self.note)
        buttons = QVBoxLayout()
        buttons.addWidget(self.sync_button)
        buttons.addWidget(self.pause_button)
        buttons.addStretch(1)
        layout = QHBoxLayout(self)
        layout.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(words, 1)
        layout.addLayout(buttons)
        self._pausing = False

        self.sync_button.clicked.connect(self.sync_everything)
        self.pause_button.clicked.connect(self.toggle_pause)
        for signal in (link.status_changed, link.exceptions_changed, link.syncing_changed):
            signal.connect(lambda _: self.refresh())
        link.connection_changed.connect(lambda *_: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        verdict = current_verdict(self.link)
        self.icon.setPixmap(level_pixmap(verdict.state.level, 48))
        self.icon.setToolTip(verdict.state.value)
        headline = verdict.headline
        self.headline.setText(headline[:1].upper() + headline[1:])
        self.details.setText("\n".join(verdict.details))
        connected = self.link.connected
        paused = bool(self.link.snapshot and self.link.snapshot.paused)
        syncing = self.link.sync_pending(())
        self.sync_button.setEnabled(connected and not syncing)
        self.sync_button.setText("Syncing..." if syncing else "Sync now")
        self.pause_button.setEnabled(connected and not self._pausing)
        if not self._pausing:
            self.pause_button.setText("Resume" if paused else "Pause")

    def sync_everything(self) -> None:
        self.note.setText("")
        self.link.sync_now(
            (),
            on_error=lambda error: self.note.setText(f"Sync not started: {error}"),
        )
        self.refresh()

    def toggle_pause(self) -> None:
        paused = bool(self.link.snapshot and self.link.snapshot.paused)
        self._pausing = True
        self.pause_button.setText("Resuming..." if paused else "Pausing...")
        self.pause_button.setEnabled(False)

        def done(state: PauseState) -> None:
            self._pausing = False
            self.note.setText(
                "" if state.settled else "Still finishing the current step; pausing shortly."
            )
            self.refresh()

        def failed(error: BaseException) -> None:
            self._pausing = False
            self.note.setText(f"Not done: {error}")
            self.refresh()

        (self.link.resume if paused else self.link.pause)(done, failed)


class PanelWindow(QMainWindow):
    def __init__(
        self,
        link: EngineLink,
        log_dir: Path,
        parent: QWidget | None = None,
        *,
        hide_on_close: bool = True,
    ) -> None:
        super().__init__(parent)
        self.link = link
        self.hide_on_close = hide_on_close
        self.setWindowTitle(APP_TITLE)
        self.header = StatusHeader(link)
        self.overview = OverviewPage(link)
        self.exceptions = ExceptionsPage(link)
        self.bookings = BookingsPage(link)
        self.logs = LogPageWidget(link, log_dir)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.overview, "Overview")
        self.tabs.addTab(self.exceptions, "Exceptions")
        self.tabs.addTab(self.bookings, "Bookings")
        self.tabs.addTab(self.logs, "Logs")
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.addWidget(self.header)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(body)
        self.resize(900, 720)
        link.exceptions_changed.connect(lambda _: self._title_exceptions())
        link.status_changed.connect(lambda _: self._window_icon())
        link.connection_changed.connect(lambda *_: self._window_icon())
        self._title_exceptions()
        self._window_icon()

    def _title_exceptions(self) -> None:
        count = len(self.link.exceptions)
        self.tabs.setTabText(EXCEPTIONS, f"Exceptions ({count})" if count else "Exceptions")

    def _window_icon(self) -> None:
        self.setWindowIcon(level_icon(current_verdict(self.link).state.level))

    def show_page(self, page: int) -> None:
        self.tabs.setCurrentIndex(page)
        self.show()
        self.raise_()
        self.activateWindow()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing hides the window while a tray icon keeps the panel going."""
        if self.hide_on_close:
            event.ignore()
            self.hide()
        else:
            event.accept()
