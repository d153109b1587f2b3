"""The control channel's wire protocol: framing, limits and the key handshake.

Transport: :mod:`multiprocessing.connection` (``Listener``/``Client``), which
gives one well-kept stdlib API over an ``AF_UNIX`` socket on POSIX and a
named pipe (``AF_PIPE``) on Windows, with length-prefixed messages and a
maximum length on receive. Only ``send_bytes``/``recv_bytes`` are used:
never ``send``/``recv``, which would unpickle what a peer sends. Its own
``authkey`` challenge is not used either: in Python 3.11 it is HMAC-MD5,
one-way, and runs inside ``accept()`` with no timeout, so one silent peer
would block every other client. Instead each connection runs the handshake
below on its own thread, with a deadline.

Handshake (mutual; proofs are HMAC-SHA256 with the key from the key file)::

    engine -> client  {"protocol": "bridge-control/1", "nonce": N1}
    client -> engine  {"protocol": "bridge-control/1", "nonce": N2,
                       "proof": HMAC(key, "client|" N1)}
    engine -> client  {"ok": true, "proof": HMAC(key, "server|" N2 "|" N1)}
                   or {"ok": false, "error": {"kind": "auth_failed", ...}} and close

The client checks the engine's proof too, so a process that squats the
address (a named pipe can be created by anyone who gets there first) learns
nothing and is not believed.

Then requests and answers alternate, one at a time, each one JSON object::

    {"op": "status", "args": {...}}
    -> {"ok": true, "result": ...}
    |  {"ok": false, "error": {"kind": "...", "message": "...", "fix": "..."}}

A request is at most :data:`MAX_REQUEST_BYTES`; a bigger one is answered
``too_large`` and the connection closed (its body is never read). An answer
is at most :data:`MAX_RESPONSE_BYTES`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import socket
import sys
from datetime import date, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

PROTOCOL = "bridge-control/1"
MAX_REQUEST_BYTES = 64 * 1024
MAX_RESPONSE_BYTES = 16 * 1024**2
MAX_HANDSHAKE_BYTES = 1024
HANDSHAKE_SECONDS = 5.0
NONCE_BYTES = 32


class FrameTimeout(Exception):
    """Nothing arrived within the deadline."""


def _default(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode(obj: Any) -> bytes:
    """Compact UTF-8 JSON (datetimes as ISO 8601, paths as text)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=_default).encode(
        "utf-8"
    )


def decode(data: bytes) -> Any:
    """Raises ValueError (with the position, never the content) if not JSON."""
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None


def receive(conn: Connection, timeout: float | None, max_bytes: int) -> bytes:
    """One message; raises FrameTimeout, EOFError (peer closed) or OSError
    (``"bad message length"`` when it is above ``max_bytes``)."""
    if timeout is not None and not conn.poll(timeout):
        raise FrameTimeout
    return conn.recv_bytes(max_bytes)


def new_nonce() -> str:
    return secrets.token_hex(NONCE_BYTES)


def client_proof(key: bytes, server_nonce: str) -> str:
    return hmac.new(key, b"client|" + server_nonce.encode("ascii"), hashlib.sha256).hexdigest()


def server_proof(key: bytes, client_nonce: str, server_nonce: str) -> str:
    message = b"server|" + client_nonce.encode("ascii") + b"|" + server_nonce.encode("ascii")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def proofs_match(expected: str, given: object) -> bool:
    return isinstance(given, str) and hmac.compare_digest(expected.encode(), given.encode())


def is_nonce(value: object) -> bool:
    if not isinstance(value, str) or len(value) != 2 * NONCE_BYTES:
        return False
    try:
        bytes.fromhex(value)
    except ValueError:
        return False
    return True


def error_body(kind: str, message: str, fix: str = "") -> dict[str, Any]:
    error: dict[str, Any] = {"kind": kind, "message": message}
    if fix:
        error["fix"] = fix
    return {"ok": False, "error": error}


def interrupt(conn: Connection) -> None:
    """Wake a thread blocked reading ``conn`` (it then sees end of file).

    POSIX: shuts the socket down. Windows: does nothing (a pipe read cannot be
    woken from another thread here); the reader ends at its own timeout.
    """
    if sys.platform == "win32":
        return
    with contextlib.suppress(OSError, ValueError):
        dup = socket.socket(fileno=os.dup(conn.fileno()))
        try:
            dup.shutdown(socket.SHUT_RDWR)
        finally:
            dup.close()
