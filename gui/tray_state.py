"""What the tray icon shows: one of five states and a tooltip in plain words.

:func:`tray_verdict` is a pure function of the engine's status snapshot
(the truth, re-read by the engine link), the number of exceptions waiting
for the front desk, and what the link knows about the connection. The
states, most urgent first:

``ERROR``      the engine is not running or not reachable; the practice
               database cannot be read; the cloud refused the token or its
               certificate; any component failed for another reason than
               the cloud not answering; or an entity has not been read for
               longer than its red lag threshold (:mod:`gui.health_rules`).
``OFFLINE``    paused by a person (nothing is read or sent until Resume), or
               the cloud cannot be reached (every failure is of kind
               ``cloud``: the uplink, the inbox, the heartbeat; changes wait
               in the queue).
``ATTENTION``  bookings wait for the front desk, or a component warns.
``SYNCING``    the first sync is running, a "Sync now" is running, the queue
               holds a backlog, or an entity is past its amber threshold.
``IN_SYNC``    none of the above.

The headline says what is wrong; further lines say what else is going on
and, for errors, what to do. Nothing here holds personal data: it is built
from component messages, entity names and counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from bridge.status import StatusSnapshot
from gui import wording
from gui.health_rules import BUSY_QUEUE_CHANGES, Level, lag_level
from gui.progress import first_sync_progress

APP_TITLE = "Dental PMS Bridge"
CLOUD_UNREACHABLE_KIND = "cloud"  # the cloud did not answer (auth and TLS have kinds of their own)
KIND_HEADLINES = {  # by bridge.errors.ErrorKind: what went wrong, in a receptionist's words
    "cloud_auth": "the cloud refused this bridge's token",
    "cloud_tls": "the cloud's certificate is not trusted",
    "login_failed": "the practice database refused the login",
    "unreachable": "the practice database cannot be reached",
    "driver_missing": "the database driver (ODBC) is missing",
    "dsn_missing": "the ODBC data source is missing",
    "schema": "the practice database is not what the bridge expects",
    "timeout": "the practice database is too slow to answer",
    "secret": "a password or token is missing from the keyring",
    "config": "the bridge's settings have a problem",
    "state": "the bridge's own database has a problem",
}


class TrayState(Enum):
    IN_SYNC = "in sync"
    SYNCING = "syncing"
    ATTENTION = "needs attention"
    ERROR = "error"
    OFFLINE = "offline or paused"

    @property
    def level(self) -> Level:
        return _LEVELS[self]


_LEVELS = {
    TrayState.IN_SYNC: Level.OK,
    TrayState.SYNCING: Level.BUSY,
    TrayState.ATTENTION: Level.WARN,
    TrayState.ERROR: Level.FAIL,
    TrayState.OFFLINE: Level.IDLE,
}


@dataclass(frozen=True)
class TrayVerdict:
    state: TrayState
    headline: str
    details: tuple[str, ...] = ()

    @property
    def tooltip(self) -> str:
        return "\n".join((f"{APP_TITLE}: {self.headline}", *self.details))


def tray_verdict(
    snapshot: StatusSnapshot | None,
    open_exceptions: int,
    *,
    unreachable: str = "",
    unreachable_fix: str = "",
    sync_running: bool = False,
) -> TrayVerdict:
    """The tray state for this snapshot (None: the link has no snapshot).

    ``unreachable`` is why the engine could not be asked (empty when the
    link works) and ``unreachable_fix`` what to do about it; ``sync_running``
    is true while a "Sync now" waits to finish.
    """
    if snapshot is None:
        return TrayVerdict(
            TrayState.ERROR,
            "not connected to the bridge engine",
            (
                unreachable or "The panel is still connecting.",
                f"What to do: {unreachable_fix}" if unreachable_fix else _START_ENGINE,
            ),
        )
    exceptions_line = _exceptions_line(open_exceptions)
    extra = (exceptions_line,) if exceptions_line else ()
    now = snapshot.taken_at
    if snapshot.engine != "running":
        headline = {
            "crashed": "the bridge engine stopped unexpectedly",
            "stopped": "the bridge engine is stopped",
            "never-started": "the bridge engine has never run on this computer",
        }.get(snapshot.engine, "the bridge engine is not running")
        when = snapshot.heartbeat_at if snapshot.engine == "crashed" else snapshot.stopped_at
        lines = [f"Last seen {wording.ago(when, now)}."] if when else []
        return TrayVerdict(TrayState.ERROR, headline, (*lines, _START_ENGINE, *extra))
    if snapshot.paused:
        return TrayVerdict(
            TrayState.OFFLINE,
            "paused",
            ("Nothing is read from the PMS or sent to the cloud until you press Resume.", *extra),
        )
    failed = [c for c in snapshot.components if c.status == "fail"]
    blocking = [c for c in failed if c.error_kind != CLOUD_UNREACHABLE_KIND]
    if blocking:
        first = blocking[0]
        lines = [first.message]
        if first.fix:
            lines.append(f"What to do: {first.fix}")
        if len(blocking) > 1:
            lines.append(f"{wording.plural(len(blocking) - 1, 'other problem')} in the panel.")
        headline = KIND_HEADLINES.get(
            first.error_kind or "", f"{wording.component_title(first.component).lower()}: problem"
        )
        return TrayVerdict(TrayState.ERROR, headline, (*lines, *extra))
    if failed:  # the cloud cannot be reached: changes wait, nothing is lost
        queue = snapshot.queue.outbox_changes if snapshot.queue else 0
        kept = (
            f"{wording.plural(queue, 'change')} kept safely; they are sent when the cloud is back."
            if queue
            else "Nothing is lost: changes are kept until the cloud is back."
        )
        return TrayVerdict(
            TrayState.OFFLINE,
            "offline: the cloud cannot be reached",
            (failed[0].message, kept, *extra),
        )
    late = [e for e in snapshot.entities if lag_level(e) is Level.FAIL]
    if late:
        names = ", ".join(wording.entity_title(e.entity).lower() for e in late[:3])
        oldest = max(e.lag_seconds or 0.0 for e in late)
        return TrayVerdict(
            TrayState.ERROR,
            f"{names} not read for {wording.duration(oldest)}",
            ("The practice database is read too slowly or not at all; see the panel.", *extra),
        )
    if exceptions_line:
        warn_lines = tuple(c.message for c in snapshot.components if c.status == "warn")[:2]
        return TrayVerdict(
            TrayState.ATTENTION,
            exceptions_line.rstrip(".").lower(),
            ("Open the panel's Exceptions page to decide.", *warn_lines),
        )
    warned = [c for c in snapshot.components if c.status == "warn"]
    if warned:
        first = warned[0]
        lines = [first.message] + ([f"What to do: {first.fix}"] if first.fix else [])
        return TrayVerdict(
            TrayState.ATTENTION, f"{wording.component_title(first.component).lower()}", tuple(lines)
        )
    busy = _busy_line(snapshot, sync_running)
    if busy:
        return TrayVerdict(TrayState.SYNCING, busy[0], busy[1:])
    newest = [e.last_success_at for e in snapshot.entities if e.last_success_at is not None]
    detail = (
        f"Practice database read {wording.ago(max(newest), snapshot.taken_at)}."
        if newest
        else "Waiting for the first read of the practice database."
    )
    return TrayVerdict(TrayState.IN_SYNC, "in sync", (detail,))


_START_ENGINE = (
    "What to do: start the 'Dental PMS Bridge' service (or 'bridge run'); "
    "ask practice IT if it will not start."
)


def _exceptions_line(count: int) -> str:
    if count <= 0:
        return ""
    noun = "booking needs" if count == 1 else "bookings need"
    return f"{count} {noun} the front desk."


def _busy_line(snapshot: StatusSnapshot, sync_running: bool) -> tuple[str, ...]:
    """Headline and details when the bridge is working through something."""
    progress = first_sync_progress(snapshot)
    if progress is not None:
        share = progress.share
        headline = "syncing: first sync" + (f" {share:.0%}" if share is not None else "")
        lines = [f"{wording.plural(progress.rows_done, 'row')} read so far."]
        if progress.not_started:
            lines.append(
                f"{wording.plural(progress.not_started, 'more kind')} of records to start."
            )
        elif progress.eta_seconds is not None:
            lines.append(f"About {wording.duration(progress.eta_seconds)} left.")
        else:
            lines.append("Working out how long it will take.")
        return (headline, *lines)
    if sync_running:
        return ("syncing: Sync now is running", "The panel shows progress.")
    queue = snapshot.queue.outbox_changes if snapshot.queue else 0
    if queue >= BUSY_QUEUE_CHANGES:
        return (
            f"syncing: sending {wording.plural(queue, 'change')} to the cloud",
            "Changes are sent in batches; this clears by itself.",
        )
    behind = [e for e in snapshot.entities if lag_level(e) is Level.WARN]
    if behind:
        slowest = max(behind, key=lambda e: e.lag_seconds or 0.0)
        last = (
            f"Last read {wording.duration(slowest.lag_seconds)} ago."
            if slowest.lag_seconds is not None
            else "Not read yet."
        )
        return (f"syncing: catching up with {wording.entity_title(slowest.entity).lower()}", last)
    return ()
