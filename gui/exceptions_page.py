"""The exceptions inbox: bookings the bridge would not decide alone, cleared in two clicks.

Left, the waiting exceptions, oldest first (the first is selected, so one
click may be enough). Right, the selected one: why it waits, what was asked
for, and one button per decision, worded as the outcome:

* a doubt about the patient: one button per candidate ("Book for <name>,
  born <date>"), "None of these: new patient", "Reject...";
* a slot problem: one button per alternative slot ("Book Tue 1 Dec 10:30"),
  "Reject...";
* an approval: "Approve", "Reject...".

A decision goes to the engine through the link (``resolve_exception``);
buttons are disabled while it runs and the outcome is shown in words.
"Reject..." opens a line for an optional note to the cloud, which must not
name the patient (it is sent as the result's message), and "Reject the
booking" confirms. This page shows personal data
(the practice's own staff, on the practice's computer); none of it is logged.
"""

from __future__ import annotations

import contextlib
import getpass
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from bridge.bookings.exceptions import ExceptionView, Resolution, ResolveOutcome
from gui import wording
from gui.engine_link import EngineLink
from gui.health_rules import Level
from gui.icons import level_icon
from gui.status_badge import StatusBadge

OUTCOME_WORDS = {
    "confirmed": "Booked and confirmed",
    "held": "Kept as a tentative hold",
    "conflict": "Not booked: the slot was taken meanwhile",
    "needs_review": "Still needs a decision",
    "rejected": "Rejected",
}


class ExceptionsPage(QWidget):
    def __init__(self, link: EngineLink, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.link = link
        self.operator = _operator()
        self.list = QListWidget()
        self.list.setIconSize(QSize(20, 20))
        self.list.setMinimumWidth(260)
        self.list.setSpacing(2)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.detail_scroll = scroll
        self.detail, self.detail_layout = self._new_detail()
        self.empty = StatusBadge(icon_size=28)
        self.outcome = StatusBadge()
        splitter = QSplitter()
        splitter.addWidget(self.list)
        splitter.addWidget(scroll)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([300, 560])
        layout = QVBoxLayout(self)
        layout.addWidget(self.outcome)
        layout.addWidget(self.empty)
        layout.addWidget(splitter, 1)
        self.splitter = splitter
        self.action_buttons: list[QPushButton] = []
        self.reject_button: QPushButton | None = None
        self.reject_box = QWidget()
        self.reject_note = QLineEdit()
        self.reject_confirm = QPushButton()
        self._busy = False

        self.list.currentItemChanged.connect(lambda *_: self.show_selected())
        link.exceptions_changed.connect(lambda _: self.show_exceptions())
        link.connection_changed.connect(lambda *_: self.show_exceptions())
        self.show_exceptions()

    # -- list ---------------------------------------------------------------------

    def show_exceptions(self) -> None:
        views = self.link.exceptions
        selected = self.selected_id()
        self.list.blockSignals(True)
        self.list.clear()
        for view in views:
            item = QListWidgetItem(level_icon(Level.WARN), _list_text(view))
            item.setData(Qt.ItemDataRole.UserRole, view.id)
            item.setToolTip(wording.reason_title(view.reason_code))
            self.list.addItem(item)
        ids = [v.id for v in views]
        row = ids.index(selected) if selected in ids else 0
        if views:
            self.list.setCurrentRow(row)
        self.list.blockSignals(False)
        self.splitter.setVisible(bool(views))
        if not self.link.connected:
            self.empty.set_status(Level.IDLE, "Not connected to the bridge engine.",
                                  self.link.unreachable)  # fmt: skip
        elif not self.link.bookings_enabled:
            self.empty.set_status(
                Level.IDLE,
                "Online bookings are not enabled in this bridge.",
                "Nothing waits for the front desk here.",
            )
        elif not views:
            self.empty.set_status(Level.OK, "No bookings are waiting for the front desk.")
        else:
            self.empty.clear()
        self.show_selected()

    def selected_id(self) -> int | None:
        item = self.list.currentItem()
        value = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        return int(value) if value is not None else None

    def selected(self) -> ExceptionView | None:
        wanted = self.selected_id()
        return next((v for v in self.link.exceptions if v.id == wanted), None)

    # -- detail --------------------------------------------------------------------

    def _new_detail(self) -> tuple[QWidget, QVBoxLayout]:
        """A fresh detail pane; the scroll area deletes the previous one at once."""
        detail = QWidget()
        layout = QVBoxLayout(detail)
        layout.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.detail_scroll.setWidget(detail)
        return detail, layout

    def show_selected(self) -> None:
        self.detail, self.detail_layout = self._new_detail()
        self.action_buttons = []
        self.reject_button = None
        view = self.selected()
        if view is None:
            return
        title = QLabel(wording.reason_title(view.reason_code))
        title.setWordWrap(True)
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        font.setBold(True)
        title.setFont(font)
        self.detail_layout.addWidget(title)
        facts = QLabel(_facts(view))
        facts.setWordWrap(True)
        facts.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detail_layout.addWidget(facts)
        self.detail_layout.addWidget(_heading("Decide"))
        for label, resolution, hint in decisions(view, self.operator):
            button = QPushButton(label)
            button.setToolTip(hint)
            button.setStyleSheet("text-align: left; padding: 6px 10px;")
            if resolution is None:  # reject: asks for a note first
                button.clicked.connect(self._show_reject)
                self.reject_button = button
            else:
                button.clicked.connect(lambda _=False, v=view, r=resolution: self.resolve(v.id, r))
            self.detail_layout.addWidget(button)
            self.action_buttons.append(button)
        self.reject_box = self._reject_box(view)
        self.detail_layout.addWidget(self.reject_box)
        self._enable(not self._busy)

    def _reject_box(self, view: ExceptionView) -> QWidget:
        """The note and the confirming button, shown by "Reject..."."""
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 6, 0, 0)
        hint = QLabel(
            "A note for the online booking service (optional). Do not write the patient's "
            "name or details: it is sent to the cloud."
        )
        hint.setWordWrap(True)
        self.reject_note = QLineEdit()
        self.reject_note.setPlaceholderText("e.g. please call the practice to book")
        self.reject_note.setMaxLength(300)
        self.reject_confirm = QPushButton("Reject the booking")
        self.reject_confirm.clicked.connect(lambda: self.reject(view))
        self.action_buttons.append(self.reject_confirm)
        row = QHBoxLayout()
        row.addWidget(self.reject_note, 1)
        row.addWidget(self.reject_confirm)
        layout.addWidget(hint)
        layout.addLayout(row)
        box.setVisible(False)
        return box

    def _show_reject(self) -> None:
        self.reject_box.setVisible(True)
        self.reject_note.setFocus()

    # -- decisions ------------------------------------------------------------------

    def reject(self, view: ExceptionView) -> None:
        note = self.reject_note.text().strip()
        self.resolve(view.id, Resolution("reject", message=note, by=self.operator))

    def resolve(self, exception_id: int, resolution: Resolution) -> None:
        if self._busy:
            return
        self._busy = True
        self._enable(False)
        self.outcome.set_status(Level.BUSY, "Working on it...")

        def done(outcome: ResolveOutcome) -> None:
            self._busy = False
            self._enable(True)
            self.outcome.set_status(*_outcome_words(outcome))

        def failed(error: BaseException) -> None:
            self._busy = False
            self._enable(True)
            fix = getattr(error, "fix", "")
            self.outcome.set_status(Level.FAIL, f"Not done: {error}", fix)

        self.link.call(lambda c: c.resolve_exception(exception_id, resolution), done, failed)

    def _enable(self, enabled: bool) -> None:
        for button in self.action_buttons:
            button.setEnabled(enabled)


def decisions(view: ExceptionView, by: str) -> list[tuple[str, Resolution | None, str]]:
    """The buttons for ``view``: (label, resolution or None for reject, tooltip)."""
    out: list[tuple[str, Resolution | None, str]] = []
    for action in view.actions:
        if action == "choose_patient":
            for candidate in view.candidates:
                out.append(
                    (
                        f"Book for {_person(candidate)}",
                        Resolution("choose_patient", choice=str(candidate["patient_id"]), by=by),
                        "Matches: "
                        + ", ".join(r.replace("_", " ") for r in candidate.get("reasons", [])),
                    )
                )
        elif action == "new_patient":
            out.append(
                (
                    "None of these: book as a new patient",
                    Resolution("new_patient", by=by),
                    "Creates a new patient record in the PMS",
                )
            )
        elif action == "choose_alternative":
            for index, alternative in enumerate(view.alternatives):
                out.append(
                    (
                        f"Book {_slot(alternative)}",
                        Resolution("choose_alternative", choice=str(index), by=by),
                        "Books this free time instead of the one asked for",
                    )
                )
        elif action == "approve":
            out.append(("Approve", Resolution("approve", by=by), "Confirms the booking"))
        elif action == "reject":
            out.append(
                ("Reject...", None, "Declines the request; a hold in the diary is taken out")
            )
    return out


def _operator() -> str:
    try:
        return f"panel:{getpass.getuser()}"[:100]
    except (OSError, KeyError):
        return "panel"


def _heading(text: str) -> QLabel:
    label = QLabel(text)
    font = label.font()
    font.setBold(True)
    label.setFont(font)
    label.setContentsMargins(0, 10, 0, 2)
    return label


def _request(view: ExceptionView) -> Mapping[str, Any]:
    request = view.context.get("request") or {}
    return request if isinstance(request, Mapping) else {}


def _who(view: ExceptionView) -> str:
    patient = _request(view).get("patient") or {}
    if not isinstance(patient, Mapping):
        return ""
    return " ".join(str(patient.get(k) or "") for k in ("first_name", "last_name")).strip()


def _when(text: object) -> str:
    """An ISO time from the request as the practice reads it: ``Tue 1 Dec 2026, 10:00``."""
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return str(text)
    return f"{moment:%a} {moment.day} {moment:%b %Y, %H:%M}"


def _slot(alternative: Mapping[str, Any]) -> str:
    start, end = alternative.get("start"), alternative.get("end")
    text = _when(start)
    with contextlib.suppress(ValueError):
        text += f" to {datetime.fromisoformat(str(end)):%H:%M}"
    return (
        f"{text}, operatory {alternative.get('operatory_id', '?')}, "
        f"provider {alternative.get('provider_id', '?')}"
    )


def _person(candidate: Mapping[str, Any]) -> str:
    name = candidate.get("name") or f"patient {candidate.get('patient_id')}"
    parts = [str(name)]
    if candidate.get("birth_date") and candidate.get("birth_date") != "unknown":
        parts.append(f"born {candidate['birth_date']}")
    if candidate.get("phone"):
        parts.append(str(candidate["phone"]))
    parts.append(f"(patient {candidate.get('patient_id')})")
    return ", ".join(parts[:-1]) + " " + parts[-1]


def _list_text(view: ExceptionView) -> str:
    request = _request(view)
    what = _type_name(view)
    start = request.get("start") or (view.context.get("slot") or {}).get("start")
    line = ", ".join(p for p in (_who(view), what) if p) or f"request {view.item_id}"
    second = _when(start) if start else wording.reason_title(view.reason_code)
    return f"{line}\n{second}"


def _type_name(view: ExceptionView) -> str:
    kind = view.context.get("appointment_type")
    if isinstance(kind, Mapping) and kind.get("name"):
        return str(kind["name"])
    return str(_request(view).get("appointment_type") or "")


def _facts(view: ExceptionView) -> str:
    request = _request(view)
    patient = request.get("patient") or {}
    lines = [f"Waiting since {wording.clock(view.created_at)}."]
    who = _who(view)
    if who:
        born = patient.get("date_of_birth") if isinstance(patient, Mapping) else None
        lines.append(f"Patient asked for: {who}" + (f", born {born}" if born else ""))
        contact = [
            str(patient.get(k)) for k in ("phone", "email") if isinstance(patient, Mapping)
            and patient.get(k)
        ]  # fmt: skip
        if contact:
            lines.append("Contact: " + ", ".join(contact))
    what = _type_name(view)
    if what:
        lines.append(f"Appointment: {what}")
    if request.get("start"):
        lines.append(f"Time asked for: {_when(request['start'])}")
    if request.get("pms_appointment_id"):
        lines.append(f"Appointment in the PMS: {request['pms_appointment_id']}")
    held = (view.context.get("pms_ids") or {}).get("appointment")
    if held:
        lines.append(f"A tentative hold is in the diary (appointment {held}).")
    return "\n".join(lines)


def _outcome_words(outcome: ResolveOutcome) -> tuple[Level, str, str]:
    words = OUTCOME_WORDS.get(outcome.status, outcome.status.replace("_", " ").capitalize())
    ids = ", ".join(f"{k} {v}" for k, v in outcome.pms_ids.items())
    text = f"{words}" + (f" ({ids})." if ids else ".")
    level = {"confirmed": Level.OK, "held": Level.OK, "rejected": Level.OK}.get(
        outcome.status, Level.WARN
    )
    detail = outcome.message if outcome.status not in ("confirmed",) else ""
    return level, text, detail
