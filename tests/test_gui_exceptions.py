"""The exceptions inbox against a real engine writing real bookings.

Online booking requests go into the reference cloud's inbox; the engine's
booking pipeline checks them against the demo practice (SQLite3 ODBC) and
writes through the Open Dental API Service stand-in; what it will not
decide alone reaches the panel. Each decision here is two clicks (the
exception in the list, then the button) and its result must arrive at the
cloud. Qt runs offscreen.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton
from pytestqt.qtbot import QtBot

from bridge.bookings.exceptions import ExceptionView
from gui import demo_bookings, tasks
from gui.demo_world import DemoWorld
from gui.engine_link import EngineLink
from gui.exceptions_page import ExceptionsPage
from gui.health_rules import Level
from gui.tray import BridgeTray
from gui.tray_state import TrayState
from sandbox.practice import BuildReport

WAIT_MS = 60_000
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, practice: BuildReport) -> Iterator[DemoWorld]:
    db = Path(practice.connection_string.split("Database=", 1)[1])
    with DemoWorld(tmp_path_factory.mktemp("world"), practice_db=db, bookings=True) as demo:
        demo.start_engine()
        demo.wait_synced()
        for payload in demo_bookings.exception_requests(demo):
            demo_bookings.send(demo, payload)
        yield demo
    tasks.shutdown()


@pytest.fixture
def link(world: DemoWorld, qtbot: QtBot) -> Iterator[EngineLink]:
    engine_link = EngineLink(world.paths, refresh_seconds=1.0, wait_seconds=1.0, retry_seconds=0.3)
    engine_link.start()
    qtbot.waitUntil(lambda: engine_link.connected, timeout=WAIT_MS)
    yield engine_link
    engine_link.stop()


@pytest.fixture
def page(qtbot: QtBot, link: EngineLink) -> ExceptionsPage:
    widget = ExceptionsPage(link)
    widget.resize(900, 600)
    qtbot.addWidget(widget)
    widget.show()
    return widget


def by_reason(link: EngineLink, reason: str) -> ExceptionView:
    return next(v for v in link.exceptions if v.reason_code == reason)


def click_exception(qtbot: QtBot, page: ExceptionsPage, exception_id: int) -> None:
    """Click 1: the exception in the list."""
    for row in range(page.list.count()):
        item = page.list.item(row)
        if item.data(Qt.ItemDataRole.UserRole) == exception_id:
            rect = page.list.visualItemRect(item)
            qtbot.mouseClick(page.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
            assert page.selected_id() == exception_id
            return
    raise AssertionError(f"exception {exception_id} is not listed")


def button(page: ExceptionsPage, starts_with: str) -> QPushButton:
    found = [b for b in page.action_buttons if b.text().startswith(starts_with)]
    assert len(found) == 1, [b.text() for b in page.action_buttons]
    return found[0]


def cloud_result(world: DemoWorld, item_id: str) -> dict[str, Any]:
    with world.admin() as admin:
        results = {r.id: r for r in admin.results()}
    return results[item_id].result if item_id in results else {}


def test_inbox_lists_each_exception_with_reason_and_choices(
    qtbot: QtBot, page: ExceptionsPage, link: EngineLink
) -> None:
    qtbot.waitUntil(lambda: len(link.exceptions) >= 3, timeout=WAIT_MS)
    assert page.list.count() == len(link.exceptions)
    assert page.list.currentRow() == 0  # the oldest is selected: one click may be enough
    assert not page.empty.isVisible()

    approval = by_reason(link, "approval_required")
    click_exception(qtbot, page, approval.id)

    def labels() -> list[str]:
        return [b.text() for b in page.action_buttons if b.isVisible()]

    # a status refresh may rebuild the detail pane under load: wait for it to settle
    qtbot.waitUntil(lambda: labels() == ["Approve", "Reject..."], timeout=WAIT_MS)
    facts = page.detail.findChildren(type(page.empty.text))
    text = "\n".join(label.text() for label in facts)
    assert "This appointment type needs the front desk's approval" in text
    assert "Patient asked for: Quentin Zylberstein, born 1991-04-17" in text
    assert "A tentative hold is in the diary (appointment" in text

    doubt = by_reason(link, "unconfirmed_match")
    click_exception(qtbot, page, doubt.id)
    [candidate] = doubt.candidates
    book_for = button(page, "Book for ")
    assert str(candidate["name"]) in book_for.text()
    assert f"(patient {candidate['patient_id']})" in book_for.text()
    assert button(page, "None of these: book as a new patient")

    taken = by_reason(link, "slot_taken")
    click_exception(qtbot, page, taken.id)
    alternatives = [b for b in page.action_buttons if b.text().startswith("Book ")]
    assert len(alternatives) == len(taken.alternatives) >= 1
    assert "operatory" in alternatives[0].text() and "provider" in alternatives[0].text()


def test_approve_in_two_clicks(
    qtbot: QtBot, page: ExceptionsPage, link: EngineLink, world: DemoWorld
) -> None:
    qtbot.waitUntil(lambda: any(v.reason_code == "approval_required" for v in link.exceptions),
                    timeout=WAIT_MS)  # fmt: skip
    approval = by_reason(link, "approval_required")
    click_exception(qtbot, page, approval.id)  # click 1
    qtbot.mouseClick(button(page, "Approve"), Qt.MouseButton.LeftButton)  # click 2
    assert page.outcome.level is Level.BUSY
    qtbot.waitUntil(lambda: page.outcome.level is not Level.BUSY, timeout=WAIT_MS)
    assert page.outcome.level is Level.OK, page.outcome.text.text()
    assert page.outcome.text.text().startswith("Booked and confirmed")
    qtbot.waitUntil(lambda: approval.id not in {v.id for v in link.exceptions}, timeout=WAIT_MS)
    qtbot.waitUntil(
        lambda: cloud_result(world, approval.item_id).get("status") == "confirmed",
        timeout=WAIT_MS,
    )


def test_choose_the_patient_in_two_clicks(
    qtbot: QtBot, page: ExceptionsPage, link: EngineLink, world: DemoWorld
) -> None:
    qtbot.waitUntil(lambda: any(v.reason_code == "unconfirmed_match" for v in link.exceptions),
                    timeout=WAIT_MS)  # fmt: skip
    doubt = by_reason(link, "unconfirmed_match")
    patient_id = str(doubt.candidates[0]["patient_id"])
    click_exception(qtbot, page, doubt.id)
    qtbot.mouseClick(button(page, "Book for "), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.outcome.level not in (Level.BUSY, None), timeout=WAIT_MS)
    assert page.outcome.level is Level.OK, page.outcome.text.text()
    assert f"patient {patient_id}" in page.outcome.text.text()
    qtbot.waitUntil(lambda: cloud_result(world, doubt.item_id).get("status") == "confirmed",
                    timeout=WAIT_MS)  # fmt: skip
    assert cloud_result(world, doubt.item_id)["pms_ids"]["patient"] == patient_id


def test_choose_an_alternative_slot_in_two_clicks(
    qtbot: QtBot, page: ExceptionsPage, link: EngineLink, world: DemoWorld
) -> None:
    qtbot.waitUntil(lambda: any(v.reason_code == "slot_taken" for v in link.exceptions),
                    timeout=WAIT_MS)  # fmt: skip
    taken = by_reason(link, "slot_taken")
    click_exception(qtbot, page, taken.id)
    first = next(b for b in page.action_buttons if b.text().startswith("Book "))
    qtbot.mouseClick(first, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.outcome.level not in (Level.BUSY, None), timeout=WAIT_MS)
    assert page.outcome.level is Level.OK, page.outcome.text.text()
    qtbot.waitUntil(lambda: cloud_result(world, taken.item_id).get("status") == "confirmed",
                    timeout=WAIT_MS)  # fmt: skip
    appointment = cloud_result(world, taken.item_id)["pms_ids"]["appointment"]
    assert appointment


def test_a_new_exception_notifies_and_reject_sends_the_note(
    qtbot: QtBot, page: ExceptionsPage, link: EngineLink, world: DemoWorld
) -> None:
    tray = BridgeTray(link, lambda page: None, lambda: None)
    try:
        qtbot.waitUntil(lambda: link.snapshot is not None, timeout=WAIT_MS)
        before = {v.id for v in link.exceptions}
        slot = demo_bookings.free_slots(world, "New Patient", 3, days_ahead=10)[-1]
        demo_bookings.send(world, demo_bookings.approval_request(world, slot))
        qtbot.waitUntil(lambda: tray.last_notification is not None, timeout=WAIT_MS)
        title, body = tray.last_notification or ("", "")
        assert title == "A booking needs the front desk"
        assert "needs the front desk's approval" in body
        assert "Zylberstein" not in title + body  # no patient names on a front-desk screen
        assert tray.verdict.state is TrayState.ATTENTION
        assert "need" in tray.toolTip() and "front desk" in tray.toolTip()

        [fresh] = [v for v in link.exceptions if v.id not in before]
        click_exception(qtbot, page, fresh.id)
        qtbot.mouseClick(button(page, "Reject..."), Qt.MouseButton.LeftButton)
        assert page.reject_box.isVisible()
        page.reject_note.setText("please call the practice to book")
        qtbot.mouseClick(page.reject_confirm, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: page.outcome.level not in (Level.BUSY, None), timeout=WAIT_MS)
        assert page.outcome.text.text().startswith("Rejected"), page.outcome.text.text()
        qtbot.waitUntil(lambda: cloud_result(world, fresh.item_id).get("status") == "rejected",
                        timeout=WAIT_MS)  # fmt: skip
        reason = cloud_result(world, fresh.item_id)["reason"]
        assert reason["message"] == "please call the practice to book"
        qtbot.waitUntil(lambda: not link.exceptions, timeout=WAIT_MS)
        assert page.empty.text.text() == "No bookings are waiting for the front desk."
        qtbot.waitUntil(lambda: tray.verdict.state is not TrayState.ATTENTION, timeout=WAIT_MS)
    finally:
        tray.hide()
