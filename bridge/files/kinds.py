"""What an export file is, told from its first bytes.

:func:`detect_format` looks at the head of a file (:data:`SNIFF_BYTES` are
enough) and names its format:

``x12-835``  an X12 835 remittance advice (ERA): an ``ISA`` interchange whose
             first transaction set is ``ST*835``
``x12-837``  an X12 837 claim batch (professional, institutional or dental)
``x12``      another X12 transaction (999, 277CA acknowledgements ...)
``pdf``      a PDF document (``%PDF-`` within the first KiB, as readers accept)
``csv``      delimited text (comma, semicolon, tab or bar) whose first lines
             have the same number of fields, at least two
``unknown``  anything else (lockbox files, fixed-width text, images ...)

X12 separators are read from the ``ISA`` segment itself (the element
separator is its fourth character, the segment terminator follows the
sixteenth element), so files using ``*``/``~``, ``|``/newline or any other
pair are recognised, with or without line breaks between segments.

:func:`cloud_kind` maps a format and the folder's configured kind to the
cloud's file kind (``era835``, ``claim``, ``report``, ``statement``,
``other``): an 835 or 837 is always ``era835`` or ``claim`` (the content
cannot be mistaken); otherwise a configured kind wins, and ``auto`` sends
CSV and PDF as ``report`` and the rest as ``other``. Pure functions; they
never raise on any input.
"""

from __future__ import annotations

import csv
import io
from typing import Literal

Format = Literal["x12-835", "x12-837", "x12", "pdf", "csv", "unknown"]
CloudKind = Literal["era835", "claim", "report", "statement", "other"]

SNIFF_BYTES = 64 * 1024
_BOM = b"\xef\xbb\xbf"
_CSV_LINES = 20
_DELIMITERS = (",", ";", "\t", "|")
_ISA_ELEMENTS = 16


def detect_format(head: bytes) -> Format:
    """The format of a file whose first bytes are ``head`` (see the module docstring)."""
    if b"%PDF-" in head[:1024]:
        return "pdf"
    text = head.removeprefix(_BOM).lstrip()
    if text[:3] == b"ISA" and len(text) > 3:
        return _x12(text)
    return "csv" if _looks_delimited(head.removeprefix(_BOM)) else "unknown"


def _x12(text: bytes) -> Format:
    separator = text[3:4]
    if separator.isalnum() or separator.isspace():
        return "unknown"
    position = 2
    for _ in range(_ISA_ELEMENTS):  # ISA01 .. ISA16 each follow a separator
        position = text.find(separator, position + 1)
        if position < 0:
            return "unknown"
    terminator = text[position + 2 : position + 3]  # ISA16 is one character
    if not terminator or terminator.isalnum():
        return "unknown"
    for segment in text.split(terminator):
        elements = segment.strip().split(separator)
        if elements[0] == b"ST" and len(elements) > 1:
            code = elements[1].strip()
            if code == b"835":
                return "x12-835"
            if code == b"837":
                return "x12-837"
            return "x12"
    return "x12"  # an interchange whose first ST lies beyond the head


def _looks_delimited(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the head
            try:
                text = head.decode("cp1252")
            except UnicodeDecodeError:
                return False
        else:
            text = head[: exc.start].decode("utf-8")
    lines = text.splitlines()
    if len(head) >= SNIFF_BYTES and lines:
        lines = lines[:-1]  # the last line may be cut short
    lines = [line for line in lines[:_CSV_LINES] if line.strip()]
    if not lines or any(not line.replace("\t", " ").isprintable() for line in lines):
        return False
    for delimiter in _DELIMITERS:
        counts = {
            len(row) for row in csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter)
        }
        if len(counts) == 1 and counts.pop() >= 2:
            return True
    return False


def cloud_kind(fmt: Format, configured: str) -> CloudKind:
    """The kind sent to the cloud for a file of format ``fmt`` in a folder whose
    configured kind is ``configured`` (``auto`` or a cloud kind)."""
    if fmt == "x12-835":
        return "era835"
    if fmt == "x12-837":
        return "claim"
    if configured in ("era835", "claim", "report", "statement", "other"):
        return configured  # type: ignore[return-value]
    if fmt in ("pdf", "csv"):
        return "report"
    return "other"
