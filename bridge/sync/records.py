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
import logging
from collections import defaultdict
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from bridge.errors import BadValueError
from bridge.pms.convert import Canonical
from bridge.pms.odbc import PmsConnection, Row
from bridge.pms.odbc_stream import RowBatch
from bridge.pms.odbc_values import Columns
from bridge.pms.profile import ChildSpec, EntitySpec, Profile
from bridge.sync.columns import FieldPlan, dumps, dumps_canonical

log = logging.getLogger(__name__)

IN_LIST_SIZE = 500  # keys per IN (...): well under every driver's parameter limit
CHILD_PAGE = 2_000  # parents per page when children are embedded
CHILD_ROWS_PAGE = 20_000  # child rows per statement (IN_LIST_SIZE parents have far fewer)

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
    text: str | None = None  # the canonical JSON the hash covers (None: not kept)

    def canonical_text(self) -> str:
        """The record's data as canonical JSON (what :func:`content_hash` hashes)."""
        return self.text if self.text is not None else canonical_json(self.data)


def canonical_json(data: Mapping[str, object]) -> str:
    """Sorted keys, no spaces, UTF-8 text: the same on every driver and in the cloud."""
    return dumps(data)


def hash_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def content_hash(data: Mapping[str, object]) -> str:
    return hash_text(canonical_json(data))


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
        self._plan = FieldPlan(self.spec.fields, profile, zone)
        self._children: list[tuple[str, ChildSpec, FieldPlan]] = [
            (name, child, FieldPlan(child.fields, profile, zone))
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
            batches = self._batches(conn, condition, params, page_size)
            try:
                for batch in batches:
                    yield from self._records(batch.columns, batch.rows, {})
            finally:
                batches.close()
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
            columns: Columns | None = None
            rows: list[Sequence[object]] = []
            batches = self._batches(conn, where, args, page)
            try:
                for batch in batches:  # one page statement: at most ``page`` rows
                    columns = batch.columns
                    rows.extend(batch.rows)
                    if len(rows) >= page:
                        break
            finally:
                batches.close()
            if columns is None:
                return
            yield from self._with_children(conn, columns, rows)
            if len(rows) < page:
                return
            last = int(str(rows[-1][columns.position(self.key_column)]))

    def read_keys(self, conn: PmsConnection, keys: Iterable[str]) -> list[Record]:
        """The current records of ``keys`` (absent keys are simply missing)."""
        wanted = sorted({int(k) for k in keys if _is_key(k)})
        records: list[Record] = []
        for start in range(0, len(wanted), IN_LIST_SIZE):
            chunk = wanted[start : start + IN_LIST_SIZE]
            marks = ", ".join("?" * len(chunk))
            records.extend(self.read(conn, f"{self.key_column} IN ({marks})", chunk))
        return records

    def _batches(
        self,
        conn: PmsConnection,
        condition: str | None,
        params: Sequence[object],
        page_size: int | None,
    ) -> Generator[RowBatch, None, None]:
        return conn.stream_batches(
            self.select(condition),
            params,
            table=self.spec.table,
            key_columns=self.spec.key,
            entity=self.entity,
            page_size=page_size,
            on_bad_value=self._forward,  # the ODBC layer has logged it already
        )

    def _with_children(
        self, conn: PmsConnection, columns: Columns, rows: list[Sequence[object]]
    ) -> list[Record]:
        at = columns.position(self.key_column)
        keys = [row[at] for row in rows if row[at] is not None]
        children = {
            name: self._read_children(conn, child, plan, keys)
            for name, child, plan in self._children
        }
        return self._records(columns, rows, children)

    def _read_children(
        self,
        conn: PmsConnection,
        child: ChildSpec,
        plan: FieldPlan,
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
            batches = conn.stream_batches(
                sql,
                chunk,
                table=child.table,
                key_columns=child.key,
                entity=f"{self.entity}.{child.table}",
                # paged, so values convert in the driver and a bad row is
                # re-read in isolation (one page: a few thousand rows)
                page_size=CHILD_ROWS_PAGE,
                on_bad_value=self._forward,
            )
            layout: Columns | None = None
            rows: list[Sequence[object]] = []
            for batch in batches:
                layout = batch.columns
                rows.extend(batch.rows)
            if layout is None or not rows:
                continue
            at = layout.position(child.key[0])
            rows = [row for row in rows if row[at] is not None]
            columns = _transpose(rows)
            keys = [str(k) for k in columns[at]]
            converted = plan.convert(columns, layout.position, keys, child.table, self._report)
            parents = columns[layout.position(child.parent_column)]
            for key, parent, values in zip(
                keys, parents, zip(*converted, strict=True), strict=True
            ):
                found[parent].append((int(key), dict(zip(plan.names, values, strict=True))))
        return {
            parent: [d for _, d in sorted(items, key=lambda i: i[0])]
            for parent, items in found.items()
        }

    def convert(
        self,
        row: Row | Mapping[str, object],
        children: Mapping[str, list[ChildData]] | None = None,
    ) -> Record | None:
        """One row's record (None if its key is null); see :meth:`_records`."""
        if not isinstance(row, Row):
            names = list(row)
            row = Row(Columns(names), [row[n] for n in names])
        key = row[self.key_column]
        extra = {name: {key: list(found)} for name, found in (children or {}).items()}
        records = self._records(row.layout, [row.raw_values], extra)
        return records[0] if records else None

    def _records(
        self,
        layout: Columns,
        rows: Sequence[Sequence[object]],
        children: Mapping[str, Mapping[object, list[ChildData]]],
    ) -> list[Record]:
        """Convert a page of rows column by column (:mod:`bridge.sync.columns`)."""
        if not rows:
            return []
        position = layout.position
        columns = _transpose(rows)
        key_columns = [columns[position(c)] for c in self.spec.key]
        raw_keys: Sequence[object] = key_columns[0]
        if any(None in column for column in key_columns):
            kept = [i for i in range(len(rows)) if all(c[i] is not None for c in key_columns)]
            for _ in range(len(rows) - len(kept)):
                self._report(BadValueError(self.spec.table, "?", self.spec.key[0], "key is null"))
            if not kept:
                return []
            columns = [[column[i] for i in kept] for column in columns]
            key_columns = [columns[position(c)] for c in self.spec.key]
            raw_keys = key_columns[0]
        if len(key_columns) == 1:
            keys = [str(k) for k in raw_keys]
        else:
            keys = ["-".join(str(v) for v in parts) for parts in zip(*key_columns, strict=True)]
        converted = self._plan.convert(columns, position, keys, self.spec.table, self._report)
        change = self.spec.change.column
        stamps: Sequence[object] = columns[position(change)] if change else [None] * len(keys)
        names = self._plan.names
        child_names = [name for name, _child, _plan in self._children]
        records: list[Record] = []
        for key, raw_key, stamp, values in zip(
            keys, raw_keys, stamps, zip(*converted, strict=True), strict=True
        ):
            data: dict[str, Value] = dict(zip(names, values, strict=True))
            for name in child_names:
                data[name] = list(children.get(name, {}).get(raw_key, []))
            text = dumps_canonical(data)
            records.append(Record(self.entity, key, data, stamp, hash_text(text), text))
        return records

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


def _transpose(rows: Sequence[Sequence[object]]) -> list[Sequence[object]]:
    """The rows' values as columns."""
    return list(zip(*rows, strict=True))


def _is_key(value: str) -> bool:
    return value.isdigit() and value != "0"
