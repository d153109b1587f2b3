"""Change events for an export folder, batched until quiet.

A :class:`Watcher` reports paths that may have changed; it is only a hint
(events can be lost: network shares, some Windows setups, an overflowing
kernel queue), so the folder loop also scans at start-up and on a timer.
:class:`WatchdogWatcher` is the real one (inotify, ReadDirectoryChangesW,
FSEvents through watchdog); tests may pass any object with the same two
methods, for instance one that drops events on purpose.

Events the bridge causes by reading a file (opened, closed without writing,
attribute reads) are not reported, so reading never triggers more work.

:class:`EventBatcher` merges the reported paths (Syncthing's watch
aggregator, simplified): a path is handed out once it has been quiet for
``quiet`` seconds, or ``max_delay`` seconds after its first event however
busy it stays, so a file written for minutes is still looked at. When more
than ``max_paths`` paths are pending it forgets them and asks for a full
rescan instead, which costs less than thousands of single look-ups.
:meth:`EventBatcher.add` may be called from any thread and sets ``wake``;
the rest is for the folder loop's thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

QUIET_SECONDS = 1.0
MAX_DELAY_SECONDS = 10.0
MAX_PENDING_PATHS = 10_000

Sink = Callable[[str], None]


class Watcher(Protocol):
    def start(self, sink: Sink) -> None:
        """Begin reporting paths (absolute, as text) to ``sink``, from any thread.

        Raises OSError when the folder cannot be watched (missing, no
        permission, too many watches)."""

    def stop(self) -> None:
        """Stop reporting; idempotent."""


class WatchdogWatcher:
    """Events from the OS through watchdog, for one folder."""

    def __init__(self, root: Path, *, recursive: bool) -> None:
        self.root = root
        self.recursive = recursive
        self._observer: object | None = None

    def start(self, sink: Sink) -> None:
        from watchdog.events import (  # noqa: PLC0415 - keeps import of bridge.files light
            FileClosedNoWriteEvent,
            FileOpenedEvent,
            FileSystemEvent,
            FileSystemEventHandler,
        )
        from watchdog.observers import Observer  # noqa: PLC0415

        ignored = (FileOpenedEvent, FileClosedNoWriteEvent)

        class _Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if isinstance(event, ignored):
                    return
                sink(_text(event.src_path))
                dest = getattr(event, "dest_path", "")
                if dest:
                    sink(_text(dest))

        observer = Observer()
        observer.daemon = True
        try:
            observer.schedule(_Handler(), str(self.root), recursive=self.recursive)
            observer.start()
        except OSError:
            raise
        except Exception as exc:  # watchdog reports some failures with its own types
            raise OSError(f"cannot watch {self.root}: {type(exc).__name__}") from exc
        self._observer = observer

    def stop(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()  # type: ignore[attr-defined]
            observer.join(5)  # type: ignore[attr-defined]


def _text(path: str | bytes) -> str:
    return path.decode(errors="surrogateescape") if isinstance(path, bytes) else path


@dataclass
class _Pending:
    first: float
    last: float


@dataclass
class EventBatcher:
    """Paths from events, released when quiet (see the module docstring)."""

    wake: threading.Event
    quiet: float = QUIET_SECONDS
    max_delay: float = MAX_DELAY_SECONDS
    max_paths: int = MAX_PENDING_PATHS
    clock: Callable[[], float] = time.monotonic
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _overflow: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, path: str) -> None:
        """Note an event for ``path``; thread-safe."""
        now = self.clock()
        with self._lock:
            if self._overflow:
                return
            entry = self._pending.get(path)
            if entry is None:
                if len(self._pending) >= self.max_paths:
                    self._pending.clear()
                    self._overflow = True
                else:
                    self._pending[path] = _Pending(now, now)
            else:
                entry.last = now
        self.wake.set()

    def take(self) -> tuple[list[str], bool]:
        """The paths due now, and whether a full rescan was asked for instead."""
        now = self.clock()
        with self._lock:
            if self._overflow:
                self._overflow = False
                return [], True
            due = [
                path
                for path, entry in self._pending.items()
                if now - entry.last >= self.quiet or now - entry.first >= self.max_delay
            ]
            for path in due:
                del self._pending[path]
        return due, False

    def next_due(self) -> float | None:
        """When the next path becomes due (clock time), or None if none is pending."""
        with self._lock:
            if self._overflow:
                return self.clock()
            if not self._pending:
                return None
            return min(
                min(entry.last + self.quiet, entry.first + self.max_delay)
                for entry in self._pending.values()
            )

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)
