"""The panel's rules without an engine: tray states and tooltips, lag thresholds, icons.

Snapshots here are built by hand because each test needs one precise
situation (a locked-out cloud token, a five-minute lag); the screens are
tested against a real engine in test_gui_panel.py.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from bridge.status import ComponentStatus, EntityStatus, QueueStatus, StatusSnapshot
from gui import wording
from gui.health_rules import (
    LAG_THRESHOLDS,
    Level,
    cadence_of,
    drift_level,
    lag_level,
    worst,
)
from gui.tray_state import TrayState, tray_verdict

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


def component(
    name: str, status: str = "ok", message: str = "fine", **kw: object
) -> ComponentStatus:
    return ComponentStatus(
        name,
        status,
        message,
        str(kw.get("fix", "")),
        kw.get("kind"),  # type: ignore[arg-type]
        NOW,
        NOW if status == "ok" else NOW - timedelta(minutes=9),
        dict(kw.get("details", {})),  # type: ignore[call-overload]
    )


def entity(
    name: str, lag: float | None = 3.0, phase: str = "delta", percent: float | None = 100.0
) -> EntityStatus:
    return EntityStatus(
        entity=name,
        phase=phase,
        rows_done=120,
        rows_total=400 if phase == "initial" else None,
        last_success_at=NOW - timedelta(seconds=lag) if lag is not None else None,
        lag_seconds=lag,
        rows_examined=5000,
        in_sync_percent=percent,
        verified_at=NOW - timedelta(hours=1) if percent is not None else None,
    )


def snapshot(
    *components: ComponentStatus,
    entities: tuple[EntityStatus, ...] = (),
    engine: str = "running",
    queue: int = 0,
    paused: bool = False,
) -> StatusSnapshot:
    return StatusSnapshot(
        engine=engine,  # type: ignore[arg-type]
        pid=4242,
        version="0.1",
        started_at=NOW - timedelta(hours=2),
        heartbeat_at=NOW - (timedelta(seconds=1) if engine == "running" else timedelta(hours=1)),
        stopped_at=NOW - timedelta(hours=1) if engine == "stopped" else None,
        components=components,
        taken_at=NOW,
        entities=entities or (entity("appointment"), entity("patient", lag=20.0)),
        queue=QueueStatus(queue, queue * 300, 0, {}),
        paused=paused,
    )


HEALTHY = (component("pms", message="connected to the Open Dental database"), component("cloud"))


def test_healthy_bridge_is_in_sync_and_says_when_it_last_read() -> None:
    verdict = tray_verdict(snapshot(*HEALTHY), 0)
    assert verdict.state is TrayState.IN_SYNC
    assert verdict.tooltip.startswith("Dental PMS Bridge: in sync")
    assert "read 3 s ago" in verdict.tooltip


def test_no_snapshot_is_an_error_that_says_how_to_start_the_engine() -> None:
    verdict = tray_verdict(None, 0, unreachable="The engine is not running (no control key).")
    assert verdict.state is TrayState.ERROR
    assert "not connected" in verdict.headline
    assert "no control key" in verdict.tooltip and "start the 'Dental PMS Bridge' service" in (
        verdict.tooltip
    )


@pytest.mark.parametrize(
    ("engine", "words"),
    [("crashed", "stopped unexpectedly"), ("stopped", "is stopped"), ("never-started", "never")],
)
def test_engine_not_running_is_an_error(engine: str, words: str) -> None:
    verdict = tray_verdict(snapshot(*HEALTHY, engine=engine), 2)
    assert verdict.state is TrayState.ERROR
    assert words in verdict.headline
    assert "2 bookings need the front desk" in verdict.tooltip  # not hidden by the error


def test_pms_failure_is_an_error_with_the_fix() -> None:
    pms = component(
        "pms", "fail", "the database rejected the login", fix="Store the right password.",
        kind="login_failed",
    )  # fmt: skip
    verdict = tray_verdict(snapshot(pms, component("cloud")), 0)
    assert verdict.state is TrayState.ERROR
    assert verdict.headline == "the practice database refused the login"
    assert "rejected the login" in verdict.tooltip
    assert "What to do: Store the right password." in verdict.tooltip


def test_cloud_unreachable_is_offline_and_says_nothing_is_lost() -> None:
    cloud = component(
        "cloud", "fail", "the cloud did not answer (connection refused)", kind="cloud"
    )
    verdict = tray_verdict(snapshot(HEALTHY[0], cloud, queue=120), 0)
    assert verdict.state is TrayState.OFFLINE
    assert "120 changes kept safely" in verdict.tooltip


def test_every_loop_losing_the_cloud_is_still_offline() -> None:
    inbox = component("inbox", "fail", "poll inbox: connection refused", kind="cloud")
    beat = component("heartbeat", "fail", "heartbeat: connection refused", kind="cloud")
    verdict = tray_verdict(snapshot(*HEALTHY, inbox, beat), 0)
    assert verdict.state is TrayState.OFFLINE
    assert "poll inbox: connection refused" in verdict.tooltip


def test_cloud_refusing_the_token_is_an_error_not_offline() -> None:
    cloud = component(
        "cloud", "fail", "the cloud rejected the agent token (401)", kind="cloud_auth"
    )
    verdict = tray_verdict(snapshot(HEALTHY[0], cloud), 0)
    assert verdict.state is TrayState.ERROR
    assert verdict.headline == "the cloud refused this bridge's token"


def test_an_unknown_failure_names_the_component() -> None:
    sweep = component("reconcile", "fail", "the sweep failed", kind="internal")
    verdict = tray_verdict(snapshot(*HEALTHY, sweep), 0)
    assert verdict.state is TrayState.ERROR
    assert verdict.headline == "cloud copy check: problem"


def test_paused_is_offline_and_says_how_to_resume() -> None:
    verdict = tray_verdict(snapshot(*HEALTHY, paused=True), 1)
    assert verdict.state is TrayState.OFFLINE
    assert verdict.headline == "paused"
    assert "Resume" in verdict.tooltip and "1 booking needs the front desk" in verdict.tooltip


def test_exceptions_need_attention() -> None:
    verdict = tray_verdict(snapshot(*HEALTHY), 3)
    assert verdict.state is TrayState.ATTENTION
    assert verdict.headline == "3 bookings need the front desk"


def test_a_warning_component_needs_attention() -> None:
    beat = component(
        "heartbeat", "warn", "this computer's clock differs by 9 minutes", fix="Sync it."
    )
    verdict = tray_verdict(snapshot(*HEALTHY, beat), 0)
    assert verdict.state is TrayState.ATTENTION
    assert "clock differs" in verdict.tooltip and "Sync it." in verdict.tooltip


def test_first_sync_is_syncing_with_progress_and_eta() -> None:
    sync = component("sync", details={"eta_seconds": 400, "rate_rows_per_s": 50.0})
    entities = (entity("appointment", phase="initial"), entity("patient"))
    verdict = tray_verdict(snapshot(*HEALTHY, sync, entities=entities), 0)
    assert verdict.state is TrayState.SYNCING
    assert verdict.headline == "syncing: first sync 46%"  # 120 + 120 of 120 + 400 rows
    assert "About 7 min left." in verdict.tooltip


def test_first_sync_gives_no_percentage_before_every_entity_is_counted() -> None:
    sync = component(
        "sync",
        details={"eta_seconds": 30, "rate_rows_per_s": 50.0, "entities_in_first_sync": 3},
    )
    entities = (entity("appointment", phase="initial"), entity("patient"))
    verdict = tray_verdict(snapshot(*HEALTHY, sync, entities=entities), 0)
    assert verdict.state is TrayState.SYNCING
    assert verdict.headline == "syncing: first sync"
    assert "2 more kinds of records to start." in verdict.tooltip
    assert "left" not in verdict.tooltip  # the engine's ETA counts only the started ones


def test_sync_now_running_and_a_backlog_are_syncing() -> None:
    assert tray_verdict(snapshot(*HEALTHY), 0, sync_running=True).state is TrayState.SYNCING
    backlog = tray_verdict(snapshot(*HEALTHY, queue=500), 0)
    assert backlog.state is TrayState.SYNCING and "500 changes" in backlog.headline
    assert tray_verdict(snapshot(*HEALTHY, queue=3), 0).state is TrayState.IN_SYNC


def test_lag_thresholds_follow_the_entity_cadence() -> None:
    assert cadence_of("appointment") == "realtime"
    assert cadence_of("procedure_code") == "nightly"
    assert cadence_of("not-an-entity") == "frequent"
    realtime = LAG_THRESHOLDS["realtime"]
    assert realtime.amber_after == timedelta(seconds=60)
    assert realtime.red_after == timedelta(minutes=5)
    assert lag_level(entity("appointment", lag=59)) is Level.OK
    assert lag_level(entity("appointment", lag=61)) is Level.WARN
    assert lag_level(entity("appointment", lag=301)) is Level.FAIL
    assert lag_level(entity("procedure_code", lag=3 * 3600)) is Level.OK  # nightly
    assert lag_level(entity("appointment", lag=999, phase="initial")) is Level.BUSY
    assert lag_level(entity("appointment", lag=None)) is Level.WARN


def test_amber_lag_is_syncing_and_red_lag_is_an_error() -> None:
    amber = tray_verdict(snapshot(*HEALTHY, entities=(entity("appointment", lag=90),)), 0)
    assert amber.state is TrayState.SYNCING
    assert "catching up with appointments" in amber.headline
    red = tray_verdict(snapshot(*HEALTHY, entities=(entity("appointment", lag=400),)), 0)
    assert red.state is TrayState.ERROR
    assert red.headline == "appointments not read for 7 min"


def test_drift_level() -> None:
    assert drift_level(entity("patient"), timedelta(hours=1)) is Level.OK
    assert drift_level(entity("patient", percent=99.5), timedelta(hours=1)) is Level.WARN
    assert drift_level(entity("patient"), timedelta(hours=30)) is Level.WARN
    assert drift_level(entity("patient", percent=None), None) is Level.IDLE


def test_worst_and_wording() -> None:
    assert worst([Level.OK, Level.FAIL, Level.WARN]) is Level.FAIL
    assert worst([]) is Level.OK
    assert wording.duration(42) == "42 s"
    assert wording.duration(300) == "5 min"
    assert wording.duration(3 * 3600) == "3 h"
    assert wording.ago(NOW - timedelta(seconds=1), NOW) == "just now"
    assert wording.plural(1, "change") == "1 change"
    assert wording.component_title("loop:uplink") == "Internal task 'uplink'"


def test_each_level_has_a_distinct_shape(qapp: object) -> None:
    """Colour-blind safe: with the hue thrown away (outline and white glyph only),
    every pair of icons still differs in many pixels."""
    from gui.icons import level_icon, level_pixmap  # noqa: PLC0415

    def shape(x: int, y: int, image: object) -> int:
        colour = image.pixelColor(x, y)  # type: ignore[attr-defined]
        if colour.alpha() < 128:
            return 0
        return 2 if colour.lightness() > 200 else 1

    masks = {}
    for level in Level:
        image = level_pixmap(level, 32).toImage()
        masks[level] = bytes(shape(x, y, image) for y in range(32) for x in range(32))
        assert not level_icon(level).isNull()
    for a in Level:
        for b in Level:
            if a is not b:
                differing = sum(x != y for x, y in zip(masks[a], masks[b], strict=True))
                assert differing > 40, (a, b, differing)
