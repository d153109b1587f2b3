"""Secrets: a value type that never shows itself, and the stores that keep them.

The configuration file never holds a password or token; it holds the *name*
of a secret (``password_secret = "pms-password"``) and the value lives in the
OS keyring (Windows Credential Manager for the service, Secret Service or a
keyring backend elsewhere). :class:`Secret` wraps a value read from a store:
its ``repr`` and ``str`` are redacted, so it can pass through logs, tracebacks
and support bundles without leaking. Call :meth:`Secret.reveal` only at the
point of use (building a connection string, an HTTP header).

Every secret revealed in this process is registered with :func:`known_secrets`
so the logging filter can mask it wherever it appears.
"""

from __future__ import annotations

import threading
from typing import Protocol

import keyring
import keyring.errors

from bridge.errors import SecretError

SERVICE_NAME = "dental-pms-bridge"

_known: set[str] = set()
_known_lock = threading.Lock()


def known_secrets() -> frozenset[str]:
    """Every secret value this process has handled (for log masking)."""
    with _known_lock:
        return frozenset(_known)


class Secret:
    """A secret value with a redacted representation."""

    __slots__ = ("_name", "_value")

    def __init__(self, value: str, name: str = "secret") -> None:
        self._value = value
        self._name = name
        if len(value) >= 4:
            with _known_lock:
                _known.add(value)

    @property
    def name(self) -> str:
        return self._name

    def reveal(self) -> str:
        """Return the plain value; use only where it is handed to a library."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self._name!r}, '********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("Secret values are not picklable")


class SecretStore(Protocol):
    """Where secrets live. The engine uses the OS keyring; tests may pass
    :class:`MemorySecretStore`."""

    def get(self, name: str) -> Secret:
        """Return the secret or raise :class:`SecretError` naming it."""

    def set(self, name: str, value: str) -> None:
        """Store (or replace) the secret."""

    def delete(self, name: str) -> None:
        """Remove the secret; no error if it was not stored."""

    def describe(self) -> str:
        """A short name of the backend, for doctor and support bundles."""


class KeyringSecretStore:
    """Secrets in the OS keyring under the service name ``dental-pms-bridge``."""

    def __init__(self, service: str = SERVICE_NAME) -> None:
        self._service = service

    def get(self, name: str) -> Secret:
        try:
            value = keyring.get_password(self._service, name)
        except keyring.errors.KeyringError as exc:
            raise SecretError(
                f"the OS keyring could not be read for secret '{name}' ({type(exc).__name__})",
                key=name,
                fix="Make sure a keyring backend is available (Windows Credential Manager, "
                "Secret Service, or the keyrings.alt file backend).",
            ) from exc
        if value is None:
            raise SecretError(
                f"secret '{name}' is not stored in the OS keyring",
                key=name,
                fix=f"Store it with 'bridge secret set {name}'.",
            )
        return Secret(value, name)

    def set(self, name: str, value: str) -> None:
        try:
            keyring.set_password(self._service, name, value)
        except keyring.errors.KeyringError as exc:
            raise SecretError(
                f"the OS keyring refused to store secret '{name}' ({type(exc).__name__})",
                key=name,
            ) from exc

    def delete(self, name: str) -> None:
        try:
            keyring.delete_password(self._service, name)
        except keyring.errors.PasswordDeleteError:
            return
        except keyring.errors.KeyringError as exc:
            raise SecretError(
                f"the OS keyring refused to delete secret '{name}' ({type(exc).__name__})",
                key=name,
            ) from exc

    def describe(self) -> str:
        backend = keyring.get_keyring()
        return f"{type(backend).__module__}.{type(backend).__name__}"


class MemorySecretStore:
    """An in-process store for tests and one-shot tools."""

    def __init__(self, values: dict[str, str] | None = None) -> None:
        self._values: dict[str, str] = dict(values or {})

    def get(self, name: str) -> Secret:
        if name not in self._values:
            raise SecretError(f"secret '{name}' is not stored", key=name)
        return Secret(self._values[name], name)

    def set(self, name: str, value: str) -> None:
        self._values[name] = value

    def delete(self, name: str) -> None:
        self._values.pop(name, None)

    def describe(self) -> str:
        return "memory"
