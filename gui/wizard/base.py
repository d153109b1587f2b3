"""What every setup page shares: the answers so far, and showing problems.

Each page reads its own fields into a dict of :class:`~.setup.SetupAnswers`
fields (:meth:`SetupPage.fill`); the wizard merges the pages' dicts into one
answers value, which pages use to check themselves against the
configuration's own validation. A page is complete when its section has no
problem (and, where it has one, its connection test passed for exactly
these answers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtWidgets import QLabel, QWizardPage

from gui.wizard.setup import SetupAnswers, check_answers

AnswersSource = Callable[[], SetupAnswers]


class SetupPage(QWizardPage):
    """A wizard page that contributes answers and checks one config section."""

    sections: tuple[str, ...] = ()

    def __init__(self, answers: AnswersSource) -> None:
        super().__init__()
        self._answers = answers
        self.problem_label = QLabel()
        self.problem_label.setWordWrap(True)
        self.problem_label.setStyleSheet("color: #a84400;")
        self.problem_label.setObjectName("problems")

    def fill(self, answers: dict[str, Any]) -> None:
        """Put this page's fields into ``answers`` (SetupAnswers field -> value)."""

    def answers(self) -> SetupAnswers:
        return self._answers()

    def problems(self) -> list[str]:
        """This page's problems, one readable line each (empty: none)."""
        if not self.sections:
            return []
        return [f"{p.key}: {p.message}" for p in check_answers(self.answers(), self.sections)]

    def refresh(self, *, show: bool = True) -> None:
        """Re-check after an edit: show the first problem (unless ``show`` is
        false, as before anything was typed), update Next."""
        problems = self.problems() if show else []
        self.problem_label.setText(problems[0] if problems else "")
        self.problem_label.setVisible(bool(problems))
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return not self.problems()
