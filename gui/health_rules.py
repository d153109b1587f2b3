"""How healthy is healthy: every status colour, shape and threshold of the panel, in one place.

A :class:`Level` is what a person should feel about one thing on screen:
``OK`` (green, a tick), ``BUSY`` (blue, arrows: working, nothing wrong),
``WARN`` (amber, a triangle: look soon), ``FAIL`` (red, a cross: act now) and
``IDLE`` (grey, a bar: paused or not known). Colours are the Okabe-Ito
palette, which colour-blind people tell apart, and every level also has its
own shape (:mod:`gui.icons`), so no one has to rely on colour.

Lag thresholds (how long since an entity was last read from the PMS without
error) depend on the entity's cadence in the PMS profile:

==========  =========================  ===========  ==========
cadence     examples                   amber after  red after
==========  =========================  ===========  ==========
realtime    appointments, patients     60 s         5 min
frequent    schedules, procedures      5 min        20 min
hourly      recalls                    2 h          6 h
nightly     procedure codes            26 h         50 h
==========  =========================  ===========  ==========

An entity still in its first sync is ``BUSY`` whatever its lag. The cloud
copy ("% in sync") is ``WARN`` below 100 % (reconciliation re-sends the
difference by itself) or when it was last verified more than
:data:`DRIFT_STALE_AFTER` ago.

The cadence of an entity comes from the shipped PMS profiles (static
declarations, the same files the engine reads); an entity no profile names
is treated as ``frequent``. Pure functions, no Qt: the tests call them
directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from functools import cache

from bridge.config import KNOWN_PMS_PROFILES
from bridge.errors import BridgeError
from bridge.pms.profile import load_profile
from bridge.status import ComponentStatus, EntityStatus


@dataclass(frozen=True)
class _Look:
    rank: int  # worst wins: FAIL > WARN > BUSY > OK > IDLE
    fill: str  # icons and bars
    text: str  # text on a light background (darker, readable)
    word: str


class Level(Enum):
    """How one thing stands, from the person's point of view."""

    IDLE = _Look(0, "#8a8a8a", "#5c5c5c", "paused")
    OK = _Look(1, "#009E73", "#00694d", "ok")
    BUSY = _Look(2, "#0072B2", "#005a8c", "working")
    WARN = _Look(3, "#E69F00", "#8a5a00", "check")
    FAIL = _Look(4, "#D55E00", "#a84400", "problem")

    @property
    def fill(self) -> str:
        return self.value.fill

    @property
    def text_colour(self) -> str:
        return self.value.text

    @property
    def word(self) -> str:
        return self.value.word

    @property
    def rank(self) -> int:
        return self.value.rank


def worst(levels: list[Level] | tuple[Level, ...]) -> Level:
    """The most severe level (``OK`` for none)."""
    return max(levels, key=lambda level: level.rank, default=Level.OK)


@dataclass(frozen=True)
class LagThreshold:
    amber_after: timedelta
    red_after: timedelta


LAG_THRESHOLDS: dict[str, LagThreshold] = {
    "realtime": LagThreshold(timedelta(seconds=60), timedelta(minutes=5)),
    "frequent": LagThreshold(timedelta(minutes=5), timedelta(minutes=20)),
    "hourly": LagThreshold(timedelta(hours=2), timedelta(hours=6)),
    "nightly": LagThreshold(timedelta(hours=26), timedelta(hours=50)),
}
DEFAULT_CADENCE = "frequent"
DRIFT_STALE_AFTER = timedelta(hours=24)
BUSY_QUEUE_CHANGES = 50
"""A queue below this many changes is normal traffic, not "syncing"."""


@cache
def _cadences() -> dict[str, str]:
    cadences: dict[str, str] = {}
    for name in KNOWN_PMS_PROFILES:
        try:
            profile = load_profile(name)
        except BridgeError:
            continue
        for entity, spec in profile.entities.items():
            cadences.setdefault(entity, spec.cadence)
    return cadences


def cadence_of(entity: str) -> str:
    """The entity's cadence in the shipped profiles (``frequent`` if unknown)."""
    return _cadences().get(entity, DEFAULT_CADENCE)


def lag_threshold(entity: str) -> LagThreshold:
    return LAG_THRESHOLDS[cadence_of(entity)]


def lag_level(entity: EntityStatus) -> Level:
    """How worrying the time since the entity was last read is."""
    if entity.phase == "initial":
        return Level.BUSY
    if entity.lag_seconds is None:
        return Level.WARN
    threshold = lag_threshold(entity.entity)
    lag = timedelta(seconds=entity.lag_seconds)
    if lag >= threshold.red_after:
        return Level.FAIL
    if lag >= threshold.amber_after:
        return Level.WARN
    return Level.OK


def drift_level(entity: EntityStatus, now_minus_verified: timedelta | None) -> Level:
    """How the cloud's verified copy of the entity stands (``IDLE``: not verified yet)."""
    if entity.in_sync_percent is None or now_minus_verified is None:
        return Level.IDLE
    if entity.in_sync_percent < 100.0 or now_minus_verified > DRIFT_STALE_AFTER:
        return Level.WARN
    return Level.OK


def component_level(component: ComponentStatus) -> Level:
    return {"ok": Level.OK, "warn": Level.WARN, "fail": Level.FAIL}.get(
        component.status, Level.WARN
    )
