"""One export folder's work, as steps: find files, wait until stable, upload once.

:class:`FolderWorker` holds what one folder knows (its records and the
*candidates*: files seen but not yet uploaded) and does the work in steps
that :class:`~bridge.files.loop.FolderLoop` (or a test, or ``bridge files
scan``) calls from one thread:

* :meth:`~FolderWorker.scan` walks the folder; :meth:`~FolderWorker.touch`
  looks at one path an event named. A file not uploaded before, or changed
  since, becomes a candidate and is recorded as ``waiting``. A file whose
  size and modification time match what was uploaded is skipped without
  being read, so restarts and rescans re-send nothing.
* :meth:`~FolderWorker.check` applies the stable-file rule: a candidate is
  ready once its size and modification time were unchanged across two
  looks ``settle_seconds`` apart and no program holds it open for writing
  or locked (:mod:`bridge.files.holders`; the holder is shown as the
  reason it waits). One still changing or held after ``give_up_seconds``
  is quarantined as ``never_stable`` (and still uploaded if it settles).
* :meth:`~FolderWorker.upload_ready` sends each ready file: read and hash
  it (:mod:`bridge.files.reading`), record ``sending``, ``HEAD`` to skip what
  the cloud has (``duplicate``), else ``PUT`` it streamed; record
  ``uploaded``; then run the after-upload action (:mod:`bridge.files.after`).
  A file that changed while read goes back to waiting. A cloud that is
  unavailable pauses the folder's uploads with backoff; files wait.

Quarantine (state ``quarantined`` with a reason code and words, logged once,
never deleted): ``permission_denied``, ``unreadable`` (I/O error),
``not_a_file`` (a pipe, socket or device), ``broken_link``, ``vanished``
(the file disappeared after it was found stable), ``never_stable``,
``too_large`` and ``rejected`` (by the cloud). A quarantined file is
looked at again at each full scan (a fixed permission or a file that
settled late then goes through), except ``too_large`` and ``rejected``,
which wait for the file to change. Logs name the folder and the record id,
never the file name (names may contain patient names).
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path, PurePosixPath

from bridge.backoff import Backoff
from bridge.cloud.client import CloudClient, FileUpload
from bridge.config.model import Folder
from bridge.errors import (
    BatchTooLargeError,
    BridgeError,
    CloudAuthError,
    CloudError,
    CloudRejectedError,
    CloudTlsError,
    CloudUnavailableError,
)
from bridge.files.after import apply_after
from bridge.files.holders import Holder, find_holders
from bridge.files.kinds import cloud_kind
from bridge.files.patterns import FileFilter, relative
from bridge.files.reading import (
    Cancelled,
    FileChangedError,
    Signature,
    check_unchanged,
    cloud_name,
    hash_file,
    signature,
    verified_pieces,
)
from bridge.files.records import DONE_STATES, FolderRecords
from bridge.health import Health
from bridge.state import StateStore

log = logging.getLogger(__name__)

STICKY_REASONS = frozenset({"too_large", "rejected", "broken_link", "not_a_file"})
PRUNE_AFTER = timedelta(days=30)

HolderProbe = Callable[[Sequence[Path]], dict[Path, list[Holder]]]


@dataclass
class Candidate:
    """A file seen but not yet uploaded."""

    rel: str
    signature: Signature
    first_seen: float
    checked_at: float
    recheck: bool  # a quarantined file looked at again: keep it quarantined until it succeeds
    ready: bool = False


class FolderMissingError(OSError):
    """The folder itself cannot be listed (missing, unmounted, no permission)."""


class FolderWorker:
    """One folder's state and steps (see the module docstring). One thread only."""

    def __init__(
        self,
        folder: Folder,
        store: StateStore,
        client_factory: Callable[[], CloudClient],
        *,
        ignored: Sequence[Path] = (),
        clock: Callable[[], float] = time.monotonic,
        holders: HolderProbe = find_holders,
        cancel: threading.Event | None = None,
    ) -> None:
        self.folder = folder
        self.root = folder.path
        self.records = FolderRecords(store, folder.label)
        archive = (folder.archive_to,) if folder.archive_to is not None else ()
        self.filter = FileFilter(
            self.root,
            folder.include,
            folder.exclude,
            recursive=folder.recursive,
            ignored=(*archive, *ignored),
        )
        self.candidates: dict[str, Candidate] = {}
        self.after_pending: set[str] = set()
        self.clock = clock
        self.holders = holders
        self.cancel = cancel
        self.cloud_paused_until = 0.0
        self.cloud_problem: BridgeError | None = None
        self.folder_problem: str | None = None
        self._client_factory = client_factory
        self._client: CloudClient | None = None
        self._backoff = Backoff(base=2.0, cap=300.0)
        self._new_waiting: list[tuple[str, int, int]] = []
        self.scans = 0  # full scans done (status shows it; tests count rescans)

    @property
    def label(self) -> str:
        return self.folder.label

    def start(self) -> None:
        """Read what earlier runs recorded about this folder."""
        self.records.load()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- finding files ---------------------------------------------------------

    def scan(self) -> int:
        """Walk the whole folder; returns how many files it holds that are wanted.

        Raises :class:`FolderMissingError` when the folder cannot be listed."""
        now = self.clock()
        seen: set[str] = set()
        self.folder_problem = None
        self.scans += 1
        try:
            for rel, st in self._walk():
                seen.add(rel)
                self._observe(rel, st, now)
        except FolderMissingError as exc:
            self.folder_problem = str(exc)
            raise
        finally:
            self._flush_waiting()
        self._drop_missing(seen)
        self.records.prune(PRUNE_AFTER)
        return len(seen)

    def touch(self, path: str) -> None:
        """Look at one path an event named (a file, a folder, or nothing any more)."""
        rel = relative(self.root, path)
        if rel is None or any(rel == i or rel.startswith(i + "/") for i in self.filter.ignored):
            return
        now = self.clock()
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._gone(rel)
            if os.path.lexists(path):
                self._observe(rel, None, now)
            self._flush_waiting()
            return
        except OSError:
            return  # a path we may not look at: the next scan reports it
        if stat.S_ISDIR(st.st_mode):
            if self.filter.enters(rel):
                try:
                    for sub, sub_st in self._walk(rel):
                        self._observe(sub, sub_st, now)
                except FolderMissingError:
                    pass
        else:
            self._observe(rel, st, now)
        self._flush_waiting()

    def _walk(self, below: str = "") -> Iterator[tuple[str, os.stat_result | None]]:
        """``(rel, stat)`` of every entry that is not a folder; stat is None for a
        broken link. Unreadable subfolders are skipped (noted as a folder problem);
        links to folders are not followed."""
        top = self.root / below if below else self.root
        stack = [top]
        while stack:
            current = stack.pop()
            try:
                entries = list(os.scandir(current))
            except OSError as exc:
                if current == self.root:
                    raise FolderMissingError(_folder_error(exc, self.root)) from None
                self.folder_problem = f"a subfolder cannot be read ({type(exc).__name__})"
                continue
            for entry in entries:
                rel = relative(self.root, entry.path)
                if rel is None:
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if self.filter.enters(rel):
                            stack.append(Path(entry.path))
                        continue
                    if entry.is_symlink() and entry.is_dir():
                        continue  # links to folders are not followed (no loops)
                    st: os.stat_result | None = entry.stat()
                except FileNotFoundError:
                    st = None  # a link to nothing, or gone since listed
                    if not os.path.lexists(entry.path):
                        continue
                except OSError:
                    continue
                yield rel, st

    def _observe(self, rel: str, st: os.stat_result | None, now: float) -> None:
        if not self.filter.wants(rel):
            return
        known = self.records.known.get(rel)
        if st is None:
            self._quarantine_now(rel, "broken_link", "the link points to nothing")
            return
        if stat.S_ISDIR(st.st_mode):
            return
        if not stat.S_ISREG(st.st_mode):
            self._quarantine_now(
                rel, "not_a_file", f"not a regular file ({_file_type(st.st_mode)}); never opened"
            )
            return
        sig = signature(st)
        if known is not None and known.signature == sig:
            if known.state in DONE_STATES:
                if known.after_done is None:
                    self.after_pending.add(rel)
                return
            if known.state == "quarantined" and known.reason_code in STICKY_REASONS:
                return
        candidate = self.candidates.get(rel)
        if candidate is not None:
            if candidate.signature != sig:
                candidate.signature, candidate.checked_at, candidate.ready = sig, now, False
            return
        recheck = known is not None and known.state == "quarantined"
        self.candidates[rel] = Candidate(rel, sig, now, now, recheck)
        resuming = known is not None and known.state == "sending" and known.signature == sig
        if not recheck and not resuming:  # a crash mid-upload keeps "sending" until resolved
            self._new_waiting.append((rel, *sig))

    def _quarantine_now(self, rel: str, code: str, reason: str) -> None:
        self.candidates.pop(rel, None)
        try:
            st = os.lstat(self.root / rel)
            sig = (st.st_size, st.st_mtime_ns)
        except OSError:
            sig = (0, 0)
        self._quarantine(rel, sig, code, reason)

    def _flush_waiting(self) -> None:
        if self._new_waiting:
            waiting, self._new_waiting = self._new_waiting, []
            self.records.waiting(waiting, "settling", "waiting until it stops changing")

    def _gone(self, rel: str) -> None:
        """``rel`` (a file or a whole subfolder) no longer exists."""
        prefix = rel + "/"
        for gone in [c for c in self.candidates if c == rel or c.startswith(prefix)]:
            candidate = self.candidates.pop(gone)
            known = self.records.known.get(gone)
            if not candidate.recheck and known is not None and known.state == "waiting":
                self.records.forget(gone)  # went away before it was ever stable: a temporary file

    def _drop_missing(self, seen: set[str]) -> None:
        for rel in [c for c in self.candidates if c not in seen]:
            self._gone(rel)
        for rel, known in list(self.records.known.items()):
            if rel in seen:
                continue
            if known.state == "waiting":
                self.records.forget(rel)
            elif known.state == "sending":
                self._quarantine(
                    rel, known.signature, "vanished", "the file disappeared before it was uploaded"
                )
            elif known.state == "quarantined" and known.reason_code != "vanished":
                self.records.forget(rel)  # the problem went away with the file
            elif known.state in DONE_STATES and known.after_done is None:
                self.records.after(rel, "gone")
                self.after_pending.discard(rel)

    # -- the stable-file rule --------------------------------------------------

    def check(self) -> list[Candidate]:
        """Look again at candidates due for a look; returns those ready to upload."""
        now = self.clock()
        settle = self.folder.settle_seconds
        unchanged: list[Candidate] = []
        for candidate in list(self.candidates.values()):
            if candidate.ready or now - candidate.checked_at < settle:
                continue
            path = self.root / candidate.rel
            try:
                st = os.stat(path)
            except FileNotFoundError:
                self._gone(candidate.rel)
                if os.path.lexists(path):
                    self._observe(candidate.rel, None, now)
                continue
            except PermissionError:
                self._quarantine_candidate(
                    candidate, "permission_denied", "this account may not look at the file"
                )
                continue
            except OSError as exc:
                self._quarantine_candidate(candidate, "unreadable", _os_reason(exc))
                continue
            sig = signature(st)
            if sig != candidate.signature:
                candidate.signature, candidate.checked_at = sig, now
                self._give_up_if_late(candidate, now, "it kept changing")
                continue
            unchanged.append(candidate)
        held = self.holders([self.root / c.rel for c in unchanged]) if unchanged else {}
        ready = []
        for candidate in unchanged:
            holders = held.get(self.root / candidate.rel)
            if holders:
                candidate.checked_at = now
                why = "; ".join(h.describe() for h in holders[:3])
                late = self._give_up_if_late(candidate, now, f"it stayed {why}")
                if not late and not candidate.recheck:
                    self.records.waiting(
                        [(candidate.rel, *candidate.signature)],
                        "held_open",
                        f"{why}; waiting until it is closed",
                    )
                continue
            candidate.ready = True
            ready.append(candidate)
        return ready

    def _give_up_if_late(self, candidate: Candidate, now: float, why: str) -> bool:
        waited = now - candidate.first_seen
        if waited < self.folder.give_up_seconds:
            return False
        self._quarantine_candidate(
            candidate,
            "never_stable",
            f"not stable after {waited:.0f} s: {why}; it is uploaded if it settles later",
        )
        return True

    # -- uploading -------------------------------------------------------------

    def upload_ready(self, stop: threading.Event | None = None) -> int:
        """Upload every ready candidate (stops early when the cloud fails or
        ``stop`` is set); returns how many reached the cloud."""
        done = 0
        for candidate in [c for c in self.candidates.values() if c.ready]:
            if (stop is not None and stop.is_set()) or self.clock() < self.cloud_paused_until:
                break
            try:
                if self._upload(candidate):
                    done += 1
            except Cancelled:
                break
        for rel in sorted(self.after_pending):
            if stop is not None and stop.is_set():
                break
            self._after(rel)
        return done

    def _upload(self, candidate: Candidate) -> bool:
        rel, sig = candidate.rel, candidate.signature
        path = self.root / rel
        prior = self.records.known.get(rel)
        try:
            hashed = hash_file(path, sig, self.cancel)
            kind = cloud_kind(hashed.format, self.folder.kind)
            if hashed.size == 0:
                check_unchanged(path, sig, "before it was sent")
            self.records.sending(
                rel, hashed.size, hashed.mtime_ns, hashed.sha256, kind, hashed.format
            )
            client = self._cloud()
            if client.head_file(hashed.sha256):
                resent = prior is not None and (prior.state, prior.sha256) == (
                    "sending",
                    hashed.sha256,
                )
                outcome = "uploaded" if resent else "duplicate"
            else:
                ack = client.put_file(
                    hashed.sha256,
                    FileUpload(cloud_name(PurePosixPath(rel).name), hashed.size, kind, self.label),
                    verified_pieces(path, hashed, self.cancel),
                )
                outcome = "duplicate" if ack.duplicate else "uploaded"
        except FileChangedError as exc:
            self._changed(candidate, exc)
            return False
        except PermissionError:
            self._quarantine_candidate(
                candidate, "permission_denied", "this account may not read the file"
            )
            return False
        except BatchTooLargeError as exc:
            self._quarantine_candidate(candidate, "too_large", exc.message)
            return False
        except CloudRejectedError as exc:
            self._quarantine_candidate(candidate, "rejected", exc.message)
            return False
        except CloudError as exc:
            self._cloud_failed(candidate, exc)
            return False
        except BridgeError as exc:  # the client could not be built (token, CA bundle)
            self._cloud_failed(candidate, exc)
            return False
        except OSError as exc:
            self._quarantine_candidate(candidate, "unreadable", _os_reason(exc))
            return False
        self._backoff.reset()
        self.cloud_problem = None
        kept = self.folder.after == "leave"
        self.records.done(rel, outcome, kept=kept)  # type: ignore[arg-type]
        del self.candidates[rel]
        log.info(
            "export file uploaded" if outcome == "uploaded" else "export file already in the cloud",
            extra={
                "folder": self.label,
                "file_id": self._id(rel),
                "bytes": hashed.size,
                "kind": kind,
                "format": hashed.format,
            },
        )
        if not kept:
            self.after_pending.add(rel)
        return True

    def _changed(self, candidate: Candidate, exc: FileChangedError) -> None:
        if exc.reason_code == "vanished":
            self._quarantine_candidate(candidate, "vanished", exc.message)
            return
        candidate.ready, candidate.checked_at = False, self.clock()
        candidate.signature = (-1, -1)  # the next look starts the settle time again
        log.info("export file changed while read; retrying", extra={"folder": self.label})
        if not candidate.recheck:
            try:
                st = os.stat(self.root / candidate.rel)
                size, mtime = st.st_size, st.st_mtime_ns
            except OSError:
                size, mtime = -1, -1
            self.records.retry(candidate.rel, size, mtime, "changed_while_reading", exc.message)

    def _cloud_failed(self, candidate: Candidate, exc: BridgeError) -> None:
        retry_after = getattr(exc, "retry_after", None)
        delay = self._backoff.next()
        if isinstance(retry_after, int | float):
            delay = max(delay, float(retry_after))
        if isinstance(exc, CloudAuthError | CloudTlsError) or not isinstance(exc, CloudError):
            delay = max(delay, 60.0)
        self.cloud_paused_until = self.clock() + delay
        self.cloud_problem = exc
        if self._client is not None and not isinstance(exc, CloudUnavailableError):
            self.close()  # rebuilt at the next try (a new token or CA bundle is read then)
        code = "cloud_unavailable" if isinstance(exc, CloudUnavailableError) else "cloud_error"
        # Still "sending": the cloud may have stored it before the connection broke.
        self.records.note(candidate.rel, code, exc.message)
        log.warning(
            "export file upload failed; retrying",
            extra={"folder": self.label, "kind": exc.kind.value, "retry_in_s": round(delay, 1)},
        )

    def _cloud(self) -> CloudClient:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def _after(self, rel: str) -> None:
        known = self.records.known.get(rel)
        self.after_pending.discard(rel)
        if known is None or known.state not in DONE_STATES or known.after_done is not None:
            return
        try:
            done, target = apply_after(
                self.folder.after, self.root / rel, known.signature, self.folder.archive_to, rel
            )
        except FileChangedError:
            return  # new content at the path: it is picked up as a new file
        except OSError as exc:
            self.records.after_failed(rel, f"{self.folder.after} failed: {_os_reason(exc)}")
            log.warning(
                "after-upload action failed; retrying at the next scan",
                extra={"folder": self.label, "file_id": self._id(rel), "action": self.folder.after},
            )
            return
        self.records.after(rel, done, str(target) if target is not None else None)

    # -- quarantine --------------------------------------------------------------

    def _quarantine_candidate(self, candidate: Candidate, code: str, reason: str) -> None:
        self.candidates.pop(candidate.rel, None)
        self._quarantine(candidate.rel, candidate.signature, code, reason)

    def _quarantine(self, rel: str, sig: Signature, code: str, reason: str) -> None:
        if self.records.quarantine(rel, sig[0], sig[1], code, reason):
            log.warning(
                "export file quarantined",
                extra={"folder": self.label, "file_id": self._id(rel), "reason": code},
            )

    def _id(self, rel: str) -> int | None:
        return self.records.id_of(rel)

    # -- timing and health -----------------------------------------------------

    def next_due(self) -> float | None:
        """Clock time of the next step with anything to do, or None."""
        times = [
            c.checked_at + self.folder.settle_seconds
            for c in self.candidates.values()
            if not c.ready
        ]
        if any(c.ready for c in self.candidates.values()) or self.after_pending:
            times.append(max(self.cloud_paused_until, self.clock()))
        return min(times) if times else None

    def health(self) -> Health:
        """This folder's component health (``folder:<label>``), for status."""
        counts = self.records.counts()
        waiting = counts["waiting"] + counts["sending"]
        quarantined = counts["quarantined"]
        details: dict[str, object] = {
            "folder": self.label,
            "path": str(self.root),
            **counts,
            "candidates": len(self.candidates),
            "scans": self.scans,
        }
        summary = f"{waiting} waiting, {quarantined} quarantined, " + (
            f"{counts['uploaded'] + counts['duplicate']} in the cloud"
        )
        component = f"folder:{self.label}"
        if self.folder_problem is not None and not self.root.is_dir():
            return Health(
                component,
                "fail",
                f"folder {self.label}: {self.folder_problem}",
                fix="Check that the folder exists and that the bridge's account may read it "
                "(a network share must be mounted for the service's account).",
                error_kind="config",
                details=details,
            )
        if self.cloud_problem is not None:
            return Health(
                component,
                "fail" if not getattr(self.cloud_problem, "retryable", False) else "warn",
                f"folder {self.label}: uploads paused ({self.cloud_problem.message}); {summary}",
                fix=self.cloud_problem.fix,
                error_kind=self.cloud_problem.kind.value,
                details=details,
            )
        if quarantined or self.folder_problem:
            problem = f"; {self.folder_problem}" if self.folder_problem else ""
            return Health(
                component,
                "warn",
                f"folder {self.label}: {summary}{problem}",
                fix="See 'bridge files --state quarantined' for each file's reason.",
                details=details,
            )
        return Health(component, "ok", f"folder {self.label}: {summary}", details=details)


def _folder_error(exc: OSError, root: Path) -> str:
    if isinstance(exc, FileNotFoundError):
        return "the folder does not exist (or the share is not connected)"
    if isinstance(exc, PermissionError):
        return "this account may not list the folder (permission denied)"
    if isinstance(exc, NotADirectoryError):
        return "the path is a file, not a folder"
    return f"the folder cannot be listed ({type(exc).__name__})"


def _os_reason(exc: OSError) -> str:
    return f"the file could not be read ({exc.strerror or type(exc).__name__})"


def _file_type(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a file"
