"""The reference cloud's state and its in-process admin API, without HTTP.

:class:`CloudApp` owns the database, the stores, the fault plan, the limits
and the agent tokens, and implements :class:`~sandbox.cloud.models.CloudAdmin`
directly. The HTTP layer (:mod:`sandbox.cloud.handler`) calls into it from
many threads at once; every method here is thread-safe.
"""

from __future__ import annotations

import dataclasses
import hmac
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox.cloud.checksums import ChecksumReader
from sandbox.cloud.db import Database
from sandbox.cloud.faults import FaultPlan
from sandbox.cloud.files import FileStore
from sandbox.cloud.inbox import Inbox
from sandbox.cloud.models import (
    BatchRecord,
    Fault,
    FileRecord,
    HeartbeatRecord,
    InboxRecord,
    Limits,
    LogEntry,
    MirrorRow,
    ResultRecord,
    Stats,
)
from sandbox.cloud.store import ChangeStore

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class CloudApp:
    """The cloud behind the HTTP server. ``tokens`` maps agent id to bearer token."""

    def __init__(
        self,
        db_path: Path,
        files_dir: Path,
        *,
        tokens: Mapping[str, str],
        limits: Limits | None = None,
        seed: int | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = dict(tokens)
        self._limits = limits or Limits()
        self._counters: Counter[str] = Counter()
        self.stopping = threading.Event()
        self.db = Database(db_path)
        try:
            self.changes = ChangeStore(self.db, self.now)
            self.inbox_store = Inbox(self.db, self.now)
            self.file_store = FileStore(self.db, files_dir, self.now)
            self.checksums = ChecksumReader(self.db)
        except BaseException:
            self.db.close()
            raise
        self.fault_plan = FaultPlan(seed)

    def now(self) -> str:
        """The cloud's clock as ISO 8601 with offset (UTC, microseconds)."""
        return self._clock().astimezone(UTC).isoformat(timespec="microseconds")

    # --- used by the HTTP layer -------------------------------------------

    def authenticate(self, authorization: str | None) -> str | None:
        """The agent whose token is in an ``Authorization: Bearer`` header, else None."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        presented = token.strip().encode("utf-8")
        with self._lock:
            tokens = list(self._tokens.items())
        found = None
        for agent_id, expected in tokens:  # compare with every token: constant time per token
            if hmac.compare_digest(presented, expected.encode("utf-8")):
                found = agent_id
        return found

    def count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counters[name] += amount

    def agent(self, agent_id: str | None) -> str:
        """``agent_id``, or the only configured agent when None."""
        if agent_id is not None:
            return agent_id
        with self._lock:
            agents = list(self._tokens)
        if len(agents) != 1:
            raise ValueError("agent_id: required when the cloud has more or fewer than one agent")
        return agents[0]

    # --- CloudAdmin -------------------------------------------------------

    def enqueue(
        self,
        type: str,
        payload: Mapping[str, Any],
        *,
        agent_id: str | None = None,
        item_id: str | None = None,
    ) -> InboxRecord:
        return self.inbox_store.enqueue(self.agent(agent_id), type, payload, item_id)

    def inbox(self, *, agent_id: str | None = None) -> list[InboxRecord]:
        return self.inbox_store.items(agent_id)

    def results(self, *, agent_id: str | None = None) -> list[ResultRecord]:
        return self.inbox_store.results(agent_id)

    def set_fault(self, fault: Fault) -> Fault:
        return self.fault_plan.add(fault)

    def faults(self) -> list[Fault]:
        return self.fault_plan.rules()

    def clear_faults(self, fault_id: str | None = None) -> int:
        return self.fault_plan.clear(fault_id)

    def set_limits(
        self,
        *,
        max_body_bytes: int | None = None,
        max_changes: int | None = None,
        max_file_bytes: int | None = None,
        max_wait_seconds: float | None = None,
    ) -> Limits:
        changes: dict[str, Any] = {
            "max_body_bytes": max_body_bytes,
            "max_changes": max_changes,
            "max_file_bytes": max_file_bytes,
            "max_wait_seconds": max_wait_seconds,
        }
        with self._lock:
            self._limits = dataclasses.replace(
                self._limits, **{k: v for k, v in changes.items() if v is not None}
            )
            return self._limits

    def limits(self) -> Limits:
        with self._lock:
            return self._limits

    def mirror(self, entity: str, *, agent_id: str | None = None) -> dict[str, MirrorRow]:
        return self.changes.mirror(self.agent(agent_id), entity)

    def set_mirror_row(
        self, entity: str, key: str, data: Mapping[str, Any], *, agent_id: str | None = None
    ) -> MirrorRow:
        return self.changes.set_mirror_row(self.agent(agent_id), entity, key, dict(data))

    def drop_mirror_row(self, entity: str, key: str, *, agent_id: str | None = None) -> bool:
        return self.changes.drop_mirror_row(self.agent(agent_id), entity, key)

    def change_log(
        self,
        *,
        agent_id: str | None = None,
        entity: str | None = None,
        key: str | None = None,
        batch_id: str | None = None,
    ) -> list[LogEntry]:
        return self.changes.change_log(agent_id=agent_id, entity=entity, key=key, batch_id=batch_id)

    def batches(self, *, agent_id: str | None = None) -> list[BatchRecord]:
        return self.changes.batches(agent_id)

    def stats(self) -> Stats:
        with self._lock:
            counters = dict(self._counters)
        return Stats(
            **self.changes.totals(),
            requests_by_status={
                k.removeprefix("status."): v for k, v in counters.items() if k.startswith("status.")
            },
            faults_fired={
                k.removeprefix("fault."): v for k, v in counters.items() if k.startswith("fault.")
            },
            uploads_rejected=counters.get("uploads_rejected", 0),
            bytes_received=counters.get("bytes_received", 0),
        )

    def files(self) -> list[FileRecord]:
        return self.file_store.list()

    def heartbeat(self, *, agent_id: str | None = None) -> HeartbeatRecord | None:
        latest = self.changes.heartbeats(self.agent(agent_id), latest=True)
        return latest[0] if latest else None

    def heartbeats(self, *, agent_id: str | None = None) -> list[HeartbeatRecord]:
        return self.changes.heartbeats(self.agent(agent_id))

    def set_token(self, agent_id: str, token: str | None) -> None:
        """Set (or with None revoke) an agent's token; takes effect on the next request."""
        with self._lock:
            if token is None:
                self._tokens.pop(agent_id, None)
            else:
                self._tokens[agent_id] = token

    def reset(self) -> None:
        """Forget everything received (faults and counters too); tokens and limits stay."""
        self.db.reset()
        self.file_store.remove_all()
        self.fault_plan.clear()
        with self._lock:
            self._counters.clear()
        self.inbox_store.wake_all()

    def close(self) -> None:
        self.stopping.set()
        self.inbox_store.wake_all()
        self.db.close()
