"""Streaming row output: generators -> per-table chunks -> a loader.

Generators call the function returned by :meth:`Output.table` once per row;
rows are buffered per table and handed to the :class:`Loader` in chunks of
``chunk_rows``, so memory stays flat however large the practice is. A row is
a tuple in the column order given to :meth:`Output.table`; values are only
``int``, ``float``, ``str`` (dates already formatted) or ``None``.

Column names are checked against the parsed vendored DDL when a table is
opened, so a generator cannot write a column the real schema does not have.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from sandbox.practice.schema import SchemaError, Table

Value = int | float | str | None
Row = tuple[Value, ...]
AddRow = Callable[[Row], None]


class Loader(Protocol):
    """Where rows go. Called from one thread, in generation order."""

    def write(self, table: str, columns: tuple[str, ...], rows: Sequence[Row]) -> None: ...


class Output:
    """Per-table row buffers in front of a loader; counts every row."""

    def __init__(self, loader: Loader, schema: dict[str, Table], chunk_rows: int) -> None:
        self._loader = loader
        self._schema = schema
        self._chunk_rows = chunk_rows
        self._flushers: list[Callable[[], None]] = []
        self.counts: dict[str, int] = dict.fromkeys(schema, 0)

    def table(self, name: str, columns: tuple[str, ...]) -> AddRow:
        """Open ``name`` for writing ``columns``; returns the add-one-row function."""
        if name not in self._schema:
            raise SchemaError(f"table {name!r} is not in the vendored DDL")
        unknown = set(columns) - set(self._schema[name].column_names)
        if unknown:
            raise SchemaError(f"{name}: columns not in the vendored DDL: {sorted(unknown)}")
        buffer: list[Row] = []
        loader, limit, counts = self._loader, self._chunk_rows, self.counts

        def flush() -> None:
            if buffer:
                counts[name] += len(buffer)
                loader.write(name, columns, buffer)
                buffer.clear()

        def add(row: Row) -> None:
            buffer.append(row)
            if len(buffer) >= limit:
                flush()

        self._flushers.append(flush)
        return add

    def flush(self) -> None:
        """Hand every buffered row to the loader."""
        for flush in self._flushers:
            flush()
