"""PMS profiles: one declarative TOML file per PMS under ``profiles/``.

A profile maps a PMS schema onto the bridge's canonical entities. For every
entity it names the table, the key, how changes are detected, how often
(cadence), and the **fields that may leave the building**: canonical name ->
column + conversion (see :mod:`bridge.pms.convert`). The bridge selects only
the key, the change column and the allowlisted columns, so a column that is
not on the allowlist (a social security number, a clinical note) is never
read, never held in memory, never logged and never sent.

An entity may embed child rows from another table (a schedule's operatory
links, a claim's procedures, a payment's splits): a change to a child
re-sends its parent.

Profiles are data, validated on load: a profile with a typo fails loudly at
start-up with the entity and field named.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bridge.errors import ConfigError
from bridge.pms.convert import ConversionName

ChangeStrategy = Literal["timestamp", "snapshot", "rowversion"]
Cadence = Literal["realtime", "frequent", "hourly", "nightly"]

CADENCE_SECONDS: dict[str, float] = {
    "realtime": 2.0,
    "frequent": 60.0,
    "hourly": 3600.0,
    "nightly": 86400.0,
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChangeSpec(_Strict):
    """How changes to an entity are detected."""

    strategy: ChangeStrategy
    column: str | None = Field(None, description="Change-stamp column (timestamp/rowversion).")
    indexed: bool = Field(True, description="Whether the PMS indexes the change column.")

    @model_validator(mode="after")
    def _column_needed(self) -> ChangeSpec:
        if self.strategy != "snapshot" and not self.column:
            raise ValueError(f"strategy '{self.strategy}' needs a column")
        return self


class FieldSpec(_Strict):
    """One allowlisted field: the column it comes from and its conversion."""

    column: str
    type: ConversionName
    enum: str | None = Field(None, description="Name of the profile enum table (type enum).")

    @model_validator(mode="after")
    def _enum_named(self) -> FieldSpec:
        if (self.type == "enum") != (self.enum is not None):
            raise ValueError("an 'enum' field needs 'enum = <table>' and only it may have one")
        return self


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Readable(_Strict):
    table: str
    key: tuple[str, ...] = Field(min_length=1)
    fields: dict[str, FieldSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _plain_identifiers(self) -> _Readable:
        # Names are written into SQL: only plain identifiers are accepted.
        names = [self.table, *self.key, *(f.column for f in self.fields.values())]
        bad = [n for n in names if not _IDENTIFIER.match(n)]
        if bad:
            raise ValueError(f"not plain SQL identifiers: {bad}")
        return self

    def field_columns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f.column for f in self.fields.values()))


class ChildSpec(_Readable):
    """Rows of another table embedded in the parent's record as a list."""

    parent_column: str = Field(description="Column of the child holding the parent's key.")
    change: ChangeSpec

    @property
    def columns(self) -> tuple[str, ...]:
        extra = [self.parent_column, *self.key]
        if self.change.column:
            extra.append(self.change.column)
        return tuple(dict.fromkeys([*extra, *self.field_columns()]))


class SignalSpec(_Strict):
    """An append-only PMS table whose new rows name keys of this entity.

    Open Dental writes a ``securitylog`` row (with its ``PatNum``) for most
    edits made in its client; reading the rows after the last one seen is a
    primary-key range read, so it costs almost nothing and tells which
    patients to re-read without scanning ``patient``.
    """

    table: str
    key: str = Field(description="The log's ascending primary key.")
    points_to: str = Field(description="Column holding the key of this entity.")

    @model_validator(mode="after")
    def _plain_identifiers(self) -> SignalSpec:
        bad = [n for n in (self.table, self.key, self.points_to) if not _IDENTIFIER.match(n)]
        if bad:
            raise ValueError(f"not plain SQL identifiers: {bad}")
        return self


class RelatedSpec(_Strict):
    """Another entity whose changed records name keys of this one.

    ``{entity = "appointment", field = "patient_id"}`` on ``patient``: a
    patient with a changed appointment is re-read at once (the front desk
    usually edits both while the patient is at the desk).
    """

    entity: str
    field: str


class EntitySpec(_Readable):
    """One canonical entity read from one PMS table."""

    change: ChangeSpec
    cadence: Cadence = "realtime"
    children: dict[str, ChildSpec] = Field(default_factory=dict)
    where: str | None = Field(None, description="Optional SQL filter on the table.")
    signals: list[SignalSpec] = Field(default_factory=list)
    related: list[RelatedSpec] = Field(default_factory=list)

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the bridge reads: key, change column, allowlisted fields."""
        first = list(self.key)
        if self.change.column:
            first.append(self.change.column)
        return tuple(dict.fromkeys([*first, *self.field_columns()]))


class TombstoneSpec(_Strict):
    """A table where the PMS records deletions (Open Dental's ``deletedobject``)."""

    table: str
    key: str
    object_column: str = Field(description="Column holding the deleted row's key.")
    type_column: str = Field(description="Column saying which kind of row was deleted.")
    change_column: str
    types: dict[int, str] = Field(description="Type number -> canonical entity name.")

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.key, self.object_column, self.type_column, self.change_column)


class ProfileInfo(_Strict):
    name: str
    title: str
    write_route: Literal["api", "sql"] = Field(
        description="How bookings are written: the vendor's API, or direct SQL where allowed."
    )


class Profile(_Strict):
    profile: ProfileInfo
    enums: dict[str, dict[int, str]] = Field(default_factory=dict)
    entities: dict[str, EntitySpec] = Field(min_length=1)
    tombstones: TombstoneSpec | None = None

    @model_validator(mode="after")
    def _references_exist(self) -> Profile:
        if self.tombstones is not None:
            unknown = set(self.tombstones.types.values()) - set(self.entities)
            if unknown:
                raise ValueError(f"tombstones map to unknown entities: {sorted(unknown)}")
        for name, entity in self.entities.items():
            for related in entity.related:
                other = self.entities.get(related.entity)
                if other is None or related.field not in other.fields:
                    raise ValueError(
                        f"entity '{name}' is related to unknown field "
                        f"'{related.entity}.{related.field}'"
                    )
            specs = [("", entity.fields)] + [
                (f"{c}.", ch.fields) for c, ch in entity.children.items()
            ]
            for prefix, fields in specs:
                for field_name, spec in fields.items():
                    if spec.enum is not None and spec.enum not in self.enums:
                        raise ValueError(
                            f"entity '{name}' field '{prefix}{field_name}' uses unknown enum "
                            f"'{spec.enum}'"
                        )
        return self

    @property
    def name(self) -> str:
        return self.profile.name

    def table_requirements(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(entity label, table, columns) for every table the profile reads."""
        needs: list[tuple[str, str, tuple[str, ...]]] = []
        for name, entity in self.entities.items():
            needs.append((name, entity.table, entity.columns))
            for child_name, child in entity.children.items():
                needs.append((f"{name}.{child_name}", child.table, child.columns))
            for signal in entity.signals:
                needs.append((f"{name} signal", signal.table, (signal.key, signal.points_to)))
        if self.tombstones is not None:
            needs.append(("tombstones", self.tombstones.table, self.tombstones.columns))
        return needs


def available_profiles() -> list[str]:
    folder = resources.files("bridge.pms.profiles")
    names = (p.name for p in folder.iterdir())
    return sorted(n.removesuffix(".toml") for n in names if n.endswith(".toml"))


def parse_profile(text: str, name: str = "<text>") -> Profile:
    """Validate profile TOML text; raises :class:`ConfigError` naming the place."""
    try:
        return Profile.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"profile '{name}' is not valid TOML: {exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"profile '{name}': {where}: {first['msg']}") from exc


@cache
def load_profile(name: str) -> Profile:
    """Load and validate a packaged profile; raises :class:`ConfigError`."""
    known = available_profiles()
    if name not in known:
        raise ConfigError(
            f"unknown PMS profile '{name}' (known: {', '.join(known)})", key="pms.profile"
        )
    text = resources.files("bridge.pms.profiles").joinpath(f"{name}.toml").read_text("utf-8")
    return parse_profile(text, name)
