"""The live log view, for support staff: filter by level and text, open the folder, make a bundle.

While the engine runs, records come from it through the link
(``logs(after=cursor)``, polled every :data:`POLL_MS` while the page is
visible; the cursor never re-reads a line). When the engine is not running,
which is exactly when support needs the log, the page reads the log files
directly (:mod:`bridge.logs.reader`; reading a file is not talking to the
engine) and says so. Level and text filters are applied where the records
are read, so a filtered view is complete, not a page of survivors.

The records were masked when they were written (no personal data, no
secrets). "Create support bundle" asks the engine for its zip (logs, redacted
configuration, status, versions, ODBC drivers, doctor) and shows where it
is; "Open log folder" and "Open bundle folder" use the desktop's file
manager (``open_folder``, replaceable in tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtCore import Qt, QTimer, QUrl
from PySide6.QtGui import QDesktopServices, QFontDatabase
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from bridge.control.results import LogPage
from bridge.logs import tail_log_records
from bridge.logs.jsonl import RESERVED_KEYS
from gui.engine_link import EngineLink
from gui.health_rules import Level
from gui.icons import level_icon
from gui.status_badge import StatusBadge
from gui.tasks import run_in_background

POLL_MS = 1000
FIRST_PAGE = 500
MAX_ROWS = 3000
LEVELS = (("Everything", None), ("Info and worse", "INFO"), ("Warnings and errors", "WARNING"),
          ("Errors only", "ERROR"))  # fmt: skip
_TIME, _LEVEL, _WHERE, _MESSAGE = range(4)
_LEVEL_ICONS = {"WARNING": Level.WARN, "ERROR": Level.FAIL, "CRITICAL": Level.FAIL}


class _Record(Protocol):
    """What both sources give: the engine's LogRecord and the reader's LogEntry."""

    @property
    def ts(self) -> datetime: ...
    @property
    def level(self) -> str: ...
    @property
    def logger(self) -> str: ...
    @property
    def msg(self) -> str: ...
    @property
    def raw(self) -> Mapping[str, Any]: ...


def open_in_file_manager(folder: Path) -> None:
    QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))


class LogPageWidget(QWidget):
    def __init__(
        self,
        link: EngineLink,
        log_dir: Path,
        parent: QWidget | None = None,
        *,
        open_folder: Callable[[Path], None] = open_in_file_manager,
    ) -> None:
        super().__init__(parent)
        self.link = link
        self.log_dir = log_dir
        self.open_folder = open_folder
        self.level = QComboBox()
        for label, value in LEVELS:
            self.level.addItem(label, value)
        self.level.setCurrentIndex(1)
        self.text = QLineEdit()
        self.text.setPlaceholderText("Filter: text in the message, e.g. cloud or appointment")
        self.text.setClearButtonEnabled(True)
        self.open_logs = QPushButton("Open log folder")
        self.bundle_button = QPushButton("Create support bundle")
        self.source = QLabel()
        self.source.setWordWrap(True)
        self.bundle = StatusBadge()
        self.open_bundle = QPushButton("Open bundle folder")
        self.open_bundle.setVisible(False)
        self.bundle_path: Path | None = None

        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Time", "Level", "Where", "Message"])
        header = self.table.horizontalHeader()
        for column in (_TIME, _LEVEL, _WHERE):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(_MESSAGE, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        self.table.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 6)

        filters = QHBoxLayout()
        filters.addWidget(QLabel("Show"))
        filters.addWidget(self.level)
        filters.addWidget(self.text, 1)
        filters.addWidget(self.open_logs)
        filters.addWidget(self.bundle_button)
        bundle_row = QHBoxLayout()
        bundle_row.addWidget(self.bundle, 1)
        bundle_row.addWidget(self.open_bundle)
        layout = QVBoxLayout(self)
        layout.addLayout(filters)
        layout.addWidget(self.source)
        layout.addLayout(bundle_row)
        layout.addWidget(self.table, 1)

        self._cursor: str | None = None
        self._generation = 0
        self._loading = False
        self._from_engine: bool | None = None
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)
        self.level.currentIndexChanged.connect(lambda _: self.reload())
        self._filter_later = QTimer(self)
        self._filter_later.setSingleShot(True)
        self._filter_later.setInterval(300)
        self._filter_later.timeout.connect(self.reload)
        self.text.textChanged.connect(lambda _: self._filter_later.start())
        self.open_logs.clicked.connect(lambda: self.open_folder(self.log_dir))
        self.bundle_button.clicked.connect(self.create_bundle)
        self.open_bundle.clicked.connect(self._open_bundle_folder)
        link.connection_changed.connect(lambda *_: self.reload())

    # -- reading ------------------------------------------------------------------

    def filters(self) -> tuple[str | None, str | None]:
        return self.level.currentData(), (self.text.text().strip() or None)

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self.reload()
        self.timer.start()

    def hideEvent(self, event: Any) -> None:
        super().hideEvent(event)
        self.timer.stop()

    def reload(self) -> None:
        """Start again from the newest records matching the filters."""
        self._generation += 1
        self._cursor = None
        self._loading = False
        self.table.setRowCount(0)
        self.poll()

    def poll(self) -> None:
        if self._loading:
            return
        self._loading = True
        generation = self._generation
        level, text = self.filters()
        after = self._cursor

        def done(page: tuple[bool, Iterable[_Record], str | None]) -> None:
            if generation != self._generation:
                return  # the filters changed meanwhile
            self._loading = False
            from_engine, records, cursor = page
            self._show_source(from_engine)
            if from_engine:
                self._cursor = cursor
            elif after is not None:
                return
            self.append(records, replace=not from_engine)

        def failed(error: BaseException) -> None:
            if generation == self._generation:
                self._loading = False
                self.source.setText(f"The log could not be read: {error}")

        if self.link.connected:
            self.link.call(
                lambda c: _engine_page(c.logs(after, FIRST_PAGE, level, text)), done, failed
            )
        else:
            log_dir = self.log_dir
            run_in_background(lambda: _file_page(log_dir, level, text), done, failed)

    def _show_source(self, from_engine: bool) -> None:
        if from_engine == self._from_engine:
            return
        self._from_engine = from_engine
        if from_engine:
            self.source.setText("Live from the running engine.")
        else:
            self.source.setText(
                f"The engine is not running: showing the log files in {self.log_dir} "
                "(refreshed every second)."
            )

    def append(self, records: Iterable[_Record], *, replace: bool = False) -> None:
        bar = self.table.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 2
        rows = list(records)
        if replace:
            if rows and self.table.rowCount() and self._last_shown() == rows[-1].raw:
                return
            self.table.setRowCount(0)
        start = self.table.rowCount()
        self.table.setRowCount(start + len(rows))
        for offset, record in enumerate(rows):
            self._fill(start + offset, record)
        overflow = self.table.rowCount() - MAX_ROWS
        for _ in range(max(overflow, 0)):
            self.table.removeRow(0)
        if at_bottom or replace:
            self.table.scrollToBottom()

    def _last_shown(self) -> Mapping[str, Any] | None:
        item = self.table.item(self.table.rowCount() - 1, _TIME)
        raw = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        return raw if isinstance(raw, Mapping) else None

    def _fill(self, row: int, record: _Record) -> None:
        when = QTableWidgetItem(_time(record.ts))
        when.setData(Qt.ItemDataRole.UserRole, dict(record.raw))
        when.setToolTip(record.ts.astimezone().isoformat(timespec="seconds"))
        level = QTableWidgetItem(record.level)
        icon_level = _LEVEL_ICONS.get(record.level)
        if icon_level is not None:
            level.setIcon(level_icon(icon_level))
        where = QTableWidgetItem(record.logger.removeprefix("bridge."))
        message = QTableWidgetItem(_message(record))
        message.setToolTip(_message(record, tracebacks=True)[:4000])
        for column, item in ((_TIME, when), (_LEVEL, level), (_WHERE, where), (_MESSAGE, message)):
            self.table.setItem(row, column, item)

    # -- support bundle -------------------------------------------------------------

    def create_bundle(self) -> None:
        self.bundle_button.setEnabled(False)
        self.open_bundle.setVisible(False)
        self.bundle.set_status(
            Level.BUSY, "Creating the support bundle (this can take a minute)..."
        )

        def done(path: Path) -> None:
            self.bundle_button.setEnabled(True)
            self.bundle_path = path
            self.bundle.set_status(
                Level.OK,
                f"Support bundle created: {path}",
                "It holds logs, settings without secrets, status and checks; no patient data. "
                "Send it to support.",
            )
            self.open_bundle.setVisible(True)

        def failed(error: BaseException) -> None:
            self.bundle_button.setEnabled(True)
            fix = getattr(error, "fix", "") or ""
            self.bundle.set_status(Level.FAIL, f"No support bundle: {error}", fix)

        self.link.call(lambda c: c.support_bundle(), done, failed)

    def _open_bundle_folder(self) -> None:
        if self.bundle_path is not None:
            self.open_folder(self.bundle_path.parent)


def _engine_page(page: LogPage) -> tuple[bool, Iterable[_Record], str | None]:
    return True, page.records, page.cursor


def _file_page(
    log_dir: Path, level: str | None, text: str | None
) -> tuple[bool, Iterable[_Record], str | None]:
    return False, tail_log_records(log_dir, FIRST_PAGE, level=level, text=text), None


def _time(moment: datetime) -> str:
    local = moment.astimezone()
    if local.date() == datetime.now().astimezone().date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%d %b %H:%M:%S")


def _message(record: _Record, *, tracebacks: bool = False) -> str:
    extras = " ".join(
        f"{k}={v}" for k, v in record.raw.items() if k not in RESERVED_KEYS and v is not None
    )
    text = f"{record.msg}  {extras}" if extras else record.msg
    exc = record.raw.get("exc")
    if isinstance(exc, Mapping):
        if tracebacks and exc.get("traceback"):
            text += "\n" + str(exc["traceback"])
        elif exc.get("type"):
            text += f"  [{exc.get('type')}: {exc.get('message') or ''}]"
    return text
