"""Fault injection: which requests the cloud fails, and how.

Rules are :class:`~sandbox.cloud.models.Fault` values, switched on and off
at runtime (admin API). For each ``/v1`` request the handler asks
:meth:`FaultPlan.decide` once, before reading the body: rules are tried in
the order they were added; every matching ``delay`` rule that fires adds
its delay, and the first other rule that fires decides the request's fate
(later rules are not consulted, so their counts are not used up). A rule
with ``count`` fires for that many matching requests and then stays listed,
inactive; one with ``probability`` draws from a seeded generator, so a seed
makes a run repeatable. Thread-safe: one lock around the rules.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import threading
from dataclasses import dataclass

from sandbox.cloud.models import Fault, FaultKind


@dataclass(frozen=True)
class Decision:
    """What to do to one request: at most one action, plus a total delay."""

    action: FaultKind | None = None
    retry_after: int = 0
    delay_ms: int = 0


class FaultPlan:
    def __init__(self, seed: int | None = None) -> None:
        self._rules: list[Fault] = []
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._ids = itertools.count(1)

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            rule = dataclasses.replace(fault, id=f"f{next(self._ids)}", fired=0)
            self._rules.append(rule)
            return rule

    def clear(self, fault_id: str | None = None) -> int:
        """Remove one rule (by id) or all; returns how many were removed."""
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if fault_id is not None and r.id != fault_id]
            return before - len(self._rules)

    def rules(self) -> list[Fault]:
        with self._lock:
            return list(self._rules)

    def decide(self, method: str, path: str) -> Decision:
        with self._lock:
            delay = 0
            for index, rule in enumerate(self._rules):
                if not self._matches(rule, method, path) or not self._fires(rule):
                    continue
                self._rules[index] = dataclasses.replace(rule, fired=rule.fired + 1)
                if rule.kind == "delay":
                    delay += rule.delay_ms
                    continue
                return Decision(rule.kind, rule.retry_after, delay)
            return Decision(delay_ms=delay)

    @staticmethod
    def _matches(rule: Fault, method: str, path: str) -> bool:
        if not rule.active or not path.startswith(rule.path_prefix):
            return False
        return rule.method is None or rule.method.upper() == method.upper()

    def _fires(self, rule: Fault) -> bool:
        if rule.probability is None:
            return True
        return self._random.random() < rule.probability
