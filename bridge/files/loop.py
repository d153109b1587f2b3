"""The engine's loop for one export folder, and a one-off pass for the CLI.

:class:`FolderLoop` is one supervised loop per configured folder (Syncthing
style): it starts the folder's :class:`~bridge.files.watcher.Watcher`,
scans the whole folder at start-up and every ``rescan_seconds`` (events
can be lost), and otherwise sleeps until the earliest of: batched watcher
events becoming due (:class:`~bridge.files.watcher.EventBatcher`), a
candidate's next stability check, the end of a cloud backoff, or the next
rescan. :meth:`FolderLoop.request_scan` (repeated requests merge) asks for a
rescan at once. Each pass records the folder's health (component
``folder:<label>``) when it changed, and at least every
:data:`REPORT_SECONDS`.

A folder that is missing or cannot be watched is reported and retried at
each rescan; the loop never ends because of it. :func:`sweep` is the same
work without a watcher, run until nothing is left to settle
(``bridge files scan``).

:func:`folder_loops` builds the engine's loop specs from the settings.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bridge.cloud.client import CloudClient
from bridge.config import Settings
from bridge.config.model import Folder
from bridge.files.folder import FolderMissingError, FolderWorker
from bridge.files.watcher import EventBatcher, WatchdogWatcher, Watcher
from bridge.health import Health, record_health
from bridge.secrets import SecretStore
from bridge.state import StateStore
from bridge.supervisor import LoopSpec

log = logging.getLogger(__name__)

REPORT_SECONDS = 10.0
MIN_WAIT = 0.02
STOP_POLL = 0.5  # seconds between looks at the stop event while idle

WatcherFactory = Callable[[Folder], Watcher]
ClientFactory = Callable[[], CloudClient]


def default_watcher(folder: Folder) -> Watcher:
    return WatchdogWatcher(folder.path, recursive=folder.recursive)


class FolderLoop:
    """One export folder, watched and uploaded (see the module docstring)."""

    def __init__(
        self,
        folder: Folder,
        store: StateStore,
        client_factory: ClientFactory,
        *,
        watcher_factory: WatcherFactory = default_watcher,
        ignored: Sequence[Path] = (),
        quiet_seconds: float | None = None,
        max_delay_seconds: float | None = None,
    ) -> None:
        self.folder = folder
        self.store = store
        self.client_factory = client_factory
        self.watcher_factory = watcher_factory
        self.ignored = tuple(ignored)
        self.wake = threading.Event()
        self.batcher = EventBatcher(self.wake)
        if quiet_seconds is not None:
            self.batcher.quiet = quiet_seconds
        if max_delay_seconds is not None:
            self.batcher.max_delay = max_delay_seconds
        self._scan_requested = threading.Event()
        self.worker: FolderWorker | None = None

    def request_scan(self) -> None:
        """Scan the whole folder as soon as possible (requests merge)."""
        self._scan_requested.set()
        self.wake.set()

    def __call__(self, stop: threading.Event) -> None:
        worker = FolderWorker(
            self.folder, self.store, self.client_factory, ignored=self.ignored, cancel=stop
        )
        self.worker = worker
        worker.start()
        watcher: Watcher | None = None
        last_health: Health | None = None
        next_report = 0.0
        next_scan = 0.0  # at once
        next_work = 0.0
        woken = False
        try:
            while not stop.is_set():
                now = time.monotonic()
                if woken or now >= next_work:
                    if self.folder.watch and watcher is None and now >= next_scan:
                        watcher = self._start_watcher(worker)
                    paths, overflow = self.batcher.take()
                    if overflow or now >= next_scan or self._scan_requested.is_set():
                        self._scan_requested.clear()
                        self._scan(worker)
                        next_scan = time.monotonic() + self.folder.rescan_seconds
                    else:
                        for path in paths:
                            worker.touch(path)
                    worker.check()
                    worker.upload_ready(stop)
                    health = worker.health()
                    if health != last_health or time.monotonic() >= next_report:
                        record_health(self.store, health)
                        last_health, next_report = health, time.monotonic() + REPORT_SECONDS
                    due = [next_scan, next_report]
                    for when in (self.batcher.next_due(), worker.next_due()):
                        if when is not None:
                            due.append(when)
                    next_work = min(due)
                # Sleep on ``wake`` (events, request_scan) until work is due, looking
                # at ``stop`` at least every STOP_POLL seconds.
                wait = min(next_work - time.monotonic(), STOP_POLL)
                woken = self.wake.wait(max(MIN_WAIT, wait))
                self.wake.clear()
        finally:
            if watcher is not None:
                watcher.stop()
            worker.close()

    def _start_watcher(self, worker: FolderWorker) -> Watcher | None:
        watcher = self.watcher_factory(self.folder)
        try:
            watcher.start(self.batcher.add)
        except OSError as exc:
            log.warning(
                "export folder cannot be watched; rescans only until it can",
                extra={"folder": self.folder.label, "error": type(exc).__name__},
            )
            return None
        return watcher

    def _scan(self, worker: FolderWorker) -> None:
        try:
            worker.scan()
        except FolderMissingError:
            log.warning(
                "export folder cannot be listed; trying again at the next rescan",
                extra={"folder": self.folder.label},
            )


def sweep(worker: FolderWorker, stop: threading.Event, timeout: float) -> bool:
    """Scan once, then check and upload until no file is left settling or
    ``timeout`` seconds passed; True if nothing was left waiting.

    Raises :class:`~bridge.files.folder.FolderMissingError`."""
    deadline = time.monotonic() + timeout
    worker.start()
    worker.scan()
    while not stop.is_set():
        worker.check()
        worker.upload_ready(stop)
        due = worker.next_due()
        if due is None:
            return True
        if due >= deadline:
            return False
        stop.wait(max(MIN_WAIT, due - time.monotonic()))
    return False


def folder_loops(
    settings: Settings,
    store: StateStore,
    secret_store: SecretStore,
    *,
    client_factory: ClientFactory | None = None,
) -> list[LoopSpec]:
    """One loop spec per configured folder, named ``folder:<label>``; each
    spec's target is its :class:`FolderLoop` (for :meth:`FolderLoop.request_scan`)."""

    def make_client() -> CloudClient:
        return CloudClient(settings.cloud, secret_store)

    ignored = (store.path.parent,)  # the bridge's own data (state, logs beside it)
    return [
        LoopSpec(
            f"folder:{folder.label}",
            FolderLoop(folder, store, client_factory or make_client, ignored=ignored),
        )
        for folder in settings.folders
    ]
