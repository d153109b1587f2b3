"""Setup page 3: the cloud's address, this bridge's agent id and enrolment token.

The token goes to the OS keyring when the setup is saved, never into the
file. "Test cloud connection" sends one heartbeat with exactly these
answers; it is recommended, not required (a practice may set up the bridge
while its internet line is down; the engine keeps everything until the
cloud answers).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
)

from bridge.secrets import Secret
from gui.health_rules import Level
from gui.status_badge import StatusBadge
from gui.tasks import run_in_background
from gui.wizard.base import AnswersSource, SetupPage
from gui.wizard.setup import ConnectionCheck, check_cloud_connection


class CloudPage(SetupPage):
    sections = ("cloud",)

    def __init__(self, answers: AnswersSource) -> None:
        super().__init__(answers)
        self.setTitle("The cloud")
        self.setSubTitle(
            "The address, agent id and enrolment token come from the cloud service's "
            "setup page for this practice. Only outbound HTTPS is used."
        )
        self.url = QLineEdit()
        self.url.setPlaceholderText("https://cloud.example.com")
        self.agent_id = QLineEdit()
        self.agent_id.setPlaceholderText("e.g. agent-0001")
        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("stored in the OS keyring, never in a file")
        self.ca_bundle = QLineEdit()
        self.ca_bundle.setPlaceholderText("optional: only for a private CA or inspecting proxy")
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse_ca)
        ca_row = QHBoxLayout()
        ca_row.addWidget(self.ca_bundle, 1)
        ca_row.addWidget(browse)

        self.test_button = QPushButton("Test cloud connection")
        self.result = StatusBadge()
        self._testing = False

        form = QFormLayout()
        form.addRow("Cloud address", self.url)
        form.addRow("Agent id", self.agent_id)
        form.addRow("Enrolment token", self.token)
        form.addRow("Extra CA certificates", ca_row)
        buttons = QHBoxLayout()
        buttons.addWidget(self.test_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.result)
        layout.addWidget(self.problem_label)
        layout.addStretch(1)

        for edit in (self.url, self.agent_id, self.token, self.ca_bundle):
            edit.textChanged.connect(lambda _: self._changed())
        self.test_button.clicked.connect(self.run_test)

    def fill(self, answers: dict[str, Any]) -> None:
        answers["cloud_url"] = self.url.text()
        answers["agent_id"] = self.agent_id.text()
        answers["token"] = Secret(self.token.text().strip(), "cloud-token")
        answers["ca_bundle"] = self.ca_bundle.text()

    def initializePage(self) -> None:
        self.refresh(show=False)

    def problems(self) -> list[str]:
        problems = super().problems()
        if not self.token.text().strip():
            problems.append("Enrolment token: paste the token the cloud issued for this bridge.")
        return problems

    def _changed(self) -> None:
        self.result.clear()
        self.refresh()

    def _browse_ca(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Extra CA certificates", "", "PEM certificates (*.pem *.crt);;All files (*)"
        )
        if path:
            self.ca_bundle.setText(path)

    def run_test(self) -> None:
        if self._testing:
            return
        answers = self.answers()
        self._testing = True
        self.test_button.setEnabled(False)
        self.result.set_status(Level.BUSY, "Asking the cloud...")

        def done(outcome: ConnectionCheck) -> None:
            self._testing = False
            self.test_button.setEnabled(True)
            if answers != self.answers():
                self.result.clear()
                return
            level = Level.OK if outcome.ok else Level.FAIL
            if outcome.ok and outcome.notes:
                level = Level.WARN
            detail = "\n".join(outcome.notes)
            if not outcome.ok and outcome.fix:
                detail = f"What to do: {outcome.fix}"
            self.result.set_status(level, outcome.message, detail)

        def failed(exc: BaseException) -> None:
            done(ConnectionCheck(False, f"the test itself failed ({type(exc).__name__})"))

        run_in_background(lambda: check_cloud_connection(answers), done, failed)
