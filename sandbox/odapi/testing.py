"""Test helpers for the Open Dental API stand-in: headers and a subprocess runner.

:class:`OdApiProcess` runs ``python -m sandbox.odapi`` in a subprocess (for
the demo and for tests that need the stand-in outside the test process),
waits for its ready file and offers fault injection over ``/admin/faults``.
Most tests run :class:`~sandbox.odapi.server.OdApiServer` in process instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

DEVELOPER_KEY = "test-developer-key"
CUSTOMER_KEY = "test-customer-key"
REPO_ROOT = Path(__file__).resolve().parents[2]


def headers(developer: str = DEVELOPER_KEY, customer: str = CUSTOMER_KEY) -> dict[str, str]:
    """What every request to the API carries."""
    return {
        "Authorization": f"ODFHIR {developer}/{customer}",
        "Content-Type": "application/json",
    }


class OdApiProcess:
    """``python -m sandbox.odapi --db <db>`` in a subprocess; state lives in ``db``."""

    def __init__(
        self,
        db: str | Path,
        folder: Path,
        *,
        keys: Sequence[tuple[str, str]] = ((DEVELOPER_KEY, CUSTOMER_KEY),),
    ) -> None:
        self.db = str(db)
        self.folder = folder
        self.keys = list(keys)
        self.url = ""
        self.api_url = ""
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> OdApiProcess:
        ready = self.folder / "odapi-ready.json"
        ready.unlink(missing_ok=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        args = [
            sys.executable, "-m", "sandbox.odapi", "--db", self.db, "--port", "0",
            "--ready-file", str(ready),
            *(f"--key={developer}/{customer}" for developer, customer in self.keys),
        ]  # fmt: skip
        log_path = self.folder / "odapi.log"
        with log_path.open("ab") as log:
            self._process = subprocess.Popen(
                args, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ)
            )
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                output = log_path.read_text(errors="replace")
                raise RuntimeError(f"the Open Dental API stand-in did not start:\n{output}")
            time.sleep(0.05)
        details = json.loads(ready.read_text(encoding="utf-8"))
        self.url, self.api_url = details["url"], details["api_url"]
        return self

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("not started")
        return self._process.pid

    def add_fault(self, **fault: Any) -> dict[str, Any]:
        """Add a fault (fields of :class:`~sandbox.odapi.faults.Fault`) over the admin API."""
        response = httpx.post(f"{self.url}/admin/faults", json=fault, timeout=5)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def clear_faults(self) -> None:
        httpx.delete(f"{self.url}/admin/faults", timeout=5).raise_for_status()

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

    def __enter__(self) -> OdApiProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
