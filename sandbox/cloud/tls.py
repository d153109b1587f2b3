"""TLS for the reference cloud: a private test CA and a loopback certificate.

At the first start with TLS, :func:`load_or_create` makes a CA (with
``trustme``) and a server certificate for ``127.0.0.1``, ``::1`` and
``localhost``, and keeps them (owner-only files) in a folder beside the
database, so a restarted cloud presents the same certificate and a bridge
configured with ``ca_path`` as its extra CA bundle keeps verifying it.
``spki_sha256`` is the server key's pin (base64 SHA-256 of its
SubjectPublicKeyInfo, as in HPKP), for testing certificate pinning.
"""

from __future__ import annotations

import base64
import hashlib
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

HOSTS = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class TlsMaterial:
    context: ssl.SSLContext
    ca_path: Path
    cert_path: Path
    spki_sha256: str


def load_or_create(folder: Path) -> TlsMaterial:
    """The server's TLS context, from ``folder`` (created there on first use)."""
    ca_path = folder / "ca.pem"
    cert_path = folder / "server.pem"
    key_path = folder / "server.key"
    if not (ca_path.exists() and cert_path.exists() and key_path.exists()):
        folder.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA(organization_name="Dental PMS Bridge reference cloud (test CA)")
        leaf = ca.issue_cert(*HOSTS)
        _write(key_path, leaf.private_key_pem.bytes())
        _write(cert_path, b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        _write(ca_path, ca.cert_pem.bytes())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    return TlsMaterial(context, ca_path, cert_path, spki_pin(cert_path.read_bytes()))


def spki_pin(cert_pem: bytes) -> str:
    """Base64 SHA-256 of the first certificate's SubjectPublicKeyInfo."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


def spki_pin_der(cert_der: bytes) -> str:
    """:func:`spki_pin` for a DER certificate (as ``getpeercert(binary_form=True)`` gives)."""
    cert = x509.load_der_x509_certificate(cert_der)
    return spki_pin(cert.public_bytes(Encoding.PEM))


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)
