"""Where the control channel lives: the socket (or pipe) address and the key file.

Everything derives from the folder that holds the engine's state database
(the bridge's data folder), so the engine and every client of the same
installation agree without configuration:

* the folder ``<data>/control`` holds the key file ``engine.key`` and, on
  POSIX, the socket ``engine.sock``;
* POSIX: an ``AF_UNIX`` socket. Its path must fit ``sun_path`` (about 100
  bytes); a longer one is replaced by ``/tmp/dental-pms-bridge-<uid>/<hash>.sock``
  (a folder the engine creates mode 0700 and refuses to use if another user
  owns it or it is open to others);
* Windows: the named pipe ``\\\\.\\pipe\\dental-pms-bridge-<hash>`` (a pipe is
  local to the machine: the ``\\\\.\\`` prefix never names a remote host).

Who may connect (POSIX): the engine creates ``control`` mode 0700, the key
0600 and the socket 0600: only the engine's account. To let a second account
(the receptionist's panel) in, give the folder to a group
(``chgrp operators control && chmod 0750 control``): the engine then keeps
those group bits and makes the key 0640 and the socket 0660. It always
strips access for others.

Who may connect (Windows): the key file inherits the ACL of the data folder
(``C:\\ProgramData\\DentalPmsBridge\\data``), where local Users may read by
default, and Python's pipe server uses the default pipe ACL, which gives
write access only to LocalSystem, Administrators and the pipe's owner. So
with the engine as a LocalSystem service a receptionist's panel cannot open
the pipe, and if it could, reading the key would be the whole check. The
installer must therefore put an explicit ACL on ``data\\control`` (SYSTEM,
Administrators and a "DentalPmsBridge Operators" group, nothing for Users);
see docs/control-channel.md. Anyone who can read the key can pause the
bridge and resolve exceptions (which write to the diary).

The key is 32 random bytes (hex), written atomically (temporary file with
owner-only mode, fsync, rename, fsync of the folder) each time the engine
starts, so a key read before a restart stops working after it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bridge.control.errors import ControlAuthError, EngineNotRunning

Family = Literal["AF_UNIX", "AF_PIPE"]

CONTROL_DIR_NAME = "control"
KEY_FILE_NAME = "engine.key"
SOCKET_FILE_NAME = "engine.sock"
KEY_BYTES = 32
MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS: leave a margin
FALLBACK_ROOT = Path("/tmp")  # noqa: S108 - fixed so engine and clients agree; checked below
START_HINT = "Start it with 'bridge run' (or start the Dental PMS Bridge service)."


class EndpointError(Exception):
    """The endpoint's folder cannot be used safely (wrong owner, open to others)."""


@dataclass(frozen=True)
class Endpoint:
    """One installation's control channel.

    ``address`` is the socket path or the pipe name, ``family`` the
    :mod:`multiprocessing.connection` family, ``folder`` the control folder
    (key file, and the socket unless it had to move to ``/tmp``).
    """

    address: str
    family: Family
    folder: Path

    @property
    def key_file(self) -> Path:
        return self.folder / KEY_FILE_NAME

    def describe(self) -> str:
        kind = "named pipe" if self.family == "AF_PIPE" else "socket"
        return f"{kind} {self.address}"


def _digest(data_dir: Path) -> str:
    text = str(data_dir.resolve())
    if sys.platform == "win32":
        text = text.lower()
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def endpoint_for(data_dir: Path) -> Endpoint:
    """The endpoint of the engine whose state lives in ``data_dir``."""
    folder = data_dir / CONTROL_DIR_NAME
    if sys.platform == "win32":
        return Endpoint(rf"\\.\pipe\dental-pms-bridge-{_digest(data_dir)}", "AF_PIPE", folder)
    socket_path = folder / SOCKET_FILE_NAME
    if len(os.fsencode(socket_path)) > MAX_SOCKET_PATH:
        socket_path = _fallback_dir() / f"{_digest(data_dir)}.sock"
    return Endpoint(str(socket_path), "AF_UNIX", folder)


def _fallback_dir() -> Path:
    return FALLBACK_ROOT / f"dental-pms-bridge-{os.getuid()}"


# -- engine side -------------------------------------------------------------------


def prepare(endpoint: Endpoint) -> int:
    """Create the control folder(s) safely; return the mode for socket and key.

    0o600, or 0o660 when an administrator gave the control folder to a group
    (see the module docstring). Raises :class:`EndpointError` if the ``/tmp``
    fallback folder belongs to someone else or is open to others.
    """
    folder = endpoint.folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    if sys.platform == "win32":
        return 0o600
    mode = stat.S_IMODE(folder.stat().st_mode)
    if mode & 0o007:
        os.chmod(folder, mode & ~0o007)
    socket_dir = Path(endpoint.address).parent
    if socket_dir != folder:
        with contextlib.suppress(FileExistsError):
            socket_dir.mkdir(mode=0o700)
        info = socket_dir.lstat()
        if (
            not stat.S_ISDIR(info.st_mode)
            or info.st_uid != os.getuid()
            or stat.S_IMODE(info.st_mode) & 0o077
        ):
            raise EndpointError(
                f"{socket_dir} is not a private folder of this account; remove it or set "
                "BRIDGE_HOME to a shorter path"
            )
    return 0o660 if mode & 0o050 == 0o050 else 0o600


def key_mode(socket_mode: int) -> int:
    """The key file's mode for a socket mode (the group may read, never write)."""
    return 0o640 if socket_mode & 0o060 else 0o600


def write_key(endpoint: Endpoint, mode: int = 0o600) -> bytes:
    """Write a fresh random key atomically with ``mode``; return it."""
    key = secrets.token_hex(KEY_BYTES).encode("ascii")
    folder = endpoint.folder
    temp = folder / f".{KEY_FILE_NAME}.{secrets.token_hex(4)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(key + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        if sys.platform != "win32":
            os.chmod(temp, mode)  # the umask may have narrowed the group bits
        os.replace(temp, endpoint.key_file)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    _fsync_dir(folder)
    return key


def _fsync_dir(folder: Path) -> None:
    if sys.platform == "win32":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_key(endpoint: Endpoint, key: bytes) -> None:
    """Delete the key file if it still holds ``key`` (a newer engine's key stays)."""
    with contextlib.suppress(OSError):
        if read_key(endpoint) == key:
            endpoint.key_file.unlink()


# -- client side -------------------------------------------------------------------


def read_key(endpoint: Endpoint) -> bytes:
    """The running engine's key.

    Raises :class:`EngineNotRunning` if there is no key file (the engine
    never ran here, or stopped and removed it) and :class:`ControlAuthError`
    if this account may not read it.
    """
    try:
        data = endpoint.key_file.read_bytes().strip()
    except FileNotFoundError:
        raise EngineNotRunning(
            f"the engine is not running (no control key at {endpoint.key_file}).",
            fix=START_HINT,
        ) from None
    except PermissionError:
        raise ControlAuthError(
            f"this account may not read the engine's control key ({endpoint.key_file}).",
            fix="Run this as the account the engine runs as, or ask IT to add this account "
            "to the group that owns the control folder.",
        ) from None
    except OSError as exc:
        raise ControlAuthError(
            f"the engine's control key could not be read ({type(exc).__name__}: {exc}).",
        ) from None
    if len(data) != 2 * KEY_BYTES:
        raise ControlAuthError(
            f"the engine's control key ({endpoint.key_file}) is damaged.",
            fix="Restart the engine: it writes a new key when it starts.",
        )
    return data
