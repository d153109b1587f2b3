"""Setup page 4: export folders whose new files go to the cloud (optional).

Each row is one ``[[folders]]`` table: a short label (sent with each file),
the folder, and the kind of files expected. Files are left where they are;
moving or deleting uploaded files is set in the configuration file by
practice IT, never by default.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from bridge.config.model import FileKindSetting
from gui.wizard.base import AnswersSource, SetupPage
from gui.wizard.setup import FolderAnswer

KINDS: tuple[str, ...] = get_args(FileKindSetting)
_LABEL_COLUMN, _PATH_COLUMN, _KIND_COLUMN = 0, 1, 2


class FoldersPage(SetupPage):
    sections = ("folders",)

    def __init__(self, answers: AnswersSource) -> None:
        super().__init__(answers)
        self.setTitle("Export folders")
        self.setSubTitle(
            "Folders the PMS or the clearinghouse software writes files into (ERA/835 "
            "remittances, claim batches, reports). Each new file is sent to the cloud once. "
            "You can skip this page and add folders later."
        )
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Label", "Folder", "Kind of files"])
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(_LABEL_COLUMN, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(_PATH_COLUMN, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(_KIND_COLUMN, QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.add_button = QPushButton("Add folder...")
        self.remove_button = QPushButton("Remove")
        self.empty_note = QLabel("No folders yet: files are not uploaded until you add one.")
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty_note)
        layout.addLayout(buttons)
        layout.addWidget(self.problem_label)

        self.add_button.clicked.connect(self._browse)
        self.remove_button.clicked.connect(self._remove_selected)
        self.table.itemChanged.connect(lambda _: self.refresh())
        self._update_note()

    def add_folder(self, path: str, label: str = "", kind: str = "auto") -> None:
        """Add a row (the label defaults to a unique one from the folder's name)."""
        row = self.table.rowCount()
        self.table.blockSignals(True)
        self.table.insertRow(row)
        self.table.setItem(row, _LABEL_COLUMN, QTableWidgetItem(label or self._label_for(path)))
        path_item = QTableWidgetItem(path)
        path_item.setToolTip(path)
        self.table.setItem(row, _PATH_COLUMN, path_item)
        kinds = QComboBox()
        kinds.addItems(list(KINDS))
        kinds.setCurrentText(kind if kind in KINDS else "auto")
        kinds.currentTextChanged.connect(lambda _: self.refresh())
        self.table.setCellWidget(row, _KIND_COLUMN, kinds)
        self.table.blockSignals(False)
        self._update_note()
        self.refresh()

    def fill(self, answers: dict[str, Any]) -> None:
        folders = []
        for row in range(self.table.rowCount()):
            label = self.table.item(row, _LABEL_COLUMN)
            path = self.table.item(row, _PATH_COLUMN)
            kinds = self.table.cellWidget(row, _KIND_COLUMN)
            kind = kinds.currentText() if isinstance(kinds, QComboBox) else "auto"
            folders.append(
                FolderAnswer(
                    label.text() if label is not None else "",
                    path.text() if path is not None else "",
                    kind,
                )
            )
        answers["folders"] = tuple(folders)

    def initializePage(self) -> None:
        self.refresh(show=self.table.rowCount() > 0)

    def _label_for(self, path: str) -> str:
        base = re.sub(r"[^A-Za-z0-9 _.-]", "", Path(path).name)[:28].strip(" ._-") or "Folder"
        taken = {
            (item.text().casefold() if item is not None else "")
            for item in (self.table.item(r, _LABEL_COLUMN) for r in range(self.table.rowCount()))
        }
        label, n = base, 2
        while label.casefold() in taken:
            label, n = f"{base} {n}", n + 1
        return label

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Export folder")
        if path:
            self.add_folder(path)

    def _remove_selected(self) -> None:
        rows = sorted({index.row() for index in self.table.selectedIndexes()}, reverse=True)
        for row in rows:
            self.table.removeRow(row)
        self._update_note()
        self.refresh()

    def _update_note(self) -> None:
        self.empty_note.setVisible(self.table.rowCount() == 0)
