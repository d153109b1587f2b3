"""Quick random draws for the generators' hot loops.

``random.randint`` and ``random.choices`` with weights cost several times
more than one ``rng.random()`` call; the large build makes tens of millions
of draws, so the per-appointment code uses these instead. Each takes the
caller's ``random.Random``: determinism is unchanged.
"""

from __future__ import annotations

import random
from bisect import bisect
from collections.abc import Sequence
from itertools import accumulate
from typing import Generic, TypeVar

T = TypeVar("T")


def between(rng: random.Random, low: int, high: int) -> int:
    """An int in ``[low, high]``, both ends included."""
    return low + int(rng.random() * (high - low + 1))


class Weighted(Generic[T]):
    """A fixed weighted choice: ``Weighted([("a", 3), ("b", 1)])(rng)``."""

    def __init__(self, pairs: Sequence[tuple[T, int]]) -> None:
        self.items = tuple(item for item, _weight in pairs)
        self.cumulative = tuple(accumulate(weight for _item, weight in pairs))
        self.total = self.cumulative[-1]

    def __call__(self, rng: random.Random) -> T:
        return self.items[bisect(self.cumulative, rng.random() * self.total)]
