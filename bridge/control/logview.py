"""The live log view behind the ``logs`` operation: pages of records with a cursor.

:func:`read_page` without ``after`` returns the newest ``limit`` matching
records; with ``after`` (a cursor from an earlier page) the matching records
written since, oldest first, at most ``limit``. The page's cursor points just
past the last line looked at (matching or not), so polling with it reads
each line once. A cursor is ``"<file id>:<offset>"``: the file is found
again by its id (inode) after the writer rotated it, so records are neither
lost nor repeated across rotations; a cursor whose file has rotated away
entirely restarts at the oldest file kept.

Records are returned as they were stored: they were masked when written
(:mod:`bridge.logs.redact`). A page holds at most :data:`MAX_PAGE_BYTES` of
log lines, so an answer stays well below the channel's size limit.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bridge.control.results import LogPage, LogRecord
from bridge.logs import LogEntry, LogFilter, log_files
from bridge.logs.reader import parse_line

MAX_LIMIT = 1000
MAX_PAGE_BYTES = 4 * 1024**2
_CURSOR = re.compile(r"(\d+):(\d+)")


class BadCursor(ValueError):
    """``after`` is not a cursor this module made."""


@dataclass(frozen=True)
class _Line:
    entry: LogEntry | None  # None: not a log record (skipped)
    record: LogRecord | None
    cursor: str  # just after this line
    size: int


def _file_id(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _scan(path: Path, start: int) -> Iterator[_Line]:
    """Complete lines of ``path`` from byte ``start``, with cursors after each."""
    ident = _file_id(path)
    try:
        with path.open("rb") as handle:
            handle.seek(start)
            data = handle.read()
    except OSError:
        return
    if ident is None:
        return
    offset = start
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            return  # the writer is mid-line
        offset += len(line)
        cursor = f"{ident}:{offset}"
        entry = parse_line(line) if line.strip() else None
        record = (
            LogRecord(entry.ts, entry.level, entry.logger, entry.msg, cursor, entry.raw)
            if entry is not None
            else None
        )
        yield _Line(entry, record, cursor, len(line))


def _end_cursor(path: Path) -> str:
    """The cursor after the last complete line of ``path``."""
    ident = _file_id(path)
    if ident is None:
        return ""
    try:
        with path.open("rb") as handle:
            data = handle.read()
    except OSError:
        return ""
    end = data.rfind(b"\n") + 1
    return f"{ident}:{end}"


def read_page(
    log_dir: Path,
    *,
    after: str | None = None,
    limit: int = 200,
    level: str | None = None,
    text: str | None = None,
) -> LogPage:
    """A page of records (see the module docstring); raises BadCursor."""
    limit = max(1, min(limit, MAX_LIMIT))
    if level is not None and level.upper() not in logging.getLevelNamesMapping():
        raise ValueError("level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    wanted = LogFilter(level=level, text=text or None)
    files = log_files(log_dir)
    if after is None:
        return _tail(files, limit, wanted)
    match = _CURSOR.fullmatch(after)
    if match is None:
        raise BadCursor("after must be the cursor of an earlier logs answer")
    ident, offset = int(match.group(1)), int(match.group(2))
    ids = [_file_id(path) for path in files]
    if ident in ids:
        start = ids.index(ident)
        try:
            if files[start].stat().st_size < offset:  # truncated or replaced in place
                offset = 0
        except OSError:
            offset = 0
    else:
        start, offset = 0, 0
    records: list[LogRecord] = []
    cursor = after
    size = 0
    for index, path in enumerate(files[start:]):
        for line in _scan(path, offset if index == 0 else 0):
            cursor = line.cursor
            if line.entry is None or line.record is None or not wanted(line.entry):
                continue
            records.append(line.record)
            size += line.size
            if len(records) >= limit or size >= MAX_PAGE_BYTES:
                return LogPage(tuple(records), cursor)
    return LogPage(tuple(records), cursor)


def _tail(files: list[Path], limit: int, wanted: LogFilter) -> LogPage:
    found: list[tuple[LogRecord, int]] = []
    for path in reversed(files):
        matched = [
            (line.record, line.size)
            for line in _scan(path, 0)
            if line.entry is not None and line.record is not None and wanted(line.entry)
        ]
        found = matched + found
        if len(found) >= limit:
            break
    found = found[-limit:]
    while found and sum(size for _, size in found) > MAX_PAGE_BYTES:
        found.pop(0)
    cursor = _end_cursor(files[-1]) if files else ""
    return LogPage(tuple(record for record, _ in found), cursor)
