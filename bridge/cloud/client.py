"""The Cloud API v1 client (docs/cloud-api.yaml): one call per operation.

:class:`CloudClient` is built from the ``[cloud]`` settings and a
:class:`~bridge.secrets.SecretStore`. Contract:

* Every request carries ``Authorization: Bearer <token>``; the token is read
  from the store (``cloud.token_secret``) when the client is built and is
  revealed only inside the httpx auth flow.
* HTTPS is always verified (:func:`bridge.cloud.tls.client_context`):
  ``cloud.ca_bundle`` adds to the default trust; ``pin`` (base64 SPKI
  SHA-256) is checked on every new connection before anything is sent.
* ``cloud.proxy`` is used as the outbound proxy; its password comes from the
  store (``cloud.proxy_password_secret``), its user from the proxy URL.
  Environment proxy variables are ignored (the settings are the only source).
* JSON bodies above ``gzip_min_bytes`` go gzip-compressed
  (``Content-Encoding: gzip``).
* Timeouts: ``cloud.timeout_seconds`` for reading, writing and the pool, at
  most 15 s of it for connecting; a long-poll adds its ``wait`` on top.
* Each call makes exactly one HTTP request (retries are the caller's,
  :func:`bridge.cloud.retry.send_with_retry`) and raises only
  :class:`~bridge.errors.CloudError` subclasses (plus
  :class:`~bridge.errors.SecretError` when the client is built):

  ==========================  =========================================
  outcome                     error
  ==========================  =========================================
  401, 403                    CloudAuthError (not retryable)
  certificate / pin failure   CloudTlsError (not retryable)
  413                         BatchTooLargeError (split and resend)
  429, 503                    CloudUnavailableError with ``retry_after``
  other 5xx, connection lost  CloudUnavailableError (retryable)
  400, 404, 409, 415, 422     CloudRejectedError (not retryable)
  unreadable 2xx answer       CloudUnavailableError (retryable)
  ==========================  =========================================

  Error messages carry the operation, the status and the cloud's error
  ``code``/``field``; never request payload data.
* ``transport`` replaces the network (tests); ``event_hooks`` are passed to
  httpx (tests validate traffic with ``SpecChecker().hook``).
* Files (:meth:`CloudClient.put_file`) are streamed from an iterator of
  pieces with ``Content-Length``, never held in memory; an exception raised
  by the iterator (the file changed while it was read) propagates unchanged
  and leaves the body incomplete, so the cloud stores nothing.
"""

from __future__ import annotations

import gzip
import json
import math
import ssl
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from bridge.cloud.protocol import (
    ChangeAck,
    ChangeBatch,
    ChecksumPage,
    Heartbeat,
    HeartbeatAck,
    InboxPage,
    InboxResult,
    InboxResultAck,
    KeyList,
    KeyRange,
    ProtocolError,
)
from bridge.cloud.split import post_changes_splitting
from bridge.cloud.tls import PinMismatchError, client_context
from bridge.config.model import Cloud
from bridge.errors import (
    BatchTooLargeError,
    CloudAuthError,
    CloudError,
    CloudRejectedError,
    CloudTlsError,
    CloudUnavailableError,
    ConfigError,
)
from bridge.secrets import Secret, SecretStore

GZIP_MIN_BYTES = 1024
CONNECT_TIMEOUT_CAP = 15.0
USER_AGENT = "dental-pms-bridge"
FLUSH_BYTES_PER_SECOND = 20 * 1024 * 1024  # slowest disk flush allowed for when uploading

EventHook = Callable[..., Any]


class _BearerAuth(httpx.Auth):
    def __init__(self, token: Secret) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token.reveal()}"
        yield request


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds); None if absent or unreadable."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _proxy(settings: Cloud, secrets: SecretStore) -> httpx.Proxy | None:
    if settings.proxy is None:
        return None
    if settings.proxy_password_secret is None:
        return httpx.Proxy(settings.proxy)
    parts = urlsplit(settings.proxy)
    user = parts.username or ""
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    password = secrets.get(settings.proxy_password_secret)
    return httpx.Proxy(bare, auth=(user, password.reveal()))


def _caused_by(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


class CloudClient:
    """A synchronous client of the Cloud API v1 (see the module docstring).

    Thread-safe as httpx.Client is; close it (or use ``with``) when done.
    """

    def __init__(
        self,
        settings: Cloud,
        secrets: SecretStore,
        *,
        pin: str | None = None,
        transport: httpx.BaseTransport | None = None,
        event_hooks: Mapping[str, Sequence[EventHook]] | None = None,
        gzip_min_bytes: int = GZIP_MIN_BYTES,
    ) -> None:
        self.settings = settings
        self.agent_id = settings.agent_id
        self.gzip_min_bytes = gzip_min_bytes
        token = secrets.get(settings.token_secret)
        try:
            verify: ssl.SSLContext = client_context(settings.ca_bundle, pin)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"the CA bundle cloud.ca_bundle could not be loaded ({type(exc).__name__})",
                key="cloud.ca_bundle",
            ) from exc
        except ValueError as exc:
            raise ConfigError(f"the certificate pin is not valid: {exc}", key="cloud.pin") from exc
        if transport is None:
            transport = httpx.HTTPTransport(
                verify=verify, proxy=_proxy(settings, secrets), retries=0
            )
        self._timeout = settings.timeout_seconds
        self._http = httpx.Client(
            base_url=settings.url,
            auth=_BearerAuth(token),
            transport=transport,
            timeout=self._timeouts(0.0),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            event_hooks={k: list(v) for k, v in (event_hooks or {}).items()},
            trust_env=False,
            follow_redirects=False,
        )

    # -- plumbing -----------------------------------------------------------

    def _timeouts(self, extra_read: float) -> httpx.Timeout:
        return httpx.Timeout(
            self._timeout,
            connect=min(self._timeout, CONNECT_TIMEOUT_CAP),
            read=self._timeout + extra_read,
        )

    def _json_body(self, body: object) -> tuple[bytes, dict[str, str]]:
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if len(raw) > self.gzip_min_bytes:
            raw = gzip.compress(raw, compresslevel=6, mtime=0)
            headers["Content-Encoding"] = "gzip"
        return raw, headers

    def _send(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        body: object = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str | float] | None = None,
        extra_read: float = 0.0,
    ) -> httpx.Response:
        all_headers = dict(headers or {})
        content: bytes | None = None
        if body is not None:
            content, json_headers = self._json_body(body)
            all_headers.update(json_headers)
        try:
            response = self._http.request(
                method,
                path,
                content=content,
                headers=all_headers,
                params=params,
                timeout=self._timeouts(extra_read),
            )
        except httpx.TransportError as exc:
            raise self._transport_error(operation, exc) from exc
        return response

    @staticmethod
    def _transport_error(operation: str, exc: httpx.TransportError) -> CloudError:
        if _caused_by(exc, PinMismatchError) is not None:
            return CloudTlsError(
                f"{operation}: the cloud's public key does not match the pinned key; "
                "the connection was closed before anything was sent"
            )
        if _caused_by(exc, ssl.SSLCertVerificationError) is not None:
            return CloudTlsError(f"{operation}: the cloud's certificate could not be verified")
        if isinstance(exc, httpx.UnsupportedProtocol):
            return CloudRejectedError(f"{operation}: unsupported URL scheme in cloud.url")
        if isinstance(exc, httpx.TimeoutException):
            return CloudUnavailableError(f"{operation}: the cloud did not answer in time")
        return CloudUnavailableError(
            f"{operation}: the connection to the cloud failed ({type(exc).__name__})"
        )

    @staticmethod
    def _error_body(response: httpx.Response) -> Mapping[str, Any]:
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            return {}
        return body if isinstance(body, dict) else {}

    def _raise_for_status(self, operation: str, response: httpx.Response) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        err = self._error_body(response)
        code = err.get("code") if isinstance(err.get("code"), str) else None
        field = err.get("field") if isinstance(err.get("field"), str) else None
        detail = f"HTTP {status}" + (f" {code}" if code else "") + (f" ({field})" if field else "")
        if status == 401:
            raise CloudAuthError(
                f"{operation}: the cloud did not accept the agent token ({detail})", status=status
            )
        if status == 403:
            raise CloudAuthError(
                f"{operation}: the agent token may not act for agent '{self.agent_id}' ({detail})",
                status=status,
            )
        if status == 413:
            limits = err.get("limits")
            if not isinstance(limits, dict):
                limits = {}
            raise BatchTooLargeError(
                f"{operation}: too large for the cloud ({detail})",
                max_changes=_int_or_none(limits.get("max_changes")),
                max_body_bytes=_int_or_none(limits.get("max_body_bytes")),
                code=code,
            )
        if status in (429, 503) or status >= 500:
            raise CloudUnavailableError(
                f"{operation}: the cloud is unavailable ({detail})",
                status=status,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        raise CloudRejectedError(
            f"{operation}: the cloud rejected the request ({detail})",
            status=status,
            code=code,
            field=field,
        )

    @staticmethod
    def _parse(operation: str, response: httpx.Response, parse: Callable[[object], Any]) -> Any:
        try:
            return parse(response.json())
        except (ValueError, UnicodeDecodeError, ProtocolError) as exc:
            reason = str(exc) if isinstance(exc, ProtocolError) else "not JSON"
            raise CloudUnavailableError(
                f"{operation}: the cloud's answer was not understood ({reason})",
                status=response.status_code,
            ) from None

    # -- operations ---------------------------------------------------------

    def post_changes(self, batch: ChangeBatch) -> ChangeAck:
        """POST /v1/changes with ``Idempotency-Key: batch_id``; 413 is
        :class:`BatchTooLargeError` (see :meth:`post_changes_splitting`)."""
        op = "post changes"
        response = self._send(
            op,
            "POST",
            "/v1/changes",
            body=batch.to_json(),
            headers={"Idempotency-Key": batch.batch_id},
        )
        self._raise_for_status(op, response)
        ack: ChangeAck = self._parse(op, response, ChangeAck.from_json)
        return ack

    def post_changes_body(self, batch_id: str, body: bytes) -> ChangeAck:
        """POST /v1/changes with a finished, gzip-compressed batch body (a
        first-sync page, :class:`bridge.sync.outbox.Page`); same answers and
        errors as :meth:`post_changes`."""
        op = "post changes"
        try:
            response = self._http.request(
                "POST",
                "/v1/changes",
                content=body,
                headers={
                    "Idempotency-Key": batch_id,
                    "Content-Type": "application/json",
                    "Content-Encoding": "gzip",
                },
                timeout=self._timeouts(0.0),
            )
        except httpx.TransportError as exc:
            raise self._transport_error(op, exc) from exc
        self._raise_for_status(op, response)
        ack: ChangeAck = self._parse(op, response, ChangeAck.from_json)
        return ack

    def post_changes_splitting(
        self, batch: ChangeBatch, send: Callable[[ChangeBatch], ChangeAck] | None = None
    ) -> list[ChangeAck]:
        """:func:`bridge.cloud.split.post_changes_splitting` with this client."""
        return post_changes_splitting(batch, send or self.post_changes)

    def poll_inbox(
        self, after: str | None = None, wait: float = 0.0, limit: int | None = None
    ) -> InboxPage:
        """GET /v1/inbox: items after the cursor ``after``; long-polls up to ``wait`` s."""
        op = "poll inbox"
        params: dict[str, str | float] = {"wait": wait}
        if after is not None:
            params["after"] = after
        if limit is not None:
            params["limit"] = limit
        response = self._send(op, "GET", "/v1/inbox", params=params, extra_read=max(0.0, wait))
        self._raise_for_status(op, response)
        page: InboxPage = self._parse(op, response, InboxPage.from_json)
        return page

    def post_result(self, item_id: str, result: InboxResult) -> InboxResultAck:
        """POST /v1/inbox/{id}/result (idempotent per item)."""
        op = "post result"
        path = f"/v1/inbox/{quote(item_id, safe='')}/result"
        response = self._send(op, "POST", path, body=result.to_json())
        self._raise_for_status(op, response)
        ack: InboxResultAck = self._parse(op, response, InboxResultAck.from_json)
        return ack

    def head_file(self, sha256: str) -> bool:
        """HEAD /v1/files/{sha256}: does the cloud already have this file?"""
        op = "check file"
        response = self._send(op, "HEAD", f"/v1/files/{quote(sha256, safe='')}")
        if response.status_code == 404:
            return False
        self._raise_for_status(op, response)
        return True

    def put_file(self, sha256: str, upload: FileUpload, pieces: Iterable[bytes]) -> FileAck:
        """PUT /v1/files/{sha256}: stream exactly ``upload.size`` bytes from ``pieces``.

        Idempotent by content hash. The cloud answers 422 if the bytes do not
        hash to ``sha256`` and 400 if their count is not the size; 413
        (:class:`BatchTooLargeError`) when the file is larger than it takes.
        """
        op = "upload file"
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(upload.size),
            "X-File-Name": quote(upload.name, safe=""),
            "X-File-Size": str(upload.size),
            "X-File-Kind": upload.kind,
            "X-Source-Folder": quote(upload.folder, safe=""),
        }
        # The cloud answers after storing the body durably: allow for the flush.
        extra = upload.size / FLUSH_BYTES_PER_SECOND
        try:
            response = self._http.request(
                "PUT",
                f"/v1/files/{quote(sha256, safe='')}",
                content=iter(pieces),
                headers=headers,
                timeout=self._timeouts(extra),
            )
        except httpx.TransportError as exc:
            raise self._transport_error(op, exc) from exc
        self._raise_for_status(op, response)
        ack: FileAck = self._parse(op, response, FileAck.from_json)
        return ack

    def heartbeat(self, payload: Heartbeat) -> HeartbeatAck:
        """POST /v1/heartbeat (last one wins)."""
        op = "heartbeat"
        response = self._send(op, "POST", "/v1/heartbeat", body=payload.to_json())
        self._raise_for_status(op, response)
        ack: HeartbeatAck = self._parse(op, response, HeartbeatAck.from_json)
        return ack

    def checksums(self, entity: str, ranges: Sequence[KeyRange]) -> ChecksumPage:
        """POST /v1/checksums: the cloud's count and digest per key range (a read).

        The answer must hold exactly the ranges asked, in order; anything else
        is :class:`CloudUnavailableError` (not understood)."""
        op = "checksums"
        body = {"entity": entity, "ranges": [r.to_json() for r in ranges]}
        response = self._send(op, "POST", "/v1/checksums", body=body)
        self._raise_for_status(op, response)
        page: ChecksumPage = self._parse(op, response, ChecksumPage.from_json)
        if tuple(c.range for c in page.ranges) != tuple(ranges):
            raise CloudUnavailableError(
                f"{op}: the cloud's answer was not understood (ranges differ from those asked)",
                status=response.status_code,
            )
        return page

    def checksum_keys(self, entity: str, span: KeyRange, limit: int | None = None) -> KeyList:
        """POST /v1/checksums/keys: a page of (key, row hash) in ``span`` (a read)."""
        op = "checksum keys"
        body: dict[str, object] = {"entity": entity, **span.to_json()}
        if limit is not None:
            body["limit"] = limit
        response = self._send(op, "POST", "/v1/checksums/keys", body=body)
        self._raise_for_status(op, response)
        keys: KeyList = self._parse(op, response, KeyList.from_json)
        return keys

    # -- lifecycle ----------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CloudClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True)
class FileUpload:
    """What ``PUT /v1/files`` says about a file besides its bytes."""

    name: str  # no folder; at most 255 characters, no '/', '\\' or control characters
    size: int
    kind: str  # era835, claim, report, statement or other
    folder: str  # the export folder's label


@dataclass(frozen=True)
class FileAck:
    """The cloud's answer to ``PUT /v1/files/{sha256}``."""

    sha256: str
    size: int
    duplicate: bool

    @classmethod
    def from_json(cls, obj: object) -> FileAck:
        if not isinstance(obj, dict):
            raise ProtocolError("FileAck must be an object")
        sha, size, duplicate = obj.get("sha256"), obj.get("size"), obj.get("duplicate")
        if not isinstance(sha, str):
            raise ProtocolError("field 'sha256' must be a string")
        if isinstance(size, bool) or not isinstance(size, int):
            raise ProtocolError("field 'size' must be an integer")
        if not isinstance(duplicate, bool):
            raise ProtocolError("field 'duplicate' must be true or false")
        return cls(sha, size, duplicate)


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
