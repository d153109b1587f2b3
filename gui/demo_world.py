"""A whole small world for the panel's tests and screenshots: practice, cloud, engine.

:class:`DemoWorld` puts under one folder (its ``BRIDGE_HOME``) the sample
Open Dental practice (SQLite, read through the real SQLite3 ODBC driver), the
reference cloud (``python -m sandbox.cloud``, a real HTTP server on loopback)
and a real engine (``python -m bridge run``), each in a process of its own,
as in production: the panel connects to that engine through
:class:`~bridge.control.client.ControlClient` and the data folder. Secrets go
to a file keyring inside the folder (Linux test machines have no Secret
Service), stored with ``bridge secret set``.

It needs ``sandbox/`` (not shipped in the installer); the panel itself never
imports this module.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from bridge.config import render_default_config, write_config_file
from bridge.paths import BridgePaths
from bridge.state import open_state
from bridge.status import StatusSnapshot, read_status
from sandbox.cloud.admin_client import AdminClient
from sandbox.cloud.testing import AGENT_ID, TOKEN, CloudProcess
from sandbox.odapi.testing import CUSTOMER_KEY, DEVELOPER_KEY, OdApiProcess
from sandbox.practice import build_practice

ENGINE_STOP_SECONDS = 30.0
APPROVAL_TYPE = "New Patient"  # with bookings: held for the front desk's approval


SLIM_DAYS_BEHIND = 14
SLIM_DAYS_AHEAD = 60
_SLIM = (
    "DELETE FROM appointment WHERE AptDateTime >= '1900-01-01' AND "
    "(AptDateTime < date('now', '-{behind} days') OR AptDateTime > date('now', '+{ahead} days'))",
    "DELETE FROM schedule WHERE SchedDate < date('now', '-{behind} days') "
    "OR SchedDate > date('now', '+{ahead} days')",
    "DELETE FROM scheduleop WHERE ScheduleNum NOT IN (SELECT ScheduleNum FROM schedule)",
    "DELETE FROM procedurelog WHERE ProcDate < date('now', '-{behind} days') "
    "OR ProcDate > date('now', '+{ahead} days')",
    "DELETE FROM claim WHERE DateService < date('now', '-{behind} days')",
    "DELETE FROM claimproc WHERE ClaimNum NOT IN (SELECT ClaimNum FROM claim) "
    "AND ProcNum NOT IN (SELECT ProcNum FROM procedurelog)",
    "DELETE FROM payment WHERE PayDate < date('now', '-{behind} days')",
    "DELETE FROM paysplit WHERE PayNum NOT IN (SELECT PayNum FROM payment)",
)


def slim_practice(db: Path) -> None:
    """Keep two weeks of history and two months ahead (a few thousand rows instead of
    fifty thousand), so that a first sync takes seconds on a busy test machine. Every
    table and every patient stays; only old and far-future diary and ledger rows go."""
    with sqlite3.connect(db) as conn:
        for statement in _SLIM:
            conn.execute(statement.format(behind=SLIM_DAYS_BEHIND, ahead=SLIM_DAYS_AHEAD))
    with sqlite3.connect(db) as conn:
        conn.execute("VACUUM")


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(f"not reached within {timeout:.0f} s: {what or predicate}")


class DemoWorld:
    """Practice + cloud + engine under ``folder`` (see the module docstring).

    ``practice_db`` reuses an already built practice file (copied), which
    saves the build (seconds) when many worlds are made; ``slim`` cuts its
    history (:func:`slim_practice`).
    ``bookings`` adds the Open Dental API Service stand-in writing into the
    practice and configures the bridge to write bookings through it (type
    :data:`APPROVAL_TYPE` held for approval); :mod:`gui.demo_bookings` makes
    the requests. ``first_sync_rows_per_second`` slows the first sync (0:
    full speed) so that its progress can be seen.
    """

    def __init__(
        self,
        folder: Path,
        *,
        practice_db: Path | None = None,
        slim: bool = True,
        bookings: bool = False,
        first_sync_rows_per_second: int = 0,
        extra_config: dict[str, object] | None = None,
    ) -> None:
        self.folder = folder.resolve()
        self.paths = BridgePaths(
            self.folder / "config", self.folder / "data", self.folder / "logs"
        ).ensure()
        self.env = dict(
            os.environ,
            BRIDGE_HOME=str(self.folder),
            PYTHON_KEYRING_BACKEND="keyrings.alt.file.PlaintextKeyring",
            XDG_DATA_HOME=str(self.folder / "xdg"),
        )
        self.db = self.folder / "opendental.sqlite3"
        if practice_db is not None:
            shutil.copy(practice_db, self.db)
        else:
            build_practice(self.db, size="demo", replace=True)
        if slim:
            slim_practice(self.db)
        self.cloud = CloudProcess(self.folder / "cloud").start()
        self._bridge("secret", "set", "cloud-token", "--from-stdin", stdin=TOKEN)
        self.odapi: OdApiProcess | None = None
        writer: dict[str, object] = {}
        if bookings:
            self.odapi = OdApiProcess(self.db, self.folder / "odapi").start()
            self._bridge("secret", "set", "od-developer-key", "--from-stdin", stdin=DEVELOPER_KEY)
            self._bridge("secret", "set", "od-customer-key", "--from-stdin", stdin=CUSTOMER_KEY)
            writer = {
                "writer.kind": "opendental-api",
                "writer.url": self.odapi.api_url,
                "writer.developer_key_secret": "od-developer-key",
                "writer.customer_key_secret": "od-customer-key",
                "bookings.type_policies": {APPROVAL_TYPE: "approve"},
            }
        values: dict[str, object] = {
            "practice.name": "Riverside Dental",
            "practice.timezone": "America/Los_Angeles",
            "pms.profile": "opendental",
            "pms.connection_string": f"Driver={{SQLite3}};Database={self.db}",
            "cloud.url": self.cloud.url,
            "cloud.agent_id": AGENT_ID,
            "engine.poll_interval_seconds": 0.5,
            "engine.first_sync_rows_per_second": first_sync_rows_per_second,
            **writer,
            **(extra_config or {}),
        }
        self.config_path = self.paths.config_file
        self.config_values = values
        self.write_config()
        self.engine: subprocess.Popen[bytes] | None = None

    def write_config(self, **changes: object) -> None:
        """(Re)write the configuration with ``changes`` (dotted keys, as the
        template takes them: ``write_config(**{"engine.poll_interval_seconds": 1})``);
        an engine reads it when it starts."""
        self.config_values = {**self.config_values, **changes}
        text = render_default_config(self.config_values)
        write_config_file(self.config_path, text, overwrite=True)

    def _bridge(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "bridge", *args],
            input=stdin,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    def stop_cloud(self) -> None:
        """Take the cloud away (the bridge goes offline; nothing is lost)."""
        self.cloud.stop()

    def start_cloud(self) -> None:
        """Bring the cloud back at the same address, with the state it had."""
        port = urlsplit(self.cloud.url).port
        self.cloud = CloudProcess(self.folder / "cloud", extra_args=["--port", str(port)]).start()

    def admin(self) -> AdminClient:
        """The reference cloud's admin API (enqueue requests, change tokens...)."""
        return self.cloud.admin()

    # -- the engine -------------------------------------------------------------------

    def start_engine(self) -> DemoWorld:
        """``bridge run`` in its own process; returns once it reports running."""
        output = (self.folder / "engine-console.log").open("ab")
        with output:
            self.engine = subprocess.Popen(
                [sys.executable, "-m", "bridge", "run"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

        def running() -> bool:
            if self.engine is not None and self.engine.poll() is not None:
                raise RuntimeError(f"the demo engine exited with {self.engine.returncode}")
            return self.status().engine == "running"

        wait_for(running, what="the engine runs")
        return self

    def stop_engine(self) -> None:
        """Stop the engine as a service stop does (SIGTERM; it shuts down cleanly)."""
        engine, self.engine = self.engine, None
        if engine is None or engine.poll() is not None:
            return
        engine.send_signal(signal.SIGTERM)
        try:
            engine.wait(ENGINE_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            engine.kill()
            engine.wait()
            raise RuntimeError("the demo engine did not stop in time") from None

    def status(self) -> StatusSnapshot:
        """The engine's status read from its state (for waiting, not for the panel)."""
        store = open_state(self.paths.state_db)
        try:
            return read_status(store)
        finally:
            store.close()

    def wait_synced(self, timeout: float = 60.0) -> None:
        """Until every entity finished its first sync and the queue is empty."""

        def synced() -> bool:
            status = self.status()
            return (
                bool(status.entities)
                and all(e.phase == "delta" for e in status.entities)
                and status.queue is not None
                and status.queue.outbox_changes == 0
            )

        wait_for(synced, timeout, "the first sync finishes and the outbox empties")

    # -- life ---------------------------------------------------------------------------

    def close(self) -> None:
        try:
            self.stop_engine()
        finally:
            self.cloud.stop()
            if self.odapi is not None:
                self.odapi.stop()

    def __enter__(self) -> DemoWorld:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
