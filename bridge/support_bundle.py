"""Support bundles: one zip with what support needs and no personal data or secrets.

:func:`write_support_bundle` writes ``bridge-support-<UTC time>.zip`` (mode
0600) into ``<data>/support`` and returns its path. The engine makes one on
the control channel's ``support_bundle``; ``bridge bundle`` makes one itself
when no engine runs. Contents:

==========================  ==============================================================
``manifest.json``           who made it, when, the files, what was dropped or cut
``versions.json``           bridge, Python, OS, key packages, the Qt binding if installed
                            (read from package metadata: Qt is never imported),
                            keyring backend, unixODBC
``odbc.json``               ODBC drivers and data sources (pyodbc and ``odbcinst -q``)
``config.toml``             the effective settings (``bridge config show``): secrets
                            by name only, connection-string passwords masked; the
                            raw file without its comments if it does not load
``status.json``             the status snapshot
``doctor.txt``/``.json``    every ``bridge doctor`` check
``logs/bridge.jsonl*``      the newest logs, up to :data:`MAX_LOG_BYTES`
==========================  ==============================================================

No personal data, no secrets: the logs were masked when written and every
record is masked again here (:class:`~bridge.logs.Redactor`: known secrets,
credentials, e-mail addresses, phone and social security numbers, and every
field whose name means personal data); lines that are not log records are
dropped, not copied. Before masking, the secrets the configuration names are
read from the keyring so their values are known to the masker even if this
process never used them. Every other part is built from messages that name
settings, tables and codes, and is masked as well. What masking cannot know
is free text that matches no pattern in a field with a neutral name; the
bridge never logs row values, which is what keeps such text out of the logs
in the first place.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import platform
import re
import secrets as pysecrets
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bridge import __version__
from bridge.config import load_settings, render_settings
from bridge.config.load import read_config_file
from bridge.config.spec import secret_ref_keys
from bridge.doctor import run_doctor
from bridge.errors import BridgeError
from bridge.logs import Redactor, log_files
from bridge.paths import BridgePaths
from bridge.pms import odbc_connstr as connstr
from bridge.secrets import SecretStore
from bridge.status import StatusSnapshot

log = logging.getLogger(__name__)

MAX_LOG_BYTES = 20 * 1024**2
SUPPORT_DIR_NAME = "support"
PACKAGES = (
    "dental-pms-bridge",
    "pyodbc",
    "SQLAlchemy",
    "alembic",
    "pydantic",
    "httpx",
    "keyring",
    "click",
    "platformdirs",
    "filelock",
    "watchdog",
)
QT_PREFIXES = ("pyside", "shiboken")  # the panel's Qt binding (the ``gui`` extra)
_RESERVED = ("ts", "level", "logger")
_CONN_LINE = re.compile(r"^(\s*connection_string\s*=\s*)(['\"])(.*)\2(.*)$")
_SECRET_KEY_LINE = re.compile(
    r"^(\s*[\w.-]*(?:password|passwd|pwd|token|secret|apikey|api_key)[\w.-]*\s*=\s*)(.*)$",
    re.IGNORECASE,
)


def write_support_bundle(
    paths: BridgePaths,
    config_path: Path,
    secret_store: SecretStore,
    *,
    status: StatusSnapshot | None,
    made_by: str,
    out_dir: Path | None = None,
    now: datetime | None = None,
) -> Path:
    """Write the bundle (see the module docstring); returns the zip's path.

    Never fails because one part could not be gathered: that part says what
    went wrong instead. Raises OSError only if the zip cannot be written.
    """
    now = now or datetime.now(UTC)
    redactor = Redactor()
    _learn_secrets(config_path, secret_store)
    parts: dict[str, bytes] = {}
    notes: list[str] = []
    parts["versions.json"] = _json(redactor, _versions(secret_store))
    parts["odbc.json"] = _json(redactor, _odbc())
    parts["config.toml"] = _config(redactor, config_path, notes).encode("utf-8")
    parts["status.json"] = _json(
        redactor, asdict(status) if status is not None else {"error": "no status available"}
    )
    doctor = _doctor(paths, config_path, secret_store)
    parts["doctor.json"] = _json(redactor, doctor)
    parts["doctor.txt"] = "\n".join(redactor.text(_doctor_line(check)) for check in doctor).encode(
        "utf-8"
    )
    parts.update(_logs(redactor, paths.log_dir, notes))
    manifest = {
        "bundle": "dental-pms-bridge support bundle",
        "created_at": now.isoformat(),
        "made_by": made_by,
        "bridge_version": __version__,
        "files": {name: len(data) for name, data in sorted(parts.items())},
        "remarks": notes,  # not "notes": the masker treats that name as personal data
    }
    parts["manifest.json"] = _json(redactor, manifest)
    folder = out_dir or paths.data_dir / SUPPORT_DIR_NAME
    return _write_zip(folder, f"bridge-support-{now:%Y%m%d-%H%M%S}.zip", parts)


# -- parts -----------------------------------------------------------------------------


def _learn_secrets(config_path: Path, store: SecretStore) -> None:
    """Read the configured secrets once, so the masker knows their values."""
    names: set[str] = set()
    try:
        raw = read_config_file(config_path)
    except BridgeError:
        return
    for key in secret_ref_keys():
        section, _, name = key.partition(".")
        value = raw.get(section, {}).get(name) if isinstance(raw.get(section), dict) else None
        if isinstance(value, str):
            names.add(value)
    for name in sorted(names):
        with contextlib.suppress(BridgeError):
            store.get(name)  # a Secret registers its value with known_secrets()


def _versions(store: SecretStore) -> dict[str, Any]:
    packages: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = None
    for dist in importlib.metadata.distributions():
        name = str(dist.metadata["Name"] or "")
        if name.lower().startswith(QT_PREFIXES):
            packages[name] = dist.version
    try:
        keyring_backend = store.describe()
    except Exception as exc:  # a broken keyring is itself worth reporting
        keyring_backend = f"unavailable ({type(exc).__name__})"
    return {
        "bridge": __version__,
        "python": sys.version,
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "os": os.name,
        "frozen": bool(getattr(sys, "frozen", False)),
        "packages": packages,
        "keyring_backend": keyring_backend,
        "unixodbc": _run(["odbcinst", "--version"]),
    }


def _odbc() -> dict[str, Any]:
    info: dict[str, Any] = {}
    try:
        import pyodbc  # noqa: PLC0415 - optional at import time of this module

        info["drivers"] = list(pyodbc.drivers())
        info["data_sources"] = dict(pyodbc.dataSources())
    except Exception as exc:  # a broken driver manager is itself worth reporting
        info["error"] = f"pyodbc could not list drivers ({type(exc).__name__})"
    info["odbcinst_drivers"] = _run(["odbcinst", "-q", "-d"])
    info["odbcinst_data_sources"] = _run(["odbcinst", "-q", "-s"])
    info["odbcinst_files"] = _run(["odbcinst", "-j"])
    return info


def _run(command: list[str]) -> str | None:
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"failed ({type(exc).__name__})"
    return (done.stdout + done.stderr).strip()


def _config(redactor: Redactor, config_path: Path, notes: list[str]) -> str:
    try:
        text = render_settings(load_settings(config_path))
        header = f"# effective settings of {config_path}\n"
    except BridgeError as exc:
        notes.append(f"the configuration did not load ({exc.message}); raw file, comments removed")
        try:
            raw = config_path.read_text(encoding="utf-8", errors="replace")
        except OSError as read_error:
            return f"# {config_path} could not be read ({type(read_error).__name__})\n"
        text = "\n".join(_mask_raw_line(line) for line in raw.splitlines())
        header = f"# raw {config_path} (it did not load), comments removed\n"
    lines = [_mask_connection_string(line) for line in text.splitlines()]
    return header + "\n".join(redactor.text(line) for line in lines) + "\n"


def _mask_connection_string(line: str) -> str:
    match = _CONN_LINE.match(line)
    if match is None:
        return line
    masked = connstr.redacted(connstr.parse(match.group(3)))
    return f"{match.group(1)}{match.group(2)}{masked}{match.group(2)}{match.group(4)}"


def _mask_raw_line(line: str) -> str:
    """A raw TOML line without its comment, secret-looking values masked."""
    line = _strip_comment(line)
    match = _SECRET_KEY_LINE.match(line)
    if match is not None and not match.group(1).strip().rstrip("= ").endswith("_secret"):
        return f'{match.group(1)}"[redacted]"'
    return line


def _strip_comment(line: str) -> str:
    quote: str | None = None
    for index, char in enumerate(line):
        if quote is None and char == "#":
            return line[:index].rstrip()
        if char in "'\"":
            quote = None if quote == char else (quote or char)
    return line


def _doctor(paths: BridgePaths, config_path: Path, store: SecretStore) -> list[dict[str, str]]:
    """Each check as ``{"check", "status", "message", "fix"}`` ("check", not
    "name": the masker treats a field called ``name`` as personal data)."""
    results: list[dict[str, str]] = []
    try:
        for check in run_doctor(paths, config_path, store):
            results.append(
                {"check": check.name, "status": check.status, "message": check.message,
                 "fix": check.fix}
            )  # fmt: skip
    except Exception as exc:  # doctor never raises; if it does, say so and carry on
        results.append(
            {"check": "doctor", "status": "fail", "message": f"doctor failed: {type(exc).__name__}",
             "fix": ""}
        )  # fmt: skip
    return results


def _doctor_line(check: Mapping[str, str]) -> str:
    line = f"{check['status'].upper():<4}  {check['check']:<14} {check['message']}"
    if check.get("fix") and check["status"] in ("warn", "fail"):
        line += f"  (fix: {check['fix']})"
    return line


def _logs(redactor: Redactor, log_dir: Path, notes: list[str]) -> dict[str, bytes]:
    """The newest log files (whole files, up to MAX_LOG_BYTES), every record re-masked."""
    out: dict[str, bytes] = {}
    total = 0
    dropped = 0
    files = log_files(log_dir)
    for index, path in enumerate(reversed(files)):
        try:
            data = path.read_bytes()
        except OSError:
            notes.append(f"log file {path.name} could not be read")
            continue
        if total + len(data) > MAX_LOG_BYTES and out:
            notes.append(f"{len(files) - index} older log file(s) left out (size limit)")
            break
        lines: list[str] = []
        for line in data.splitlines():
            record = _remask_line(redactor, line)
            if record is None:
                dropped += bool(line.strip())
                continue
            lines.append(record)
        body = ("\n".join(lines) + "\n" if lines else "").encode("utf-8")
        out[f"logs/{path.name}"] = body
        total += len(data)
    if dropped:
        notes.append(f"{dropped} log line(s) that were not log records were left out")
    if not files:
        notes.append(f"no log files in {log_dir}")
    return out


def _remask_line(redactor: Redactor, line: bytes) -> str | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    if not all(isinstance(obj.get(k), str) for k in (*_RESERVED, "msg")):
        return None
    masked: dict[str, Any] = {k: redactor.text(obj[k]) for k in _RESERVED}
    masked["msg"] = redactor.text(obj["msg"])
    for key, value in obj.items():
        if key in masked:
            continue
        masked[key] = redactor.value(None if key in ("exc", "stack") else key, value)
    return json.dumps(masked, ensure_ascii=False, separators=(",", ":"))


def _json(redactor: Redactor, obj: Any) -> bytes:
    masked = redactor.value(None, json.loads(json.dumps(obj, default=_default)))
    return json.dumps(masked, indent=2, ensure_ascii=False).encode("utf-8")


def _default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _write_zip(folder: Path, name: str, parts: Mapping[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    temp = folder / f".{name}.{pysecrets.token_hex(4)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
                for part, data in parts.items():
                    bundle.writestr(part, data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    log.info("support bundle written", extra={"path": str(target), "parts": len(parts)})
    return target


def bundle_names(path: Path) -> Iterable[str]:
    """The part names inside a bundle (for the CLI's summary)."""
    with zipfile.ZipFile(path) as bundle:
        return bundle.namelist()
