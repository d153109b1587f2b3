"""Booking payloads are validated before anything touches the PMS (bridge.bookings.requests)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.bookings.requests import (
    parse_booking_request,
    parse_cancel,
    parse_reschedule,
    parse_start,
)
from bridge.inbox.handlers import InvalidRequest

LA = ZoneInfo("America/Los_Angeles")
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=LA)


def request(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "patient": {
            "first_name": "Zoë",
            "last_name": "O'Brien-Smith",
            "date_of_birth": "1980-02-29",
            "phone": "(503) 555-0101",
            "email": "zoe@example.com",
        },
        "start": "2026-12-01T10:00:00-08:00",
        "appointment_type": "Cleaning",
    }
    for key, value in changes.items():
        if key.startswith("patient."):
            name = key.split(".", 1)[1]
            if value is None:
                body["patient"].pop(name, None)
            else:
                body["patient"][name] = value
        elif value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def parse(body: dict[str, Any]) -> Any:
    return parse_booking_request(body, tz=LA, country="US", now=NOW)


def test_a_clean_request_parses_to_typed_values() -> None:
    parsed = parse(request(duration_minutes=45, provider_id=3, source="phone-ai", notes=" hi "))
    assert parsed.start == datetime(2026, 12, 1, 10, 0, tzinfo=LA)
    assert parsed.start.utcoffset() == LA.utcoffset(datetime(2026, 12, 1, 10))
    assert parsed.patient.date_of_birth == date(1980, 2, 29)
    assert parsed.patient.phone == "+15035550101"
    assert parsed.patient.first_name == "Zoë"
    assert (parsed.duration_minutes, parsed.provider_id, parsed.source) == (45, "3", "phone-ai")
    assert parsed.notes == "hi"
    assert parsed.operatory_id is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"patient": None}, "patient"),
        ({"patient": "Zoe"}, "patient"),
        ({"patient.first_name": None}, "patient.first_name"),
        ({"patient.first_name": "  "}, "patient.first_name"),
        ({"patient.first_name": "Robert'); DROP TABLE patient;--"}, "patient.first_name"),
        ({"patient.last_name": "x" * 101}, "patient.last_name"),
        ({"patient.last_name": "Smith\x00"}, "patient.last_name"),
        ({"patient.last_name": "R2D2"}, "patient.last_name"),
        ({"patient.last_name": 42}, "patient.last_name"),
        ({"patient.date_of_birth": "1980-02-30"}, "patient.date_of_birth"),
        ({"patient.date_of_birth": "29/02/1980"}, "patient.date_of_birth"),
        ({"patient.date_of_birth": "2027-01-01"}, "patient.date_of_birth"),
        ({"patient.date_of_birth": "1850-01-01"}, "patient.date_of_birth"),
        ({"patient.phone": "call me maybe"}, "patient.phone"),
        ({"patient.phone": "12"}, "patient.phone"),
        ({"patient.email": "not-an-email"}, "patient.email"),
        ({"patient.phone": None, "patient.email": None}, "phone or an email"),
        ({"patient.postcode": "<script>"}, "patient.postcode"),
        ({"start": None}, "start"),
        ({"start": "2026-12-01T10:00:00"}, "UTC offset"),
        ({"start": "2026-12-01T18:00:00Z"}, "offset"),
        ({"start": "2026-12-01T10:00:00-05:00"}, "offset"),
        ({"start": "2026-12-01T10:02:00-08:00"}, "5-minute"),
        ({"start": "2026-11-20T10:00:00-08:00"}, "past"),
        ({"start": "2031-12-01T10:00:00-08:00"}, "days ahead"),
        ({"start": "tomorrow"}, "start"),
        ({"duration_minutes": 7}, "duration_minutes"),
        ({"duration_minutes": 0}, "duration_minutes"),
        ({"duration_minutes": 600}, "duration_minutes"),
        ({"duration_minutes": True}, "duration_minutes"),
        ({"duration_minutes": "30"}, "duration_minutes"),
        ({"appointment_type": None}, "appointment_type"),
        ({"appointment_type": ["Cleaning"]}, "appointment_type"),
        ({"provider_id": "1 OR 1=1"}, "provider_id"),
        ({"provider_id": 0}, "provider_id"),
        ({"operatory_id": "-3"}, "operatory_id"),
        ({"location_id": 1.5}, "location_id"),
        ({"notes": "n" * 2001}, "notes"),
        ({"source": "Google Ads!"}, "source"),
    ],
)
def test_each_bad_field_is_refused_by_name_without_its_value(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse(request(**changes))
    assert field in caught.value.message
    for value in changes.values():
        if isinstance(value, str) and len(value) > 3:
            assert value not in caught.value.message


def test_unknown_extra_fields_are_ignored() -> None:
    assert parse(request(colour="blue", patient={**request()["patient"], "x": 1}))


def test_a_time_in_the_spring_forward_gap_is_refused_not_moved() -> None:
    # 2027-03-14 02:30 does not exist in Los Angeles; the -08:00 instant is 03:30 PDT
    with pytest.raises(InvalidRequest, match="offset -08:00 is not the practice's offset"):
        parse_start("2027-03-14T02:30:00-08:00", LA, NOW)
    assert parse_start("2027-03-14T03:30:00-07:00", LA, NOW).hour == 3


def test_the_repeated_fall_back_hour_is_refused_and_the_days_hours_land_right() -> None:
    for offset in ("-07:00", "-08:00"):
        with pytest.raises(InvalidRequest, match="repeated when clocks go back"):
            parse_start(f"2027-11-07T01:30:00{offset}", LA, NOW)
    morning = parse_start("2027-11-07T10:00:00-08:00", LA, NOW)
    assert (morning.hour, morning.astimezone(UTC).hour) == (10, 18)
    spring = parse_start("2027-03-14T10:00:00-07:00", LA, NOW)
    assert (spring.hour, spring.astimezone(UTC).hour) == (10, 17)


def test_cancel_and_reschedule() -> None:
    assert parse_cancel({"pms_appointment_id": 812, "reason": "sick"}).appointment_id == "812"
    with pytest.raises(InvalidRequest, match="pms_appointment_id"):
        parse_cancel({"pms_appointment_id": "812; DELETE"})
    moved = parse_reschedule(
        {"pms_appointment_id": "9", "start": "2026-12-02T08:00:00-08:00", "duration_minutes": 30},
        tz=LA,
        now=NOW,
    )
    assert (moved.appointment_id, moved.start.hour, moved.duration_minutes) == ("9", 8, 30)
    with pytest.raises(InvalidRequest, match="start"):
        parse_reschedule({"pms_appointment_id": "9"}, tz=LA, now=NOW)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=300),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(
    patient=st.dictionaries(
        st.sampled_from(["first_name", "last_name", "date_of_birth", "phone", "email", "x"]),
        _json,
    )
    | _json,
    start=_json | st.datetimes().map(lambda d: d.isoformat()),
    kind=_json,
    duration=_json,
)
def test_hostile_payloads_are_refused_cleanly_or_parse(
    patient: Any, start: Any, kind: Any, duration: Any
) -> None:
    body = {"patient": patient, "start": start, "appointment_type": kind}
    if duration is not None:
        body["duration_minutes"] = duration
    try:
        parsed = parse(body)
    except InvalidRequest as exc:
        assert exc.message and len(exc.message) < 300
    else:
        assert parsed.start.tzinfo is not None
