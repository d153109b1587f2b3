"""Export folders: watch the folders the PMS exports into, upload each new file once.

The data flow, one supervised loop per configured ``[[folders]]`` table::

    watchdog events --EventBatcher (quiet / max delay)--+
    start-up scan, periodic rescan ---------------------+--> FolderWorker
        candidates --stable-file rule (size + mtime twice, no writer)--> ready
        ready --hash (SHA-256, format)--> "sending" --HEAD--> duplicate
                                                    --PUT (streamed, verified)--> uploaded
        uploaded --after: leave | move to archive | delete

Modules: :mod:`~bridge.files.loop` (the engine's loop, :func:`folder_loops`,
:func:`sweep`), :mod:`~bridge.files.folder` (the steps and quarantine),
:mod:`~bridge.files.watcher`, :mod:`~bridge.files.holders` (who holds a file
open), :mod:`~bridge.files.reading` (hashing and the verified stream),
:mod:`~bridge.files.kinds` (835/837/CSV/PDF), :mod:`~bridge.files.patterns`,
:mod:`~bridge.files.after`, :mod:`~bridge.files.records` (local state and
its readers). The operator's guide is docs/export-folders.md.
"""

from __future__ import annotations

from bridge.files.folder import FolderMissingError, FolderWorker
from bridge.files.kinds import cloud_kind, detect_format
from bridge.files.loop import FolderLoop, folder_loops, sweep
from bridge.files.records import STATES, FileView, folder_counts, recent_files
from bridge.files.watcher import EventBatcher, WatchdogWatcher, Watcher

__all__ = [
    "STATES",
    "EventBatcher",
    "FileView",
    "FolderLoop",
    "FolderMissingError",
    "FolderWorker",
    "WatchdogWatcher",
    "Watcher",
    "cloud_kind",
    "detect_format",
    "folder_counts",
    "folder_loops",
    "recent_files",
    "sweep",
]
