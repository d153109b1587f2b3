"""HTTP/1.1 plumbing: the threaded server, the request handler, faults on the wire.

:class:`CloudHTTPServer` serves each connection in its own thread (keep-alive,
so one thread per client connection, not per request) and tracks them, so
:meth:`CloudHTTPServer.close_connections` can end idle keep-alive reads and
long-polls at stop. With TLS, the handshake runs in the connection's
thread, never in the accept loop.

For each ``/v1`` request the handler, in order: finds the route (404/405),
asks the fault plan (``drop_before`` closes the socket without reading the
body; 500/429/503 answer at once), checks the bearer token (401), runs the
route, then applies ``drop_after`` (close without answering: the route's
effect stays) and any delay. An answer sent before the body was read closes
the connection, so the unread body cannot be taken for the next request.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
import socket
import socketserver
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from sandbox.cloud.admin_api import ADMIN_ROUTES
from sandbox.cloud.api import ROUTES
from sandbox.cloud.app import CloudApp
from sandbox.cloud.faults import Decision
from sandbox.cloud.wire import ApiError, BodyReader, Reply, Request, encode_json

log = logging.getLogger("sandbox.cloud")
R = TypeVar("R")

IDLE_TIMEOUT_S = 60.0
"""A connection silent this long (between requests, or mid-body) is closed."""


class CloudHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: CloudApp, tls: ssl.SSLContext | None) -> None:
        self.address_family = (
            socket.AF_INET6 if ipaddress.ip_address(address[0]).version == 6 else socket.AF_INET
        )
        self.app = app
        self.tls = tls
        self._connections: dict[threading.Thread, socket.socket] = {}
        self._connections_lock = threading.Lock()
        super().__init__(address, CloudRequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); not needed here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection, args=(request, client_address), daemon=True
        )
        with self._connections_lock:
            self._connections[thread] = request
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.pop(threading.current_thread(), None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)

    def close_connections(self, timeout: float = 5.0) -> None:
        """Shut every open connection and wait for their threads."""
        with self._connections_lock:
            connections = list(self._connections.items())
        for _, sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread, _ in connections:
            thread.join(timeout)


class CloudRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ReferenceCloud/1"
    timeout = IDLE_TIMEOUT_S
    disable_nagle_algorithm = True  # else headers and body in two writes cost a delayed ACK
    server: CloudHTTPServer

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(self.timeout)
            self.request.do_handshake()  # a failure ends the connection (handle_error)
        super().setup()

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_HEAD = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)

    def _handle(self) -> None:
        app = self.server.app
        url = urlsplit(self.path)
        path = unquote(url.path)
        body = None
        try:
            body = BodyReader(self.rfile, self.headers)
            request = Request(
                method=self.command,
                path=path,
                query=parse_qs(url.query, keep_blank_values=True),
                headers=self.headers,
                body=body,
                client_ip=str(self.client_address[0]),
            )
            if path.startswith("/admin/"):
                reply, decision = self._admin(app, request), Decision()
            else:
                reply, decision = self._v1(app, request)
        except ApiError as error:
            reply, decision = _error_reply(error), Decision()
        except Exception:
            log.exception("%s %s failed", self.command, path)
            reply = _error_reply(ApiError(500, "internal_error", "the cloud failed"))
            decision = Decision()
        if decision.action in ("drop_before", "drop_after"):
            self.close_connection = True
            return
        if decision.delay_ms and app.stopping.wait(decision.delay_ms / 1000):
            self.close_connection = True
            return
        app.count(f"status.{reply.status}")
        self._send(reply, body_finished=body is not None and body.finished)

    def _v1(self, app: CloudApp, request: Request) -> tuple[Reply, Decision]:
        route, match = _find(ROUTES, request.method, request.path)
        decision = app.fault_plan.decide(request.method, request.path)
        if decision.action is not None:
            app.count(f"fault.{decision.action}")
        if decision.delay_ms:
            app.count("fault.delay")
        if decision.action == "drop_before":
            return Reply(0), decision
        if decision.action in ("error", "throttle", "unavailable"):
            return _fault_reply(decision), decision
        agent_id = app.authenticate(request.headers.get("Authorization"))
        if agent_id is None:
            error = ApiError(
                401,
                "unauthorized",
                "Authorization: a valid bearer token is required",
                field="Authorization",
                headers={"WWW-Authenticate": 'Bearer realm="cloud"'},
            )
            return _error_reply(error), decision
        try:
            reply = route(app, agent_id, request, match)
        except ApiError as error:
            reply = _error_reply(error)
        app.count("bytes_received", request.body.bytes_read)
        return reply, decision

    def _admin(self, app: CloudApp, request: Request) -> Reply:
        if not ipaddress.ip_address(request.client_ip.split("%")[0]).is_loopback:
            raise ApiError(403, "forbidden", "the admin API is for loopback clients only")
        route, match = _find(ADMIN_ROUTES, request.method, request.path)
        try:
            return route(app, request, match)
        except ValueError as exc:
            raise ApiError(400, "bad_request", str(exc)) from None

    def _send(self, reply: Reply, *, body_finished: bool) -> None:
        data = b"" if reply.body is None else encode_json(reply.body)
        self.send_response(reply.status)
        if reply.body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if not body_finished:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def _find(
    routes: tuple[tuple[str, re.Pattern[str], R], ...], method: str, path: str
) -> tuple[R, re.Match[str]]:
    allowed = []
    for route_method, pattern, route in routes:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        if route_method == method:
            return route, match
        allowed.append(route_method)
    if allowed:
        raise ApiError(
            405,
            "method_not_allowed",
            f"{method} is not allowed here",
            headers={"Allow": ", ".join(allowed)},
        )
    raise ApiError(404, "not_found", f"no such endpoint: {path}")


def _error_reply(error: ApiError) -> Reply:
    return Reply(error.status, error.body(), error.headers)


def _fault_reply(decision: Decision) -> Reply:
    if decision.action == "error":
        return Reply(500, {"code": "internal_error", "message": "injected fault: server error"})
    status, code = (429, "rate_limited") if decision.action == "throttle" else (503, "unavailable")
    return Reply(
        status,
        {"code": code, "message": f"injected fault: retry after {decision.retry_after} s"},
        {"Retry-After": str(decision.retry_after)},
    )
