"""Reading an export file for upload: hashed, streamed, and never sent changed.

The folder loop reads a stable file twice. :func:`hash_file` reads it once
to learn its SHA-256 (the cloud is asked by hash whether it has the file);
:func:`verified_pieces` then streams it into the upload. Both compare the
file with the size and modification time it had when it was found stable
(its *signature*), at open (``fstat``) and again, by path, after the last
byte was read; any difference raises :class:`FileChangedError`, so a file
that changed while it was read is retried later, never sent.

:func:`verified_pieces` also holds back the last piece until the whole
file has been re-read and checked: its byte count equals the size, its
SHA-256 equals the one asked about, and the file by path still has the
signature. If not, it raises instead of yielding the last piece: the body
stays incomplete and the cloud, which stores a body only when complete and
hashing to the path's SHA-256, keeps nothing. Memory stays at two pieces
(:data:`PIECE` bytes each), whatever the size.

Other ``OSError`` (permission denied, I/O errors) propagate for the caller
to quarantine the file. Both stop with :class:`Cancelled` between two
pieces once ``cancel`` is set (the engine is stopping).
"""

from __future__ import annotations

import hashlib
import os
import threading
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from bridge.files.kinds import SNIFF_BYTES, Format, detect_format

PIECE = 1024 * 1024
MAX_NAME = 255

Signature = tuple[int, int]  # (size, mtime_ns)


class Cancelled(Exception):
    """Reading stopped because the engine is stopping."""


class FileChangedError(Exception):
    """The file is not the one found stable (it changed, grew or vanished).

    ``reason_code`` is ``changed_while_reading`` or ``vanished``."""

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message


@dataclass(frozen=True)
class Hashed:
    """A file read once: its SHA-256, size and modification time, and its format."""

    sha256: str
    size: int
    mtime_ns: int
    format: Format


def signature(st: os.stat_result) -> Signature:
    return (st.st_size, st.st_mtime_ns)


def check_unchanged(path: Path, expected: Signature, when: str) -> None:
    """Raise :class:`FileChangedError` unless ``path`` still has ``expected``."""
    try:
        now = signature(path.stat())
    except FileNotFoundError:
        raise FileChangedError(
            "vanished", f"the file disappeared {when} (moved or deleted by another program)"
        ) from None
    if now != expected:
        raise FileChangedError(
            "changed_while_reading",
            f"the file changed {when} (size {expected[0]} -> {now[0]} bytes); it is read again "
            "once it settles",
        )


def _open(path: Path, expected: Signature) -> BinaryIO:
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise FileChangedError(
            "vanished", "the file disappeared before it was read (moved or deleted)"
        ) from None
    try:
        if signature(os.fstat(handle.fileno())) != expected:
            raise FileChangedError(
                "changed_while_reading", "the file changed before it was read; it is read again"
            )
    except BaseException:
        handle.close()
        raise
    return handle


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled


def hash_file(path: Path, expected: Signature, cancel: threading.Event | None = None) -> Hashed:
    """Read ``path`` once: SHA-256 and format (see the module docstring)."""
    digest = hashlib.sha256()
    head = b""
    size = 0
    with _open(path, expected) as handle:
        while piece := handle.read(PIECE):
            _check(cancel)
            if len(head) < SNIFF_BYTES:
                head += piece[: SNIFF_BYTES - len(head)]
            digest.update(piece)
            size += len(piece)
    check_unchanged(path, expected, "while it was read")
    if size != expected[0]:
        raise FileChangedError(
            "changed_while_reading", f"{size} bytes were read of a {expected[0]}-byte file"
        )
    return Hashed(digest.hexdigest(), size, expected[1], detect_format(head))


def verified_pieces(
    path: Path, hashed: Hashed, cancel: threading.Event | None = None
) -> Iterator[bytes]:
    """The file's bytes for the upload, the last piece only once all is verified."""
    expected = (hashed.size, hashed.mtime_ns)
    digest = hashlib.sha256()
    size = 0
    with _open(path, expected) as handle:
        held = handle.read(PIECE)
        while held:
            digest.update(held)
            size += len(held)
            following = handle.read(PIECE)
            if not following:
                break
            _check(cancel)
            yield held
            held = following
        if size != hashed.size or digest.hexdigest() != hashed.sha256:
            raise FileChangedError(
                "changed_while_reading",
                "the file changed between hashing and sending; it is read again",
            )
        check_unchanged(path, expected, "while it was sent")
        if held:
            yield held


def cloud_name(name: str) -> str:
    """The file name as the cloud takes it: no ``/``, ``\\`` or control
    characters (each becomes ``_``), at most 255 characters (the extension kept)."""
    cleaned = "".join(
        "_" if ch in "/\\" or unicodedata.category(ch) in ("Cc", "Cs") else ch for ch in name
    ).strip()
    if not cleaned:
        return "_"
    if len(cleaned) <= MAX_NAME:
        return cleaned
    stem, dot, ext = cleaned.rpartition(".")
    if dot and 0 < len(ext) <= 16:
        return stem[: MAX_NAME - len(ext) - 1] + "." + ext
    return cleaned[:MAX_NAME]
