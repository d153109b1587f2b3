"""Conversions from PMS values to canonical values."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.pms.convert import (
    ConversionError,
    _local_iso,
    converter_for,
    localize,
    pattern_minutes,
    to_bool,
    to_date,
    to_enum,
    to_id,
    to_int,
    to_local_datetime,
    to_ref,
    to_text,
    to_time,
)

LA = ZoneInfo("America/Los_Angeles")


def test_zero_dates_become_null() -> None:
    assert to_date(date(1, 1, 1)) is None
    assert to_date("0000-00-00") is None
    assert to_date(None) is None
    assert to_date(date(2026, 2, 28)) == "2026-02-28"
    assert to_local_datetime(datetime(1, 1, 1), LA) is None
    assert to_local_datetime("0000-00-00 00:00:00", LA) is None


def test_local_times_get_the_practice_offset_for_that_instant() -> None:
    assert to_local_datetime(datetime(2026, 7, 1, 9, 0), LA) == "2026-07-01T09:00:00-07:00"
    assert to_local_datetime(datetime(2026, 12, 1, 9, 0), LA) == "2026-12-01T09:00:00-08:00"


def test_clock_change_days() -> None:
    # spring forward: 02:30 does not exist; the PMS clock would have shown 03:30 PDT
    assert to_local_datetime(datetime(2026, 3, 8, 2, 30), LA) == "2026-03-08T03:30:00-07:00"
    # fall back: 01:30 happens twice; the first occurrence (PDT) is taken
    assert to_local_datetime(datetime(2026, 11, 1, 1, 30), LA) == "2026-11-01T01:30:00-07:00"
    assert to_local_datetime(datetime(2026, 11, 1, 3, 0), LA) == "2026-11-01T03:00:00-08:00"


@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2060, 1, 1)))
def test_localize_is_an_instant_that_reads_back_as_the_wall_time_when_it_exists(
    wall: datetime,
) -> None:
    aware = localize(wall, LA)
    assert aware.utcoffset() in (timedelta(hours=-7), timedelta(hours=-8))
    back = aware.astimezone(LA).replace(tzinfo=None)
    assert back == wall or back - wall == timedelta(hours=1)


def test_refs_ids_text_numbers_flags() -> None:
    assert to_ref(0) is None and to_ref("0") is None and to_ref(17) == "17"
    assert to_id(17) == "17" and to_id(Decimal("17")) == "17"
    with pytest.raises(ConversionError):
        to_id(None)
    assert to_text("  Siân  ") == "Siân" and to_text("") is None and to_text(None) is None
    assert to_int("42") == 42 and to_int(Decimal("3")) == 3
    with pytest.raises(ConversionError, match="whole number"):
        to_int("4.5")
    assert to_bool(1) is True and to_bool(0) is False
    with pytest.raises(ConversionError, match="neither 0 nor 1"):
        to_bool(7)


def test_pattern_and_time_and_enum() -> None:
    assert pattern_minutes("/XX/") == 20
    assert pattern_minutes("") == 0
    with pytest.raises(ConversionError, match="other than X"):
        pattern_minutes("/X?/")
    assert to_time(time(8, 30)) == "08:30:00"
    assert to_time(timedelta(hours=17)) == "17:00:00"
    with pytest.raises(ConversionError):
        to_time(timedelta(hours=25))
    assert to_enum(1, {1: "scheduled"}) == "scheduled"
    with pytest.raises(ConversionError, match="enum number 9"):
        to_enum(9, {1: "scheduled"})


def test_errors_never_carry_the_value() -> None:
    secret = "Zoë O'Brien 1999-99-99"
    for fn in (to_date, to_time, pattern_minutes, to_int):
        with pytest.raises(ConversionError) as info:
            fn(secret)
        assert "Zoë" not in str(info.value) and "1999" not in str(info.value)


def test_converter_for_binds_zone_and_enum() -> None:
    assert converter_for("timestamp", LA)(datetime(2026, 1, 5, 8, 0)) == "2026-01-05T08:00:00-08:00"
    assert converter_for("enum", LA, {2: "complete"})(2) == "complete"
    with pytest.raises(ValueError, match="needs an enum table"):
        converter_for("enum", LA)


@pytest.mark.parametrize(
    "zone_name",
    ["America/Los_Angeles", "Australia/Lord_Howe", "America/St_Johns", "Pacific/Chatham"],
)
def test_the_hourly_offset_shortcut_gives_what_localizing_gives(zone_name: str) -> None:
    """Every wall time of two years, at the start, middle and end of each hour
    (clock changes of one hour and of thirty minutes, at :00 and :45)."""
    zone = ZoneInfo(zone_name)
    wall = datetime(2026, 1, 1)
    while wall < datetime(2028, 1, 1):
        for minute, second in ((0, 0), (29, 59), (30, 0), (44, 59), (45, 0), (59, 59)):
            value = wall.replace(minute=minute, second=second)
            assert _local_iso(value, zone) == localize(value, zone).isoformat(), value
        wall += timedelta(hours=1)
