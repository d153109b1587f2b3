"""The supervisor restarts crashed loops with backoff and stops cleanly."""

from __future__ import annotations

import random
import threading
import time

from bridge.backoff import Backoff
from bridge.supervisor import LoopSpec, Supervisor


def test_backoff_grows_is_capped_and_resets() -> None:
    backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(1))
    delays = [backoff.next() for _ in range(50)]
    assert all(0.1 <= d <= 8.0 for d in delays)
    assert max(delays[:2]) <= 2.0
    assert max(delays[10:]) > 4.0  # grew towards the cap
    backoff.reset()
    assert backoff.next() <= 1.0


def test_crashed_loop_is_restarted_and_reported() -> None:
    stop = threading.Event()
    runs: list[int] = []
    crashes: list[tuple[str, str]] = []

    def flaky(ev: threading.Event) -> None:
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("boom")
        ev.wait()

    def steady(ev: threading.Event) -> None:
        ev.wait()

    sup = Supervisor(
        [LoopSpec("flaky", flaky), LoopSpec("steady", steady)],
        stop,
        on_crash=lambda name, exc: crashes.append((name, type(exc).__name__)),
        backoff_cap=0.05,
    )
    runner = threading.Thread(target=sup.run)
    runner.start()
    deadline = time.monotonic() + 10
    while len(runs) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    runner.join(5)
    assert not runner.is_alive()
    assert len(runs) == 3
    assert crashes == [("flaky", "RuntimeError"), ("flaky", "RuntimeError")]
    assert sup.crash_counts == {"flaky": 2, "steady": 0}
