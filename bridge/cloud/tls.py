"""TLS for the uplink: the trust store and the optional public-key pin.

:func:`client_context` builds the :class:`ssl.SSLContext` every cloud
connection uses. Contract:

* Verification is always on (``CERT_REQUIRED``, host name checked, TLS 1.2
  or newer). The trust is certifi's CA list plus the system's default CAs,
  plus ``ca_bundle`` (a PEM file) when given: the extra bundle *adds* to the
  default trust, it never replaces it.
* With ``pin`` (base64 SHA-256 of the server certificate's
  SubjectPublicKeyInfo, with or without a ``sha256/`` prefix) the leaf
  certificate's key is compared on every new connection, right after the
  handshake and before a single request byte is sent (also inside an HTTP
  proxy's CONNECT tunnel and for TLS-in-TLS through an https:// proxy). A
  mismatch closes the connection with :class:`PinMismatchError` (an
  :class:`ssl.SSLError`, so httpx reports it as a connect error whose cause
  chain holds it).

The SPKI is read from the DER certificate with a minimal DER walker, so no
crypto library is needed at run time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ssl
from pathlib import Path

import certifi

PIN_PREFIX = "sha256/"


class PinMismatchError(ssl.SSLError):
    """The server's public key is not the pinned one."""


def normalise_pin(pin: str) -> str:
    """``pin`` without the ``sha256/`` prefix; :class:`ValueError` if it is not
    the base64 form of 32 bytes."""
    value = pin.strip()
    if value.startswith(PIN_PREFIX):
        value = value[len(PIN_PREFIX) :]
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the pin must be base64 of a SHA-256 digest") from None
    if len(raw) != 32:
        raise ValueError("the pin must be base64 of a SHA-256 digest (32 bytes)")
    return base64.b64encode(raw).decode("ascii")


def _tlv(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at ``offset``."""
    if offset + 2 > len(data):
        raise ValueError("truncated DER")
    tag = data[offset]
    length = data[offset + 1]
    pos = offset + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise ValueError("truncated DER")
    return tag, pos, end


def spki_der(cert_der: bytes) -> bytes:
    """The DER SubjectPublicKeyInfo of an X.509 certificate (DER)."""
    _, cert_start, _ = _tlv(cert_der, 0)  # Certificate SEQUENCE
    _, tbs_start, tbs_end = _tlv(cert_der, cert_start)  # tbsCertificate SEQUENCE
    pos = tbs_start
    tag, _, end = _tlv(cert_der, pos)
    if tag == 0xA0:  # [0] EXPLICIT version
        pos = end
    # serialNumber, signature, issuer, validity, subject
    for _ in range(5):
        _, _, end = _tlv(cert_der, pos)
        pos = end
    tag, _, end = _tlv(cert_der, pos)
    if tag != 0x30 or end > tbs_end:
        raise ValueError("no SubjectPublicKeyInfo in the certificate")
    return cert_der[pos:end]


def spki_sha256(cert_der: bytes) -> str:
    """Base64 SHA-256 of the certificate's SubjectPublicKeyInfo (the pin format)."""
    return base64.b64encode(hashlib.sha256(spki_der(cert_der)).digest()).decode("ascii")


def _check_pin(pin: str | None, cert_der: bytes | None) -> None:
    if pin is None:
        return
    if cert_der is None:
        raise PinMismatchError("the server presented no certificate to check against the pin")
    try:
        actual = spki_sha256(cert_der)
    except ValueError:
        raise PinMismatchError("the server certificate could not be read for the pin") from None
    if not hmac.compare_digest(actual, pin):
        raise PinMismatchError("the server's public key does not match the pinned key")


class _PinnedSocket(ssl.SSLSocket):
    def do_handshake(self, block: bool = False) -> None:
        super().do_handshake(block)
        context = self.context
        if isinstance(context, PinningContext):
            _check_pin(context.pin, self.getpeercert(binary_form=True))


class _PinnedObject(ssl.SSLObject):
    def do_handshake(self) -> None:
        super().do_handshake()
        context = self.context
        if isinstance(context, PinningContext):
            _check_pin(context.pin, self.getpeercert(binary_form=True))


class PinningContext(ssl.SSLContext):
    """A client context that checks :attr:`pin` after each handshake (if set)."""

    pin: str | None = None
    sslsocket_class = _PinnedSocket
    sslobject_class = _PinnedObject


def client_context(ca_bundle: Path | None = None, pin: str | None = None) -> ssl.SSLContext:
    """The verifying client context (see the module docstring)."""
    context = PinningContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    context.load_verify_locations(cafile=certifi.where())
    context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if ca_bundle is not None:
        context.load_verify_locations(cafile=str(ca_bundle))
    context.pin = normalise_pin(pin) if pin is not None else None
    return context
