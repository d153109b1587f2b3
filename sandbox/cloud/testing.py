"""Test helpers for the reference cloud: body builders, clients, a subprocess runner.

The pytest fixtures are in :mod:`sandbox.cloud.fixtures`. :func:`change` and
:func:`batch` build contract bodies; :func:`client_for` makes an httpx client
that checks its ``/v1`` traffic against docs/cloud-api.yaml.
:class:`CloudProcess` runs ``python -m sandbox.cloud`` in a subprocess (for
the demo, benchmarks and tests that need a cloud outside the test process)
and hands out an :class:`~sandbox.cloud.admin_client.AdminClient`.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from sandbox.cloud.admin_client import AdminClient
from sandbox.cloud.models import JsonObject
from sandbox.cloud.spec import SpecChecker

AGENT_ID = "agent-1"
TOKEN = "test-token"  # noqa: S105 - the reference cloud's test token
OBSERVED_AT = "2026-11-23T10:00:00+00:00"
REPO_ROOT = Path(__file__).resolve().parents[2]


def change(
    key: str = "1",
    version: str = "1",
    *,
    entity: str = "patient",
    op: str = "upsert",
    data: JsonObject | None = None,
    observed_at: str = OBSERVED_AT,
) -> JsonObject:
    """One change as the contract's ``Change``; upserts get ``{"key": key}`` as default data."""
    body: JsonObject = {
        "entity": entity,
        "op": op,
        "key": key,
        "version": version,
        "observed_at": observed_at,
    }
    body["data"] = data if data is not None or op == "delete" else {"key": key}
    return body


def batch(
    changes: Sequence[JsonObject],
    *,
    batch_id: str | None = None,
    seq: int = 1,
    agent_id: str = AGENT_ID,
) -> JsonObject:
    """A ``ChangeBatch``; a fresh UUID batch id unless given."""
    return {
        "agent_id": agent_id,
        "batch_id": batch_id or str(uuid.uuid4()),
        "seq": seq,
        "changes": list(changes),
    }


def post_batch(client: httpx.Client, body: JsonObject, **kwargs: Any) -> httpx.Response:
    """POST /v1/changes with ``Idempotency-Key`` set to the batch id."""
    headers = {"Idempotency-Key": str(body["batch_id"]), **kwargs.pop("headers", {})}
    return client.post("/v1/changes", json=body, headers=headers, **kwargs)


def client_for(
    url: str,
    *,
    token: str | None = TOKEN,
    ca_path: Path | None = None,
    checker: SpecChecker | None = None,
    **kwargs: Any,
) -> httpx.Client:
    """An httpx client for a cloud at ``url`` (verifying against ``ca_path`` for
    HTTPS), sending ``token``, checking ``/v1`` traffic with ``checker``."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    verify: ssl.SSLContext | bool = True
    if ca_path is not None:
        verify = ssl.create_default_context(cafile=str(ca_path))
    hooks = {"response": [checker.hook]} if checker is not None else {}
    return httpx.Client(base_url=url, headers=headers, verify=verify, event_hooks=hooks, **kwargs)


class CloudProcess:
    """``python -m sandbox.cloud`` in a subprocess, state under ``folder``."""

    def __init__(
        self,
        folder: Path,
        *,
        tls: bool = False,
        tokens: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.folder = folder
        self.tls = tls
        self.tokens = dict(tokens or {AGENT_ID: TOKEN})
        self.extra_args = list(extra_args)
        self.url = ""
        self.ca_path: Path | None = None
        self.spki_sha256: str | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> CloudProcess:
        ready = self.folder / "ready.json"
        ready.unlink(missing_ok=True)
        args = [
            sys.executable,
            "-m",
            "sandbox.cloud",
            "--db",
            str(self.folder / "cloud.sqlite3"),
            "--port",
            "0",
            "--tls" if self.tls else "--no-tls",
            "--ready-file",
            str(ready),
            *(f"--token={agent}={token}" for agent, token in self.tokens.items()),
            *self.extra_args,
        ]
        self.folder.mkdir(parents=True, exist_ok=True)
        log = (self.folder / "cloud.log").open("ab")
        with log:
            self._process = subprocess.Popen(
                args, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ)
            )
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                output = (self.folder / "cloud.log").read_text(errors="replace")
                raise RuntimeError(f"the reference cloud did not start:\n{output}")
            time.sleep(0.05)
        details = json.loads(ready.read_text(encoding="utf-8"))
        self.url = details["url"]
        self.ca_path = Path(details["ca_path"]) if details["ca_path"] else None
        self.spki_sha256 = details["spki_sha256"]
        return self

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("not started")
        return self._process.pid

    def admin(self) -> AdminClient:
        return AdminClient(self.url, verify=self.ca_path or True)

    def stop(self, timeout: float = 15.0) -> int | None:
        """Ask it to stop (SIGTERM; on Windows, terminate); returns the exit code."""
        if self._process is None:
            return None
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        return self._process.returncode

    def __enter__(self) -> CloudProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
