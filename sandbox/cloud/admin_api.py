"""The /admin routes: the HTTP face of :class:`~sandbox.cloud.models.CloudAdmin`.

For tests, the demo and benchmarks that drive a cloud in another process
(see :mod:`sandbox.cloud.admin_client`). No token: the handler serves them to
loopback clients only, and the server binds to loopback only. Records are
sent as their :func:`~sandbox.cloud.models.to_json` form.

======  ============================  ==========================================
GET     /admin/health                 ``{ok, instance}``
POST    /admin/inbox                  ``{type, payload, agent_id?, id?}`` -> 201 item
GET     /admin/inbox?agent_id=        ``{items}``
GET     /admin/results?agent_id=      ``{results}``
GET     /admin/faults                 ``{faults}``
POST    /admin/faults                 a Fault -> 201 the rule with its id
DELETE  /admin/faults[/{id}]          ``{cleared}``
GET     /admin/limits                 Limits
PUT     /admin/limits                 some Limits fields -> Limits
GET     /admin/mirror/{entity}        ``?agent_id=`` -> ``{entity, agent_id, rows: {key: row}}``
PUT     /admin/mirror/{entity}/{key}  ``{data, agent_id?}`` -> the row (tamper: alter or add)
DELETE  /admin/mirror/{entity}/{key}  ``?agent_id=`` -> ``{dropped}`` (tamper: lose the row)
GET     /admin/changes                ``?agent_id=&entity=&key=&batch_id=`` -> ``{changes}``
GET     /admin/batches?agent_id=      ``{batches}``
GET     /admin/stats                  Stats
GET     /admin/files                  ``{files}``
GET     /admin/heartbeat?agent_id=    the latest heartbeat, or 404
GET     /admin/heartbeats?agent_id=   ``{heartbeats}``
PUT     /admin/tokens/{agent_id}      ``{token}`` (set or replace)
DELETE  /admin/tokens/{agent_id}      revoke
POST    /admin/reset                  forget everything received
======  ============================  ==========================================
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from sandbox.cloud.app import CloudApp
from sandbox.cloud.models import Fault, from_json, to_json
from sandbox.cloud.wire import ApiError, Reply, Request

AdminRoute = Callable[[CloudApp, Request, "re.Match[str]"], Reply]
ADMIN_BODY_LIMIT = 64 * 1024 * 1024


def _body(request: Request) -> dict[str, Any]:
    return request.json(ADMIN_BODY_LIMIT)


def health(app: CloudApp, request: Request, match: re.Match[str]) -> Reply:
    return Reply(200, {"ok": True, "instance": app.db.instance_id})


def enqueue(app: CloudApp, request: Request, match: re.Match[str]) -> Reply:
    body = _body(request)
    if "type" not in body or "payload" not in body:
        raise ApiError(400, "bad_request", "type and payload are required", field="type")
    record = app.enqueue(
        body["type"], body["payload"], agent_id=body.get("agent_id"), item_id=body.get("id")
    )
    return Reply(201, to_json(record))


def inbox(app: CloudApp, request: Request, match: re.Match[str]) -> Reply:
    items = app.inbox(agent_id=request.param("agent_id"))
    return Reply(200, {"items": [to_json(i) for i in items]})


def results(app: CloudApp, request: Request, match: re.Match[str]) -> Reply:
    records = app.results(agent_id=request.param("agent_id"))
    return Reply(200, {"results": [to_json(r) for r in records]})


def faults(app: CloudApp, request: Request, match: re.Match[str]) -> Reply:
    return Reply(200, {"faults": [to_json(f) for f in app.faults()]})


def add_fault(app: CloudApp, request: Request, match: re.Match[str]) -> Reply:
    body = _body(request)
    body.pop("id", None)
    body.pop("fired", None)
    unknown = set(body) - {f.name for f in dataclasses.fields(Fault)}
    if unknown:
        raise ValueError(f"unknown fault field: {', '.join(sorted(unknown))}")
    try:
        fault = from_json(Fault, body)
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    return Reply(201, to_json(app.set_fault(fault)))


def clear_faults(app: CloudApp, request: Request, match: re.Match[str]) -> Reply:
    return Reply(200, {"cleared": app.clear_faults(match["id"])})


def limits(app: CloudApp, request: Request, match: re.Match[str]) -> Reply:
    return Reply(200, to_json(app.limits()))


def set_limits(app: CloudApp, request: Request, match: re.Match[str]) -> Reply:
    body = _body(request)
    allowed = {"max_body_bytes", "max_changes", "max_file_bytes", "max_wait_seconds"}
    unknown = set(body) - allowed
    if unknown:
        raise ValueError(f"unknown limit: {', '.join(sorted(unknown))}")
    return Reply(200, to_json(app.set_limits(**body)))


def mirror(app: CloudApp, request: Request, match: re.Match[str]) -> Reply:
    agent_id = app.agent(request.param("agent_id"))
    rows = app.mirror(match["entity"], agent_id=agent_id)
    return Reply(
        200,
        {
            "entity": match["entity"],
            "agent_id": agent_id,
            "rows": {k: to_json(row) for k, row in rows.items()},
        },
    )


def set_mirror_row(app: CloudApp, request: Request, match: re.Match[str]) -> Reply:
    body = _body(request)
    data = body.get("data")
    if not isinstance(data, dict):
        raise ValueError("data: required, an object")
    row = app.set_mirror_row(
        match["entity"], match["key"], data, agent_id=app.agent(body.get("agent_id"))
    )
    return Reply(200, to_json(row))


def drop_mirror_row(app: CloudApp, request: Request, match: re.Match[str]) -> Reply:
    agent_id = app.agent(request.param("agent_id"))
    return Reply(
        200, {"dropped": app.drop_mirror_row(match["entity"], match["key"], agent_id=agent_id)}
    )


def changes(app: CloudApp, request: Request, match: re.Match[str]) -> Reply:
    log = app.change_log(
        agent_id=request.param("agent_id"),
        entity=request.param("entity"),
        key=request.param("key"),
        batch_id=request.param("batch_id"),
    )
    return Reply(200, {"changes": [to_json(e) for e in log]})


def batches(app: CloudApp, request: Request, match: re.Match[str]) -> Reply:
    records = app.batches(agent_id=request.param("agent_id"))
    return Reply(200, {"batches": [to_json(b) for b in records]})


def stats(app: CloudApp, request: Request, match: re.Match[str]) -> Reply:
    return Reply(200, to_json(app.stats()))


def files(app: CloudApp, request: Request, match: re.Match[str]) -> Reply:
    return Reply(200, {"files": [to_json(f) for f in app.files()]})


def heartbeat(app: CloudApp, request: Request, match: re.Match[str]) -> Reply:
    record = app.heartbeat(agent_id=request.param("agent_id"))
    if record is None:
        raise ApiError(404, "not_found", "no heartbeat yet")
    return Reply(200, to_json(record))


def heartbeats(app: CloudApp, request: Request, match: re.Match[str]) -> Reply:
    records = app.heartbeats(agent_id=request.param("agent_id"))
    return Reply(200, {"heartbeats": [to_json(h) for h in records]})


def set_token(app: CloudApp, request: Request, match: re.Match[str]) -> Reply:
    token = _body(request).get("token")
    if not isinstance(token, str) or not token:
        raise ValueError("token: required, a non-empty string")
    app.set_token(match["agent"], token)
    return Reply(200, {"agent_id": match["agent"]})


def revoke_token(app: CloudApp, request: Request, match: re.Match[str]) -> Reply:
    app.set_token(match["agent"], None)
    return Reply(200, {"agent_id": match["agent"]})


def reset(app: CloudApp, request: Request, match: re.Match[str]) -> Reply:
    app.reset()
    return Reply(200, {"ok": True})


ADMIN_ROUTES: tuple[tuple[str, re.Pattern[str], AdminRoute], ...] = (
    ("GET", re.compile(r"/admin/health"), health),
    ("POST", re.compile(r"/admin/inbox"), enqueue),
    ("GET", re.compile(r"/admin/inbox"), inbox),
    ("GET", re.compile(r"/admin/results"), results),
    ("GET", re.compile(r"/admin/faults"), faults),
    ("POST", re.compile(r"/admin/faults"), add_fault),
    ("DELETE", re.compile(r"/admin/faults(?:/(?P<id>[^/]+))?"), clear_faults),
    ("GET", re.compile(r"/admin/limits"), limits),
    ("PUT", re.compile(r"/admin/limits"), set_limits),
    ("GET", re.compile(r"/admin/mirror/(?P<entity>[^/]+)"), mirror),
    ("PUT", re.compile(r"/admin/mirror/(?P<entity>[^/]+)/(?P<key>[^/]+)"), set_mirror_row),
    ("DELETE", re.compile(r"/admin/mirror/(?P<entity>[^/]+)/(?P<key>[^/]+)"), drop_mirror_row),
    ("GET", re.compile(r"/admin/changes"), changes),
    ("GET", re.compile(r"/admin/batches"), batches),
    ("GET", re.compile(r"/admin/stats"), stats),
    ("GET", re.compile(r"/admin/files"), files),
    ("GET", re.compile(r"/admin/heartbeat"), heartbeat),
    ("GET", re.compile(r"/admin/heartbeats"), heartbeats),
    ("PUT", re.compile(r"/admin/tokens/(?P<agent>[^/]+)"), set_token),
    ("DELETE", re.compile(r"/admin/tokens/(?P<agent>[^/]+)"), revoke_token),
    ("POST", re.compile(r"/admin/reset"), reset),
)
