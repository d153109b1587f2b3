"""The inbox: commands from the cloud, stored durably, handled once, answered.

* :mod:`bridge.inbox.handlers` - the handler contract, :class:`SyncControl`
  (what the engine offers) and the ``sync.request`` / ``reconcile.request``
  handlers.
* :mod:`bridge.inbox.records` - the ``inbox_item`` table and the cursor.
* :mod:`bridge.inbox.loop` - :class:`InboxLoop`, the supervised loop.
* :mod:`bridge.inbox.summary` - counts and waiting items for status.
"""

from bridge.inbox.handlers import (
    KNOWN_TYPES,
    Handler,
    InvalidRequest,
    ReceivedItem,
    SyncControl,
    control_handlers,
)
from bridge.inbox.loop import InboxLoop
from bridge.inbox.summary import InboxSummary, WaitingItem, read_inbox_summary

__all__ = [
    "KNOWN_TYPES",
    "Handler",
    "InboxLoop",
    "InboxSummary",
    "InvalidRequest",
    "ReceivedItem",
    "SyncControl",
    "WaitingItem",
    "control_handlers",
    "read_inbox_summary",
]
