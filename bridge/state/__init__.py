"""Local state: the SQLite store, its tables and migrations."""

from bridge.state.store import StateStore, head_revision, open_state

__all__ = ["StateStore", "head_revision", "open_state"]
