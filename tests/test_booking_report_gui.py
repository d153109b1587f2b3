"""The booking report end to end: a real engine with bookings, the panel, the cloud.

``bridge run`` (a :class:`gui.demo_world.DemoWorld` with the Open Dental API
stand-in as its writer) takes three booking requests from the reference
cloud that each end at the front desk (held for approval, patient not
confirmed, time taken). The panel's Bookings page shows the day's report
through the control channel, and the engine's ``booking-report`` loop puts
the same report in the cloud's mirror as the ``report`` entity.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pytestqt.qtbot import QtBot

from bridge.config import load_settings
from gui import demo_bookings, tasks
from gui.demo_world import DemoWorld
from gui.engine_link import EngineLink
from gui.panel import BOOKINGS, PanelWindow
from sandbox.practice import BuildReport

WAIT_MS = 90_000
pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, practice: BuildReport) -> Iterator[DemoWorld]:
    db = Path(practice.connection_string.split("Database=", 1)[1])
    with DemoWorld(tmp_path_factory.mktemp("report"), practice_db=db, bookings=True) as demo:
        demo.start_engine()
        demo.wait_synced(120)
        yield demo
    tasks.shutdown()


def test_the_bookings_page_and_the_cloud_show_the_days_report(
    qtbot: QtBot, world: DemoWorld
) -> None:
    for payload in demo_bookings.exception_requests(world):
        demo_bookings.send(world, payload)
    link = EngineLink(world.paths, refresh_seconds=1.0, wait_seconds=1.0, retry_seconds=0.3)
    link.start()
    window = PanelWindow(link, world.paths.log_dir, hide_on_close=False)
    qtbot.addWidget(window)
    try:
        window.show_page(BOOKINGS)
        page = window.bookings
        qtbot.waitUntil(lambda: len(link.exceptions) >= 3, timeout=WAIT_MS)
        page.refresh_button.click()
        qtbot.waitUntil(lambda: bool(page.report and page.report["total"] == 3), timeout=WAIT_MS)
        assert page.report is not None
        assert {k: v for k, v in page.report["outcomes"].items() if v} == {
            "held_for_approval": 1,
            "conflicted": 1,
            "needed_person": 1,
        }
        shown = {page.table.item(r, 0).text(): page.table.item(r, 1).text() for r in range(6)}
        assert shown["Held for approval"] == "1" and shown["Landed automatically"] == "0"
        assert page.table.item(1, 2).text() == "approval required (1)"
        assert "Front desk: 3 to decide, 0 decided, 3 still open." in page.details.text()
        assert "Quentin" not in page.details.text() + page.summary.text()
    finally:
        link.stop()
        window.close()

    zone = ZoneInfo(load_settings(world.config_path).practice.timezone)
    key = f"bookings-{datetime.now(zone).date().isoformat()}"

    def in_cloud() -> bool:
        with world.admin() as admin:
            row = admin.mirror("report").get(key)
        return row is not None and row.data is not None and row.data["total"] == 3

    qtbot.waitUntil(in_cloud, timeout=WAIT_MS)
