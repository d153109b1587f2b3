"""The panel's overview: is the bridge healthy, and if not, what to do.

Shows, from one :class:`~bridge.status.StatusSnapshot` (the link's latest):
the PMS and cloud connections; the first sync's progress with rate and ETA
(only while it runs); one row per entity with when it was last read (its lag
judged against the thresholds in :mod:`gui.health_rules`) and how much of
the cloud's copy was verified equal, and when; the queues; and the current
problems, each with what to do. "Sync availability", "Sync patients" and a
"Sync" button per entity ask the engine for a sync through the link; a
button says "Syncing..." until the engine reports that sync finished.
"Sync one record" (:mod:`gui.record_sync`) pushes one named record now.

The widget only shows: it reads the link's values when the link signals a
change and asks the link to act. It never calls the engine itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from bridge.control.results import SyncScheduled
from bridge.status import ComponentStatus, EntityStatus, StatusSnapshot
from gui import wording
from gui.engine_link import ALL, EngineLink
from gui.health_rules import (
    Level,
    cadence_of,
    component_level,
    drift_level,
    lag_level,
    lag_threshold,
)
from gui.icons import level_icon
from gui.progress import first_sync_progress
from gui.record_sync import RecordSyncRow
from gui.status_badge import StatusBadge

RECORDS_TITLE = "Records read from the PMS"
# "availability" recomputes the published free slots (bridge.availability); the rest are
# what they are computed from.
AVAILABILITY = (
    "availability",
    "appointment",
    "schedule",
    "provider",
    "operatory",
    "appointment_type",
)
PATIENTS = ("patient",)
CONNECTIONS = ("pms", "cloud")
_NAME, _LAST_READ, _CLOUD, _ACTION = range(4)


class OverviewPage(QWidget):
    def __init__(self, link: EngineLink, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.link = link

        self.pms = StatusBadge()
        self.cloud = StatusBadge()
        connections = QGroupBox("Connections")
        box = QVBoxLayout(connections)
        box.addWidget(self.pms)
        box.addWidget(self.cloud)

        self.first_sync = QGroupBox("First sync")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress_text = QLabel()
        box = QVBoxLayout(self.first_sync)
        box.addWidget(self.progress)
        box.addWidget(self.progress_text)
        self.first_sync.setVisible(False)

        self.sync_availability = QPushButton("Sync availability")
        self.sync_availability.setToolTip(
            "Read appointments, schedules, providers and chairs again"
        )
        self.sync_patients = QPushButton("Sync patients")
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Records", "Last read", "Cloud copy", ""])
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(_NAME, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(_LAST_READ, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(_CLOUD, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(_ACTION, QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.sync_buttons: dict[str, QPushButton] = {}
        records = QGroupBox(RECORDS_TITLE)
        self.records = records
        box = QVBoxLayout(records)
        row = QHBoxLayout()
        row.addWidget(self.sync_availability)
        row.addWidget(self.sync_patients)
        row.addStretch(1)
        self.sync_note = QLabel()
        row.addWidget(self.sync_note)
        box.addLayout(row)
        box.addWidget(self.table)
        self.record_sync = RecordSyncRow(link)
        box.addWidget(self.record_sync)

        self.queues = QLabel()
        self.queues.setWordWrap(True)
        queues = QGroupBox("Queues")
        QVBoxLayout(queues).addWidget(self.queues)

        self.problems_box = QGroupBox("Current problems")
        self.problems_layout = QVBoxLayout(self.problems_box)
        self.problem_badges: list[StatusBadge] = []

        layout = QVBoxLayout(self)
        layout.addWidget(connections)
        layout.addWidget(self.first_sync)
        layout.addWidget(records, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(queues, 1)
        layout.addLayout(bottom)
        layout.addWidget(self.problems_box)

        self.sync_availability.clicked.connect(
            lambda: self.request_sync(self._present(AVAILABILITY))
        )
        self.sync_patients.clicked.connect(lambda: self.request_sync(self._present(PATIENTS)))
        link.status_changed.connect(lambda _: self.show_snapshot())
        link.syncing_changed.connect(lambda _: self._show_syncing())
        link.connection_changed.connect(lambda *_: self.show_snapshot())
        self.show_snapshot()

    # -- actions -----------------------------------------------------------------

    def request_sync(self, entities: Sequence[str]) -> None:
        """Ask the engine to sync ``entities`` (empty: everything); one per press-burst."""

        def done(scheduled: SyncScheduled | None) -> None:
            if scheduled is not None and scheduled.paused:
                self.sync_note.setText("Paused: the sync runs when you press Resume.")

        def failed(error: BaseException) -> None:
            self.sync_note.setText(f"Sync not started: {error}")

        self.sync_note.setText("")
        self.link.sync_now(tuple(entities), done, failed)
        self._show_syncing()

    def _present(self, wanted: Sequence[str]) -> tuple[str, ...]:
        snapshot = self.link.snapshot
        known = {e.entity for e in snapshot.entities} if snapshot else set()
        return tuple(e for e in wanted if e in known) or tuple(wanted)

    # -- showing -----------------------------------------------------------------

    def show_snapshot(self) -> None:
        """Show the link's latest snapshot; while the engine cannot be reached, the
        last known records and queues stay visible, greyed and dated, and nothing
        claims to be current."""
        snapshot = self.link.snapshot
        connected = self.link.connected
        if snapshot is None or not connected:
            reason = self.link.unreachable or "Not connected to the bridge engine."
            if self.link.unreachable_fix:
                reason += f"\nWhat to do: {self.link.unreachable_fix}"
            self.pms.set_status(Level.IDLE, "Practice database: not known", reason)
            self.cloud.set_status(Level.IDLE, "Cloud: not known")
            self._show_problems([])
        if snapshot is None:
            self.table.setRowCount(0)
            self.queues.setText("Not known while the engine cannot be reached.")
            self.first_sync.setVisible(False)
            return
        when = wording.clock(snapshot.taken_at)
        self.records.setTitle(
            RECORDS_TITLE if connected else f"{RECORDS_TITLE} (last known, {when})"
        )
        self.table.setEnabled(connected)
        if connected:
            self._show_connections(snapshot)
            self._show_problems(
                [
                    c
                    for c in snapshot.components
                    if c.status != "ok" and c.component not in CONNECTIONS
                ]
            )
        self._show_first_sync(snapshot)
        self._show_entities(snapshot)
        self.record_sync.set_entities([e.entity for e in snapshot.entities])
        self._show_queues(snapshot)
        if not connected:
            self.queues.setText(f"Last known ({when}): {self.queues.text()}")
        self._show_syncing()

    def _show_connections(self, snapshot: StatusSnapshot) -> None:
        now = snapshot.taken_at
        for component, badge, title in (
            (snapshot.component("pms"), self.pms, "Practice database"),
            (cloud_connection(snapshot), self.cloud, "Cloud"),
        ):
            if component is None:
                badge.set_status(Level.IDLE, f"{title}: not checked yet")
                continue
            level = component_level(component)
            detail = f"Checked {wording.ago(component.checked_at, now)}"
            if component.status != "ok":
                detail += f"; last fine {wording.ago(component.last_ok_at, now)}"
                if component.fix:
                    detail += f"\nWhat to do: {component.fix}"
            badge.set_status(level, f"{title}: {component.message}", detail)

    def _show_first_sync(self, snapshot: StatusSnapshot) -> None:
        progress = first_sync_progress(snapshot)
        self.first_sync.setVisible(progress is not None)
        if progress is None:
            return
        share = progress.share
        if share is None:  # not every entity counted yet: show work, not a percentage
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(round(1000 * share))
            self.progress.setFormat(f"{share:.0%}")
        counted = "rows counted so far" if share is None else "rows"
        parts = [f"{progress.rows_done:,} of {progress.rows_counted:,} {counted} read"]
        if progress.rate_rows_per_s:
            parts.append(f"{progress.rate_rows_per_s:,.0f} rows/s")
        if progress.eta_seconds is not None:
            parts.append(f"about {wording.duration(progress.eta_seconds)} left")
        names = ", ".join(wording.entity_title(e).lower() for e in progress.reading[:4])
        more = f" and {len(progress.reading) - 4} more" if len(progress.reading) > 4 else ""
        if names:
            parts.append(f"reading {names}{more}")
        if progress.not_started:
            parts.append(f"{wording.plural(progress.not_started, 'more kind')} of records to start")
        self.progress_text.setText(" · ".join(parts))

    def _show_entities(self, snapshot: StatusSnapshot) -> None:
        now = snapshot.taken_at
        entities = sorted(snapshot.entities, key=_entity_order)
        if [self.table.item(r, _NAME).data(Qt.ItemDataRole.UserRole)  # type: ignore[union-attr]
                for r in range(self.table.rowCount())] != [e.entity for e in entities]:  # fmt: skip
            self._rebuild_rows(entities)
        for row, entity in enumerate(entities):
            level = lag_level(entity)
            threshold = lag_threshold(entity.entity)
            if entity.phase == "initial":
                total = f"{entity.rows_total:,}" if entity.rows_total else "?"
                text = f"first sync: {entity.rows_done:,} of {total}"
            else:
                text = wording.ago(entity.last_success_at, now)
            last = self.table.item(row, _LAST_READ)
            assert last is not None
            last.setText(text)
            last.setIcon(level_icon(level))
            last.setToolTip(
                f"{cadence_of(entity.entity)} records: amber after "
                f"{wording.duration(threshold.amber_after.total_seconds())}, red after "
                f"{wording.duration(threshold.red_after.total_seconds())} without a read"
            )
            cloud = self.table.item(row, _CLOUD)
            assert cloud is not None
            verified_ago = (now - entity.verified_at) if entity.verified_at else None
            drift = drift_level(entity, verified_ago)
            if entity.entity in wording.COMPUTED_ENTITIES:
                cloud.setText("published as computed (not checked by reconciliation)")
            elif entity.in_sync_percent is None:
                cloud.setText("not verified yet")
            else:
                cloud.setText(
                    f"{entity.in_sync_percent:.2f}% in sync, verified "
                    f"{wording.clock(entity.verified_at)}".replace("100.00%", "100%")
                )
            cloud.setIcon(level_icon(drift))

    def _rebuild_rows(self, entities: list[EntityStatus]) -> None:
        self.table.setRowCount(len(entities))
        self.sync_buttons.clear()
        for row, entity in enumerate(entities):
            name = QTableWidgetItem(wording.entity_title(entity.entity))
            name.setData(Qt.ItemDataRole.UserRole, entity.entity)
            self.table.setItem(row, _NAME, name)
            self.table.setItem(row, _LAST_READ, QTableWidgetItem())
            self.table.setItem(row, _CLOUD, QTableWidgetItem())
            button = QPushButton("Sync")
            button.setToolTip(f"Read {wording.entity_title(entity.entity).lower()} again now")
            button.clicked.connect(lambda _=False, e=entity.entity: self.request_sync((e,)))
            self.sync_buttons[entity.entity] = button
            self.table.setCellWidget(row, _ACTION, button)
        self.table.resizeRowsToContents()

    def _show_queues(self, snapshot: StatusSnapshot) -> None:
        queue = snapshot.queue
        if queue is None:
            self.queues.setText("Not known.")
            return
        text = (
            f"To the cloud: {wording.plural(queue.outbox_changes, 'change')} waiting "
            f"({wording.size(queue.outbox_bytes)}).   "
            f"From the cloud: {wording.plural(queue.inbox_pending, 'request')} pending"
        )
        if queue.inbox_waiting:
            waiting = ", ".join(f"{n} {t}" for t, n in sorted(queue.inbox_waiting.items()))
            text += f" ({waiting} waiting)"
        self.queues.setText(text + ".")

    def _show_problems(self, components: Sequence[ComponentStatus]) -> None:
        problems = list(components)
        while len(self.problem_badges) < max(len(problems), 1):
            badge = StatusBadge()
            self.problem_badges.append(badge)
            self.problems_layout.addWidget(badge)
        for badge in self.problem_badges:
            badge.clear()
        if not self.link.connected:
            self.problem_badges[0].set_status(
                Level.IDLE, "Not known while the engine cannot be reached."
            )
            return
        if not problems:
            self.problem_badges[0].set_status(Level.OK, "No problems.")
            return
        problems.sort(key=lambda c: component_level(c).rank, reverse=True)
        for badge, component in zip(self.problem_badges, problems, strict=False):
            detail = f"What to do: {component.fix}" if component.fix else ""
            badge.set_status(
                component_level(component),
                f"{wording.component_title(component.component)}: {component.message}",
                detail,
            )

    def _show_syncing(self) -> None:
        syncing = self.link.syncing
        everything = ALL in syncing
        connected = self.link.connected
        for button, group, idle in (
            (self.sync_availability, AVAILABILITY, "Sync availability"),
            (self.sync_patients, PATIENTS, "Sync patients"),
        ):
            present = self._present(group)
            busy = everything or all(e in syncing for e in present)
            button.setEnabled(connected and not busy)
            button.setText(idle.replace("Sync", "Syncing", 1) + "..." if busy else idle)
        for entity, button in self.sync_buttons.items():
            busy = everything or entity in syncing
            button.setEnabled(connected and not busy)
            button.setText("Syncing..." if busy else "Sync")


CLOUD_FACING = ("cloud", "inbox", "heartbeat")


def cloud_connection(snapshot: StatusSnapshot) -> ComponentStatus | None:
    """How the cloud connection stands: the worst of the components that talk to the
    cloud (sending, the inbox, the heartbeat), the latest checked among equals; the
    uplink alone says nothing while it has nothing to send."""
    talking = [c for c in snapshot.components if c.component in CLOUD_FACING]
    if not talking:
        return None
    return max(talking, key=lambda c: (component_level(c).rank, c.checked_at))


_ORDER = {
    name: i for i, name in enumerate(dict.fromkeys(("appointment", "patient", *AVAILABILITY)))
}


def _entity_order(entity: EntityStatus) -> tuple[int, str]:
    return (_ORDER.get(entity.entity, len(_ORDER)), entity.entity)
