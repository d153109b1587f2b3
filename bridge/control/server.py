"""The engine side of the control channel: accepting connections and answering them.

:class:`ControlServer` is one of the engine's supervised loops
(``server(stop)``). It writes a fresh key (:mod:`.endpoint`), listens on the
socket or pipe, and gives each connection its own thread, which runs the key
handshake (:mod:`.protocol`) within :data:`~.protocol.HANDSHAKE_SECONDS` and
then answers requests one at a time through ``dispatch(op, args)``.

Robustness contract:

* a bad request (not JSON, not an object, unknown op, bad arguments) gets a
  specific error answer and the connection stays usable; a request above
  :data:`~.protocol.MAX_REQUEST_BYTES` gets ``too_large`` and the
  connection is closed (its body is never read);
* a wrong key gets ``auth_failed`` and the connection is closed; the
  failure is logged without any key material;
* at most :data:`MAX_CONNECTIONS` clients at once; one more is answered
  ``busy`` and closed;
* nothing a client sends can end the loop: an error in an operation
  becomes an ``internal`` answer (the traceback goes to the masked log);
* when ``stop`` is set the server stops accepting, closes every connection
  (an operation in progress finishes first, up to :data:`JOIN_SECONDS`),
  removes the socket and the key file, and returns.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
import threading
from collections.abc import Callable, Mapping
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any

from bridge.control import errors, protocol
from bridge.control.endpoint import (
    Endpoint,
    EndpointError,
    key_mode,
    prepare,
    remove_key,
    write_key,
)
from bridge.errors import BridgeError

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 16
POLL_SECONDS = 0.5
JOIN_SECONDS = 5.0

Dispatch = Callable[[str, Mapping[str, Any]], Any]


class RequestError(Exception):
    """Raised by an operation to answer ``{"ok": false}`` with ``kind``."""

    def __init__(self, kind: str, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.fix = fix


class ControlServer:
    """Serves one engine's control channel (see the module docstring).

    ``ready`` is set once the key is written and the listener is up.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        dispatch: Dispatch,
        *,
        max_connections: int = MAX_CONNECTIONS,
        handshake_seconds: float = protocol.HANDSHAKE_SECONDS,
    ) -> None:
        self.endpoint = endpoint
        self.dispatch = dispatch
        self.max_connections = max_connections
        self.handshake_seconds = handshake_seconds
        self.ready = threading.Event()
        self._lock = threading.Lock()
        self._connections: dict[threading.Thread, Connection] = {}

    # -- the loop ----------------------------------------------------------------

    def __call__(self, stop: threading.Event) -> None:
        mode = prepare(self.endpoint)
        self._clear_stale_socket()
        key = write_key(self.endpoint, key_mode(mode))
        try:
            listener = Listener(self.endpoint.address, family=self.endpoint.family, backlog=16)
        except BaseException:
            remove_key(self.endpoint, key)
            raise
        done = threading.Event()
        try:
            if self.endpoint.family == "AF_UNIX":
                os.chmod(self.endpoint.address, mode)
            waker = threading.Thread(
                target=self._wake_on_stop, args=(stop, done), name="control-waker", daemon=True
            )
            waker.start()
            self.ready.set()
            log.info("control channel listening", extra={"endpoint": self.endpoint.describe()})
            self._accept_until(stop, listener, key)
        finally:
            done.set()
            self.ready.clear()
            listener.close()  # removes the socket file
            remove_key(self.endpoint, key)
            self._close_all()

    def _accept_until(self, stop: threading.Event, listener: Listener, key: bytes) -> None:
        while not stop.is_set():
            try:
                conn = listener.accept()
            except OSError as exc:  # out of file handles, a reset during accept ...
                if stop.is_set():
                    return
                log.warning("control channel accept failed", extra={"error": type(exc).__name__})
                stop.wait(POLL_SECONDS)
                continue
            if stop.is_set():
                conn.close()
                return
            with self._lock:
                self._reap()
                busy = len(self._connections) >= self.max_connections
                if not busy:
                    thread = threading.Thread(
                        target=self._serve, args=(conn, key, stop), name="control-conn", daemon=True
                    )
                    self._connections[thread] = conn
                    thread.start()
            if busy:
                self._refuse_busy(conn)

    def _wake_on_stop(self, stop: threading.Event, done: threading.Event) -> None:
        while not stop.wait(POLL_SECONDS):
            if done.is_set():
                return
        with contextlib.suppress(OSError):  # accept() returns and sees stop
            Client(self.endpoint.address, family=self.endpoint.family).close()

    def _clear_stale_socket(self) -> None:
        """Remove a socket file a crashed engine left; refuse if something answers."""
        if self.endpoint.family != "AF_UNIX":
            return
        path = Path(self.endpoint.address)
        try:
            info = path.lstat()
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(info.st_mode):
            raise EndpointError(f"{path} exists and is not a socket; remove it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(1.0)
            probe.connect(str(path))
        except OSError:
            path.unlink(missing_ok=True)  # nobody listens: left by a crash
            return
        finally:
            probe.close()
        raise EndpointError(f"another process already listens at {path}")

    # -- one connection ------------------------------------------------------------

    def _serve(self, conn: Connection, key: bytes, stop: threading.Event) -> None:
        try:
            if not self._handshake(conn, key):
                return
            while not stop.is_set():
                try:
                    data = protocol.receive(conn, POLL_SECONDS, protocol.MAX_REQUEST_BYTES)
                except protocol.FrameTimeout:
                    continue
                except EOFError:
                    return
                except OSError as exc:
                    if "bad message length" in str(exc):
                        self._send(conn, self._too_large())
                    return
                if not self._send(conn, self.answer(data)):
                    return
        except Exception:  # never let one connection take anything else down
            log.exception("control connection failed")
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            with self._lock:
                self._connections.pop(threading.current_thread(), None)

    def _handshake(self, conn: Connection, key: bytes) -> bool:
        nonce = protocol.new_nonce()
        if not self._send(conn, protocol.encode({"protocol": protocol.PROTOCOL, "nonce": nonce})):
            return False
        try:
            data = protocol.receive(conn, self.handshake_seconds, protocol.MAX_HANDSHAKE_BYTES)
            hello = protocol.decode(data)
        except (protocol.FrameTimeout, EOFError, OSError, ValueError) as exc:
            log.info("control handshake abandoned", extra={"error": type(exc).__name__})
            return False
        if not isinstance(hello, dict) or hello.get("protocol") != protocol.PROTOCOL:
            self._send(
                conn,
                protocol.encode(
                    protocol.error_body(
                        errors.PROTOCOL,
                        f"the engine speaks {protocol.PROTOCOL}; this client does not",
                        "Use the CLI and panel of the same bridge version as the engine.",
                    )
                ),
            )
            return False
        client_nonce = hello.get("nonce")
        expected = protocol.client_proof(key, nonce)
        if not protocol.is_nonce(client_nonce) or not protocol.proofs_match(
            expected, hello.get("proof")
        ):
            log.warning("control channel: a client presented the wrong key")
            self._send(
                conn,
                protocol.encode(
                    protocol.error_body(
                        errors.AUTH_FAILED,
                        "the engine refused the control key (it changes each time the "
                        "engine starts)",
                        "Read the key again from the control folder; if this repeats, run "
                        "as the engine's account or ask IT for access.",
                    )
                ),
            )
            return False
        proof = protocol.server_proof(key, str(client_nonce), nonce)
        return self._send(conn, protocol.encode({"ok": True, "proof": proof}))

    def answer(self, data: bytes) -> bytes:
        """The encoded answer to one request (never raises)."""
        try:
            request = protocol.decode(data)
        except ValueError as exc:
            return _error(errors.MALFORMED, f"the request is not JSON ({exc})")
        if not isinstance(request, dict):
            return _error(errors.MALFORMED, 'a request must be a JSON object {"op", "args"}')
        op, args = request.get("op"), request.get("args", {})
        if args is None:
            args = {}
        if not isinstance(op, str) or not op:
            return _error(errors.MALFORMED, "op must be a non-empty string")
        if not isinstance(args, dict):
            return _error(errors.MALFORMED, "args must be a JSON object")
        try:
            result = self.dispatch(op, args)
            body = protocol.encode({"ok": True, "result": result})
        except RequestError as exc:
            return _error(exc.kind, exc.message, exc.fix)
        except BridgeError as exc:
            return _error(exc.kind.value, exc.message, exc.fix)
        except Exception as exc:
            log.exception("control operation failed", extra={"op": op[:40]})
            return _error(
                errors.INTERNAL,
                f"the engine failed on '{op[:40]}' ({type(exc).__name__}); see 'bridge logs'",
            )
        if len(body) > protocol.MAX_RESPONSE_BYTES:
            return _error(
                errors.TOO_LARGE,
                f"the answer to '{op}' would be {len(body):,} bytes, above the limit of "
                f"{protocol.MAX_RESPONSE_BYTES:,}; ask for less",
            )
        return body

    @staticmethod
    def _too_large() -> bytes:
        return _error(
            errors.TOO_LARGE,
            f"the request is larger than {protocol.MAX_REQUEST_BYTES:,} bytes; the engine "
            "closed the connection",
        )

    def _refuse_busy(self, conn: Connection) -> None:
        log.warning("control channel busy", extra={"connections": self.max_connections})
        self._send(
            conn,
            _error(
                errors.BUSY,
                f"the engine already serves {self.max_connections} control connections",
            ),
        )
        with contextlib.suppress(OSError):
            conn.close()

    @staticmethod
    def _send(conn: Connection, body: bytes) -> bool:
        try:
            conn.send_bytes(body)
        except (OSError, ValueError):  # the client went away (ValueError: closed)
            return False
        return True

    # -- shutdown --------------------------------------------------------------------

    def _reap(self) -> None:
        for thread in [t for t in self._connections if not t.is_alive()]:
            self._connections.pop(thread, None)

    def connection_count(self) -> int:
        with self._lock:
            self._reap()
            return len(self._connections)

    def _close_all(self) -> None:
        with self._lock:
            connections = dict(self._connections)
        for conn in connections.values():
            protocol.interrupt(conn)
        for thread in connections:
            thread.join(JOIN_SECONDS)


def _error(kind: str, message: str, fix: str = "") -> bytes:
    return protocol.encode(protocol.error_body(kind, message, fix))
