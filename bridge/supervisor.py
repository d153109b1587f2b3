"""Runs the engine's loops in threads and restarts any that crash.

One loop per concern (STYLE.md practice 4). A loop is a callable taking the
shared stop event; it returns when the event is set. If it raises, the
supervisor logs the crash (type and message only), reports it through
``on_crash`` and starts it again after a capped, jittered backoff, so one
broken component never takes the engine down. A loop that keeps running for
``healthy_after`` seconds has its backoff reset.

Threading: :meth:`Supervisor.run` blocks the calling thread until ``stop``
is set, then joins every loop (each gets ``join_timeout`` seconds).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bridge.backoff import Backoff

log = logging.getLogger(__name__)

LoopFn = Callable[[threading.Event], None]


@dataclass(frozen=True)
class LoopSpec:
    name: str
    target: LoopFn


class Supervisor:
    def __init__(
        self,
        loops: list[LoopSpec],
        stop: threading.Event,
        *,
        on_crash: Callable[[str, BaseException], None] | None = None,
        backoff_cap: float = 60.0,
        healthy_after: float = 120.0,
        join_timeout: float = 15.0,
    ) -> None:
        self._loops = loops
        self._stop = stop
        self._on_crash = on_crash
        self._backoff_cap = backoff_cap
        self._healthy_after = healthy_after
        self._join_timeout = join_timeout
        self.crash_counts: dict[str, int] = {spec.name: 0 for spec in loops}

    def run(self) -> None:
        threads = [
            threading.Thread(target=self._keep_running, args=(spec,), name=spec.name, daemon=True)
            for spec in self._loops
        ]
        for thread in threads:
            thread.start()
        self._stop.wait()
        for thread in threads:
            thread.join(self._join_timeout)
            if thread.is_alive():
                log.warning("loop did not stop in time", extra={"loop": thread.name})

    def _keep_running(self, spec: LoopSpec) -> None:
        backoff = Backoff(base=1.0, cap=self._backoff_cap)
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                spec.target(self._stop)
                return
            except Exception as exc:  # a crashed loop must never end the engine
                self.crash_counts[spec.name] += 1
                if time.monotonic() - started > self._healthy_after:
                    backoff.reset()
                delay = backoff.next()
                log.error(
                    "loop crashed; restarting",
                    extra={
                        "loop": spec.name,
                        "error": type(exc).__name__,
                        "crashes": self.crash_counts[spec.name],
                        "retry_in_s": round(delay, 1),
                    },
                    exc_info=True,
                )
                if self._on_crash is not None:
                    try:
                        self._on_crash(spec.name, exc)
                    except Exception:
                        log.exception("crash reporter failed", extra={"loop": spec.name})
                self._stop.wait(delay)
