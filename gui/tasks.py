"""The GUI's one thread doorway: run work in the background, come back on the main thread.

Every call that may block (the control channel, ODBC, the keyring, the
doctor, the file system) goes through :func:`run_in_background`; the
callbacks it is given run on the Qt main thread, so they (and only they) may
touch widgets. :func:`run_on_main` hands any closure from any thread to the
main thread. Nothing else in ``gui/`` starts a thread or touches one.

Contracts:

* ``run_in_background(task, on_done, on_error)`` returns at once. ``task``
  runs on a worker thread and must not touch a widget or a QObject owned by
  the main thread. Exactly one of ``on_done(result)`` / ``on_error(exc)``
  then runs on the main thread, in completion order relative to other
  closures. Without ``on_error``, a failure is logged (never raised into Qt's
  event loop, which would abort the process).
* ``run_on_main(closure)`` is safe from any thread, including the main
  thread (the closure then runs on the next event-loop turn, never inline).
* Closures still queued when the application quits are dropped; tasks still
  running finish on their worker but their callbacks are not delivered
  (:func:`shutdown`).

The doorway is a :class:`TaskManager` created on first use, which must
happen on the main thread after the ``QApplication`` exists (the app does
this at start-up).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_WORKERS = 4  # the engine link, one user action, the log view and the wizard at once


class TaskManager(QObject):
    """Runs tasks on a small thread pool and delivers closures to the main thread."""

    _closures_pending = Signal()

    def __init__(self, max_workers: int = MAX_WORKERS) -> None:
        super().__init__()
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="gui-task")
        self._closures: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._closed = False
        # Emitted from any thread; the receiver lives on the main thread, so
        # Qt queues the call into the main event loop.
        self._closures_pending.connect(self._run_pending)

    def run_on_main(self, closure: Callable[[], None]) -> None:
        with self._lock:
            if self._closed:
                return
            self._closures.append(closure)
        self._closures_pending.emit()

    def run_in_background(
        self,
        task: Callable[[], T],
        on_done: Callable[[T], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> Future[T]:
        future = self._executor.submit(task)

        def deliver(done: Future[T]) -> None:
            self.run_on_main(lambda: _settle(done, on_done, on_error))

        future.add_done_callback(deliver)
        return future

    def shutdown(self) -> None:
        """Stop delivering callbacks; let running tasks end on their own."""
        with self._lock:
            self._closed = True
            self._closures.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _run_pending(self) -> None:
        with self._lock:
            closures, self._closures = self._closures, []
        for closure in closures:
            try:
                closure()
            except Exception:  # a broken callback must not take the panel down
                log.exception("a GUI callback failed")


def _settle(
    future: Future[T],
    on_done: Callable[[T], None] | None,
    on_error: Callable[[BaseException], None] | None,
) -> None:
    if future.cancelled():
        return
    error = future.exception()
    if error is not None:
        if on_error is not None:
            on_error(error)
        else:
            log.error("background task failed", exc_info=(type(error), error, error.__traceback__))
        return
    if on_done is not None:
        on_done(future.result())


_manager: TaskManager | None = None


def manager() -> TaskManager:
    """The application's task manager, created on first use (main thread only)."""
    global _manager  # noqa: PLW0603 - one doorway per process, like Anki's mw.taskman
    if _manager is None:
        app = QCoreApplication.instance()
        if app is None:
            raise RuntimeError("create the QApplication before using gui.tasks")
        if QThread.currentThread() is not app.thread():
            raise RuntimeError("gui.tasks must first be used on the main thread")
        _manager = TaskManager()
    return _manager


def run_in_background(
    task: Callable[[], T],
    on_done: Callable[[T], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
) -> Future[T]:
    """Run ``task`` on a worker thread; then ``on_done``/``on_error`` on the main thread."""
    return manager().run_in_background(task, on_done, on_error)


def run_on_main(closure: Callable[[], Any]) -> None:
    """Run ``closure`` on the main thread's next event-loop turn (safe from any thread)."""
    manager().run_on_main(closure)


def shutdown() -> None:
    """Stop the doorway (at application exit); a later use creates a fresh one."""
    global _manager  # noqa: PLW0603
    if _manager is not None:
        _manager.shutdown()
        _manager = None
