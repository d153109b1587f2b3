"""The setup wizard from nothing to a running bridge, against real parts.

The PMS is the demo practice read through the SQLite3 ODBC driver, the cloud
the reference cloud on loopback, the keyring a file keyring (Linux test
machines have no Secret Service), and "Start" runs the real ``bridge run``
in its own process. Qt runs offscreen.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.core
import pytest
from keyrings.alt.file import PlaintextKeyring

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWizard
from pytestqt.qtbot import QtBot

from bridge.config import load_settings
from bridge.paths import BridgePaths, default_paths
from bridge.secrets import KeyringSecretStore, MemorySecretStore, Secret
from gui import tasks
from gui.health_rules import Level
from gui.wizard.setup import FolderAnswer, SetupAnswers, check_answers, save_setup
from gui.wizard.wizard import SetupWizard
from sandbox.cloud.server import ReferenceCloud
from sandbox.cloud.testing import AGENT_ID, TOKEN

pytest_plugins = ["sandbox.cloud.fixtures"]

WAIT_MS = 30_000


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BridgePaths]:
    """BRIDGE_HOME and a file keyring under tmp_path, shared with child processes."""
    monkeypatch.setenv("BRIDGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(keyring.core, "_keyring_backend", PlaintextKeyring())
    yield default_paths()
    tasks.shutdown()


def next_enabled(wizard: SetupWizard) -> bool:
    return wizard.button(QWizard.WizardButton.NextButton).isEnabled()


@pytest.mark.slow
def test_setup_from_scratch_to_a_running_bridge(
    qtbot: QtBot, home: BridgePaths, db: Path, reference_cloud: ReferenceCloud, tmp_path: Path
) -> None:
    wizard = SetupWizard(home, KeyringSecretStore())
    qtbot.addWidget(wizard)
    wizard.show()

    # 1. The practice: nothing typed yet, so Next waits; a wrong zone is named.
    practice = wizard.practice_page
    assert not next_enabled(wizard)
    practice.name.setText("Riverside Dental")
    practice.timezone.setCurrentText("America/Los_Angles")
    assert "did you mean 'America/Los_Angeles'" in practice.problem_label.text()
    assert not next_enabled(wizard)
    practice.timezone.setCurrentText("America/Los_Angeles")
    assert next_enabled(wizard)
    wizard.next()

    # 2. The database: the drivers installed here are offered; a test must pass.
    database = wizard.database_page
    qtbot.waitUntil(lambda: database.driver.findText("SQLite3") >= 0, timeout=WAIT_MS)
    database.driver.setCurrentText("SQLite3")
    assert database.connection_string.text().startswith("Driver={SQLite3};Database=")
    database.connection_string.setText(f"Driver={{SQLite3}};Database={tmp_path / 'nope.db'}")
    qtbot.mouseClick(database.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: database.result.level is Level.FAIL, timeout=WAIT_MS)
    assert "What to do:" in database.result.text.text()
    assert not next_enabled(wizard)
    database.connection_string.setText(f"Driver={{SQLite3}};Database={db}")
    assert database.result.level is None  # the old result no longer applies
    qtbot.mouseClick(database.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: database.result.level is not None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: database.result.level is not Level.BUSY, timeout=WAIT_MS)
    assert database.result.text.text().startswith("Connected (sqlite).")
    assert "All 12 kinds of records of Open Dental found." in database.result.text.text()
    assert next_enabled(wizard)
    database.user.setText("someone")
    assert not next_enabled(wizard)  # any change needs a new test
    assert database.result.level is None
    database.user.setText("")
    qtbot.mouseClick(database.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: next_enabled(wizard), timeout=WAIT_MS)
    wizard.next()

    # 3. The cloud: a wrong token is refused by the cloud itself, the right one accepted.
    cloud = wizard.cloud_page
    cloud.url.setText(reference_cloud.url)
    cloud.agent_id.setText(AGENT_ID)
    assert not next_enabled(wizard)  # no token yet
    cloud.token.setText("not-the-token")
    qtbot.mouseClick(cloud.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: cloud.result.level is Level.FAIL, timeout=WAIT_MS)
    assert "token" in cloud.result.text.text().lower()
    cloud.token.setText(TOKEN)
    qtbot.mouseClick(cloud.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: cloud.result.level is Level.OK, timeout=WAIT_MS)
    assert cloud.result.text.text() == f"The cloud accepted agent {AGENT_ID}."
    assert reference_cloud.heartbeats(agent_id=AGENT_ID)  # the test really reached the cloud
    assert next_enabled(wizard)
    wizard.next()

    # 4. Export folders (optional).
    exports = tmp_path / "Exports" / "ERA"
    exports.mkdir(parents=True)
    folders = wizard.folders_page
    assert next_enabled(wizard)
    folders.add_folder(str(exports), kind="era835")
    folders.add_folder(str(exports.parent))
    assert [folders.table.item(r, 0).text() for r in range(2)] == ["ERA", "Exports"]
    assert next_enabled(wizard)
    wizard.next()

    # 5. Save and check: secrets to the keyring, the file, then the doctor.
    save = wizard.save_page
    assert "Into the OS keyring: the enrolment token" in save.summary.text()
    assert not next_enabled(wizard)
    qtbot.mouseClick(save.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: save.outcome.level in (Level.OK, Level.FAIL), timeout=60_000)
    assert save.outcome.level is Level.OK, save.outcome.text.text()
    statuses = {c.name: c.status for c in save.results}
    config_check = next(c for c in save.results if c.name == "config")
    assert config_check.status == "warn" and "plain http" in config_check.message  # loopback
    assert statuses["pms-connect"] == "ok"
    assert statuses["profile"] == "ok" and statuses["state"] == "ok"
    assert save.checks.count() == len(save.results) >= 8
    settings = load_settings(home.config_file)
    assert settings.practice.name == "Riverside Dental"
    assert settings.pms.connection_string == f"Driver={{SQLite3}};Database={db}"
    assert settings.cloud.url == reference_cloud.url.rstrip("/")
    assert [(f.label, f.kind) for f in settings.folders] == [("ERA", "era835"), ("Exports", "auto")]
    text = home.config_file.read_text(encoding="utf-8")
    assert TOKEN not in text  # the token is in the keyring, not the file
    assert keyring.get_password("dental-pms-bridge", "cloud-token") == TOKEN
    assert (home.config_file.stat().st_mode & 0o077) == 0
    assert next_enabled(wizard)
    wizard.next()

    # 6. Start: the real engine starts in its own process and answers.
    start = wizard.start_page
    qtbot.mouseClick(start.start_button, Qt.MouseButton.LeftButton)
    try:
        qtbot.waitUntil(lambda: start.result.level is not Level.BUSY, timeout=120_000)
        assert start.result.level is Level.OK, start.result.text.text()
        assert start.result.text.text().startswith("The bridge is running")
        assert start.process is not None and start.process.poll() is None
    finally:
        if start.process is not None:
            start.process.terminate()
            start.process.wait(30)
    assert wizard.button(QWizard.WizardButton.FinishButton).isEnabled()


def valid_answers(db: Path, cloud_url: str = "http://127.0.0.1:9") -> SetupAnswers:
    return SetupAnswers(
        practice_name="Riverside Dental",
        timezone="America/New_York",
        connection_string=f"Driver={{SQLite3}};Database={db}",
        password=Secret("db-secret-1"),
        cloud_url=cloud_url,
        agent_id=AGENT_ID,
        token=Secret("token-secret-1"),
        folders=(FolderAnswer("ERA", "/srv/era"),),
    )


def test_bad_answers_save_nothing_and_name_each_problem(tmp_path: Path) -> None:
    store = MemorySecretStore()
    config = tmp_path / "bridge.toml"
    answers = SetupAnswers(
        practice_name="X",
        timezone="Nowhere/City",
        dsn="A",
        connection_string="Driver={SQLite3};Database=x;PWD=oops",
        cloud_url="http://cloud.example.com",
        agent_id="agent 1",
        token=Secret("t0ken-value"),
        folders=(FolderAnswer("ERA", "relative/path"),),
    )
    outcome = save_setup(answers, config, store)
    assert not outcome.ok
    keys = {p.key for p in outcome.problems}
    assert {"practice.timezone", "pms.connection_string", "cloud.url", "cloud.agent_id"} <= keys
    assert "folders[1].path" in keys
    assert not config.exists()
    assert "cloud-token" not in store._values  # nothing stored either
    assert all("oops" not in p.message for p in outcome.problems)  # never echoes a password


def test_save_keeps_the_old_file_and_stores_both_secrets(tmp_path: Path) -> None:
    store = MemorySecretStore()
    config = tmp_path / "config" / "bridge.toml"
    config.parent.mkdir()
    config.write_text("# the old file\n", encoding="utf-8")
    answers = valid_answers(tmp_path / "od.sqlite3")
    assert check_answers(answers) == []
    outcome = save_setup(answers, config, store)
    assert outcome.ok, outcome.message
    assert outcome.backup is not None
    assert outcome.backup.read_text(encoding="utf-8") == "# the old file\n"
    data = tomllib.loads(config.read_text(encoding="utf-8"))
    assert data["pms"]["password_secret"] == "pms-password"
    assert store.get("pms-password").reveal() == "db-secret-1"
    assert store.get("cloud-token").reveal() == "token-secret-1"
    text = config.read_text(encoding="utf-8")
    assert "db-secret-1" not in text and "token-secret-1" not in text
