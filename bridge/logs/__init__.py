"""The bridge's local logs: rotated JSON-lines files with personal data masked.

Public API::

    setup_logging(log_dir, level, max_bytes, backup_count, *, console=False) -> Path
    shutdown_logging()
    iter_log_records(log_dir, *, level=None, text=None, since=None, logger=None)
    tail_log_records(log_dir, n, LogFilter(...)) -> list[LogEntry]
    follow_log_records(log_dir, LogFilter(...), lines=0, stop=...) -> Iterator[LogEntry]
    parse_since("10m") -> datetime
    Redactor().text(s) / RedactionFilter      # masking, also for support bundles

Writing (:mod:`.writer`), the line format (:mod:`.jsonl`), masking
(:mod:`.redact`) and reading (:mod:`.reader`) each document their contracts.
"""

from __future__ import annotations

from bridge.logs.jsonl import format_human
from bridge.logs.reader import (
    LogEntry,
    LogFilter,
    follow_log_records,
    iter_log_records,
    log_files,
    parse_since,
    tail_log_records,
)
from bridge.logs.redact import (
    PERSONAL_FIELD_NAMES,
    REDACTED,
    RedactionFilter,
    Redactor,
    is_personal_field,
)
from bridge.logs.writer import LOG_FILE_NAME, setup_logging, shutdown_logging

__all__ = [
    "LOG_FILE_NAME",
    "PERSONAL_FIELD_NAMES",
    "REDACTED",
    "LogEntry",
    "LogFilter",
    "RedactionFilter",
    "Redactor",
    "follow_log_records",
    "format_human",
    "is_personal_field",
    "iter_log_records",
    "log_files",
    "parse_since",
    "setup_logging",
    "shutdown_logging",
    "tail_log_records",
]
