"""The setup wizard window: six pages from nothing to a running bridge.

``SetupWizard(paths, secret_store)`` asks, tests, saves and starts; the
pages (one module each) share the answers through :meth:`answers`. Finishing
emits :attr:`finished` with ``QDialog.Accepted``; the app then opens the
panel. The wizard uses the bridge's config, secrets and doctor modules
directly (there is no engine to ask yet) and every blocking step runs in the
background (:mod:`gui.tasks`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QWidget, QWizard

from bridge.paths import BridgePaths
from bridge.secrets import SecretStore
from gui.health_rules import Level
from gui.icons import level_pixmap
from gui.tray_state import APP_TITLE
from gui.wizard.base import SetupPage
from gui.wizard.cloud_page import CloudPage
from gui.wizard.database_page import DatabasePage
from gui.wizard.folders_page import FoldersPage
from gui.wizard.practice_page import PracticePage
from gui.wizard.save_page import SavePage
from gui.wizard.setup import SetupAnswers, start_engine
from gui.wizard.start_page import Starter, StartPage


class SetupWizard(QWizard):
    def __init__(
        self,
        paths: BridgePaths,
        secret_store: SecretStore,
        *,
        config_path: Path | None = None,
        starter: Starter = start_engine,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.paths = paths
        self.config_path = config_path or paths.config_file
        self.setWindowTitle(f"{APP_TITLE}: setup")
        self.setWizardStyle(QWizard.WizardStyle.ModernStyle)
        self.setPixmap(QWizard.WizardPixmap.LogoPixmap, level_pixmap(Level.BUSY, 48))
        self.setOption(QWizard.WizardOption.NoBackButtonOnLastPage, True)
        self.practice_page = PracticePage(self.answers)
        self.database_page = DatabasePage(self.answers)
        self.cloud_page = CloudPage(self.answers)
        self.folders_page = FoldersPage(self.answers)
        self.save_page = SavePage(self.answers, paths, self.config_path, secret_store)
        self.start_page = StartPage(self.answers, paths, self.config_path, starter=starter)
        self.pages: tuple[SetupPage, ...] = (
            self.practice_page,
            self.database_page,
            self.cloud_page,
            self.folders_page,
            self.save_page,
            self.start_page,
        )
        for page in self.pages:
            self.addPage(page)
        self.resize(760, 620)

    def answers(self) -> SetupAnswers:
        """Every page's answers so far, merged."""
        values: dict[str, Any] = {}
        for page in getattr(self, "pages", ()):
            page.fill(values)
        return SetupAnswers(**values)
