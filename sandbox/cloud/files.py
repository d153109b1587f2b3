"""Export files, stored by content hash, streamed to disk.

An upload is written piece by piece to ``<files_dir>/.incoming/`` while its
SHA-256 is computed, so memory stays flat whatever the size. Only when the
byte count matches ``X-File-Size`` and the hash matches the path is the file
fsynced, moved to ``<files_dir>/<sha[:2]>/<sha>`` and recorded; otherwise the
part file is deleted (also when the client vanishes mid-way), so nothing is
kept. A file already stored is not stored again: its body is read and thrown
away. Two racing uploads of the same file both end in one stored copy (the
move is atomic and the content identical; the record is inserted once).

:meth:`FileStore.receipts` counts, per SHA-256, the complete bodies that
arrived since this server started (stored or already stored), so a test can
prove an agent sent each file exactly once.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sandbox.cloud.db import Database
from sandbox.cloud.models import FileRecord
from sandbox.cloud.validation import FileMeta
from sandbox.cloud.wire import ApiError


class FileStore:
    """Thread-safe."""

    def __init__(self, db: Database, files_dir: Path, now: Callable[[], str]) -> None:
        self._db = db
        self._now = now
        self.files_dir = files_dir
        self.incoming = files_dir / ".incoming"
        self.incoming.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._receipts: Counter[str] = Counter()
        for leftover in self.incoming.glob("*.part"):  # from a crash: never complete
            leftover.unlink(missing_ok=True)

    def path_of(self, sha256: str) -> Path:
        return self.files_dir / sha256[:2] / sha256

    def receipts(self) -> dict[str, int]:
        """SHA-256 -> complete bodies received since start (duplicates included)."""
        with self._lock:
            return dict(self._receipts)

    def _received(self, sha256: str) -> None:
        with self._lock:
            self._receipts[sha256] += 1

    def get(self, sha256: str) -> FileRecord | None:
        with self._db.read() as conn:
            row = conn.execute("SELECT * FROM files WHERE sha256 = ?", (sha256,)).fetchone()
        return None if row is None else _record(row)

    def receive(
        self, agent_id: str, sha256: str, meta: FileMeta, pieces: Iterable[bytes]
    ) -> tuple[FileRecord, bool]:
        """Store the body once; returns the record and whether it was already stored."""
        existing = self.get(sha256)
        if existing is not None:
            _check_size(sum(len(piece) for piece in _bounded(pieces, meta.size)), meta.size)
            self._received(sha256)
            return existing, True
        part = self.incoming / f"{sha256}.{secrets.token_hex(6)}.part"
        try:
            digest = hashlib.sha256()
            size = 0
            with part.open("wb") as out:
                for piece in _bounded(pieces, meta.size):
                    digest.update(piece)
                    out.write(piece)
                    size += len(piece)
                _check_size(size, meta.size)
                if digest.hexdigest() != sha256:
                    raise ApiError(
                        422,
                        "sha256_mismatch",
                        f"sha256: the body hashes to {digest.hexdigest()}, not to the path's",
                        field="sha256",
                    )
                out.flush()
                os.fsync(out.fileno())
            final = self.path_of(sha256)
            final.parent.mkdir(exist_ok=True)
            os.replace(part, final)
        finally:
            part.unlink(missing_ok=True)
        self._received(sha256)
        record = FileRecord(
            sha256=sha256,
            size=size,
            name=meta.name,
            kind=meta.kind,
            source_folder=meta.source_folder,
            agent_id=agent_id,
            stored_at=self._now(),
        )
        with self._db.write() as conn:
            inserted = conn.execute(
                "INSERT OR IGNORE INTO files (sha256, size, name, kind, source_folder, agent_id,"
                " stored_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    sha256,
                    size,
                    meta.name,
                    meta.kind,
                    meta.source_folder,
                    agent_id,
                    record.stored_at,
                ),
            ).rowcount
        if not inserted:  # a racing upload of the same file won
            winner = self.get(sha256)
            assert winner is not None
            return winner, True
        return record, False

    def list(self) -> list[FileRecord]:
        with self._db.read() as conn:
            rows = conn.execute("SELECT * FROM files ORDER BY stored_at, sha256").fetchall()
        return [_record(row) for row in rows]

    def remove_all(self) -> None:
        """Delete every stored file (the records go with :meth:`Database.reset`)."""
        for folder in self.files_dir.iterdir():
            if folder.is_dir() and folder != self.incoming and len(folder.name) == 2:
                for path in folder.iterdir():
                    path.unlink(missing_ok=True)
                folder.rmdir()
        with self._lock:
            self._receipts.clear()


def _bounded(pieces: Iterable[bytes], size: int) -> Iterable[bytes]:
    """The pieces, stopping with 400 as soon as more than ``size`` bytes arrived."""
    total = 0
    for piece in pieces:
        total += len(piece)
        if total > size:
            raise _size_error(f"more than X-File-Size ({size}) bytes arrived")
        yield piece


def _check_size(received: int, declared: int) -> None:
    if received != declared:
        raise _size_error(f"{received} bytes arrived, X-File-Size says {declared}")


def _size_error(detail: str) -> ApiError:
    return ApiError(400, "size_mismatch", f"X-File-Size: {detail}", field="X-File-Size")


def _record(row: Any) -> FileRecord:
    return FileRecord(
        sha256=row["sha256"],
        size=row["size"],
        name=row["name"],
        kind=row["kind"],
        source_folder=row["source_folder"],
        agent_id=row["agent_id"],
        stored_at=row["stored_at"],
    )
