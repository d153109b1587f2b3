"""Converting a page of PMS rows to canonical values, a column at a time.

A first sync converts millions of rows; calling a Python converter for each
of a row's twenty fields is most of its cost. :class:`FieldPlan` converts a
whole page column by column instead, and remembers the answer for each
distinct raw value of a low-cardinality column (a provider number, a status,
a flag, a slot time), so the repeats -- most values in a diary -- cost a
dictionary lookup in C rather than a Python call.

The answer for each value is exactly what the field's converter
(:mod:`bridge.pms.convert`) gives; only the order of work differs. A column
whose conversion fails for some value is converted again one value at a
time, so the bad value becomes ``None`` and is reported against its row's
key (never the value), and the rest of the column is kept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import orjson

from bridge.errors import BadValueError
from bridge.pms.convert import Canonical, ConversionError, Converter, converter_for
from bridge.pms.profile import FieldSpec, Profile

# Conversions whose columns often repeat few distinct values: remember their
# answers, as long as a column proves to repeat them (see FieldPlan.convert).
MEMO_CONVERSIONS = frozenset(
    {"ref", "int", "float", "bool", "enum", "date", "time", "pattern_minutes"}
)
MEMO_LIMIT = 20_000  # distinct values remembered per column
MEMO_MIN_HITS = 0.5  # a column whose page hit the memo less often stops using it

Report = Callable[[BadValueError], None]


class _Memo(dict[object, Canonical]):
    """Raw value -> canonical value; converts (and remembers) on a miss.

    ``dict.__getitem__`` calls ``__missing__`` on a miss, so ``map`` over a
    column runs in C for every value seen before. Raw values that compare
    equal (``1``, ``1.0``, ``True``) convert equally with these converters.
    """

    __slots__ = ("convert",)

    def __init__(self, convert: Converter) -> None:
        super().__init__()
        self.convert = convert

    def __missing__(self, value: object) -> Canonical:
        result = self.convert(value)
        if len(self) < MEMO_LIMIT:
            self[value] = result
        return result


@dataclass
class _Field:
    name: str
    column: str
    convert: Converter
    memo: _Memo | None  # None: converted value by value


class FieldPlan:
    """How to convert one table's allowlisted fields (one per table and reader)."""

    def __init__(self, fields: Mapping[str, FieldSpec], profile: Profile, zone: ZoneInfo) -> None:
        self.fields: list[_Field] = []
        for name, spec in fields.items():
            convert = converter_for(
                spec.type, zone, profile.enums[spec.enum] if spec.enum else None
            )
            memo = _Memo(convert) if spec.type in MEMO_CONVERSIONS else None
            self.fields.append(_Field(name, spec.column, convert, memo))
        self.names = tuple(f.name for f in self.fields)

    def convert(
        self,
        columns: Sequence[Sequence[object]],
        position: Callable[[str], int],
        keys: Sequence[str],
        table: str,
        report: Report,
    ) -> list[list[Canonical]]:
        """Each field's canonical column (``columns`` are the raw result
        columns; ``position`` finds a column by name; ``keys`` name the rows
        in reports)."""
        converted: list[list[Canonical]] = []
        for field in self.fields:
            raw = columns[position(field.column)]
            memo = field.memo
            try:
                if memo is None:
                    converted.append(list(map(field.convert, raw)))
                    continue
                known = len(memo)
                converted.append(list(map(memo.__getitem__, raw)))
                if len(raw) >= 100 and len(memo) - known > len(raw) * (1 - MEMO_MIN_HITS):
                    field.memo = None  # mostly distinct values (a patient number): no gain
            except ConversionError:
                converted.append(_carefully(field, raw, keys, table, report))
        return converted


def _carefully(
    field: _Field, raw: Sequence[object], keys: Sequence[str], table: str, report: Report
) -> list[Canonical]:
    out: list[Canonical] = []
    for key, value in zip(keys, raw, strict=True):
        try:
            out.append(field.convert(value))
        except ConversionError as exc:
            out.append(None)
            report(BadValueError(table, key, field.column, str(exc)))
    return out


def dumps_canonical(data: Mapping[str, object]) -> str:
    """:func:`dumps` for data made only of canonical values
    (:mod:`bridge.pms.convert`, whose floats never need exponent notation):
    orjson without the check, falling back to :mod:`json` for what orjson
    cannot write."""
    try:
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode("utf-8")
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _json_dumps(data)


_EXPONENT = re.compile(rb"[0-9]e")  # a float in exponent notation (or text that looks like one)


def dumps(data: Mapping[str, object]) -> str:
    """Canonical JSON: sorted keys, no spaces, UTF-8 (not ASCII-escaped).

    Exactly what ``json.dumps(data, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)`` writes, which is what the cloud hashes. orjson
    writes the same bytes about ten times faster for strings, integers,
    booleans, null and floats in plain notation (every canonical value:
    :func:`bridge.pms.convert.to_float`); where its output holds something
    that may be a float in exponent notation (Python writes ``1e-07``, orjson
    ``1e-7``), or it cannot write a value (an integer beyond 64 bits), the
    text comes from :mod:`json` instead.
    """
    try:
        raw = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        raw = None
    if raw is None or _EXPONENT.search(raw) is not None:
        return _json_dumps(data)
    return raw.decode("utf-8")


def _json_dumps(data: Mapping[str, object]) -> str:
    """The reference form both functions above must equal."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


__all__ = ["MEMO_CONVERSIONS", "FieldPlan", "dumps", "dumps_canonical"]
