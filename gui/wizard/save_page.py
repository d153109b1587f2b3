"""Setup page 5: save (secrets to the keyring, the configuration file) and run the doctor.

The page sums up what will be written and where. "Save and check" stores
the password and token in the OS keyring, writes the configuration file (an
existing one is kept as ``.bak``) and runs every ``bridge doctor`` check,
showing each with its level's icon. Next is enabled once the setup is saved
and no check failed; a warning does not block.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
)

from bridge.doctor import CheckResult
from bridge.paths import BridgePaths
from bridge.secrets import SecretStore
from gui.health_rules import Level
from gui.icons import level_icon
from gui.status_badge import StatusBadge
from gui.tasks import run_in_background
from gui.wizard.base import AnswersSource, SetupPage
from gui.wizard.setup import (
    SaveOutcome,
    SetupAnswers,
    doctor_results,
    profile_titles,
    save_setup,
)

CHECK_LEVELS = {"ok": Level.OK, "warn": Level.WARN, "fail": Level.FAIL, "skip": Level.IDLE}


class SavePage(SetupPage):
    def __init__(
        self,
        answers: AnswersSource,
        paths: BridgePaths,
        config_path: Path,
        secret_store: SecretStore,
    ) -> None:
        super().__init__(answers)
        self.paths = paths
        self.config_path = config_path
        self.secret_store = secret_store
        self.setTitle("Save and check")
        self.setSubTitle(
            "The password and token go to the OS keyring; everything else to the "
            "configuration file. Then every check of 'bridge doctor' runs."
        )
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.save_button = QPushButton("Save and check")
        self.outcome = StatusBadge()
        self.checks = QListWidget()
        self.checks.setIconSize(QSize(18, 18))
        self.checks.setWordWrap(True)
        self.checks.setVisible(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.save_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addLayout(buttons)
        layout.addWidget(self.outcome)
        layout.addWidget(self.checks, 1)
        self.save_button.clicked.connect(self.save)
        self._saved_answers: SetupAnswers | None = None
        self.results: list[CheckResult] = []
        self._busy = False

    def initializePage(self) -> None:
        self.summary.setText(summary_text(self.answers(), self.config_path))
        if self._saved_answers is not None and self._saved_answers != self.answers():
            self._saved_answers = None
            self.outcome.clear()
            self.checks.clear()
            self.checks.setVisible(False)
        self.completeChanged.emit()

    def save(self) -> None:
        if self._busy:
            return
        answers = self.answers()
        self._busy = True
        self.save_button.setEnabled(False)
        self.outcome.set_status(Level.BUSY, "Saving...")
        self.checks.clear()

        def work() -> tuple[SaveOutcome, list[CheckResult]]:
            return self._save_and_check(answers)

        def done(result: tuple[SaveOutcome, list[CheckResult]]) -> None:
            self._busy = False
            self.save_button.setEnabled(True)
            saved, checks = result
            if not saved.ok:
                lines = [p.line() for p in saved.problems[:4]]
                self.outcome.set_status(Level.FAIL, saved.message, "\n".join(lines))
                self.completeChanged.emit()
                return
            self._saved_answers = answers
            self.show_checks(checks)
            kept = f" The previous file is kept as {saved.backup.name}." if saved.backup else ""
            failed = [c for c in checks if c.status == "fail"]
            if failed:
                self.outcome.set_status(
                    Level.FAIL,
                    f"Saved {saved.config_path}, but {len(failed)} check(s) failed.{kept}",
                    "Correct the answers on the earlier pages (Back) and save again.",
                )
            else:
                self.outcome.set_status(Level.OK, f"Saved {saved.config_path}.{kept}")
            self.completeChanged.emit()

        def failed(exc: BaseException) -> None:
            self._busy = False
            self.save_button.setEnabled(True)
            self.outcome.set_status(Level.FAIL, f"Saving failed ({type(exc).__name__}).")

        run_in_background(work, done, failed)

    def _save_and_check(self, answers: SetupAnswers) -> tuple[SaveOutcome, list[CheckResult]]:
        saved = save_setup(answers, self.config_path, self.secret_store)
        if not saved.ok:
            return saved, []
        return saved, doctor_results(self.paths, self.config_path, self.secret_store)

    def show_checks(self, checks: list[CheckResult]) -> None:
        self.results = checks
        self.checks.clear()
        for check in checks:
            text = f"{check.name}: {check.message}"
            if check.fix and check.status in ("warn", "fail"):
                text += f"\n    What to do: {check.fix}"
            item = QListWidgetItem(level_icon(CHECK_LEVELS[check.status]), text)
            item.setToolTip(check.status)
            self.checks.addItem(item)
        self.checks.setVisible(True)

    def isComplete(self) -> bool:
        return (
            self._saved_answers is not None
            and self._saved_answers == self.answers()
            and not any(c.status == "fail" for c in self.results)
        )


def summary_text(answers: SetupAnswers, config_path: Path) -> str:
    source = (f"data source {answers.dsn}" if answers.dsn else "a connection string") + (
        f", user {answers.user}" if answers.user else ""
    )
    folders = ", ".join(f.label for f in answers.folders) or "none yet"
    secrets = []
    if answers.password is not None and answers.password.reveal():
        secrets.append("the database password")
    if answers.token is not None and answers.token.reveal():
        secrets.append("the enrolment token")
    keyring = " and ".join(secrets) or "nothing"
    return (
        f"Practice: {answers.practice_name} ({answers.timezone}, {answers.country})\n"
        f"PMS: {profile_titles().get(answers.profile, answers.profile)} through {source}\n"
        f"Cloud: {answers.cloud_url} as {answers.agent_id}\n"
        f"Export folders: {folders}\n\n"
        f"Configuration file: {config_path}\n"
        f"Into the OS keyring: {keyring}"
    )
