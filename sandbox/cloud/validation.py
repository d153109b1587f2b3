"""Checks of /v1 request bodies and headers, one rule per field of docs/cloud-api.yaml.

Each ``parse_*`` function takes the decoded JSON and returns a typed,
normalised value or raises a 422 :class:`~sandbox.cloud.wire.ApiError` whose
message and ``field`` name the culprit (``changes[3].op``). The rules mirror
the OpenAPI schemas; the tests check that what the server accepts, the spec
accepts too. Also here: the version order (:func:`version_key`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar
from urllib.parse import unquote

from sandbox.cloud.checksums import KeyRange, key_order
from sandbox.cloud.models import JsonObject
from sandbox.cloud.wire import ApiError, unprocessable

ENTITY = re.compile(r"[a-z][a-z0-9_]{0,63}")
ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
CODE = re.compile(r"[a-z][a-z0-9_.]{0,63}")
VERSION = re.compile(r"[\x21-\x7e]{1,128}")
SHA256 = re.compile(r"[0-9a-f]{64}")
TIMESTAMP = re.compile(
    r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})", re.ASCII
)
MAX_SEQ = 2**63 - 1
RESULT_STATUSES = ("confirmed", "held", "conflict", "needs_review", "rejected")
NEEDS_REASON = ("conflict", "needs_review", "rejected")
FILE_KINDS = ("era835", "claim", "report", "statement", "other")
MAX_RANGES = 1000
KEY_LIST_DEFAULT = 1000
KEY_LIST_MAX = 10_000
MAX_KEY = 256

T = TypeVar("T")
Op = Literal["upsert", "delete"]


def version_key(version: str) -> tuple[int, str]:
    """Sort key of the version order: shortlex (shorter is older, then byte order).

    Versions are printable ASCII, so string order is byte order. Unpadded
    decimal integers and fixed-width strings both order naturally.
    """
    return (len(version), version)


@dataclass(frozen=True)
class Change:
    entity: str
    op: Op
    key: str
    version: str
    observed_at: str
    data: JsonObject | None


@dataclass(frozen=True)
class ChangeBatch:
    agent_id: str
    batch_id: str
    seq: int
    changes: tuple[Change, ...]


@dataclass(frozen=True)
class FileMeta:
    name: str
    size: int
    kind: str
    source_folder: str


def parse_change_batch(body: JsonObject, *, max_changes: int) -> ChangeBatch:
    """The batch in ``body``; more than ``max_changes`` changes is 413."""
    agent_id = _string(_required(body, "agent_id", ""), "agent_id", max_len=128)
    batch_id = _string(_required(body, "batch_id", ""), "batch_id", pattern=ID)
    seq = _integer(_required(body, "seq", ""), "seq", maximum=MAX_SEQ)
    raw = _required(body, "changes", "")
    if not isinstance(raw, list):
        raise unprocessable("changes", "must be an array")
    if not raw:
        raise unprocessable("changes", "must not be empty")
    if len(raw) > max_changes:
        raise ApiError(
            413,
            "batch_too_large",
            f"changes: {len(raw)} changes, more than the {max_changes} allowed; split the batch",
            field="changes",
        )
    changes = tuple(_change(item, f"changes[{i}]") for i, item in enumerate(raw))
    return ChangeBatch(agent_id, batch_id, seq, changes)


def _change(item: object, path: str) -> Change:
    obj = _object(item, path)
    entity = _string(_required(obj, "entity", path), f"{path}.entity", pattern=ENTITY)
    op = _required(obj, "op", path)
    if op not in ("upsert", "delete"):
        raise unprocessable(f"{path}.op", "must be 'upsert' or 'delete'")
    key = _string(_required(obj, "key", path), f"{path}.key", max_len=256)
    version = _string(_required(obj, "version", path), f"{path}.version", pattern=VERSION)
    observed_at = _timestamp(_required(obj, "observed_at", path), f"{path}.observed_at")
    data: JsonObject | None
    if op == "upsert":
        data = _object(_required(obj, "data", path), f"{path}.data")
    else:
        raw = obj.get("data")
        if raw is not None:
            _object(raw, f"{path}.data")
        data = None
    return Change(entity, op, key, version, observed_at, data)


def parse_checksum_request(body: JsonObject) -> tuple[str, list[KeyRange]]:
    """Entity and ranges of ``POST /v1/checksums``: at most :data:`MAX_RANGES`,
    each non-empty, ascending and not overlapping (``after`` of one at or past
    the ``upto`` of the one before)."""
    entity = _string(_required(body, "entity", ""), "entity", pattern=ENTITY)
    raw = _required(body, "ranges", "")
    if not isinstance(raw, list):
        raise unprocessable("ranges", "must be an array")
    if not 1 <= len(raw) <= MAX_RANGES:
        raise unprocessable("ranges", f"must hold 1 to {MAX_RANGES} ranges")
    ranges = [_key_range(item, f"ranges[{i}]") for i, item in enumerate(raw)]
    for i in range(1, len(ranges)):
        before, current = ranges[i - 1].upto, ranges[i].after
        if before is None or current is None or key_order(current) < key_order(before):
            raise unprocessable(
                f"ranges[{i}].after", "ranges must be ascending and must not overlap"
            )
    return entity, ranges


def parse_key_list_request(body: JsonObject) -> tuple[str, KeyRange, int]:
    """Entity, range and limit of ``POST /v1/checksums/keys``."""
    entity = _string(_required(body, "entity", ""), "entity", pattern=ENTITY)
    span = _key_range(body, "")
    limit = body.get("limit", KEY_LIST_DEFAULT)
    if limit is None:
        limit = KEY_LIST_DEFAULT
    limit = _integer(limit, "limit", maximum=KEY_LIST_MAX)
    if limit < 1:
        raise unprocessable("limit", f"must be between 1 and {KEY_LIST_MAX}")
    return entity, span, limit


def _key_range(item: object, path: str) -> KeyRange:
    obj = _object(item, path or "body")
    prefix = f"{path}." if path else ""
    bounds: list[str | None] = []
    for name in ("after", "upto"):
        value = obj.get(name)
        bounds.append(None if value is None else _string(value, f"{prefix}{name}", max_len=MAX_KEY))
    after, upto = bounds
    if after is not None and upto is not None and key_order(upto) <= key_order(after):
        raise unprocessable(f"{prefix}upto", "must come after 'after' in key order")
    return KeyRange(after, upto)


def parse_inbox_result(body: JsonObject) -> JsonObject:
    """The result, normalised with its defaults (``pms_ids``, ``alternatives``, ``reason``)."""
    status = _required(body, "status", "")
    if status not in RESULT_STATUSES:
        raise unprocessable("status", f"must be one of {', '.join(RESULT_STATUSES)}")
    pms_ids = _map(body.get("pms_ids", {}), "pms_ids", lambda v, f: _string(v, f, max_len=128))
    raw_alternatives = body.get("alternatives", [])
    if not isinstance(raw_alternatives, list):
        raise unprocessable("alternatives", "must be an array")
    if len(raw_alternatives) > 50:
        raise unprocessable("alternatives", "at most 50 alternatives")
    alternatives = [_alternative(a, f"alternatives[{i}]") for i, a in enumerate(raw_alternatives)]
    reason = _reason(body.get("reason"), status)
    return {"status": status, "pms_ids": pms_ids, "alternatives": alternatives, "reason": reason}


def _alternative(item: object, path: str) -> JsonObject:
    obj = _object(item, path)
    start = _timestamp(_required(obj, "start", path), f"{path}.start")
    end = _timestamp(_required(obj, "end", path), f"{path}.end")
    if parse_timestamp(end) <= parse_timestamp(start):
        raise unprocessable(f"{path}.end", "must be after start")
    return {
        "start": start,
        "end": end,
        "provider_id": _string(
            _required(obj, "provider_id", path), f"{path}.provider_id", max_len=128
        ),
        "operatory_id": _string(
            _required(obj, "operatory_id", path), f"{path}.operatory_id", max_len=128
        ),
    }


def _reason(value: object, status: str) -> JsonObject | None:
    if value is None:
        if status in NEEDS_REASON:
            raise unprocessable("reason", f"is required when status is {status!r}")
        return None
    obj = _object(value, "reason")
    code = _string(_required(obj, "code", "reason"), "reason.code", pattern=CODE)
    message = _string(
        _required(obj, "message", "reason"), "reason.message", min_len=0, max_len=1000
    )
    return {"code": code, "message": message}


def parse_heartbeat(body: JsonObject) -> JsonObject:
    """The heartbeat, normalised with its defaults."""
    agent_id = _string(_required(body, "agent_id", ""), "agent_id", max_len=128)
    version = _string(_required(body, "version", ""), "version", max_len=64)
    queue_depths = _map(body.get("queue_depths", {}), "queue_depths", _integer)
    last_sync = _map(body.get("last_sync", {}), "last_sync", _optional_timestamp)
    lag_seconds = _map(body.get("lag_seconds", {}), "lag_seconds", _number)
    raw_errors = body.get("errors", [])
    if not isinstance(raw_errors, list):
        raise unprocessable("errors", "must be an array")
    if len(raw_errors) > 100:
        raise unprocessable("errors", "at most 100 errors")
    errors = [_heartbeat_error(e, f"errors[{i}]") for i, e in enumerate(raw_errors)]
    return {
        "agent_id": agent_id,
        "version": version,
        "queue_depths": queue_depths,
        "last_sync": last_sync,
        "lag_seconds": lag_seconds,
        "errors": errors,
    }


def _heartbeat_error(item: object, path: str) -> JsonObject:
    obj = _object(item, path)
    kind = obj.get("kind")
    return {
        "component": _string(_required(obj, "component", path), f"{path}.component", max_len=64),
        "message": _string(
            _required(obj, "message", path), f"{path}.message", min_len=0, max_len=1000
        ),
        "kind": None if kind is None else _string(kind, f"{path}.kind", min_len=0, max_len=64),
        "since": _optional_timestamp(obj.get("since"), f"{path}.since"),
    }


def parse_file_meta(headers: Any, sha256: str) -> FileMeta:
    """The upload's headers (``X-File-Name``, ``X-File-Size``, ``X-File-Kind``,
    ``X-Source-Folder``); a bad or missing header is 400 naming it."""
    if not SHA256.fullmatch(sha256):
        raise ApiError(
            400, "bad_request", "sha256: must be 64 lowercase hex digits", field="sha256"
        )
    name = _encoded_header(headers, "X-File-Name", 255)
    if any(c in name for c in "/\\"):
        raise _header_error("X-File-Name", "must be a name without a folder")
    folder = _encoded_header(headers, "X-Source-Folder", 1024)
    size_text = _header(headers, "X-File-Size")
    if not size_text.isdigit() or not size_text.isascii():
        raise _header_error("X-File-Size", "must be a whole number of bytes")
    kind = _header(headers, "X-File-Kind")
    if kind not in FILE_KINDS:
        raise _header_error("X-File-Kind", f"must be one of {', '.join(FILE_KINDS)}")
    return FileMeta(name=name, size=int(size_text), kind=kind, source_folder=folder)


def parse_timestamp(text: str) -> datetime:
    """A timestamp already checked by :data:`TIMESTAMP` as an aware datetime."""
    match = TIMESTAMP.fullmatch(text)
    if match is None:
        raise ValueError(text)
    date, time, fraction, offset = match.groups()
    micro = (fraction or ".0")[1:7].ljust(6, "0")
    offset = "+00:00" if offset == "Z" else offset
    return datetime.fromisoformat(f"{date}T{time}.{micro}{offset}")


def _header(headers: Any, name: str) -> str:
    value = headers.get(name)
    if value is None or not str(value).strip():
        raise ApiError(400, "missing_header", f"{name}: header is required", field=name)
    return str(value).strip()


def _encoded_header(headers: Any, name: str, max_len: int) -> str:
    raw = _header(headers, name)
    if not raw.isascii() or not raw.isprintable() or " " in raw:
        raise _header_error(name, "must be percent-encoded UTF-8 (printable ASCII, no spaces)")
    try:
        value = unquote(raw, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise _header_error(name, "does not decode as UTF-8") from None
    if not value or len(value) > max_len:
        raise _header_error(name, f"must be 1 to {max_len} characters once decoded")
    if any(not c.isprintable() for c in value):
        raise _header_error(name, "must not contain control characters")
    return value


def _header_error(name: str, problem: str) -> ApiError:
    return ApiError(400, "bad_request", f"{name}: {problem}", field=name)


def _required(obj: JsonObject, name: str, path: str) -> Any:
    field = f"{path}.{name}" if path else name
    if name not in obj or obj[name] is None:
        raise unprocessable(field, "is required")
    return obj[name]


def _object(value: object, field: str) -> JsonObject:
    if not isinstance(value, dict):
        raise unprocessable(field, "must be an object")
    return value


def _string(
    value: object,
    field: str,
    *,
    pattern: re.Pattern[str] | None = None,
    min_len: int = 1,
    max_len: int = 1_000_000,
) -> str:
    if not isinstance(value, str):
        raise unprocessable(field, "must be a string")
    if pattern is not None:
        if not pattern.fullmatch(value):
            raise unprocessable(field, f"must match {pattern.pattern}")
    elif not min_len <= len(value) <= max_len:
        raise unprocessable(field, f"must be {min_len} to {max_len} characters")
    return value


def _integer(value: object, field: str, *, maximum: int = MAX_SEQ) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise unprocessable(field, "must be an integer")
    if not 0 <= value <= maximum:
        raise unprocessable(field, f"must be between 0 and {maximum}")
    return value


def _number(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise unprocessable(field, "must be a number")
    if value < 0:
        raise unprocessable(field, "must not be negative")
    return value


def _timestamp(value: object, field: str) -> str:
    if not isinstance(value, str) or not TIMESTAMP.fullmatch(value):
        raise unprocessable(field, "must be an ISO 8601 date-time with an offset")
    try:
        parse_timestamp(value)
    except ValueError:
        raise unprocessable(field, "is not a valid date-time") from None
    return value


def _optional_timestamp(value: object, field: str) -> str | None:
    return None if value is None else _timestamp(value, field)


def _map(value: object, field: str, check: Callable[[object, str], T]) -> dict[str, T]:
    obj = _object(value, field)
    return {k: check(v, f"{field}.{k}") for k, v in obj.items()}
