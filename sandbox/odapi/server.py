"""A stand-in of Open Dental's API Service, served over HTTP on loopback.

Open Dental's API Service answers ``http://<server>:30223/api/v1/`` on the
practice network and writes the practice database. This stand-in answers
the calls the bridge's writer uses, with Open Dental's field names and
documented behaviour, and writes the sample practice (SQLite or MariaDB)::

    with OdApiServer("od.sqlite3", keys=[("devkey", "custkey")]) as api:
        api.api_url                                   # http://127.0.0.1:<port>/api/v1
        api.faults.add(Fault("status", status=500))   # the next request fails

Routes (``/api/v1``): ``GET /definitions``, ``POST /patients``,
``GET /appointments/{AptNum}``, ``POST /appointments``,
``PUT /appointments/{AptNum}``, ``PUT /appointments/{AptNum}/Confirm``,
``PUT /appointments/{AptNum}/Note``, ``GET``/``POST /referrals``,
``GET``/``POST /refattaches`` (:mod:`.referrals`); anything else is 404.

Every ``/api/v1`` request, in order: a fault may decide it
(:mod:`.faults`); ``Authorization: ODFHIR {DeveloperKey}/{CustomerKey}``
must name a configured key pair (else 401); ``Content-Type:
application/json`` is required ("All API requests require" it, else 400);
the body must be JSON; the call runs as one database transaction. Errors
answer a JSON string with the explanation (the documentation says "with
explanation" without a format; the stand-in chose this). Status codes are
the documented ones: 200, 201, 400, 401, 404, plus 500 when the database
itself fails.

``/admin/faults`` (no key needed; loopback only): ``GET`` lists, ``POST``
adds a fault (JSON as :meth:`Fault.from_json`), ``DELETE`` clears them; so
a test can inject faults into a stand-in running in another process.

The server binds loopback addresses only. ``stop()`` wakes delayed
requests (they then end without writing), closes the listener and the
database. Request bodies are never logged.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import socketserver
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sandbox.cloud.server import loopback_host
from sandbox.odapi import appointments, patients, reference, referrals
from sandbox.odapi.database import PracticeDb, Tx
from sandbox.odapi.faults import Fault, FaultPlan
from sandbox.odapi.fields import ApiError
from sandbox.practice.target import MariaDbTarget, SqliteTarget, Target, parse_target

log = logging.getLogger("sandbox.odapi")

API_PREFIX = "/api/v1"
MAX_BODY = 16_800_000  # "the JSON body can have a maximum content length of 16.8M characters"
_AUTH = re.compile(r"ODFHIR ([^/\s]+)/([^/\s]+)\Z")

Query = dict[str, str]
Run = Callable[[Tx, re.Match[str], Query, Any], Any]


@dataclass(frozen=True)
class Route:
    """One documented call: ``run`` returns the JSON payload (None: an empty body).

    ``created`` (resource, key field) makes the answer 201 with a
    ``Location`` header, as POST answers are documented.
    """

    method: str
    pattern: re.Pattern[str]
    run: Run
    created: tuple[str, str] | None = None


def _definitions(tx: Tx, match: re.Match[str], query: Query, body: Any) -> Any:
    return reference.get_definitions(tx, query)


def _post_patient(tx: Tx, match: re.Match[str], query: Query, body: Any) -> Any:
    return patients.create_patient(tx, body)


def _get_appointment(tx: Tx, match: re.Match[str], query: Query, body: Any) -> Any:
    return appointments.get_appointment(tx, int(match[1]))


def _post_appointment(tx: Tx, match: re.Match[str], query: Query, body: Any) -> Any:
    return appointments.create_appointment(tx, body)


def _put_appointment(tx: Tx, match: re.Match[str], query: Query, body: Any) -> Any:
    return appointments.update_appointment(tx, int(match[1]), body)


def _put_confirm(tx: Tx, match: re.Match[str], query: Query, body: Any) -> Any:
    appointments.confirm_appointment(tx, int(match[1]), body)


def _put_note(tx: Tx, match: re.Match[str], query: Query, body: Any) -> Any:
    appointments.append_note(tx, int(match[1]), body)


def _get_referrals(tx: Tx, match: re.Match[str], query: Query, body: Any) -> Any:
    return referrals.get_referrals(tx, query)


def _post_referral(tx: Tx, match: re.Match[str], query: Query, body: Any) -> Any:
    return referrals.create_referral(tx, body)


def _get_refattaches(tx: Tx, match: re.Match[str], query: Query, body: Any) -> Any:
    return referrals.get_refattaches(tx, query)


def _post_refattach(tx: Tx, match: re.Match[str], query: Query, body: Any) -> Any:
    return referrals.create_refattach(tx, body)


_APT = r"/appointments/([0-9]{1,18})"
ROUTES: tuple[Route, ...] = (
    Route("GET", re.compile(r"/definitions\Z"), _definitions),
    Route("POST", re.compile(r"/patients\Z"), _post_patient, ("patients", "PatNum")),
    Route("GET", re.compile(_APT + r"\Z"), _get_appointment),
    Route("POST", re.compile(r"/appointments\Z"), _post_appointment, ("appointments", "AptNum")),
    Route("PUT", re.compile(_APT + r"\Z"), _put_appointment),
    Route("PUT", re.compile(_APT + r"/Confirm\Z"), _put_confirm),
    Route("PUT", re.compile(_APT + r"/Note\Z"), _put_note),
    Route("GET", re.compile(r"/referrals\Z"), _get_referrals),
    Route("POST", re.compile(r"/referrals\Z"), _post_referral, ("referrals", "ReferralNum")),
    Route("GET", re.compile(r"/refattaches\Z"), _get_refattaches),
    Route("POST", re.compile(r"/refattaches\Z"), _post_refattach, ("refattaches", "RefAttachNum")),
)


class OdApiServer:
    """The stand-in on ``host:port`` (0: any free port) over the practice at ``db``."""

    def __init__(
        self,
        db: str | Path | Target,
        *,
        keys: Iterable[tuple[str, str]],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.host = loopback_host(host)
        self.keys = tuple(keys)
        if not self.keys:
            raise ValueError("give at least one (developer key, customer key) pair")
        target = db if isinstance(db, SqliteTarget | MariaDbTarget) else parse_target(str(db))
        self.db = PracticeDb(target)
        self.faults = FaultPlan()
        self.stopping = threading.Event()
        self._requested_port = port
        self._http: _Http | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> OdApiServer:
        if self._http is not None or self.stopping.is_set():
            raise RuntimeError("an OdApiServer starts once")
        self._http = _Http((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"odapi:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the database; safe to call twice."""
        self.stopping.set()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self._thread is not None:
            self._thread.join()
        self.db.close()

    @property
    def port(self) -> int:
        if self._http is None:
            raise RuntimeError("not started")
        return int(self._http.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The base URL a client is configured with: ``<url>/api/v1``."""
        return self.url + API_PREFIX

    def key_accepted(self, developer: str, customer: str) -> bool:
        found = False
        for dev, cust in self.keys:
            same = hmac.compare_digest(dev, developer) & hmac.compare_digest(cust, customer)
            found = found or same
        return found

    def __enter__(self) -> OdApiServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _Http(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: OdApiServer) -> None:
        self.app = app
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host name up (getfqdn); not needed here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = (
            str(self.server_address[0]),
            int(self.server_address[1]),
        )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "OpenDentalAPIService-standin/1"
    timeout = 60
    server: _Http

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)

    def _handle(self) -> None:
        app = self.server.app
        parts = urlsplit(self.path)
        path, query = parts.path, dict(parse_qsl(parts.query))
        try:
            if path.startswith("/admin/"):
                self._admin(path)
                return
            if not path.startswith(API_PREFIX + "/"):
                self._discard_body()
                raise ApiError(404, "Resource not found.")
            fault = app.faults.decide(self.command, path)
            if fault is not None and fault.kind == "drop":
                self._drop()
                return
            if fault is not None and fault.kind == "status":
                self._discard_body()
                raise ApiError(fault.status, f"Stand-in fault: HTTP {fault.status}.")
            if (
                fault is not None
                and fault.kind == "delay"
                and app.stopping.wait(fault.delay_seconds)
            ):
                self._drop()
                return
            self._authorize()
            raw = self._json_body()
            route, match = self._route(path[len(API_PREFIX) :])
            payload = self._run(route, match, query, raw)
            if fault is not None and fault.kind == "drop_after":
                self._drop()
                return
            location = None
            if route.created is not None:
                resource, key = route.created
                location = f"{app.api_url}/{resource}/{payload[key]}"
            self._answer(201 if route.created else 200, payload, location)
        except ApiError as exc:
            self._answer(exc.status, exc.message)

    def _authorize(self) -> None:
        header = self.headers.get("Authorization", "")
        match = _AUTH.match(header.strip())
        if match is None:
            self._discard_body()
            raise ApiError(
                401, "Authorization header must be: ODFHIR {DeveloperKey}/{CustomerKey}."
            )
        if not self.server.app.key_accepted(match[1], match[2]):
            self._discard_body()
            raise ApiError(401, "Invalid developer key or customer key.")
        content_type = self.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            self._discard_body()
            raise ApiError(400, 'Requests require a Content-Type header of "application/json".')

    def _json_body(self) -> Any:
        length = self._length()
        if length > MAX_BODY:
            self.close_connection = True
            raise ApiError(400, "The request body is too large.")
        data = self.rfile.read(length) if length else b""
        if self.command == "GET":
            return None
        try:
            return json.loads(data.decode("utf-8")) if data else None
        except (UnicodeDecodeError, ValueError):
            raise ApiError(400, "The request body is not valid JSON.") from None

    def _route(self, sub_path: str) -> tuple[Route, re.Match[str]]:
        found = False
        for route in ROUTES:
            match = route.pattern.match(sub_path)
            if match is None:
                continue
            found = True
            if route.method == self.command:
                return route, match
        raise ApiError(404, "Method not found." if found else "Resource not found.")

    def _run(self, route: Route, match: re.Match[str], query: Query, raw: Any) -> Any:
        try:
            with self.server.app.db.transaction() as tx:
                return route.run(tx, match, query, raw)
        except ApiError:
            raise
        except Exception:
            log.exception("the stand-in failed on %s %s", self.command, route.pattern.pattern)
            raise ApiError(500, "The database failed; see the stand-in's log.") from None

    def _admin(self, path: str) -> None:
        faults = self.server.app.faults
        if path != "/admin/faults":
            self._discard_body()
            raise ApiError(404, "Resource not found.")
        if self.command == "GET":
            self._discard_body()
            self._answer(200, [f.to_json() for f in faults.rules()])
        elif self.command == "DELETE":
            self._discard_body()
            self._answer(200, {"cleared": faults.clear()})
        elif self.command == "POST":
            length = self._length()
            try:
                fault = Fault.from_json(json.loads(self.rfile.read(length) or b"null"))
            except ValueError as exc:
                raise ApiError(400, str(exc)) from None
            self._answer(201, faults.add(fault).to_json())
        else:
            self._discard_body()
            raise ApiError(404, "Method not found.")

    def _length(self) -> int:
        try:
            return max(0, int(self.headers.get("Content-Length", "0")))
        except ValueError:
            self.close_connection = True
            raise ApiError(400, "Bad Content-Length.") from None

    def _discard_body(self) -> None:
        length = self._length()
        if length > MAX_BODY:
            self.close_connection = True
        elif length:
            self.rfile.read(length)

    def _drop(self) -> None:
        """End the connection without an answer."""
        self.close_connection = True

    def _answer(self, status: int, payload: Any, location: str | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if location is not None:
            self.send_header("Location", location)
        self.end_headers()
        self.wfile.write(data)
