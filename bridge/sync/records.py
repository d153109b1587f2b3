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

Child tables (``schedule.operatories`` from ``scheduleop``,
``claim.procedures`` from ``claimproc``, ``payment.splits`` from
``paysplit``) are embedded in the parent's record as a list of canonical
child records in child-key order: the cloud receives a claim with its
procedures as one unit, and a change to any child changes the parent's hash.
Children are read page by page (one ``IN (...)`` query per child table and
page of parents) after the page's parent statement has finished, because an
ODBC connection runs one statement at a time.

The content hash covers the canonical fields only (sorted JSON, SHA-256,
first 32 hex digits), so it is stable across drivers and the same on the
cloud side for reconciliation.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from zoneinfo import ZoneInfo

from bridge.errors import BadValueError
from bridge.pms.convert import Canonical, ConversionError, Converter, converter_for
from bridge.pms.odbc import PmsConnection, Row
from bridge.pms.profile import ChildSpec, EntitySpec, FieldSpec, Profile

log = logging.getLogger(__name__)

IN_LIST_SIZE = 500  # keys per IN (...): well under every driver's parameter limit
CHILD_PAGE = 2_000  # parents per page when children are embedded

BadValueSink = Callable[[BadValueError], None]
ChildData = dict[str, Canonical]
Value = Canonical | list[ChildData]


@dataclass(frozen=True)
class Record:
    entity: str
    key: str
    data: Mapping[str, Value]
    stamp: object
    hash: str


def content_hash(data: Mapping[str, object]) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class _Fields:
    """Converters for one table's allowlisted fields."""

    def __init__(self, fields: Mapping[str, FieldSpec], profile: Profile, zone: ZoneInfo) -> None:
        self.items: list[tuple[str, str, Converter]] = [
            (
                name,
                field.column,
                converter_for(field.type, zone, profile.enums[field.enum] if field.enum else None),
            )
            for name, field in fields.items()
        ]


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
        self.profile = profile
        self.spec: EntitySpec = profile.entities[entity]
        self._on_bad_value = on_bad_value
        self._fields = _Fields(self.spec.fields, profile, zone).items
        self._children: list[tuple[str, ChildSpec, list[tuple[str, str, Converter]]]] = [
            (name, child, _Fields(child.fields, profile, zone).items)
            for name, child in self.spec.children.items()
        ]

    @property
    def key_column(self) -> str:
        return self.spec.key[0]

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
        if not self._children:
            for row in self._rows(conn, condition, params, page_size):
                record = self.convert(row)
                if record is not None:
                    yield record
            return
        # With children: finish each page of parents before reading its children.
        last: int | None = None
        page = min(page_size or CHILD_PAGE, CHILD_PAGE)
        while True:
            where, args = condition, tuple(params)
            if last is not None:
                after = f"{self.key_column} > ?"
                where = f"({condition}) AND {after}" if condition else after
                args = (*args, last)
            stream = self._rows(conn, where, args, page)
            try:
                rows = list(islice(stream, page))
            finally:
                stream.close()
            yield from self._with_children(conn, rows)
            if len(rows) < page:
                return
            last = int(rows[-1][self.key_column])

    def read_keys(self, conn: PmsConnection, keys: Iterable[str]) -> list[Record]:
        """The current records of ``keys`` (absent keys are simply missing)."""
        wanted = sorted({int(k) for k in keys if _is_key(k)})
        records: list[Record] = []
        for start in range(0, len(wanted), IN_LIST_SIZE):
            chunk = wanted[start : start + IN_LIST_SIZE]
            marks = ", ".join("?" * len(chunk))
            records.extend(self.read(conn, f"{self.key_column} IN ({marks})", chunk))
        return records

    def _rows(
        self,
        conn: PmsConnection,
        condition: str | None,
        params: Sequence[object],
        page_size: int | None,
    ) -> Generator[Row, None, None]:
        return conn.stream(
            self.select(condition),
            params,
            table=self.spec.table,
            key_columns=self.spec.key,
            entity=self.entity,
            page_size=page_size,
            on_bad_value=self._forward,  # the ODBC layer has logged it already
        )

    def _with_children(self, conn: PmsConnection, rows: list[Row]) -> list[Record]:
        keys = [row[self.key_column] for row in rows if row[self.key_column] is not None]
        children = {
            name: self._read_children(conn, child, conv, keys)
            for name, child, conv in self._children
        }
        records: list[Record] = []
        for row in rows:
            parent = row[self.key_column]
            extra = {name: found.get(parent, []) for name, found in children.items()}
            record = self.convert(row, extra)
            if record is not None:
                records.append(record)
        return records

    def _read_children(
        self,
        conn: PmsConnection,
        child: ChildSpec,
        fields: list[tuple[str, str, Converter]],
        parent_keys: Sequence[object],
    ) -> dict[object, list[ChildData]]:
        found: dict[object, list[tuple[int, ChildData]]] = defaultdict(list)
        for start in range(0, len(parent_keys), IN_LIST_SIZE):
            chunk = list(parent_keys[start : start + IN_LIST_SIZE])
            marks = ", ".join("?" * len(chunk))
            sql = (
                f"SELECT {', '.join(child.columns)} FROM {child.table} "
                f"WHERE {child.parent_column} IN ({marks})"
            )
            entity = f"{self.entity}.{child.table}"
            for row in conn.stream(
                sql,
                chunk,
                table=child.table,
                key_columns=child.key,
                entity=entity,
                page_size=None,
                on_bad_value=self._forward,
            ):
                key = row[child.key[0]]
                if key is None:
                    continue
                data = self._convert_fields(row, fields, child.table, str(key))
                found[row[child.parent_column]].append((int(key), data))
        return {
            parent: [d for _, d in sorted(items, key=lambda i: i[0])]
            for parent, items in found.items()
        }

    def convert(
        self,
        row: Row | Mapping[str, object],
        children: Mapping[str, list[ChildData]] | None = None,
    ) -> Record | None:
        key_values = [row[c] for c in self.spec.key]
        if any(v is None for v in key_values):
            self._report(BadValueError(self.spec.table, "?", self.spec.key[0], "key is null"))
            return None
        key = "-".join(str(v) for v in key_values)
        data: dict[str, Value] = dict(self._convert_fields(row, self._fields, self.spec.table, key))
        for name, _child, _conv in self._children:
            data[name] = list((children or {}).get(name, []))
        stamp = row[self.spec.change.column] if self.spec.change.column else None
        return Record(self.entity, key, data, stamp, content_hash(data))

    def _convert_fields(
        self,
        row: Row | Mapping[str, object],
        fields: list[tuple[str, str, Converter]],
        table: str,
        key: str,
    ) -> ChildData:
        data: ChildData = {}
        for name, column, convert in fields:
            try:
                data[name] = convert(row[column])
            except ConversionError as exc:
                data[name] = None
                self._report(BadValueError(table, key, column, str(exc)))
        return data

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


def _is_key(value: str) -> bool:
    return value.isdigit() and value != "0"
