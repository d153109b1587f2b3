"""The reference cloud: the Cloud API v1 served over HTTP(S) on loopback.

Used by the bridge's tests, benchmarks and the demo; never shipped. ::

    with ReferenceCloud(tmp / "cloud.sqlite3", tls=True) as cloud:
        cloud.url, cloud.ca_path, cloud.spki_sha256     # where and how to connect
        cloud.enqueue("booking.request", {...})          # the admin API, in process
        cloud.set_fault(Fault("drop_after", count=1, path_prefix="/v1/changes"))
        cloud.mirror("appointment")

:class:`ReferenceCloud` is a :class:`~sandbox.cloud.app.CloudApp` (the state
and the in-process admin API) plus a server thread. ``start()`` binds (port
0 picks a free port) and returns once the socket listens; ``stop()`` wakes
long-polls, closes open connections, joins the threads and closes the
database. It binds only to loopback addresses and refuses any other. State
persists in the SQLite file, so a new instance on the same file carries on
where the last one stopped. One instance starts once.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from sandbox.cloud.app import Clock, CloudApp, utc_now
from sandbox.cloud.handler import CloudHTTPServer
from sandbox.cloud.models import Limits
from sandbox.cloud.tls import TlsMaterial, load_or_create

log = logging.getLogger("sandbox.cloud")

DEFAULT_TOKENS: Mapping[str, str] = {"agent-1": "test-token"}


def loopback_host(host: str) -> str:
    """``host`` as a loopback IP address; ``ValueError`` for anything else."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"refusing to bind to {host!r}: give a loopback IP address") from None
    if not address.is_loopback:
        raise ValueError(f"refusing to bind to {host}: the reference cloud serves loopback only")
    return str(address)


class ReferenceCloud(CloudApp):
    """A reference cloud on ``host:port`` with state in ``db_path`` and files in
    ``files_dir`` (default: ``files/`` beside the database)."""

    def __init__(
        self,
        db_path: Path,
        files_dir: Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens: Mapping[str, str] = DEFAULT_TOKENS,
        tls: bool = False,
        limits: Limits | None = None,
        seed: int | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.host = loopback_host(host)
        self._requested_port = port
        db_path = Path(db_path)
        super().__init__(
            db_path,
            files_dir or db_path.parent / "files",
            tokens=tokens,
            limits=limits,
            seed=seed,
            clock=clock,
        )
        self._tls: TlsMaterial | None = None
        if tls:
            self._tls = load_or_create(db_path.parent / f"{db_path.stem}-tls")
        self._server: CloudHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> ReferenceCloud:
        if self._server is not None or self.stopping.is_set():
            raise RuntimeError("a ReferenceCloud starts once")
        context = self._tls.context if self._tls else None
        self._server = CloudHTTPServer((self.host, self._requested_port), self, context)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"reference-cloud:{self.port}",
            daemon=True,
        )
        self._thread.start()
        log.debug("reference cloud serving at %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and close the database; safe to call twice."""
        self.stopping.set()
        self.inbox_store.wake_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self.close()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``https://127.0.0.1:8443`` (no trailing slash)."""
        scheme = "https" if self._tls else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    @property
    def tls(self) -> bool:
        return self._tls is not None

    @property
    def ca_path(self) -> Path | None:
        """PEM file of the test CA that signed the server certificate (TLS only)."""
        return self._tls.ca_path if self._tls else None

    @property
    def cert_path(self) -> Path | None:
        """PEM file of the server certificate chain (TLS only)."""
        return self._tls.cert_path if self._tls else None

    @property
    def spki_sha256(self) -> str | None:
        """Pin of the server's public key: base64 SHA-256 of its SPKI (TLS only)."""
        return self._tls.spki_sha256 if self._tls else None

    def __enter__(self) -> ReferenceCloud:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
