"""Reading the bridge's JSON-lines logs back: for ``bridge logs``, the
panel's log viewer and support bundles.

* :func:`log_files` lists ``bridge.jsonl.N ... bridge.jsonl.1, bridge.jsonl``
  oldest first.
* :func:`iter_log_records` yields every matching record, oldest first.
* :func:`tail_log_records` returns the last ``n`` matching records, reading
  files newest first and stopping as soon as it has enough.
* :func:`follow_log_records` yields the last ``lines`` records, then new ones
  as they are written, across rotations, until ``stop()`` says so.

Reading is tolerant: a corrupt line, a line that is not a log record, or a
partial last line (the writer is mid-write) is skipped, never an error. Each
file is read whole and closed at once, so the reader never holds a file open
while the caller works (on Windows an open file would block the writer's
rotation). A rotation that happens during a read may show a record twice or
skip it; following handles rotations exactly.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bridge.logs.jsonl import RESERVED_KEYS, format_human
from bridge.logs.writer import LOG_FILE_NAME


@dataclass(frozen=True)
class LogEntry:
    """One parsed log line."""

    ts: datetime  # timezone-aware
    level: str
    logger: str
    msg: str
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def extra(self) -> dict[str, Any]:
        return {k: v for k, v in self.raw.items() if k not in RESERVED_KEYS}

    @property
    def exc(self) -> Mapping[str, Any] | None:
        exc = self.raw.get("exc")
        return exc if isinstance(exc, Mapping) else None

    def human(self) -> str:
        return format_human(self.raw)

    def json(self) -> str:
        return json.dumps(self.raw, ensure_ascii=False, separators=(",", ":"))


def parse_line(line: str | bytes) -> LogEntry | None:
    """The entry on one line, or None if the line is not a log record."""
    try:
        obj = json.loads(line)
        ts = datetime.fromisoformat(obj["ts"])
        level, logger, msg = obj["level"], obj["logger"], obj["msg"]
    except (ValueError, KeyError, TypeError):
        return None
    if not all(isinstance(v, str) for v in (level, logger, msg)):
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return LogEntry(ts, level, logger, msg, obj)


@dataclass(frozen=True)
class LogFilter:
    """Which entries to show; every criterion left None matches all."""

    level: str | None = None  # this level and more severe
    text: str | None = None  # case-insensitive, in the rendered line or traceback
    since: datetime | None = None
    logger: str | None = None  # this logger and its children

    def __call__(self, entry: LogEntry) -> bool:
        if self.level is not None and _severity(entry.level) < _severity(self.level):
            return False
        if self.since is not None and entry.ts < _aware(self.since):
            return False
        if self.logger is not None and not (
            entry.logger == self.logger or entry.logger.startswith(self.logger + ".")
        ):
            return False
        return self.text is None or self.text.casefold() in entry.human().casefold()


def _severity(level: str) -> int:
    return logging.getLevelNamesMapping().get(level.upper(), logging.NOTSET)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.astimezone()


def log_files(log_dir: Path, file_name: str = LOG_FILE_NAME) -> list[Path]:
    """The log file and its rotated copies, oldest first."""
    pattern = re.compile(re.escape(file_name) + r"\.(\d+)")
    rotated: list[tuple[int, Path]] = []
    try:
        names = os.listdir(log_dir)
    except OSError:
        return []
    for name in names:
        match = pattern.fullmatch(name)
        if match:
            rotated.append((int(match.group(1)), log_dir / name))
    files = [path for _, path in sorted(rotated, reverse=True)]
    current = log_dir / file_name
    return [*files, current] if current.exists() else files


def _read_entries(path: Path, start: int = 0, end: int | None = None) -> Iterator[LogEntry]:
    """Entries of one file; the bytes are read at once and the file closed
    before the first entry is parsed."""
    try:
        with path.open("rb") as handle:
            handle.seek(start)
            data = handle.read() if end is None else handle.read(max(0, end - start))
    except OSError:
        return
    for line in io.BytesIO(data):
        entry = parse_line(line) if line.strip() else None
        if entry is not None:
            yield entry


def iter_log_records(
    log_dir: Path,
    *,
    level: str | None = None,
    text: str | None = None,
    since: datetime | None = None,
    logger: str | None = None,
    file_name: str = LOG_FILE_NAME,
) -> Iterator[LogEntry]:
    """Every matching record in the log folder, oldest first."""
    wanted = LogFilter(level, text, since, logger)
    for path in log_files(log_dir, file_name):
        yield from filter(wanted, _read_entries(path))


def tail_log_records(
    log_dir: Path,
    n: int,
    *,
    level: str | None = None,
    text: str | None = None,
    since: datetime | None = None,
    logger: str | None = None,
    file_name: str = LOG_FILE_NAME,
) -> list[LogEntry]:
    """The last ``n`` matching records, oldest first."""
    wanted = LogFilter(level, text, since, logger)
    return _tail(log_files(log_dir, file_name), n, wanted)


def _tail(
    files: list[Path], n: int, wanted: LogFilter, limits: Mapping[Path, int] | None = None
) -> list[LogEntry]:
    """The last ``n`` matches; ``limits`` caps how many bytes of a file are read."""
    if n <= 0:
        return []
    limits = limits or {}
    found: list[LogEntry] = []
    for path in reversed(files):
        entries = [e for e in _read_entries(path, 0, limits.get(path)) if wanted(e)]
        found = entries + found
        if len(found) >= n:
            break
    return found[-n:]


def follow_log_records(
    log_dir: Path,
    *,
    lines: int = 0,
    level: str | None = None,
    text: str | None = None,
    since: datetime | None = None,
    logger: str | None = None,
    poll_interval: float = 0.5,
    stop: Callable[[], bool] = lambda: False,
    file_name: str = LOG_FILE_NAME,
) -> Iterator[LogEntry]:
    """The last ``lines`` matching records as of this call, then each new one
    as it is written.

    Polls every ``poll_interval`` seconds; ends when ``stop()`` returns true
    (checked between polls). Follows the file across rotations without
    losing or repeating records.
    """
    wanted = LogFilter(level, text, since, logger)
    current = log_dir / file_name
    identity = _identity(current)  # the starting point is the time of the call
    start = _Position(identity[0], identity[1]) if identity else _Position(None, 0)
    backlog = _tail(log_files(log_dir, file_name), lines, wanted, {current: start.offset})

    def records() -> Iterator[LogEntry]:
        yield from backlog
        while not stop():
            batch = _poll(current, start)
            yield from filter(wanted, batch)
            if not batch:
                time.sleep(poll_interval)

    return records()


@dataclass
class _Position:
    inode: int | None  # None: the file did not exist; 0: the file system has no inodes
    offset: int


def _poll(current: Path, position: _Position) -> list[LogEntry]:
    """New complete records since ``position`` (which it advances)."""
    identity = _identity(current)
    if identity is None:  # between a rotation's rename and the new file
        return []
    inode, size = identity
    batch: list[LogEntry] = []
    if position.inode is None:
        position.inode, position.offset = inode, 0
    elif inode != position.inode:  # rotated: finish the old file first
        old = _find_by_inode(current, position.inode) if position.inode else None
        if old is not None:
            batch, _ = _read_new(old, position.offset)
        position.inode, position.offset = inode, 0
    if size < position.offset:  # truncated or replaced in place
        position.offset = 0
    more, position.offset = _read_new(current, position.offset)
    return batch + more


def _identity(path: Path) -> tuple[int, int] | None:
    """``(inode, size)`` of ``path``, or None if it does not exist."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_size


def _find_by_inode(current: Path, inode: int) -> Path | None:
    for path in log_files(current.parent, current.name):
        identity = _identity(path)
        if identity is not None and identity[0] == inode:
            return path
    return None


def _read_new(path: Path, offset: int) -> tuple[list[LogEntry], int]:
    """Complete lines after ``offset``; returns them and the new offset."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return [], offset
    complete = data.rfind(b"\n") + 1
    entries = [e for e in map(parse_line, data[:complete].splitlines()) if e is not None]
    return entries, offset + complete


_RELATIVE = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``"10m"``, ``"2h"``, ``"3d"`` ago, or an ISO date/time (local if no offset).

    Raises ValueError with a readable message.
    """
    value = text.strip()
    match = _RELATIVE.fullmatch(value.lower())
    if match:
        try:
            delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
            return (now or datetime.now(UTC)) - delta
        except OverflowError:
            raise ValueError(f"{text!r} is too long ago") from None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use e.g. 10m, 2h, 3d or 2026-11-23T10:00"
        ) from None
    return _aware(moment).astimezone(UTC)
