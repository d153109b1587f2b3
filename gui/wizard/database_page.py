"""Setup page 2: which PMS, and how to reach its database through ODBC.

The drivers and data sources offered are the ones installed on this
computer (listed in the background when the page opens). "Test connection"
connects with exactly what is on the page, password included (not stored
until the setup is saved), and checks every table and column the profile
reads; Next stays disabled until a test of the current answers passed.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
)

from bridge.secrets import Secret
from gui.health_rules import Level
from gui.status_badge import StatusBadge
from gui.tasks import run_in_background
from gui.wizard.base import AnswersSource, SetupPage
from gui.wizard.setup import (
    ConnectionCheck,
    OdbcChoices,
    check_pms_connection,
    connection_string_template,
    odbc_choices,
    profile_titles,
)


class DatabasePage(SetupPage):
    sections = ("pms",)

    def __init__(self, answers: AnswersSource) -> None:
        super().__init__(answers)
        self.setTitle("The PMS database")
        self.setSubTitle(
            "Pick the practice management system and how the bridge reaches its database. "
            "Use a database login that may only read."
        )
        self.profile = QComboBox()
        for name, title in profile_titles().items():
            self.profile.addItem(title, name)

        self.use_dsn = QRadioButton("An ODBC data source set up on this computer")
        self.use_string = QRadioButton("A connection string")
        group = QButtonGroup(self)
        group.addButton(self.use_dsn)
        group.addButton(self.use_string)
        self.dsn = QComboBox()
        self.driver = QComboBox()
        self.connection_string = QLineEdit()
        self.connection_string.setPlaceholderText("Driver={...};Server=...;Database=...")
        self.user = QLineEdit()
        self.user.setPlaceholderText("unless the data source or connection string names it")
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("stored in the OS keyring, never in a file")
        self.odbc_note = QLabel("Looking for ODBC drivers...")
        self.odbc_note.setWordWrap(True)

        self.test_button = QPushButton("Test connection")
        self.result = StatusBadge()
        self._tested: tuple[object, ...] | None = None  # answers whose test passed
        self._shown_for: tuple[object, ...] | None = None  # answers of the shown result
        self._testing = False

        form = QFormLayout()
        form.addRow("Practice management system", self.profile)
        form.addRow(self.use_dsn)
        form.addRow("Data source", self.dsn)
        form.addRow(self.use_string)
        form.addRow("ODBC driver", self.driver)
        form.addRow("Connection string", self.connection_string)
        form.addRow("Database user", self.user)
        form.addRow("Password", self.password)
        buttons = QHBoxLayout()
        buttons.addWidget(self.test_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.odbc_note)
        layout.addLayout(buttons)
        layout.addWidget(self.result)
        layout.addWidget(self.problem_label)
        layout.addStretch(1)

        self.use_string.setChecked(True)
        self._sync_mode()
        self.use_dsn.toggled.connect(lambda _: self._changed())
        self.driver.currentTextChanged.connect(self._driver_chosen)
        for edit in (self.connection_string, self.user, self.password):
            edit.textChanged.connect(lambda _: self._changed())
        self.dsn.currentIndexChanged.connect(lambda _: self._changed())
        self.profile.currentIndexChanged.connect(lambda _: self._changed())
        self.test_button.clicked.connect(self.run_test)
        self._last_template = ""

    # -- answers ----------------------------------------------------------------

    def fill(self, answers: dict[str, Any]) -> None:
        answers["profile"] = self.profile.currentData() or ""
        if self.use_dsn.isChecked():
            answers["dsn"] = self.dsn.currentData() or ""
            answers["connection_string"] = ""
        else:
            answers["dsn"] = ""
            answers["connection_string"] = self.connection_string.text()
        answers["user"] = self.user.text()
        answers["password"] = Secret(self.password.text(), "pms-password")

    def _key(self) -> tuple[object, ...]:
        a = self.answers()
        return (a.profile, a.dsn, a.connection_string, a.user, a.password)

    # -- choices ----------------------------------------------------------------

    def initializePage(self) -> None:
        run_in_background(odbc_choices, self.show_choices)
        self.refresh(show=False)

    def show_choices(self, choices: OdbcChoices) -> None:
        current_driver = self.driver.currentText()
        self.driver.clear()
        self.driver.addItems(list(choices.drivers))
        if current_driver in choices.drivers:
            self.driver.setCurrentText(current_driver)
        self.dsn.clear()
        for name, driver in choices.data_sources:
            self.dsn.addItem(f"{name}  ({driver})", name)
        if choices.problem:
            self.odbc_note.setText(f"ODBC could not be asked: {choices.problem}")
        elif not choices.drivers:
            self.odbc_note.setText(
                "No ODBC driver is installed. Install the driver for the PMS database "
                "(e.g. MariaDB Connector/ODBC for Open Dental), then come back to this page."
            )
        else:
            sources = len(choices.data_sources)
            self.odbc_note.setText(
                f"{len(choices.drivers)} ODBC driver(s) and {sources} data source(s) found."
            )
        self.use_dsn.setEnabled(bool(choices.data_sources))
        self._sync_mode()

    def _driver_chosen(self, driver: str) -> None:
        text = self.connection_string.text()
        if driver and (not text or text == self._last_template):
            self._last_template = connection_string_template(driver)
            self.connection_string.setText(self._last_template)

    def _sync_mode(self) -> None:
        by_dsn = self.use_dsn.isChecked()
        self.dsn.setEnabled(by_dsn)
        self.driver.setEnabled(not by_dsn)
        self.connection_string.setEnabled(not by_dsn)

    def _changed(self) -> None:
        self._sync_mode()
        key = self._key()
        if self._tested is not None and self._tested != key:
            self._tested = None
        if not self._testing and self._shown_for is not None and self._shown_for != key:
            self._shown_for = None
            self.result.clear()
        self.refresh()

    # -- the test -----------------------------------------------------------------

    def run_test(self) -> None:
        """Connect in the background with the page's answers; show the outcome."""
        if self._testing:
            return
        answers = self.answers()
        key = self._key()
        self._testing = True
        self.test_button.setEnabled(False)
        self.result.set_status(Level.BUSY, "Connecting to the PMS database...")

        def done(outcome: ConnectionCheck) -> None:
            self._testing = False
            self.test_button.setEnabled(True)
            if key != self._key():
                self.result.clear()  # the answers changed while testing
                return
            self.show_outcome(outcome)
            self._shown_for = key
            self._tested = key if outcome.ok else None
            self.completeChanged.emit()

        def failed(exc: BaseException) -> None:
            done(ConnectionCheck(False, f"the test itself failed ({type(exc).__name__})"))

        run_in_background(lambda: check_pms_connection(answers), done, failed)

    def show_outcome(self, outcome: ConnectionCheck) -> None:
        warn = any(note.startswith("Warning") for note in outcome.notes)
        level = (Level.WARN if warn else Level.OK) if outcome.ok else Level.FAIL
        detail = (
            "\n".join(outcome.notes)
            if outcome.ok
            else (f"What to do: {outcome.fix}" if outcome.fix else "")
        )
        self.result.set_status(level, outcome.message, detail)

    def isComplete(self) -> bool:
        return self._tested is not None and self._tested == self._key() and not self.problems()
