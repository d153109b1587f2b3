"""Setup page 1: the practice's name, time zone and country."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QCompleter, QFormLayout, QLineEdit, QVBoxLayout

from bridge.config.countries import COUNTRY_CODES
from gui.wizard.base import AnswersSource, SetupPage
from gui.wizard.setup import local_time_zone, time_zones


class PracticePage(SetupPage):
    sections = ("practice",)

    def __init__(self, answers: AnswersSource) -> None:
        super().__init__(answers)
        self.setTitle("The practice")
        self.setSubTitle(
            "Which practice this bridge serves. The time zone must be the one the PMS "
            "server's clock runs in: the PMS stores local times."
        )
        self.name = QLineEdit()
        self.name.setPlaceholderText("e.g. Riverside Dental")
        self.timezone = QComboBox()
        self.timezone.setEditable(True)
        self.timezone.addItems(time_zones())
        completer = self.timezone.completer()
        if completer is not None:
            completer.setFilterMode(Qt.MatchFlag.MatchContains)
            completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self.timezone.setCurrentText(local_time_zone() or "America/New_York")
        self.country = QComboBox()
        self.country.setEditable(True)
        self.country.addItems(sorted(COUNTRY_CODES))
        self.country.setCurrentText("US")

        form = QFormLayout()
        form.addRow("Practice name", self.name)
        form.addRow("Time zone", self.timezone)
        form.addRow("Country (for phone numbers)", self.country)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.problem_label)
        layout.addStretch(1)

        self.name.textChanged.connect(lambda _: self.refresh())
        self.timezone.currentTextChanged.connect(lambda _: self.refresh())
        self.country.currentTextChanged.connect(lambda _: self.refresh())

    def initializePage(self) -> None:
        self.refresh(show=False)

    def fill(self, answers: dict[str, Any]) -> None:
        answers["practice_name"] = self.name.text()
        answers["timezone"] = self.timezone.currentText().strip()
        answers["country"] = self.country.currentText().strip().upper()
