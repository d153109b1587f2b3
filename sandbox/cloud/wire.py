"""HTTP request bodies and API errors: the byte-level edge of the cloud.

:class:`BodyReader` reads a request body framed by ``Content-Length`` or by
``Transfer-Encoding: chunked`` in pieces, never holding it whole unless
asked to (:meth:`BodyReader.read_all`, bounded). :func:`decode_json` undoes
``Content-Encoding: gzip`` with the same bound (no zip bombs) and parses
JSON. Every problem is an :class:`ApiError`, which the handler turns into the
contract's error body ``{code, message, field?, limits?}``.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, Protocol

import orjson

from sandbox.cloud.models import JsonObject

PIECE = 1024 * 1024
"""The largest piece read from the socket at once."""


class ApiError(Exception):
    """An HTTP error answer: status, machine code, plain-words message naming the field."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
        limits: JsonObject | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})
        self.limits = limits

    def body(self) -> JsonObject:
        body: JsonObject = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.limits is not None:
            body["limits"] = self.limits
        return body


@dataclass
class Request:
    """One HTTP request as the routes see it; the body is read on demand."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: BodyReader
    client_ip: str

    def param(self, name: str) -> str | None:
        """The first value of query parameter ``name``."""
        values = self.query.get(name)
        return values[0] if values else None

    def json(self, limit: int) -> JsonObject:
        """The body as a JSON object (``Content-Type: application/json``, maybe gzipped)."""
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise ApiError(
                415,
                "unsupported_media_type",
                "Content-Type: must be application/json",
                field="Content-Type",
            )
        return decode_json(self.body.read_all(limit), self.headers.get("Content-Encoding"), limit)


@dataclass(frozen=True)
class Reply:
    """An answer: status, JSON body (None: no body) and extra headers."""

    status: int
    body: JsonObject | None = None
    headers: dict[str, str] = field(default_factory=dict)


def unprocessable(field: str, problem: str) -> ApiError:
    """422 naming ``field``: the message reads ``"<field>: <problem>"``."""
    return ApiError(422, "validation_failed", f"{field}: {problem}", field=field)


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...

    def readline(self, size: int = ..., /) -> bytes: ...


class BodyReader:
    """The body of one request, read lazily from the connection.

    ``finished`` tells whether the whole body has been consumed, which is when
    the connection can serve another request (else the handler closes it).
    """

    def __init__(self, rfile: Readable, headers: Message) -> None:
        self._rfile = rfile
        self.bytes_read = 0
        self.declared_length: int | None = None
        transfer = headers.get("Transfer-Encoding")
        length = headers.get("Content-Length")
        if transfer is not None:
            if length is not None:
                raise ApiError(
                    400,
                    "bad_request",
                    "Content-Length and Transfer-Encoding together are not allowed",
                    field="Transfer-Encoding",
                )
            if transfer.strip().lower() != "chunked":
                raise ApiError(
                    400,
                    "bad_request",
                    "Transfer-Encoding: only 'chunked' is supported",
                    field="Transfer-Encoding",
                )
            self.chunked = True
        else:
            self.chunked = False
            self.declared_length = _parse_length(length) if length is not None else 0
        self.finished = self.declared_length == 0
        self._chunk_left = 0

    def pieces(self, limit: int | None = None) -> Iterator[bytes]:
        """The body in pieces of at most :data:`PIECE` bytes.

        More than ``limit`` bytes raises 413 as soon as that is known (for
        ``Content-Length`` before reading anything).
        """
        if limit is not None and self.declared_length is not None and self.declared_length > limit:
            raise _too_large(limit)
        read = self._chunked_pieces() if self.chunked else self._sized_pieces()
        for piece in read:
            if limit is not None and self.bytes_read > limit:
                raise _too_large(limit)
            yield piece

    def read_all(self, limit: int) -> bytes:
        """The whole body, at most ``limit`` bytes (else 413)."""
        return b"".join(self.pieces(limit))

    def _sized_pieces(self) -> Iterator[bytes]:
        left = (self.declared_length or 0) - self.bytes_read
        while left > 0:
            piece = self._rfile.read(min(left, PIECE))
            if not piece:
                raise _ended_early()
            self.bytes_read += len(piece)
            left -= len(piece)
            yield piece
        self.finished = True

    def _chunked_pieces(self) -> Iterator[bytes]:
        while not self.finished:
            if self._chunk_left == 0:
                size = self._chunk_size()
                if size == 0:
                    self._skip_trailers()
                    self.finished = True
                    return
                self._chunk_left = size
            piece = self._rfile.read(min(self._chunk_left, PIECE))
            if not piece:
                raise _ended_early()
            self._chunk_left -= len(piece)
            self.bytes_read += len(piece)
            if self._chunk_left == 0 and self._rfile.read(2) != b"\r\n":
                raise ApiError(400, "bad_request", "malformed chunked body")
            yield piece

    def _chunk_size(self) -> int:
        line = self._rfile.readline(1026)
        if not line.endswith(b"\n"):
            raise (
                _ended_early() if not line else ApiError(400, "bad_request", "chunk line too long")
            )
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ApiError(400, "bad_request", "malformed chunk size") from None
        if size < 0:
            raise ApiError(400, "bad_request", "malformed chunk size")
        return size

    def _skip_trailers(self) -> None:
        for _ in range(100):
            line = self._rfile.readline(8192)
            if line in (b"\r\n", b"\n"):
                return
            if not line:
                raise _ended_early()
        raise ApiError(400, "bad_request", "too many trailer lines")


def decode_json(raw: bytes, content_encoding: str | None, limit: int) -> JsonObject:
    """The JSON object in ``raw``, gunzipped first for ``Content-Encoding: gzip``.

    The decoded size is bounded by ``limit`` too (413). Not JSON is 400; JSON
    that is not an object is 422.
    """
    coding = (content_encoding or "identity").strip().lower()
    if coding == "gzip":
        raw = _gunzip(raw, limit)
    elif coding != "identity":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Encoding: {coding!r} is not supported (use gzip or none)",
            field="Content-Encoding",
        )
    try:
        value: Any = orjson.loads(raw)  # strict: NaN and Infinity are not JSON
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", f"body: not valid JSON ({exc})", field="body") from None
    if not isinstance(value, dict):
        raise unprocessable("body", "must be a JSON object")
    return value


def encode_json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def canonical_sha256(value: object) -> str:
    """A hash of a JSON value that ignores key order and whitespace."""
    text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(text).hexdigest()


def _gunzip(raw: bytes, limit: int) -> bytes:
    decoder = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = decoder.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise ApiError(400, "invalid_gzip", f"body: not valid gzip ({exc})", field="body") from None
    if len(out) > limit:
        raise _too_large(limit)
    if not decoder.eof:
        raise ApiError(400, "invalid_gzip", "body: gzip stream is truncated", field="body")
    return out


def _parse_length(text: str) -> int:
    if not text.strip().isdigit():
        raise ApiError(400, "bad_request", "Content-Length: not a number", field="Content-Length")
    return int(text)


def _ended_early() -> ApiError:
    return ApiError(400, "bad_request", "the body ended before its declared length")


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        f"body: larger than {limit} bytes; split it",
        field="body",
    )
