"""The panel's Bookings page: the daily booking report.

For a chosen practice-local day (today by default) it shows what the bridge
did with the cloud's bookings: how many landed automatically, were held for
approval, conflicted, needed a person or were rejected, each with its
reasons in plain words, then the front desk's decisions, collisions found
after booking, new patients and where the requests came from. It reads the
engine's ``booking_report`` through the link (in the background) when the
page is shown, when the day changes, when "Refresh" is pressed and when the
engine reports an exception opened or resolved. Counts and codes only: the
report names no patient.

The widget only shows and asks the link; it never calls the engine itself.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from PySide6.QtCore import QDate
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDateEdit,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from bridge.bookings.report import OUTCOMES
from bridge.control.events import Event, ExceptionOpened, ExceptionResolved
from gui.engine_link import EngineLink

LABELS = {
    "landed_automatically": "Landed automatically",
    "held_for_approval": "Held for approval",
    "conflicted": "Time not free",
    "needed_person": "Needed a person",
    "rejected": "Rejected",
    "waiting": "Not answered yet",
}
REASONS = {
    "approval_required": "approval required",
    "slot_taken": "time taken",
    "provider_busy": "provider busy",
    "outside_hours": "outside hours",
    "blockout": "blocked out",
    "holiday": "practice closed",
    "too_soon": "too soon",
    "outside_window": "too far ahead",
    "no_operatory": "no chair free",
    "ambiguous_patient": "several patients fit",
    "near_match": "patient nearly fits",
    "unconfirmed_match": "patient not confirmed",
    "late_change": "late change",
    "pms_refused": "PMS refused the write",
    "invalid_request": "invalid request",
    "unknown_appointment_type": "unknown appointment type",
    "not_bookable_online": "not bookable online",
    "declined_by_practice": "declined by the practice",
    "double_booked": "double-booked",
}


def reason_words(reasons: dict[str, int]) -> str:
    return ", ".join(
        f"{REASONS.get(code, code.replace('_', ' '))} ({n})" for code, n in reasons.items()
    )


class BookingsPage(QWidget):
    """One day's booking report (see the module docstring)."""

    def __init__(self, link: EngineLink, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.link = link
        self.day = QDateEdit(QDate.currentDate())
        self.day.setCalendarPopup(True)
        self.day.setDisplayFormat("yyyy-MM-dd")
        self.day.setToolTip("The practice-local day")
        self.refresh_button = QPushButton("Refresh")
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.table = QTableWidget(len(OUTCOMES), 3)
        self.table.setHorizontalHeaderLabels(["Outcome", "Bookings", "Why"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.details = QLabel()
        self.details.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(QLabel("Day:"))
        top.addWidget(self.day)
        top.addWidget(self.refresh_button)
        top.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.details)
        self.report: dict[str, Any] | None = None
        self.refresh_button.clicked.connect(self.load)
        self.day.dateChanged.connect(lambda _: self.load())
        link.event_received.connect(self._on_event)
        self.show_report(None)

    def selected_day(self) -> date:
        return date.fromisoformat(self.day.date().toString("yyyy-MM-dd"))

    def load(self) -> None:
        """Ask the engine for the selected day's report (in the background)."""
        wanted = self.selected_day()
        self.refresh_button.setEnabled(False)

        def done(report: dict[str, Any]) -> None:
            self.refresh_button.setEnabled(True)
            if report.get("date") == self.selected_day().isoformat():
                self.show_report(report)

        def failed(error: BaseException) -> None:
            self.refresh_button.setEnabled(True)
            self.summary.setText(f"The report could not be read: {error}")

        self.link.call(lambda client: client.booking_report(wanted), done, failed)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.load()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, ExceptionOpened | ExceptionResolved) and self.isVisible():
            self.load()

    def show_report(self, report: dict[str, Any] | None) -> None:
        self.report = report
        if report is None:
            self.summary.setText("No report read yet.")
            self.details.setText("")
            for row in range(self.table.rowCount()):
                for column in range(3):
                    self.table.setItem(row, column, QTableWidgetItem(""))
            return
        state = "the whole day" if report.get("final") else "so far"
        stamp = datetime.fromisoformat(report["generated_at"]).astimezone().strftime("%H:%M")
        self.summary.setText(
            f"{report['total']} booking request(s), cancellation(s) and move(s) on "
            f"{report['date']} ({state}; as of {stamp})."
        )
        reasons = report.get("reasons", {})
        for row, name in enumerate(OUTCOMES):
            self.table.setItem(row, 0, QTableWidgetItem(LABELS[name]))
            count = QTableWidgetItem(str(report["outcomes"].get(name, 0)))
            self.table.setItem(row, 1, count)
            self.table.setItem(row, 2, QTableWidgetItem(reason_words(reasons.get(name) or {})))
        lines = []
        desk = report.get("front_desk", {})
        if desk.get("exceptions_opened"):
            decided = ", ".join(
                f"{k.replace('_', ' ')} {v}" for k, v in desk["resolutions"].items()
            )
            lines.append(
                f"Front desk: {desk['exceptions_opened']} to decide, {desk['resolved']} decided"
                + (f" ({decided})" if decided else "")
                + f", {desk['open']} still open."
            )
        if report.get("collisions_after_booking"):
            lines.append(f"Double-bookings found afterwards: {report['collisions_after_booking']}.")
        lines.append(f"New patients created: {report.get('new_patients', 0)}.")
        sources = report.get("sources") or {}
        if sources:
            lines.append("Came from: " + ", ".join(f"{k} {v}" for k, v in sources.items()) + ".")
        self.details.setText("\n".join(lines))
