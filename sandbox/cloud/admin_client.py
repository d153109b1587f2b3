"""Drive a reference cloud in another process through its /admin HTTP API.

:class:`AdminClient` implements :class:`~sandbox.cloud.models.CloudAdmin`
with the same records as the in-process :class:`~sandbox.cloud.server.ReferenceCloud`,
so code written against one works against the other::

    with AdminClient("https://127.0.0.1:8443", verify="var/cloud/cloud-tls/ca.pem") as admin:
        admin.enqueue("sync.request", {"entities": []})
        admin.set_fault(Fault("throttle", count=3, retry_after=2))

An error answer raises :class:`AdminError` (``ValueError`` for 400, so it
matches the in-process API). Thread-safe (one httpx client).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

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
    from_json,
    to_json,
)


class AdminError(RuntimeError):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"admin API answered {status}: {body}")
        self.status = status


class AdminBadRequest(AdminError, ValueError):
    """The cloud refused the arguments (400), as the in-process API raises ValueError."""


class AdminClient:
    """``base_url`` is the cloud's URL (as printed by ``sandbox cloud``)."""

    def __init__(
        self,
        base_url: str,
        *,
        verify: str | Path | bool | ssl.SSLContext = True,
        timeout: float = 30.0,
    ) -> None:
        if isinstance(verify, str | Path):
            verify = ssl.create_default_context(cafile=str(verify))
        self._http = httpx.Client(base_url=base_url.rstrip("/"), verify=verify, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: Mapping[str, str | None] | None = None,
    ) -> Any:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        response = self._http.request(method, f"/admin/{path}", json=json, params=query)
        if response.status_code == 400:
            raise AdminBadRequest(response.status_code, response.text)
        if response.status_code >= 300:
            raise AdminError(response.status_code, response.text)
        return response.json()

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "health")
        return result

    def enqueue(
        self,
        type: str,
        payload: Mapping[str, Any],
        *,
        agent_id: str | None = None,
        item_id: str | None = None,
    ) -> InboxRecord:
        body = {"type": type, "payload": dict(payload), "agent_id": agent_id, "id": item_id}
        return from_json(InboxRecord, self._call("POST", "inbox", json=body))

    def inbox(self, *, agent_id: str | None = None) -> list[InboxRecord]:
        items = self._call("GET", "inbox", params={"agent_id": agent_id})["items"]
        return [from_json(InboxRecord, item) for item in items]

    def results(self, *, agent_id: str | None = None) -> list[ResultRecord]:
        results = self._call("GET", "results", params={"agent_id": agent_id})["results"]
        return [from_json(ResultRecord, r) for r in results]

    def set_fault(self, fault: Fault) -> Fault:
        return from_json(Fault, self._call("POST", "faults", json=to_json(fault)))

    def faults(self) -> list[Fault]:
        return [from_json(Fault, f) for f in self._call("GET", "faults")["faults"]]

    def clear_faults(self, fault_id: str | None = None) -> int:
        path = "faults" if fault_id is None else f"faults/{fault_id}"
        cleared: int = self._call("DELETE", path)["cleared"]
        return cleared

    def set_limits(
        self,
        *,
        max_body_bytes: int | None = None,
        max_changes: int | None = None,
        max_file_bytes: int | None = None,
        max_wait_seconds: float | None = None,
    ) -> Limits:
        changes = {
            "max_body_bytes": max_body_bytes,
            "max_changes": max_changes,
            "max_file_bytes": max_file_bytes,
            "max_wait_seconds": max_wait_seconds,
        }
        body = {k: v for k, v in changes.items() if v is not None}
        return from_json(Limits, self._call("PUT", "limits", json=body))

    def limits(self) -> Limits:
        return from_json(Limits, self._call("GET", "limits"))

    def mirror(self, entity: str, *, agent_id: str | None = None) -> dict[str, MirrorRow]:
        rows = self._call("GET", f"mirror/{entity}", params={"agent_id": agent_id})["rows"]
        return {key: from_json(MirrorRow, row) for key, row in rows.items()}

    def set_mirror_row(
        self, entity: str, key: str, data: Mapping[str, Any], *, agent_id: str | None = None
    ) -> MirrorRow:
        body = {"data": dict(data), "agent_id": agent_id}
        return from_json(
            MirrorRow, self._call("PUT", f"mirror/{_segment(entity)}/{_segment(key)}", json=body)
        )

    def drop_mirror_row(self, entity: str, key: str, *, agent_id: str | None = None) -> bool:
        path = f"mirror/{_segment(entity)}/{_segment(key)}"
        dropped: bool = self._call("DELETE", path, params={"agent_id": agent_id})["dropped"]
        return dropped

    def change_log(
        self,
        *,
        agent_id: str | None = None,
        entity: str | None = None,
        key: str | None = None,
        batch_id: str | None = None,
    ) -> list[LogEntry]:
        params = {"agent_id": agent_id, "entity": entity, "key": key, "batch_id": batch_id}
        return [
            from_json(LogEntry, e) for e in self._call("GET", "changes", params=params)["changes"]
        ]

    def batches(self, *, agent_id: str | None = None) -> list[BatchRecord]:
        batches = self._call("GET", "batches", params={"agent_id": agent_id})["batches"]
        return [from_json(BatchRecord, b) for b in batches]

    def stats(self) -> Stats:
        return from_json(Stats, self._call("GET", "stats"))

    def files(self) -> list[FileRecord]:
        return [from_json(FileRecord, f) for f in self._call("GET", "files")["files"]]

    def heartbeat(self, *, agent_id: str | None = None) -> HeartbeatRecord | None:
        try:
            return from_json(
                HeartbeatRecord, self._call("GET", "heartbeat", params={"agent_id": agent_id})
            )
        except AdminError as error:
            if error.status == 404:
                return None
            raise

    def heartbeats(self, *, agent_id: str | None = None) -> list[HeartbeatRecord]:
        records = self._call("GET", "heartbeats", params={"agent_id": agent_id})["heartbeats"]
        return [from_json(HeartbeatRecord, h) for h in records]

    def set_token(self, agent_id: str, token: str | None) -> None:
        if token is None:
            self._call("DELETE", f"tokens/{agent_id}")
        else:
            self._call("PUT", f"tokens/{agent_id}", json={"token": token})

    def reset(self) -> None:
        self._call("POST", "reset")


def _segment(text: str) -> str:
    return quote(text, safe="")
