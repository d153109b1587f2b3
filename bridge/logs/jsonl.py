"""The log line format: one JSON object per line, and its human rendering.

A line looks like (keys in this order, extras after ``thread``)::

    {"ts":"2026-11-23T10:00:01.123+00:00","level":"INFO","logger":"bridge.sync",
     "msg":"delta sent","thread":"sync-appointments","entity":"appointment","rows":3}

``ts`` is ISO 8601 in UTC with its offset. Extra fields sit at the top level;
one whose name collides with a reserved key is written as ``extra_<name>``.
An exception adds ``"exc": {"type", "message", "traceback"}``, ``stack_info``
adds ``"stack"``, and a shortened line has ``"truncated": true``. Lines are
ASCII (non-ASCII is escaped), so a line's length in characters is its size
in bytes, and no line is longer than the writer's cap: long messages and
tracebacks are shortened (tracebacks keep their end, where the error is).

:func:`format_human` renders a parsed line the way ``bridge logs`` and the
console show it: ``2026-11-23 10:00:01 INFO  bridge.engine  message key=value``
(local time).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bridge.logs.redact import UNLOGGABLE, extra_fields, redact_record

RESERVED_KEYS = frozenset({"ts", "level", "logger", "msg", "thread", "exc", "stack", "truncated"})
DEFAULT_MAX_LINE = 64 * 1024


def record_to_dict(record: logging.LogRecord) -> dict[str, Any]:
    """The JSON object for ``record`` (redacting it first if no filter did)."""
    redact_record(record)
    ts = datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")
    obj: dict[str, Any] = {
        "ts": ts,
        "level": record.levelname,
        "logger": record.name,
        "msg": record.getMessage(),
        "thread": record.threadName,
    }
    for key, value in extra_fields(record).items():
        obj[f"extra_{key}" if key in RESERVED_KEYS else key] = value
    exc = record.__dict__.get("bridge_exc")
    if record.exc_text or exc:
        obj["exc"] = {**(exc or {"type": None, "message": None}), "traceback": record.exc_text}
    if record.stack_info:
        obj["stack"] = record.stack_info
    return obj


def to_line(obj: Mapping[str, Any], max_line: int = DEFAULT_MAX_LINE) -> str:
    """``obj`` as one JSON line (no newline), at most ``max_line`` characters.

    An over-long record keeps its head: message clipped to an eighth of the
    cap, traceback to its last half, each extra to a sixteenth; if that is
    still too long, only the time, level, logger, exception type and message.
    """
    line = _dumps(obj)
    if len(line) <= max_line:
        return line
    short = dict(obj)
    short["msg"] = _clip(str(short.get("msg", "")), max_line // 8)
    exc = short.get("exc")
    if isinstance(exc, Mapping):
        exc = {
            "type": exc.get("type"),
            "message": _clip(str(exc.get("message") or ""), max_line // 16),
            "traceback": _clip_start(str(exc.get("traceback") or ""), max_line // 2),
        }
        short["exc"] = exc
    for key, value in short.items():
        if key not in RESERVED_KEYS and len(_dumps(value)) > max_line // 16:
            short[key] = _clip(_dumps(value), max_line // 16)
    short["truncated"] = True
    line = _dumps(short)
    if len(line) <= max_line:
        return line
    minimal: dict[str, Any] = {k: short[k] for k in ("ts", "level", "logger") if k in short}
    minimal["msg"] = _clip(str(short.get("msg", "")), max_line // 8)
    if isinstance(exc, Mapping):
        minimal["exc"] = {"type": exc.get("type"), "message": None, "traceback": None}
    minimal["truncated"] = True
    return _dumps(minimal)


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"), default=str)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "...[truncated]"


def _clip_start(text: str, limit: int) -> str:
    return text if len(text) <= limit else "[truncated]..." + text[-limit:]


def fallback_line(record: logging.LogRecord) -> str:
    """The line written when a record cannot be formatted at all."""
    ts = datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")
    return _dumps({"ts": ts, "level": str(record.levelname), "logger": str(record.name),
                   "msg": UNLOGGABLE})  # fmt: skip


class JsonLinesFormatter(logging.Formatter):
    """Formats records as JSON lines of at most ``max_line`` characters."""

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        super().__init__()
        self.max_line = max_line

    def format(self, record: logging.LogRecord) -> str:
        try:
            return to_line(record_to_dict(record), self.max_line)
        except Exception:
            return fallback_line(record)


class HumanFormatter(logging.Formatter):
    """Formats records like ``bridge logs`` prints them (for the console)."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            return format_human(record_to_dict(record))
        except Exception:
            return format_human(json.loads(fallback_line(record)))


def format_human(obj: Mapping[str, Any]) -> str:
    """``2026-11-23 10:00:01 INFO  bridge.engine  message key=value`` (+ traceback)."""
    try:
        when = datetime.fromisoformat(str(obj.get("ts"))).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        when = str(obj.get("ts", "?"))
    text = f"{when} {obj.get('level', '?')!s:<5} {obj.get('logger', '?')}  {obj.get('msg', '')}"
    pairs = [f"{k}={_human_value(v)}" for k, v in obj.items() if k not in RESERVED_KEYS]
    if pairs:
        text += " " + " ".join(pairs)
    exc = obj.get("exc")
    if isinstance(exc, Mapping):
        detail = exc.get("traceback") or f"{exc.get('type')}: {exc.get('message')}"
        text += _indented(str(detail))
    if obj.get("stack"):
        text += _indented(str(obj["stack"]))
    return text


def _indented(block: str) -> str:
    return "\n" + "\n".join(f"    {line}" for line in block.rstrip().splitlines())


def _human_value(value: object) -> str:
    if isinstance(value, str) and value and not any(c in value for c in " \"'=\n\t"):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)
