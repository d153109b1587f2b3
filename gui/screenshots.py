"""``python -m gui.screenshots``: a PNG of each screen in its common states, into docs/screens/.

Nothing is staged: a :class:`~gui.demo_world.DemoWorld` (the demo practice
over the SQLite3 ODBC driver, the reference cloud, the Open Dental API
stand-in, and ``bridge run`` in its own process) goes through the states a
practice meets, and the real panel, connected through the control channel,
is grabbed in each (Qt offscreen):

====================================  ==================================================
file                                  state
====================================  ==================================================
panel-first-sync.png                  first sync running (slowed down to be seen)
panel-in-sync.png                     healthy: in sync, verified cloud copy
panel-exception-approval.png          a booking held for approval
panel-exception-patient.png           a booking whose patient is not confirmed
panel-exception-slot.png              a booking whose time is taken, with alternatives
panel-bookings.png                    the day's booking report after those bookings
panel-logs.png                        the live log view with a support bundle made
panel-paused.png                      paused from the panel
panel-error-token.png                 the cloud refuses the agent token
panel-offline.png                     the cloud cannot be reached
panel-engine-stopped.png              the engine is not running
tray-states.png                       the tray icon and tooltip of each state met above,
                                      and its menu
wizard-1-practice.png ...             the setup wizard's six pages, with the connection
wizard-6-start.png                    tests and the doctor really run
====================================  ==================================================

Takes a few minutes. ``--only NAME`` (repeatable) keeps the named files.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import keyring
from keyrings.alt.file import PlaintextKeyring
from PySide6.QtCore import QCoreApplication, QElapsedTimer, Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QGridLayout,
    QLabel,
    QWidget,
)

from bridge.paths import default_paths
from bridge.secrets import KeyringSecretStore
from gui import demo_bookings, tasks, wording
from gui.demo_world import DemoWorld
from gui.engine_link import EngineLink
from gui.health_rules import Level
from gui.icons import level_pixmap
from gui.panel import BOOKINGS, EXCEPTIONS, LOGS, OVERVIEW, PanelWindow, current_verdict
from gui.progress import first_sync_progress
from gui.tray import BridgeTray
from gui.tray_state import TrayState, TrayVerdict
from gui.wizard.wizard import SetupWizard
from sandbox.cloud.testing import AGENT_ID, TOKEN
from sandbox.practice import build_practice

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "screens"
PANEL_SIZE = (960, 820)
WIZARD_SIZE = (780, 640)


class Shooter:
    def __init__(self, out: Path, only: set[str]) -> None:
        self.out = out
        self.only = only
        self.written: list[Path] = []
        out.mkdir(parents=True, exist_ok=True)

    def wanted(self, name: str) -> bool:
        return not self.only or name in self.only

    def shoot(self, widget: QWidget, name: str) -> None:
        if not self.wanted(name):
            return
        settle(0.6)
        path = self.out / name
        if not widget.grab().save(str(path)):
            raise OSError(f"could not write {path}")
        self.written.append(path)
        print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


def settle(seconds: float) -> None:
    """Run the event loop for ``seconds`` (layouts, background callbacks)."""
    timer = QElapsedTimer()
    timer.start()
    while timer.elapsed() < seconds * 1000:
        QCoreApplication.processEvents()
        time.sleep(0.02)


def wait_until(predicate: Callable[[], bool], timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"screenshots: not reached in {timeout:.0f} s: {what}")
        settle(0.1)


# -- the panel through the states of a practice --------------------------------------------


def panel_states(
    shooter: Shooter, work: Path, practice_db: Path
) -> tuple[list[TrayVerdict], list[str]]:
    """Go through the states; returns the tray verdict of each state met and the
    tray menu's entries."""
    verdicts: list[TrayVerdict] = []
    first_sync(shooter, work, practice_db, verdicts)
    world = DemoWorld(work / "world", practice_db=practice_db, bookings=True)
    link = EngineLink(world.paths, refresh_seconds=1.0, wait_seconds=1.0, retry_seconds=0.5)
    window = PanelWindow(link, world.paths.log_dir, hide_on_close=False)
    window.resize(*PANEL_SIZE)
    tray = BridgeTray(link, window.show_page, lambda: None)

    def keep() -> None:
        verdict = current_verdict(link)
        if all(v.headline != verdict.headline for v in verdicts):
            verdicts.append(verdict)

    try:
        world.start_engine()
        link.start()
        window.show_page(OVERVIEW)
        wait_until(lambda: link.connected and link.snapshot is not None, what="connected")
        world.wait_synced(300)
        with world.admin() as admin:
            admin.enqueue("reconcile.request", {"entities": []})
        wait_until(lambda: verified(link), 300, "verified")
        wait_until(lambda: current_verdict(link).state is TrayState.IN_SYNC, what="in sync")
        keep()
        shooter.shoot(window, "panel-in-sync.png")

        for payload in demo_bookings.exception_requests(world):
            demo_bookings.send(world, payload)
        wait_until(lambda: len(link.exceptions) >= 3, what="three exceptions")
        keep()
        window.show_page(EXCEPTIONS)
        for reason, name in (
            ("approval_required", "panel-exception-approval.png"),
            ("unconfirmed_match", "panel-exception-patient.png"),
            ("slot_taken", "panel-exception-slot.png"),
        ):
            view = next(v for v in link.exceptions if v.reason_code == reason)
            select(window, view.id)
            shooter.shoot(window, name)

        window.show_page(BOOKINGS)
        page = window.bookings
        wait_until(lambda: bool(page.report and page.report["total"] >= 3), what="booking report")
        shooter.shoot(window, "panel-bookings.png")

        window.show_page(LOGS)
        window.logs.level.setCurrentIndex(0)
        wait_until(lambda: window.logs.table.rowCount() > 10, what="log records")
        window.logs.bundle_button.click()
        wait_until(lambda: window.logs.bundle_path is not None, 180, "support bundle")
        shooter.shoot(window, "panel-logs.png")

        window.show_page(OVERVIEW)
        window.header.pause_button.click()
        wait_until(lambda: bool(link.snapshot and link.snapshot.paused)
                   and window.header.pause_button.text() == "Resume", what="paused")  # fmt: skip
        keep()
        shooter.shoot(window, "panel-paused.png")
        window.header.pause_button.click()
        wait_until(lambda: not (link.snapshot and link.snapshot.paused), what="resumed")

        world.stop_cloud()
        wait_until(lambda: current_verdict(link).state is TrayState.OFFLINE, 180, "offline")
        keep()
        shooter.shoot(window, "panel-offline.png")
        world.start_cloud()
        wait_until(lambda: current_verdict(link).state is not TrayState.OFFLINE, 300, "online")

        with world.admin() as admin:
            admin.set_token(AGENT_ID, "a-token-the-bridge-does-not-have")
        wait_until(lambda: current_verdict(link).state is TrayState.ERROR, 180, "token refused")
        keep()
        shooter.shoot(window, "panel-error-token.png")
        with world.admin() as admin:
            admin.set_token(AGENT_ID, TOKEN)

        world.stop_engine()
        wait_until(lambda: not link.connected, what="engine stopped")
        keep()
        shooter.shoot(window, "panel-engine-stopped.png")
        menu = [a.text() for a in tray.menu.actions() if a.text()]
        order = list(TrayState)
        return sorted(verdicts, key=lambda v: order.index(v.state)), menu
    finally:
        link.stop()
        tray.hide()
        window.close()
        world.close()


def first_sync(
    shooter: Shooter, work: Path, practice_db: Path, verdicts: list[TrayVerdict]
) -> None:
    """The whole demo practice (not slimmed), read at 300 rows/s so the first sync shows."""
    if not (shooter.wanted("panel-first-sync.png") or shooter.wanted("tray-states.png")):
        return  # the tray sheet shows the syncing state met here
    world = DemoWorld(work / "first-sync", practice_db=practice_db, slim=False,
                      first_sync_rows_per_second=300)  # fmt: skip
    link = EngineLink(world.paths, refresh_seconds=1.0, wait_seconds=1.0, retry_seconds=0.5)
    window = PanelWindow(link, world.paths.log_dir, hide_on_close=False)
    window.resize(*PANEL_SIZE)
    try:
        world.start_engine()
        link.start()
        window.show_page(OVERVIEW)
        wait_until(lambda: first_sync_shown(link), 300, "first sync under way with a rate")
        verdicts.append(current_verdict(link))
        shooter.shoot(window, "panel-first-sync.png")
    finally:
        link.stop()
        window.close()
        world.close()


def first_sync_shown(link: EngineLink) -> bool:
    snapshot = link.snapshot
    if snapshot is None:
        return False
    progress = first_sync_progress(snapshot)
    return (
        progress is not None
        and progress.rows_done > 1500
        and progress.rate_rows_per_s is not None
        and len(snapshot.entities) >= 4
    )


def verified(link: EngineLink) -> bool:
    snapshot = link.snapshot
    return snapshot is not None and all(
        e.in_sync_percent is not None
        for e in snapshot.entities
        if e.entity not in wording.COMPUTED_ENTITIES  # never reconciled
    )


def select(window: PanelWindow, exception_id: int) -> None:
    page = window.exceptions
    for row in range(page.list.count()):
        if page.list.item(row).data(Qt.ItemDataRole.UserRole) == exception_id:
            page.list.setCurrentRow(row)
            return
    raise LookupError(exception_id)


def tray_sheet(shooter: Shooter, states: list[TrayVerdict], menu: list[str]) -> None:
    """One row per tray verdict met: the icon at tray size and large, and the tooltip
    (a popup menu or tooltip cannot be grabbed offscreen, so the sheet draws them)."""
    sheet = QWidget()
    sheet.setStyleSheet("background: white;")
    grid = QGridLayout(sheet)
    grid.setHorizontalSpacing(18)
    grid.setVerticalSpacing(14)
    title = QLabel("Tray icon: one shape and colour per state; the tooltip says what is wrong")
    font = title.font()
    font.setBold(True)
    title.setFont(font)
    grid.addWidget(title, 0, 0, 1, 4)
    for row, verdict in enumerate(states, start=1):
        small, large = QLabel(), QLabel()
        small.setPixmap(level_pixmap(verdict.state.level, 22))
        large.setPixmap(level_pixmap(verdict.state.level, 48))
        name = QLabel(verdict.state.value)
        name.setFont(font)
        tip = QLabel(verdict.tooltip)
        tip.setWordWrap(False)  # tooltips keep their lines; a wrapped label mis-sizes in a grid
        tip.setFrameShape(QFrame.Shape.Box)
        tip.setStyleSheet("background: #ffffe1; color: #1f1f1f; padding: 4px;")
        grid.addWidget(small, row, 0, Qt.AlignmentFlag.AlignTop)
        grid.addWidget(large, row, 1, Qt.AlignmentFlag.AlignTop)
        grid.addWidget(name, row, 2, Qt.AlignmentFlag.AlignTop)
        grid.addWidget(tip, row, 3)
    menu_box = QLabel("<b>Tray menu</b><br>" + "<br>".join(f"&nbsp;&nbsp;{t}" for t in menu))
    menu_box.setFrameShape(QFrame.Shape.Box)
    menu_box.setStyleSheet("padding: 6px;")
    grid.addWidget(menu_box, len(states) + 1, 2, 1, 2)
    sheet.adjustSize()
    sheet.show()
    shooter.shoot(sheet, "tray-states.png")
    sheet.close()


# -- the setup wizard -------------------------------------------------------------------------


def wizard_pages(shooter: Shooter, work: Path, practice_db: Path) -> None:
    """The wizard as practice IT meets it, ending with a real engine started.

    Like a real install, the secrets go to the keyring (a file keyring here,
    shared with the engine it starts) and the engine finds everything through
    ``BRIDGE_HOME``.
    """
    world = DemoWorld(work / "cloud-for-wizard", practice_db=practice_db)  # its cloud only
    home = work / "wizard-home"
    saved_environ = dict(os.environ)
    os.environ.update(
        BRIDGE_HOME=str(home),
        PYTHON_KEYRING_BACKEND="keyrings.alt.file.PlaintextKeyring",
        XDG_DATA_HOME=str(work / "wizard-xdg"),
    )
    keyring.set_keyring(PlaintextKeyring())
    paths = default_paths()
    wizard = SetupWizard(paths, KeyringSecretStore())
    wizard.resize(*WIZARD_SIZE)
    exports = work / "Exports"
    (exports / "ERA").mkdir(parents=True, exist_ok=True)
    (exports / "Claims").mkdir(parents=True, exist_ok=True)
    start = wizard.start_page
    try:
        wizard.show()
        practice = wizard.practice_page
        practice.name.setText("Riverside Dental")
        practice.timezone.setCurrentText("America/Los_Angeles")
        shooter.shoot(wizard, "wizard-1-practice.png")
        wizard.next()

        database = wizard.database_page
        wait_until(lambda: database.driver.findText("SQLite3") >= 0, what="drivers")
        database.driver.setCurrentText("SQLite3")
        database.connection_string.setText(f"Driver={{SQLite3}};Database={world.db}")
        database.test_button.click()
        wait_until(database.isComplete, what="database test")
        shooter.shoot(wizard, "wizard-2-database.png")
        wizard.next()

        cloud = wizard.cloud_page
        cloud.url.setText(world.cloud.url)
        cloud.agent_id.setText(AGENT_ID)
        cloud.token.setText(TOKEN)
        cloud.test_button.click()
        wait_until(lambda: cloud.result.level is Level.OK, what="cloud test")
        shooter.shoot(wizard, "wizard-3-cloud.png")
        wizard.next()

        folders = wizard.folders_page
        folders.add_folder(str(exports / "ERA"), kind="era835")
        folders.add_folder(str(exports / "Claims"), kind="claim")
        shooter.shoot(wizard, "wizard-4-folders.png")
        wizard.next()

        save = wizard.save_page
        save.save_button.click()
        wait_until(lambda: save.outcome.level in (Level.OK, Level.FAIL), 120, "saved")
        shooter.shoot(wizard, "wizard-5-save.png")
        wizard.next()

        start.start_button.click()
        wait_until(lambda: start.result.level not in (None, Level.BUSY), 180, "engine started")
        shooter.shoot(wizard, "wizard-6-start.png")
    finally:
        if start.process is not None:
            start.process.terminate()
            start.process.wait(60)
        wizard.close()
        world.close()
        os.environ.clear()
        os.environ.update(saved_environ)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gui.screenshots", description=__doc__)
    parser.add_argument("--out", type=Path, default=OUT, help="where the PNGs go")
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    parser.add_argument("--only", action="append", default=[], help="only this file")
    args = parser.parse_args(argv)
    app = QApplication(sys.argv[:1])
    app.setFont(QFont("DejaVu Sans", 9))
    shooter = Shooter(args.out, set(args.only))
    with tempfile.TemporaryDirectory(prefix="bridge-screens-") as temp:
        work = args.work or Path(temp)
        work.mkdir(parents=True, exist_ok=True)
        practice = work / "practice.sqlite3"
        if not practice.exists():
            build_practice(practice, size="demo", replace=True)
        try:
            if any(shooter.wanted(n) for n in ("wizard-1-practice.png",)) or not shooter.only:
                wizard_pages(shooter, work, practice)
            panel_wanted = not shooter.only or any(
                n.startswith(("panel-", "tray-")) for n in shooter.only
            )
            if panel_wanted:
                verdicts, menu = panel_states(shooter, work, practice)
                if shooter.wanted("tray-states.png"):
                    tray_sheet(shooter, verdicts, menu)
        finally:
            tasks.shutdown()
    print(f"{len(shooter.written)} screenshot(s) in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
