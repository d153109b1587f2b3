"""Named points where a test can kill the engine, to prove crash safety.

Production code calls :func:`crashpoint` at each step of the outbox path.
It does nothing unless the environment variable ``BRIDGE_CRASHPOINT`` names
that point, as ``name`` (the first time it is reached) or ``name@N`` (the
N-th time). The process then kills itself with SIGKILL (``os._exit`` where
there is no SIGKILL): no ``finally`` block, no flush, no clean shutdown —
the same as a power cut or Task Manager's "End task".

The points, in the order a change passes them:

``detector.staged``       changes staged, local transaction not yet committed
``detector.committed``    changes and watermark committed
``uplink.batch_formed``   a batch formed and recorded, nothing sent yet
``uplink.sent``           the cloud accepted the batch, not yet acknowledged locally
``uplink.acknowledged``   the batch removed from the outbox

and on the inbox path:

``inbox.received``        items and the cursor stored, nothing handled yet
``inbox.handled``         an item handled and its result stored, not yet posted
``inbox.posted``          the cloud took the result, not yet recorded locally
"""

from __future__ import annotations

import os
import signal
import threading

POINTS = (
    "detector.staged",
    "detector.committed",
    "uplink.batch_formed",
    "uplink.sent",
    "uplink.acknowledged",
    "inbox.received",
    "inbox.handled",
    "inbox.posted",
    "booking.patient_created",
    "booking.hold_written",
    "booking.released",
    "booking.confirmed",
    "booking.cancelled",
    "booking.moved",
)

_ENV = "BRIDGE_CRASHPOINT"
_lock = threading.Lock()
_hits: dict[str, int] = {}


def _target() -> tuple[str, int] | None:
    raw = os.environ.get(_ENV, "").strip()
    if not raw:
        return None
    name, _, nth = raw.partition("@")
    return name, int(nth) if nth.isdigit() else 1


def crashpoint(name: str) -> None:
    """Kill this process here if the environment asks for it (see module doc)."""
    target = _target()
    if target is None or target[0] != name:
        return
    with _lock:
        _hits[name] = _hits.get(name, 0) + 1
        reached = _hits[name] >= target[1]
    if reached:
        kill = getattr(signal, "SIGKILL", None)
        if kill is not None:
            os.kill(os.getpid(), kill)
        os._exit(137)
