"""Capped, jittered exponential backoff (full jitter).

``Backoff(base=1, cap=60).next()`` returns 0..1, 0..2, 0..4 ... seconds, never
more than ``cap``; :meth:`reset` after a success. The random source can be
replaced in tests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base: float = 1.0
    cap: float = 60.0
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def next(self) -> float:
        ceiling = min(self.cap, self.base * (2**self.attempts))
        self.attempts = min(self.attempts + 1, 62)
        return max(self.base / 10, self.rng.uniform(0, ceiling))

    def reset(self) -> None:
        self.attempts = 0
