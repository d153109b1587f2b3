"""From PMS rows to canonical records: the only door data leaves through.

:class:`RecordReader` builds, from one profile entity, a SELECT of exactly
the key, the change column and the allowlisted columns (nothing else is ever
read), streams it through the ODBC layer and converts each row into a
:class:`Record`: the canonical key, the allowlisted fields converted to
canonical values, the raw change-stamp value and a content hash.

Bad data never stops a read: a value the ODBC layer could not read, or one a
conversion refuses, becomes ``None`` in that field and is reported as a
:class:`~bridge.errors.BadValueError` naming entity table, key and column
(never the value). A row whose *key* is unreadable is skipped and reported.

The content hash covers the canonical fields only (sorted JSON, SHA-256,
first 32 hex digits), so it is stable across drivers and the same on the
cloud side for reconciliation.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from bridge.errors import BadValueError
from bridge.pms.convert import Canonical, ConversionError, Converter, converter_for
from bridge.pms.odbc import PmsConnection, Row
from bridge.pms.profile import EntitySpec, Profile

log = logging.getLogger(__name__)

BadValueSink = Callable[[BadValueError], None]


@dataclass(frozen=True)
class Record:
    entity: str
    key: str
    data: Mapping[str, Canonical]
    stamp: object
    hash: str


def content_hash(data: Mapping[str, Canonical]) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class RecordReader:
    """Reads one entity's records; one per entity, used by one thread."""

    def __init__(
        self,
        profile: Profile,
        entity: str,
        zone: ZoneInfo,
        on_bad_value: BadValueSink | None = None,
    ) -> None:
        self.entity = entity
        self.spec: EntitySpec = profile.entities[entity]
        self._on_bad_value = on_bad_value
        self._fields: list[tuple[str, str, Converter]] = [
            (
                name,
                field.column,
                converter_for(field.type, zone, profile.enums[field.enum] if field.enum else None),
            )
            for name, field in self.spec.fields.items()
        ]

    def select(self, condition: str | None = None) -> str:
        """The SELECT for this entity, with an optional extra condition."""
        sql = f"SELECT {', '.join(self.spec.columns)} FROM {self.spec.table}"
        conditions = [c for c in (self.spec.where, condition) if c]
        if conditions:
            sql += " WHERE " + " AND ".join(f"({c})" for c in conditions)
        return sql

    def read(
        self,
        conn: PmsConnection,
        condition: str | None = None,
        params: Sequence[object] = (),
        *,
        page_size: int | None = 10_000,
    ) -> Generator[Record, None, None]:
        """Stream the entity's records in key order (see module doc)."""
        rows = conn.stream(
            self.select(condition),
            params,
            table=self.spec.table,
            key_columns=self.spec.key,
            entity=self.entity,
            page_size=page_size,
            on_bad_value=self._forward,  # the ODBC layer has logged it already
        )
        for row in rows:
            record = self.convert(row)
            if record is not None:
                yield record

    def convert(self, row: Row | Mapping[str, object]) -> Record | None:
        key_values = [row[c] for c in self.spec.key]
        if any(v is None for v in key_values):
            self._report(BadValueError(self.spec.table, "?", self.spec.key[0], "key is null"))
            return None
        key = "-".join(str(v) for v in key_values)
        data: dict[str, Canonical] = {}
        for name, column, convert in self._fields:
            try:
                data[name] = convert(row[column])
            except ConversionError as exc:
                data[name] = None
                self._report(BadValueError(self.spec.table, key, column, str(exc)))
        stamp = row[self.spec.change.column] if self.spec.change.column else None
        return Record(self.entity, key, data, stamp, content_hash(data))

    def _forward(self, error: BadValueError) -> None:
        if self._on_bad_value is not None:
            self._on_bad_value(error)

    def _report(self, error: BadValueError) -> None:
        log.warning(
            "bad value skipped",
            extra={
                "entity": self.entity,
                "table": error.table,
                "column": error.column,
                "row_key": str(error.key),
                "problem": error.problem,
            },
        )
        self._forward(error)
