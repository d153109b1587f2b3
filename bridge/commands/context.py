"""Helpers every command uses to read the shared CLI context."""

from __future__ import annotations

from pathlib import Path

import click

from bridge.paths import BridgePaths, default_paths
from bridge.secrets import KeyringSecretStore, SecretStore


def _obj(ctx: click.Context) -> dict[str, object]:
    root = ctx.find_root()
    if not isinstance(root.obj, dict):
        root.obj = {}
    return root.obj


def cli_paths(ctx: click.Context) -> BridgePaths:
    obj = _obj(ctx)
    paths = obj.get("paths")
    if not isinstance(paths, BridgePaths):
        paths = default_paths()
        obj["paths"] = paths
    return paths


def cli_config_path(ctx: click.Context) -> Path:
    value = _obj(ctx).get("config_path")
    return value if isinstance(value, Path) else cli_paths(ctx).config_file


def cli_secret_store(ctx: click.Context) -> SecretStore:
    obj = _obj(ctx)
    store = obj.get("secret_store")
    if store is None:
        store = KeyringSecretStore()
        obj["secret_store"] = store
    return store  # type: ignore[return-value]
