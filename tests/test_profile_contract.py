"""The contract every PMS profile must pass (Open Dental now; Dentrix and
Eaglesoft later add their schema source to SCHEMAS and pass the same tests).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from bridge.errors import ConfigError
from bridge.pms.profile import available_profiles, load_profile, parse_profile
from sandbox.practice.schema import load_schema


def _opendental_columns() -> dict[str, set[str]]:
    return {name: set(table.column_names) for name, table in load_schema().items()}


SCHEMAS: dict[str, Callable[[], dict[str, set[str]]]] = {"opendental": _opendental_columns}

# Columns that must never be selected, whatever the PMS calls them.
NEVER_READ = re.compile(r"ssn|social|note|password|hash|signature|descript$|^procdescript", re.I)
# Every profile provides these canonical entities.
REQUIRED_ENTITIES = {
    "patient",
    "appointment",
    "provider",
    "operatory",
    "appointment_type",
    "schedule",
    "procedure",
    "claim",
    "payment",
    "recall",
    "definition",
}


@pytest.fixture(params=available_profiles())
def profile_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_every_profile_has_a_schema_source(profile_name: str) -> None:
    assert profile_name in SCHEMAS


def test_profile_provides_the_canonical_entities(profile_name: str) -> None:
    assert set(load_profile(profile_name).entities) >= REQUIRED_ENTITIES


def test_every_column_read_exists_in_the_pms_schema(profile_name: str) -> None:
    schema = SCHEMAS[profile_name]()
    profile = load_profile(profile_name)
    for label, table, columns in profile.table_requirements():
        assert table in schema, f"{label}: table {table} missing"
        missing = set(columns) - schema[table]
        assert not missing, f"{label}: columns {sorted(missing)} not in {table}"


def test_no_sensitive_column_is_on_any_allowlist(profile_name: str) -> None:
    profile = load_profile(profile_name)
    for label, _table, columns in profile.table_requirements():
        leaked = [c for c in columns if NEVER_READ.search(c)]
        # Open Dental's procedurecode.Descript is the code's description, not a note.
        leaked = [c for c in leaked if not (label == "procedure_code" and c == "Descript")]
        assert not leaked, f"{label} reads sensitive columns {leaked}"


def test_each_entity_exposes_its_key_as_id(profile_name: str) -> None:
    profile = load_profile(profile_name)
    for name, entity in profile.entities.items():
        ids = [f for f, spec in entity.fields.items() if spec.type == "id"]
        assert ids == ["id"], f"{name}: exactly one 'id' field expected, got {ids}"
        assert entity.fields["id"].column == entity.key[0]


def test_profile_errors_name_the_place() -> None:
    broken = """
[profile]
name = "x"
title = "X"
write_route = "api"
[entities.patient]
table = "patient"
key = ["PatNum"]
change = { strategy = "timestamp" }
fields.id = { column = "PatNum", type = "id" }
"""
    with pytest.raises(ConfigError, match=r"entities\.patient\.change.*needs a column"):
        parse_profile(broken)
    unknown_enum = broken.replace(
        'change = { strategy = "timestamp" }', 'change = { strategy = "snapshot" }'
    )
    unknown_enum += 'fields.status = { column = "PatStatus", type = "enum", enum = "nope" }\n'
    with pytest.raises(ConfigError, match="unknown enum 'nope'"):
        parse_profile(unknown_enum)
    with pytest.raises(ConfigError, match="unknown PMS profile 'dentrix9'"):
        load_profile("dentrix9")
