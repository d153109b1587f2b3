"""Which programs hold a file open for writing, or locked.

A file that another program is still writing must not be uploaded, however
long it has looked unchanged (a PMS may pause between two parts of an
export). :func:`find_holders` answers for a batch of paths at once:

* **Linux**: every process's open file descriptors (``/proc/<pid>/fd``)
  whose target is one of the paths and whose access mode
  (``/proc/<pid>/fdinfo/<fd>``) includes writing, plus ``WRITE`` locks in
  ``/proc/locks`` (``flock`` and POSIX locks) on the paths' inodes. Only
  processes this account may inspect are seen: the service runs as root,
  which sees all of them. Our own read-only descriptors never count.
* **Windows**: the file is opened with a share mode that denies writers
  (``FILE_SHARE_READ | FILE_SHARE_DELETE``); a sharing violation means some
  program has it open for writing, a lock violation that it is locked. The
  program is not named (pid 0).
* elsewhere: nothing is reported, and the stable-size rule alone applies.

Holders are facts for the moment of the call only. Never raises: a process
that ends while being inspected, or a path that vanished, is skipped.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")
_ACCESS_MODE = 0o3  # O_ACCMODE: 0 read only, 1 write only, 2 read and write


@dataclass(frozen=True)
class Holder:
    """A program keeping a file from being uploaded."""

    pid: int  # 0 when the OS does not say
    program: str  # the process name, or "another program"
    how: str  # "open for writing" or "locked"

    def describe(self) -> str:
        who = f"{self.program} (pid {self.pid})" if self.pid else self.program
        return f"{self.how} by {who}"


def find_holders(paths: Iterable[Path]) -> dict[Path, list[Holder]]:
    """The holders of each path that has any (paths without holders are left out)."""
    wanted = list(paths)
    if not wanted:
        return {}
    if sys.platform == "win32":
        return _windows_holders(wanted)
    if _PROC.is_dir():
        return _linux_holders(wanted)
    return {}


# -- Linux ---------------------------------------------------------------------


def _linux_holders(paths: list[Path]) -> dict[Path, list[Holder]]:
    by_name: dict[str, Path] = {}
    by_inode: dict[tuple[int, int], Path] = {}
    for path in paths:
        try:
            real = os.path.realpath(path)
            st = os.stat(real)
        except OSError:
            continue
        by_name[real] = path
        by_inode[(st.st_dev, st.st_ino)] = path
    found: dict[Path, list[Holder]] = {}
    if not by_name:
        return found
    for pid in _pids():
        for fd, target in _fd_targets(pid):
            held = by_name.get(target)
            if held is not None and _writes(pid, fd):
                _add(found, held, Holder(pid, _program(pid), "open for writing"))
    for pid, device, inode in _write_locks():
        for (dev, ino), path in by_inode.items():
            if ino == inode and (os.major(dev), os.minor(dev)) == device:
                _add(found, path, Holder(pid, _program(pid), "locked"))
    return found


def _add(found: dict[Path, list[Holder]], path: Path, holder: Holder) -> None:
    holders = found.setdefault(path, [])
    if holder not in holders:
        holders.append(holder)


def _pids() -> list[int]:
    try:
        return [int(entry.name) for entry in os.scandir(_PROC) if entry.name.isdigit()]
    except OSError:
        return []


def _fd_targets(pid: int) -> list[tuple[str, str]]:
    targets = []
    try:
        with os.scandir(_PROC / str(pid) / "fd") as entries:
            for entry in entries:
                try:
                    target = os.readlink(entry.path)
                except OSError:
                    continue
                if target.startswith("/"):
                    targets.append((entry.name, target))
    except OSError:  # the process ended, or we may not look
        return []
    return targets


def _writes(pid: int, fd: str) -> bool:
    try:
        info = (_PROC / str(pid) / "fdinfo" / fd).read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    for line in info.splitlines():
        if line.startswith("flags:"):
            try:
                flags = int(line.split()[1], 8)
            except (IndexError, ValueError):
                return False
            return flags & _ACCESS_MODE != 0
    return False


def _program(pid: int) -> str:
    try:
        return (_PROC / str(pid) / "comm").read_text(errors="replace").strip() or "a program"
    except OSError:
        return "a program"


def _write_locks() -> list[tuple[int, tuple[int, int], int]]:
    """``(pid, (major, minor), inode)`` of every granted WRITE lock."""
    try:
        text = (_PROC / "locks").read_text(errors="replace")
    except OSError:
        return []
    locks = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[1] == "->":  # "->" marks a waiter, not a holder
            continue
        if fields[3] != "WRITE":
            continue
        try:
            pid = int(fields[4])
            major, minor, inode = fields[5].split(":")
            locks.append((pid, (int(major, 16), int(minor, 16)), int(inode)))
        except ValueError:
            continue
    return locks


# -- Windows -------------------------------------------------------------------


def _windows_holders(paths: list[Path]) -> dict[Path, list[Holder]]:
    found: dict[Path, list[Holder]] = {}
    if sys.platform != "win32":  # for the type checker; callers check the platform
        return found
    import ctypes  # noqa: PLC0415 - Windows only
    from ctypes import wintypes  # noqa: PLC0415

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    create = kernel32.CreateFileW
    create.argtypes = [
        wintypes.LPCWSTR,
        wintypes.DWORD,
        wintypes.DWORD,
        wintypes.LPVOID,
        wintypes.DWORD,
        wintypes.DWORD,
        wintypes.HANDLE,
    ]
    create.restype = wintypes.HANDLE
    generic_read, share_read, share_delete, open_existing = 0x80000000, 0x1, 0x4, 3
    invalid = wintypes.HANDLE(-1).value
    for path in paths:
        handle = create(
            str(path), generic_read, share_read | share_delete, None, open_existing, 0, None
        )
        if handle == invalid:
            error = ctypes.get_last_error()
            if error == 32:  # ERROR_SHARING_VIOLATION: a writer has it open
                found[path] = [Holder(0, "another program", "open for writing")]
            elif error == 33:  # ERROR_LOCK_VIOLATION
                found[path] = [Holder(0, "another program", "locked")]
            continue
        kernel32.CloseHandle(handle)
    return found
