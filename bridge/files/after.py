"""What happens to a file once the cloud has it: keep, move to the archive, delete.

:func:`apply_after` runs the folder's ``after`` setting for one uploaded
file, and only if the file still has the signature (size, modification
time) that was uploaded: a file the PMS rewrote meanwhile is new content,
so it is left where it is to be uploaded in turn. Nothing else in the
bridge moves or deletes a file, and a quarantined file never gets here.

* ``leave``: nothing; reported as ``kept``.
* ``move``: to the same relative path under ``archive_to`` (subfolders are
  created); an existing file there is never overwritten: the moved file
  gets `` (2)``, `` (3)`` ... before its extension. Across volumes the file
  is copied, the copy's size checked, then the original removed.
* ``delete``: removed (only when the folder is configured so).

Raises ``OSError`` when the action fails (the caller records it and tries
again at the next scan) and :class:`~bridge.files.reading.FileChangedError`
when the file is no longer the uploaded one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Literal

from bridge.files.reading import FileChangedError, Signature, check_unchanged

AfterDone = Literal["kept", "moved", "deleted"]


def apply_after(
    action: str, path: Path, uploaded: Signature, archive_root: Path | None, rel: str
) -> tuple[AfterDone, Path | None]:
    """Run ``action`` on ``path``; returns what was done and where it went."""
    if action == "leave":
        return "kept", None
    try:
        check_unchanged(path, uploaded, "after it was uploaded")
    except FileChangedError as exc:
        if exc.reason_code == "vanished":
            return ("deleted", None) if action == "delete" else ("kept", None)
        raise
    if action == "delete":
        path.unlink()
        return "deleted", None
    if action == "move":
        if archive_root is None:
            raise OSError("after = move needs archive_to")
        target = free_name(archive_root / rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        _move(path, target, uploaded[0])
        return "moved", target
    raise ValueError(f"unknown after-upload action {action!r}")


def free_name(target: Path) -> Path:
    """``target``, or ``name (2).ext``, ``name (3).ext`` ... if it exists."""
    if not target.exists():
        return target
    stem, suffix = target.stem, target.suffix
    number = 2
    while True:
        candidate = target.with_name(f"{stem} ({number}){suffix}")
        if not candidate.exists():
            return candidate
        number += 1


def _move(source: Path, target: Path, size: int) -> None:
    try:
        os.link(source, target)  # atomic, and never replaces an existing target
    except FileExistsError:
        raise OSError(f"{target.name} appeared in the archive meanwhile") from None
    except OSError:
        shutil.copyfile(source, target)  # another volume, or no hard links there
        if target.stat().st_size != size:
            target.unlink(missing_ok=True)
            raise OSError("the copy in the archive is incomplete") from None
    try:
        source.unlink()
    except OSError:
        target.unlink(missing_ok=True)  # keep one copy: the original stays for the next try
        raise
