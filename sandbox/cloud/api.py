"""The /v1 routes of the Cloud API (docs/cloud-api.yaml), one function each.

A route gets the app, the authenticated agent id, the request and the path
match, and returns a :class:`~sandbox.cloud.wire.Reply` or raises an
:class:`~sandbox.cloud.wire.ApiError`. Routes read the body themselves, as
JSON under the size limit or (files) as a stream. Idempotency lives in the
stores; this layer checks headers, parses and answers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from sandbox.cloud.app import CloudApp
from sandbox.cloud.models import JsonObject
from sandbox.cloud.validation import (
    ID,
    SHA256,
    parse_change_batch,
    parse_checksum_request,
    parse_file_meta,
    parse_heartbeat,
    parse_inbox_result,
    parse_key_list_request,
)
from sandbox.cloud.wire import ApiError, Reply, Request, canonical_sha256

Route = Callable[[CloudApp, str, Request, "re.Match[str]"], Reply]


def post_changes(app: CloudApp, agent_id: str, request: Request, match: re.Match[str]) -> Reply:
    limits = app.limits()
    key = request.headers.get("Idempotency-Key")
    if not key:
        raise ApiError(
            400, "missing_header", "Idempotency-Key: header is required", field="Idempotency-Key"
        )
    try:
        body = request.json(limits.max_body_bytes)
        batch = parse_change_batch(body, max_changes=limits.max_changes)
    except ApiError as error:
        if error.status == 413:
            error.limits = _limits_json(app)
        raise
    if key != batch.batch_id:
        raise ApiError(
            400,
            "idempotency_key_mismatch",
            "Idempotency-Key: must equal the body's batch_id",
            field="Idempotency-Key",
        )
    _check_agent(agent_id, batch.agent_id)
    record, duplicate = app.changes.apply_batch(
        batch, body_sha256=canonical_sha256(body), body_bytes=request.body.bytes_read
    )
    return Reply(
        200,
        {
            "batch_id": record.batch_id,
            "accepted": record.changes,
            "duplicate": duplicate,
            "applied": record.applied,
            "stale": record.stale,
            "received_at": record.received_at,
        },
    )


def get_inbox(app: CloudApp, agent_id: str, request: Request, match: re.Match[str]) -> Reply:
    limits = app.limits()
    after = request.param("after")
    if after is not None and not 1 <= len(after) <= 200:
        raise ApiError(400, "invalid_cursor", "after: not a cursor from this cloud", field="after")
    wait = _number_param(request, "wait", default=0.0)
    limit = _number_param(request, "limit", default=100, integer=True)
    if not 1 <= limit <= 500:
        raise ApiError(400, "bad_request", "limit: must be between 1 and 500", field="limit")
    items, cursor, more = app.inbox_store.poll(
        agent_id,
        after,
        wait=min(wait, limits.max_wait_seconds),
        limit=int(limit),
        stopping=app.stopping,
    )
    page: JsonObject = {
        "items": [
            {
                "id": item.id,
                "type": item.type,
                "created_at": item.created_at,
                "payload": item.payload,
                "deliveries": item.deliveries,
            }
            for item in items
        ],
        "cursor": cursor,
        "more": more,
    }
    return Reply(200, page)


def post_result(app: CloudApp, agent_id: str, request: Request, match: re.Match[str]) -> Reply:
    item_id = match["id"]
    if not ID.fullmatch(item_id):
        raise ApiError(400, "bad_request", f"id: must match {ID.pattern}", field="id")
    result = parse_inbox_result(request.json(app.limits().max_body_bytes))
    record, duplicate = app.inbox_store.record_result(agent_id, item_id, result)
    return Reply(
        200,
        {
            "id": record.id,
            "status": record.status,
            "duplicate": duplicate,
            "received_at": record.received_at,
        },
    )


def head_file(app: CloudApp, agent_id: str, request: Request, match: re.Match[str]) -> Reply:
    sha256 = match["sha256"]
    if not SHA256.fullmatch(sha256):
        raise ApiError(
            400, "bad_request", "sha256: must be 64 lowercase hex digits", field="sha256"
        )
    record = app.file_store.get(sha256)
    if record is None:
        return Reply(404)
    return Reply(200, headers={"X-File-Size": str(record.size)})


def put_file(app: CloudApp, agent_id: str, request: Request, match: re.Match[str]) -> Reply:
    limits = app.limits()
    meta = parse_file_meta(request.headers, match["sha256"])
    if meta.size > limits.max_file_bytes:
        raise ApiError(
            413,
            "file_too_large",
            f"X-File-Size: larger than the {limits.max_file_bytes} bytes allowed",
            field="X-File-Size",
            limits=_limits_json(app),
        )
    declared = request.body.declared_length
    if not request.body.chunked and declared != meta.size:
        raise ApiError(
            400,
            "size_mismatch",
            f"Content-Length: {declared} is not X-File-Size ({meta.size})",
            field="Content-Length",
        )
    content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if content_type != "application/octet-stream":
        raise ApiError(
            415,
            "unsupported_media_type",
            "Content-Type: must be application/octet-stream",
            field="Content-Type",
        )
    coding = (request.headers.get("Content-Encoding") or "identity").strip().lower()
    if coding != "identity":
        raise ApiError(
            415,
            "unsupported_media_type",
            "Content-Encoding: files are sent as they are",
            field="Content-Encoding",
        )
    try:
        record, duplicate = app.file_store.receive(
            agent_id, match["sha256"], meta, request.body.pieces()
        )
    except ApiError:
        app.count("uploads_rejected")
        raise
    return Reply(
        200 if duplicate else 201,
        {"sha256": record.sha256, "size": record.size, "duplicate": duplicate},
    )


def post_heartbeat(app: CloudApp, agent_id: str, request: Request, match: re.Match[str]) -> Reply:
    heartbeat = parse_heartbeat(request.json(app.limits().max_body_bytes))
    _check_agent(agent_id, heartbeat["agent_id"])
    record = app.changes.record_heartbeat(agent_id, heartbeat)
    return Reply(200, {"received_at": record.received_at})


def post_checksums(app: CloudApp, agent_id: str, request: Request, match: re.Match[str]) -> Reply:
    entity, ranges = parse_checksum_request(request.json(app.limits().max_body_bytes))
    sums = app.checksums.range_sums(agent_id, entity, ranges)
    return Reply(
        200,
        {
            "entity": entity,
            "ranges": [
                {
                    "after": s.range.after,
                    "upto": s.range.upto,
                    "count": s.count,
                    "digest": s.digest,
                }
                for s in sums
            ],
        },
    )


def post_checksum_keys(
    app: CloudApp, agent_id: str, request: Request, match: re.Match[str]
) -> Reply:
    entity, span, limit = parse_key_list_request(request.json(app.limits().max_body_bytes))
    rows, more = app.checksums.row_hashes(agent_id, entity, span, limit)
    return Reply(
        200,
        {
            "entity": entity,
            "after": span.after,
            "upto": span.upto,
            "rows": [{"key": key, "hash": row_hash} for key, row_hash in rows],
            "more": more,
        },
    )


ROUTES: tuple[tuple[str, re.Pattern[str], Route], ...] = (
    ("POST", re.compile(r"/v1/changes"), post_changes),
    ("GET", re.compile(r"/v1/inbox"), get_inbox),
    ("POST", re.compile(r"/v1/inbox/(?P<id>[^/]+)/result"), post_result),
    ("HEAD", re.compile(r"/v1/files/(?P<sha256>[^/]+)"), head_file),
    ("PUT", re.compile(r"/v1/files/(?P<sha256>[^/]+)"), put_file),
    ("POST", re.compile(r"/v1/heartbeat"), post_heartbeat),
    ("POST", re.compile(r"/v1/checksums"), post_checksums),
    ("POST", re.compile(r"/v1/checksums/keys"), post_checksum_keys),
)


def _limits_json(app: CloudApp) -> JsonObject:
    limits = app.limits()
    return {
        "max_body_bytes": limits.max_body_bytes,
        "max_changes": limits.max_changes,
        "max_file_bytes": limits.max_file_bytes,
    }


def _check_agent(token_agent: str, body_agent: str) -> None:
    if body_agent != token_agent:
        raise ApiError(
            403,
            "forbidden",
            "agent_id: this token may not act for that agent",
            field="agent_id",
        )


def _number_param(request: Request, name: str, *, default: float, integer: bool = False) -> float:
    text = request.param(name)
    if text is None:
        return default
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        value = math.nan
    if math.isnan(value) or math.isinf(value) or value < 0:
        kind = "a whole number" if integer else "a number of seconds"
        raise ApiError(400, "bad_request", f"{name}: must be {kind}, not negative", field=name)
    return value
