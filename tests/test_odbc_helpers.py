"""Helpers shared by the ODBC layer's tests (no tests here)."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable
from pathlib import Path

import pytest

from bridge.errors import SchemaMismatchError
from bridge.pms.odbc import PmsConnection

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Resident set size of this process (Linux)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE


def peak_rss_growth(rows: Iterable[object], every: int = 1000) -> tuple[int, int]:
    """Consume ``rows``; return (count, peak RSS growth in bytes over the start).

    Rows are dropped as they come, as a streaming consumer would; RSS is
    sampled every ``every`` rows, so driver-side buffers count too.
    """
    gc.collect()
    start = peak = rss_bytes()
    count = 0
    for _ in rows:
        count += 1
        if count % every == 0:
            peak = max(peak, rss_bytes())
    return count, max(peak, rss_bytes()) - start


def assert_missing_table_and_column_name_the_entity(conn: PmsConnection) -> None:
    """Expects a ``patient`` table without an ``SSN`` column and no ``appointment``."""
    with pytest.raises(SchemaMismatchError) as table:
        list(
            conn.stream(
                "SELECT * FROM appointment",
                table="appointment",
                key_columns=["AptNum"],
                entity="appointment",
            )
        )
    assert (table.value.entity, table.value.table, table.value.column) == (
        "appointment",
        "appointment",
        None,
    )
    with pytest.raises(SchemaMismatchError) as column:
        list(
            conn.stream(
                "SELECT PatNum, SSN FROM patient",
                table="patient",
                key_columns=["PatNum"],
                entity="patient",
            )
        )
    assert (column.value.entity, column.value.table, column.value.column) == (
        "patient",
        "patient",
        "SSN",
    )
    assert "SSN" in str(column.value) and "patient" in str(column.value)
