"""Faults the stand-in can inject, for tests of a writer's failure handling.

A :class:`Fault` matches requests by method and path prefix and fires for
``count`` requests (None: until cleared). Kinds:

* ``status`` -- answer ``status`` (e.g. 500, 503, 504) at once, before the
  request is carried out;
* ``delay`` -- wait ``delay_seconds``, then carry the request out and answer
  (longer than the client's timeout: the write happens after the client
  gave up, as on a slow server);
* ``drop`` -- close the connection without an answer; nothing is written;
* ``drop_after`` -- carry the request out, then close the connection
  without an answer (the answer is lost; the write stands).

The first matching rule decides a request. Thread-safe.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from dataclasses import dataclass
from typing import Any, Literal

FaultKind = Literal["status", "delay", "drop", "drop_after"]
KINDS: tuple[str, ...] = ("status", "delay", "drop", "drop_after")


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    status: int = 500
    delay_seconds: float = 0.0
    count: int | None = 1
    method: str | None = None
    path_prefix: str = "/api/v1/"
    id: str = ""
    fired: int = 0

    @classmethod
    def from_json(cls, data: object) -> Fault:
        """A fault from the admin API's JSON; ValueError when malformed."""
        if not isinstance(data, dict):
            raise ValueError("a fault is a JSON object")
        known = {"kind", "status", "delay_seconds", "count", "method", "path_prefix"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        kind = data.get("kind")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        args: dict[str, Any] = {"kind": kind}
        for name, types in (
            ("status", (int,)),
            ("delay_seconds", (int, float)),
            ("count", (int, type(None))),
            ("method", (str, type(None))),
            ("path_prefix", (str,)),
        ):
            if name in data:
                value = data[name]
                if isinstance(value, bool) or not isinstance(value, types):
                    raise ValueError(f"{name} has the wrong type")
                args[name] = value
        fault = cls(**args)
        if not 100 <= fault.status <= 599 or fault.delay_seconds < 0:
            raise ValueError("status must be an HTTP status and delay_seconds not negative")
        return fault

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def active(self) -> bool:
        return self.count is None or self.fired < self.count


class FaultPlan:
    def __init__(self) -> None:
        self._rules: list[Fault] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            rule = dataclasses.replace(fault, id=f"f{next(self._ids)}", fired=0)
            self._rules.append(rule)
            return rule

    def clear(self) -> int:
        with self._lock:
            removed = len(self._rules)
            self._rules = []
            return removed

    def rules(self) -> list[Fault]:
        with self._lock:
            return list(self._rules)

    def decide(self, method: str, path: str) -> Fault | None:
        """The rule that fires for this request (and counts it), or None."""
        with self._lock:
            for index, rule in enumerate(self._rules):
                if not rule.active or not path.startswith(rule.path_prefix):
                    continue
                if rule.method is not None and rule.method.upper() != method.upper():
                    continue
                self._rules[index] = dataclasses.replace(rule, fired=rule.fired + 1)
                return rule
            return None
