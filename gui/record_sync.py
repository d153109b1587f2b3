"""The "Sync one record" row: push one named record now, even if it did not change.

A row on the overview: the kind of record (entity), its number in the PMS
(key) and a button. It asks the engine through the link exactly as
``bridge sync patient 1234`` does (the control channel's ``sync`` with one
key) and then shows what the engine reported in its ``sync.records`` event:
pushed (with how many related records, e.g. the patient's appointments) or
not in the practice database. A key that is not a number is refused here,
before anything is sent; anything else the engine refuses is shown as it
says it.

The widget only shows and asks the link; it never calls the engine itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QRegularExpression
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QPushButton, QWidget

from bridge.control.events import Event, RecordsSynced
from bridge.control.results import SyncScheduled
from gui.engine_link import EngineLink

KEY_PATTERN = r"[1-9][0-9]{0,18}"
DEFAULT_ENTITY = "patient"


class RecordSyncRow(QWidget):
    """Entity, key, "Sync record" and the answer (see the module docstring)."""

    def __init__(self, link: EngineLink, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.link = link
        self.entity = QComboBox()
        self.entity.setToolTip("The kind of record")
        self.key = QLineEdit()
        self.key.setPlaceholderText("number, e.g. 1234")
        self.key.setToolTip("The record's number in the practice database (PatNum, AptNum, ...)")
        self.key.setValidator(QRegularExpressionValidator(QRegularExpression(KEY_PATTERN)))
        self.key.setMaximumWidth(160)
        self.button = QPushButton("Sync record")
        self.button.setToolTip("Send this record to the cloud now, even if it did not change")
        self.answer = QLabel()
        self.answer.setWordWrap(True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Sync one record:"))
        layout.addWidget(self.entity)
        layout.addWidget(self.key)
        layout.addWidget(self.button)
        layout.addWidget(self.answer, 1)
        self._waiting: tuple[str, str] | None = None
        self.button.clicked.connect(self.sync_record)
        self.key.returnPressed.connect(self.sync_record)
        link.event_received.connect(self._on_event)

    def set_entities(self, entities: Sequence[str]) -> None:
        """Offer ``entities`` (kept selection when still offered; patient first)."""
        current = self.entity.currentText() or DEFAULT_ENTITY
        names = sorted(entities, key=lambda e: (e != DEFAULT_ENTITY, e))
        if names == [self.entity.itemText(i) for i in range(self.entity.count())]:
            return
        self.entity.clear()
        self.entity.addItems(names)
        if current in names:
            self.entity.setCurrentText(current)

    def sync_record(self) -> None:
        entity, key = self.entity.currentText(), self.key.text().strip()
        if not entity:
            self.answer.setText("Not connected: the kinds of record are not known yet.")
            return
        if not QRegularExpression(f"^{KEY_PATTERN}$").match(key).hasMatch():
            self.answer.setText("A record number is a whole number such as 1234.")
            return
        self._waiting = (entity, key)
        self.answer.setText(f"Asking for {entity} {key}...")
        self.button.setEnabled(False)

        def done(scheduled: SyncScheduled) -> None:
            self.button.setEnabled(True)
            if scheduled.paused:
                self.answer.setText(f"Paused: {entity} {key} is sent when you press Resume.")

        def failed(error: BaseException) -> None:
            self.button.setEnabled(True)
            self._waiting = None
            self.answer.setText(f"Not sent: {error}")

        self.link.call(lambda client: client.sync_now((entity,), (key,)), done, failed)

    def _on_event(self, event: Event) -> None:
        if not isinstance(event, RecordsSynced) or self._waiting is None:
            return
        entity, key = self._waiting
        if event.entity != entity:
            return
        if key in event.pushed:
            text = f"Sent {entity} {key} to the cloud"
            if event.related:
                text += f" with {event.related} related record(s)"
            self.answer.setText(text + ".")
        elif key in event.missing:
            self.answer.setText(f"There is no {entity} {key} in the practice database.")
        else:
            return
        self._waiting = None
