"""The export-file records in local state (table ``export_file``).

:class:`FolderRecords` is one folder's writer: the folder loop is the only
writer of its folder's rows (through :meth:`StateStore.write`), and keeps a
cache of them (:class:`Known`) so scanning a folder of thousands of
uploaded files costs no database reads. Each state change is one committed
transaction, written *before* the step it enables (``sending`` before the
upload, ``uploaded`` before the after-upload action), so a crash resumes
from the last step recorded and never sends a file twice.

:func:`recent_files` and :func:`folder_counts` are readers for ``bridge
files``, ``bridge status`` and the panel; they work with the engine stopped.

Rows hold file names, sizes, hashes and reasons; never content.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bridge.state import StateStore
from bridge.state.models import ExportFile

FileState = Literal["waiting", "sending", "uploaded", "duplicate", "quarantined"]
STATES: tuple[FileState, ...] = ("waiting", "sending", "uploaded", "duplicate", "quarantined")
DONE_STATES = ("uploaded", "duplicate")


@dataclass(frozen=True)
class Known:
    """What the folder loop remembers of one file between scans."""

    id: int
    state: str
    size: int
    mtime_ns: int
    reason_code: str
    sha256: str | None
    after_done: str | None

    @property
    def signature(self) -> tuple[int, int]:
        return (self.size, self.mtime_ns)


@dataclass(frozen=True)
class FileView:
    """One file as ``bridge files`` and the panel show it."""

    id: int
    folder: str
    path: str
    state: str
    reason_code: str
    reason: str
    size: int
    kind: str | None
    format: str | None
    sha256: str | None
    first_seen_at: datetime
    updated_at: datetime
    uploaded_at: datetime | None
    after_done: str | None
    archived_to: str | None
    attempts: int

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "folder": self.folder,
            "path": self.path,
            "state": self.state,
            "reason_code": self.reason_code,
            "reason": self.reason,
            "size": self.size,
            "kind": self.kind,
            "format": self.format,
            "sha256": self.sha256,
            "first_seen_at": self.first_seen_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "uploaded_at": self.uploaded_at.isoformat() if self.uploaded_at else None,
            "after_done": self.after_done,
            "archived_to": self.archived_to,
            "attempts": self.attempts,
        }


def _now() -> datetime:
    return datetime.now(UTC)


class FolderRecords:
    """One folder's rows. Not thread-safe: only the folder's loop uses it."""

    def __init__(self, store: StateStore, folder: str) -> None:
        self.store = store
        self.folder = folder
        self.known: dict[str, Known] = {}

    def load(self) -> dict[str, Known]:
        """Read every row of the folder into :attr:`known`."""
        with self.store.read() as session:
            rows = session.scalars(select(ExportFile).where(ExportFile.folder == self.folder))
            self.known = {row.path: _known(row) for row in rows}
        return self.known

    def waiting(self, files: Iterable[tuple[str, int, int]], reason_code: str, reason: str) -> None:
        """Record ``(path, size, mtime_ns)`` files as waiting, in one transaction.

        A file already waiting for the same reason is not written again."""
        now = _now()
        todo = [
            f
            for f in files
            if (k := self.known.get(f[0])) is None
            or (k.state, k.reason_code, k.signature) != ("waiting", reason_code, (f[1], f[2]))
        ]
        if not todo:
            return
        with self.store.write() as session:
            rows = []
            for path, size, mtime_ns in todo:
                row = self._row(session, path)
                if row is None:
                    row = ExportFile(folder=self.folder, path=path, first_seen_at=now)
                    session.add(row)
                elif row.state in DONE_STATES or (row.size, row.mtime_ns) != (size, mtime_ns):
                    _new_version(row)
                row.state, row.reason_code, row.reason = "waiting", reason_code, reason
                row.size, row.mtime_ns, row.updated_at = size, mtime_ns, now
                rows.append(row)
            session.flush()  # assigns the ids of new rows
            for row in rows:
                self.known[row.path] = _known(row)

    def sending(
        self, path: str, size: int, mtime_ns: int, sha256: str, kind: str, fmt: str
    ) -> None:
        """The file is hashed and about to be uploaded."""
        self._update(
            path,
            size,
            mtime_ns,
            state="sending",
            reason_code="",
            reason="",
            sha256=sha256,
            kind=kind,
            format=fmt,
            count_attempt=True,
        )

    def done(
        self, path: str, state: Literal["uploaded", "duplicate"], *, kept: bool = False
    ) -> None:
        """The cloud has the file (``uploaded`` by us, or ``duplicate``: it had it);
        ``kept``: the folder leaves files where they are (no action follows)."""
        self._update(
            path,
            None,
            None,
            uploaded=True,
            state=state,
            reason_code="",
            reason="",
            after_done="kept" if kept else None,
        )

    def after(self, path: str, action: str, archived_to: str | None = None) -> None:
        """The after-upload action ran: ``kept``, ``moved`` (to ``archived_to``) or ``deleted``."""
        self._update(path, None, None, after_done=action, archived_to=archived_to, reason_code="")

    def after_failed(self, path: str, reason: str) -> None:
        """The after-upload action failed; it is tried again at the next scan."""
        self._update(path, None, None, reason_code="after_failed", reason=reason)

    def note(self, path: str, reason_code: str, reason: str) -> None:
        """Say why a file is held up, keeping its state (``sending`` stays ``sending``)."""
        self._update(path, None, None, reason_code=reason_code, reason=reason)

    def id_of(self, path: str) -> int | None:
        known = self.known.get(path)
        return known.id if known is not None else None

    def retry(self, path: str, size: int, mtime_ns: int, reason_code: str, reason: str) -> None:
        """Back to waiting (changed while read, cloud unavailable ...)."""
        self._update(path, size, mtime_ns, state="waiting", reason_code=reason_code, reason=reason)

    def quarantine(
        self, path: str, size: int, mtime_ns: int, reason_code: str, reason: str
    ) -> bool:
        """Quarantine the file; False if it already was, for the same reason."""
        k = self.known.get(path)
        if k is not None and (k.state, k.reason_code, k.signature) == (
            "quarantined",
            reason_code,
            (size, mtime_ns),
        ):
            return False
        self._update(
            path, size, mtime_ns, state="quarantined", reason_code=reason_code, reason=reason
        )
        return True

    def forget(self, path: str) -> None:
        """Drop the row of a file that went away before it was ever stable."""
        if self.known.pop(path, None) is None:
            return
        with self.store.write() as session:
            session.execute(
                delete(ExportFile).where(ExportFile.folder == self.folder, ExportFile.path == path)
            )

    def prune(self, older_than: timedelta) -> int:
        """Delete rows of files moved, deleted or gone after upload more than
        ``older_than`` ago."""
        cutoff = _now() - older_than
        with self.store.write() as session:
            gone = session.scalars(
                select(ExportFile.path).where(
                    ExportFile.folder == self.folder,
                    ExportFile.after_done.in_(("moved", "deleted", "gone")),
                    ExportFile.updated_at < cutoff,
                )
            ).all()
            if gone:
                session.execute(
                    delete(ExportFile).where(
                        ExportFile.folder == self.folder, ExportFile.path.in_(gone)
                    )
                )
        for path in gone:
            self.known.pop(path, None)
        return len(gone)

    def counts(self) -> dict[str, int]:
        """Rows per state for this folder (from the cache)."""
        out: dict[str, int] = dict.fromkeys(STATES, 0)
        for k in self.known.values():
            out[k.state] = out.get(k.state, 0) + 1
        return out

    # -- plumbing ------------------------------------------------------------

    def _row(self, session: Session, path: str) -> ExportFile | None:
        known = self.known.get(path)
        if known is not None:
            row = session.get(ExportFile, known.id)
            if row is not None and (row.folder, row.path) == (self.folder, path):
                return row
        return session.scalars(
            select(ExportFile).where(ExportFile.folder == self.folder, ExportFile.path == path)
        ).first()

    def _update(
        self,
        path: str,
        size: int | None,
        mtime_ns: int | None,
        *,
        count_attempt: bool = False,
        uploaded: bool = False,
        **fields: object,
    ) -> None:
        now = _now()
        with self.store.write() as session:
            row = self._row(session, path)
            if row is None:
                if size is None or mtime_ns is None:
                    return  # nothing recorded for a file we only act on: cannot happen
                row = ExportFile(
                    folder=self.folder, path=path, first_seen_at=now, size=size, mtime_ns=mtime_ns
                )
                session.add(row)
            elif size is not None and mtime_ns is not None:
                if row.state in DONE_STATES and (row.size, row.mtime_ns) != (size, mtime_ns):
                    _new_version(row)
                row.size, row.mtime_ns = size, mtime_ns
            for name, value in fields.items():
                setattr(row, name, value)
            if count_attempt:
                row.attempts = (row.attempts or 0) + 1
            if uploaded:
                row.uploaded_at = now
            row.updated_at = now
            session.flush()
            self.known[path] = _known(row)


def _new_version(row: ExportFile) -> None:
    """The same path holds new content: forget what was done with the old one."""
    row.sha256 = row.kind = row.format = None
    row.uploaded_at = None
    row.after_done = row.archived_to = None
    row.attempts = 0


def _known(row: ExportFile) -> Known:
    return Known(
        id=row.id,
        state=row.state,
        size=row.size,
        mtime_ns=row.mtime_ns,
        reason_code=row.reason_code or "",
        sha256=row.sha256,
        after_done=row.after_done,
    )


# -- readers -------------------------------------------------------------------


def recent_files(
    store: StateStore,
    *,
    limit: int = 50,
    folder: str | None = None,
    states: Sequence[str] = (),
) -> list[FileView]:
    """The most recently changed files, newest first."""
    query = select(ExportFile).order_by(ExportFile.updated_at.desc(), ExportFile.id.desc())
    if folder is not None:
        query = query.where(ExportFile.folder == folder)
    if states:
        query = query.where(ExportFile.state.in_(tuple(states)))
    with store.read() as session:
        rows = session.scalars(query.limit(limit)).all()
        return [_view(row) for row in rows]


def folder_counts(store: StateStore) -> dict[str, dict[str, int]]:
    """Folder label -> state -> number of files."""
    with store.read() as session:
        rows = session.execute(
            select(ExportFile.folder, ExportFile.state, func.count()).group_by(
                ExportFile.folder, ExportFile.state
            )
        ).all()
    out: dict[str, dict[str, int]] = {}
    for folder, state, count in rows:
        out.setdefault(folder, dict.fromkeys(STATES, 0))[state] = int(count)
    return out


def _view(row: ExportFile) -> FileView:
    return FileView(
        id=row.id,
        folder=row.folder,
        path=row.path,
        state=row.state,
        reason_code=row.reason_code or "",
        reason=row.reason or "",
        size=row.size,
        kind=row.kind,
        format=row.format,
        sha256=row.sha256,
        first_seen_at=row.first_seen_at,
        updated_at=row.updated_at,
        uploaded_at=row.uploaded_at,
        after_done=row.after_done,
        archived_to=row.archived_to,
        attempts=row.attempts,
    )
