"""Setting up the bridge's logging: rotated JSON-lines files, optional console.

:func:`setup_logging` configures the root logger once per process (calling
it again replaces the handlers it installed earlier, never duplicates them).
Every handler it installs carries the :class:`RedactionFilter`, so secrets
and personal data are masked before anything is written.

Disk use is bounded: each file is rotated before it would pass
``max_bytes`` and ``backup_count`` rotated files are kept, so the logs take
at most ``max_bytes * (backup_count + 1)`` bytes (lines are capped well below
``max_bytes``). ``backup_count`` must be at least 1: the standard library
never rotates a file when it is 0.

Only one process should write a given log file (the engine): the standard
rotating handler does not coordinate between processes. If a rotation fails
because another program holds a file open (Windows), writing continues in the
current file and the rotation is retried with the next record.
"""

from __future__ import annotations

import logging
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

from bridge.errors import StateError
from bridge.logs.jsonl import HumanFormatter, JsonLinesFormatter
from bridge.logs.redact import RedactionFilter

LOG_FILE_NAME = "bridge.jsonl"
_OWNED = "_bridge_owned"


class _RotatingJsonlHandler(RotatingFileHandler):
    def doRollover(self) -> None:
        try:
            super().doRollover()
        except OSError:
            if self.stream is None:
                self.stream = self._open()


def setup_logging(
    log_dir: Path,
    level: str | int = "INFO",
    max_bytes: int = 10 * 1024 * 1024,
    backup_count: int = 10,
    *,
    console: bool = False,
    file_name: str = LOG_FILE_NAME,
) -> Path:
    """Log to ``log_dir/file_name`` (and stderr if ``console``); return the file path.

    Raises ValueError for impossible sizes or an unknown level, StateError
    if the log file cannot be opened.
    """
    if backup_count < 1:
        raise ValueError("backup_count must be at least 1 (0 would never rotate)")
    if max_bytes < 4096:
        raise ValueError("max_bytes must be at least 4096")
    numeric = level if isinstance(level, int) else logging.getLevelNamesMapping()[level.upper()]
    shutdown_logging()
    path = log_dir / file_name
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = _RotatingJsonlHandler(
            path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
        )
    except OSError as exc:
        raise StateError(
            f"cannot open log file {path} ({type(exc).__name__}: {exc.strerror})",
            fix="Check free disk space and permissions of the bridge log folder.",
        ) from None
    handler.setFormatter(JsonLinesFormatter(max_line=min(64 * 1024, max_bytes // 4)))
    handlers = [handler]
    if console and sys.stderr is not None:  # None under pythonw / a service
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(HumanFormatter())
        handlers.append(stream)
    root = logging.getLogger()
    for each in handlers:
        each.addFilter(RedactionFilter())
        setattr(each, _OWNED, True)
        root.addHandler(each)
    root.setLevel(numeric)
    return path


def shutdown_logging() -> None:
    """Remove and close the handlers :func:`setup_logging` installed."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _OWNED, False):
            root.removeHandler(handler)
            handler.close()
