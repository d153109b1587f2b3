"""Validate real httpx traffic against docs/cloud-api.yaml (OpenAPI 3.1).

The cloud's tests check every response the server gives (and every request
it accepted) against the contract; the bridge's client tests can check their
requests the same way::

    checker = SpecChecker()
    client = httpx.Client(base_url=..., event_hooks={"response": [checker.hook]})

:meth:`SpecChecker.check_response` raises :class:`SpecViolation` naming what
broke. :meth:`SpecChecker.hook` checks only ``/v1`` traffic (``/admin`` is not
part of the contract): every response, and the request too when the server
accepted it (2xx), because a request the server accepts must be one the
contract allows. A streamed request body (an upload from a generator) cannot
be re-read, so then only the request's parameters and security are checked.
Uses ``openapi-core`` (a dev dependency).
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import threading
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.validation.request.validators import (
    V31RequestParametersValidator,
    V31RequestSecurityValidator,
)
from werkzeug.datastructures import Headers, ImmutableMultiDict

SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "cloud-api.yaml"


class SpecViolation(AssertionError):
    """A request or response that docs/cloud-api.yaml does not allow."""


class OpenAPIRequest:
    """An :class:`httpx.Request` as openapi-core's ``Request`` protocol (gzip undone)."""

    def __init__(self, request: httpx.Request) -> None:
        url = request.url
        self.host_url = f"{url.scheme}://{url.netloc.decode('ascii')}"
        self.path = url.path
        self.method = request.method.lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qsl(url.query.decode("ascii"), keep_blank_values=True)),
            header=Headers(list(request.headers.multi_items())),
        )
        self.content_type = request.headers.get("content-type", "").lower()
        self.streamed = False
        try:
            body: bytes | None = request.content
        except httpx.RequestNotRead:
            body, self.streamed = None, True
        if body and request.headers.get("content-encoding", "").lower() == "gzip":
            with contextlib.suppress(OSError, EOFError):  # not gzip after all: check as is
                body = gzip.decompress(body)
        self.body = body


class OpenAPIResponse:
    """An :class:`httpx.Response` (already read) as openapi-core's ``Response`` protocol."""

    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.headers = Headers(list(response.headers.multi_items()))
        self.content_type = response.headers.get("content-type", "").lower()
        self.data = response.content


@functools.cache
def _openapi(path: Path) -> OpenAPI:
    return OpenAPI.from_file_path(str(path))


class SpecChecker:
    """Checks traffic against the contract; thread-safe, counts what it checked."""

    def __init__(self, path: Path = SPEC_PATH) -> None:
        self.openapi = _openapi(path)
        self._lock = threading.Lock()
        self.responses_checked = 0
        self.requests_checked = 0

    def check_request(self, request: httpx.Request) -> None:
        adapted = OpenAPIRequest(request)
        if adapted.streamed:
            for validator in (V31RequestParametersValidator, V31RequestSecurityValidator):
                errors = list(validator(self.openapi.spec).iter_errors(adapted))
                if errors:
                    raise _violation("request", request, errors)
        else:
            errors = list(self.openapi.iter_request_errors(adapted))
            if errors:
                raise _violation("request", request, errors)
        with self._lock:
            self.requests_checked += 1

    def check_response(self, response: httpx.Response) -> None:
        response.read()
        errors = list(
            self.openapi.iter_response_errors(
                OpenAPIRequest(response.request), OpenAPIResponse(response)
            )
        )
        if errors:
            raise _violation(f"{response.status_code} response", response.request, errors)
        with self._lock:
            self.responses_checked += 1

    def hook(self, response: httpx.Response) -> None:
        """httpx ``response`` event hook: checks ``/v1`` exchanges."""
        if not response.request.url.path.startswith("/v1/"):
            return
        self.check_response(response)
        if 200 <= response.status_code < 300:
            self.check_request(response.request)


def _violation(what: str, request: httpx.Request, errors: list[Exception]) -> SpecViolation:
    details = "; ".join(_describe(e) for e in errors)
    if len(details) > 2000:
        details = details[:2000] + "..."
    return SpecViolation(f"{request.method} {request.url.path}: {what} breaks the spec: {details}")


def _describe(error: Exception) -> str:
    parts = [f"{type(error).__name__}: {error}"]
    cause = error.__cause__
    for schema_error in getattr(cause, "schema_errors", None) or ():
        path = "/".join(str(p) for p in getattr(schema_error, "path", ()))
        parts.append(f"{path or '<root>'}: {getattr(schema_error, 'message', schema_error)}")
    if cause is not None and not getattr(cause, "schema_errors", None):
        parts.append(str(cause))
    return " | ".join(parts)
