"""What the setup wizard does, without Qt: list, test, save, check, start.

Setup happens before an engine exists, so the wizard is the one part of the
panel that uses the bridge's own modules directly (configuration, secrets,
ODBC, the doctor) instead of the control channel. Every function here may
block (ODBC, keyring, network, disk): the wizard calls them through
:func:`gui.tasks.run_in_background`. None raises for a bad answer: each
returns a result that says what is wrong and what to do.

* :func:`odbc_choices` - the installed ODBC drivers and defined data sources;
* :func:`check_answers` - every problem with the answers, per setting key,
  from the same validation ``bridge config check`` uses;
* :func:`check_pms_connection` - connect with the answers (the password typed, not yet
  stored), check the profile's tables and columns and whether the login can
  write;
* :func:`check_cloud_connection` - send one heartbeat with the agent id and token;
* :func:`save_setup` - secrets into the OS keyring (:mod:`bridge.secrets`),
  then the configuration file (the ``bridge config init`` template with the
  answers set, written atomically, owner-only; an existing file is kept as
  ``bridge.toml.bak``);
* :func:`doctor_results` - ``bridge doctor`` on the saved setup;
* :func:`start_engine` - ``bridge run`` as a process of its own.

Passwords and tokens travel as :class:`~bridge.secrets.Secret` so a
traceback or ``repr`` never shows them; messages name settings, never values.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bridge import __version__
from bridge.cloud.client import CloudClient
from bridge.cloud.protocol import Heartbeat
from bridge.config import (
    KNOWN_PMS_PROFILES,
    ConfigProblem,
    Settings,
    render_default_config,
    write_config_file,
)
from bridge.config.load import validate_settings
from bridge.doctor import CheckResult, run_doctor
from bridge.errors import BridgeError, PmsError
from bridge.paths import BridgePaths
from bridge.pms.odbc import OdbcSettings, connect, defined_data_sources, installed_drivers
from bridge.pms.profile import load_profile
from bridge.pms.source import profile_problems
from bridge.secrets import MemorySecretStore, Secret, SecretStore

PMS_PASSWORD_SECRET = "pms-password"  # noqa: S105 - the keyring entry's name, not a password
CLOUD_TOKEN_SECRET = "cloud-token"  # noqa: S105 - the keyring entry's name, not a token


@dataclass(frozen=True)
class FolderAnswer:
    label: str
    path: str
    kind: str = "auto"


@dataclass(frozen=True)
class SetupAnswers:
    """Everything the wizard asks. Empty strings are "not given"."""

    practice_name: str = ""
    timezone: str = ""
    country: str = "US"
    profile: str = KNOWN_PMS_PROFILES[0]
    dsn: str = ""
    connection_string: str = ""
    user: str = ""
    password: Secret | None = None
    cloud_url: str = ""
    agent_id: str = ""
    token: Secret | None = None
    ca_bundle: str = ""
    folders: tuple[FolderAnswer, ...] = ()

    def values(self) -> dict[str, object]:
        """The answers as dotted setting keys (what ``render_default_config`` takes)."""
        given: dict[str, object] = {
            "practice.name": self.practice_name,
            "practice.timezone": self.timezone,
            "practice.country": self.country,
            "pms.profile": self.profile,
            "pms.dsn": self.dsn,
            "pms.connection_string": self.connection_string,
            "pms.user": self.user,
            "cloud.url": self.cloud_url,
            "cloud.agent_id": self.agent_id,
            "cloud.ca_bundle": self.ca_bundle,
        }
        values: dict[str, object] = {
            k: v.strip() for k, v in given.items() if isinstance(v, str) and v.strip()
        }
        if self.password is not None and self.password.reveal():
            values["pms.password_secret"] = PMS_PASSWORD_SECRET
        return values

    def folder_tables(self) -> list[dict[str, object]]:
        return [
            {"label": f.label.strip(), "path": f.path.strip(), "kind": f.kind} for f in self.folders
        ]


# -- choices ------------------------------------------------------------------


@dataclass(frozen=True)
class OdbcChoices:
    drivers: tuple[str, ...]
    data_sources: tuple[tuple[str, str], ...]  # (DSN name, driver)
    problem: str = ""


def odbc_choices() -> OdbcChoices:
    """Installed drivers and defined data sources (``problem`` says why not)."""
    try:
        drivers = tuple(installed_drivers())
        sources = tuple(sorted(defined_data_sources().items(), key=lambda kv: kv[0].lower()))
    except PmsError as exc:
        return OdbcChoices((), (), exc.message)
    return OdbcChoices(drivers, sources)


def connection_string_template(driver: str) -> str:
    """A starting connection string for ``driver`` (no password: that is asked apart)."""
    lowered = driver.lower()
    if "sqlite" in lowered:
        return f"Driver={{{driver}}};Database=C:\\OpenDental\\opendental.sqlite3"
    if "maria" in lowered or "mysql" in lowered:
        return f"Driver={{{driver}}};Server=127.0.0.1;Port=3306;Database=opendental"
    if "sql server" in lowered:
        return f"Driver={{{driver}}};Server=localhost;Database=dentrix"
    return f"Driver={{{driver}}};"


def profile_titles() -> dict[str, str]:
    """Shipped PMS profiles: name -> title (e.g. ``opendental`` -> ``Open Dental``)."""
    titles = {}
    for name in KNOWN_PMS_PROFILES:
        try:
            titles[name] = load_profile(name).profile.title
        except BridgeError:
            titles[name] = name
    return titles


def time_zones() -> list[str]:
    return sorted(
        z for z in zoneinfo.available_timezones() if "/" in z and not z.startswith("Etc/")
    )


def local_time_zone() -> str:
    """This computer's IANA zone where it can be told, else ``""``."""
    env = os.environ.get("TZ", "")
    if env and "/" in env:
        return env.lstrip(":")
    try:
        target = os.path.realpath("/etc/localtime")
    except OSError:
        return ""
    marker = "zoneinfo/"
    return target.split(marker, 1)[1] if marker in target else ""


# -- checking ------------------------------------------------------------------


def check_answers(answers: SetupAnswers, sections: Sequence[str] = ()) -> list[ConfigProblem]:
    """Problems with the answers, from the configuration's own validation.

    ``sections`` limits the report to those sections' keys (a page checks its
    own answers before the later ones are given); empty means all.
    """
    text = render_default_config(answers.values(), folders=answers.folder_tables())
    data: dict[str, Any] = tomllib.loads(text)
    _, problems = validate_settings(data, base_dir=Path.cwd())
    if not sections:
        return problems
    return [p for p in problems if p.key.split(".", 1)[0].split("[", 1)[0] in sections]


@dataclass(frozen=True)
class ConnectionCheck:
    """A connection test: ``ok`` or not, a sentence, and a fix when it failed."""

    ok: bool
    message: str
    fix: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)


def check_pms_connection(answers: SetupAnswers) -> ConnectionCheck:
    """Connect with the answers, check the profile's tables, and the login's rights."""
    problems = check_answers(answers, ("pms",))
    if problems:
        return ConnectionCheck(False, f"{problems[0].key}: {problems[0].message}", problems[0].fix)
    odbc = OdbcSettings(
        connection_string=answers.connection_string.strip() or None,
        dsn=answers.dsn.strip() or None,
        user=answers.user.strip() or None,
        password=answers.password if answers.password and answers.password.reveal() else None,
    )
    try:
        profile = load_profile(answers.profile)
        with connect(odbc) as conn:
            missing = profile_problems(conn, profile)
            if missing:
                more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
                return ConnectionCheck(False, missing[0].message + more, missing[0].fix)
            notes = [
                f"All {len(profile.entities)} kinds of records of {profile.profile.title} found."
            ]
            capability = conn.login_can_write()
            if capability.can_write:
                notes.append(
                    "Warning: this database login can change data. Give the bridge a "
                    "login that may only read."
                )
            if not conn.read_only_enforced:
                notes.append("The session is not read-only; the bridge still only reads.")
            return ConnectionCheck(True, f"Connected ({conn.family}).", notes=tuple(notes))
    except BridgeError as exc:
        return ConnectionCheck(False, exc.message, exc.fix)


def check_cloud_connection(answers: SetupAnswers) -> ConnectionCheck:
    """One heartbeat to the cloud with the answers' address, agent id and token."""
    problems = check_answers(answers, ("cloud",))
    if problems:
        return ConnectionCheck(False, f"{problems[0].key}: {problems[0].message}", problems[0].fix)
    if answers.token is None or not answers.token.reveal():
        return ConnectionCheck(
            False, "no enrolment token given", "Paste the token the cloud issued."
        )
    settings = _settings(answers)
    if settings is None:
        return ConnectionCheck(False, "the answers are not complete yet", "Fill in every page.")
    store = MemorySecretStore({settings.cloud.token_secret: answers.token.reveal()})
    try:
        with CloudClient(settings.cloud, store) as client:
            ack = client.heartbeat(Heartbeat(settings.cloud.agent_id, __version__))
    except BridgeError as exc:
        return ConnectionCheck(False, exc.message, exc.fix)
    skew = abs((ack.received_at - datetime.now(UTC)).total_seconds())
    notes: tuple[str, ...] = ()
    if skew > 120:
        notes = (f"This computer's clock differs from the cloud's by {skew / 60:.0f} minutes.",)
    return ConnectionCheck(
        True, f"The cloud accepted agent {settings.cloud.agent_id}.", notes=notes
    )


def _settings(answers: SetupAnswers) -> Settings | None:
    text = render_default_config(answers.values(), folders=answers.folder_tables())
    settings, _ = validate_settings(tomllib.loads(text), base_dir=Path.cwd())
    return settings


# -- saving ---------------------------------------------------------------------


@dataclass(frozen=True)
class SaveOutcome:
    ok: bool
    message: str
    problems: tuple[ConfigProblem, ...] = ()
    config_path: Path | None = None
    backup: Path | None = None


def config_text(answers: SetupAnswers) -> str:
    """The file :func:`save_setup` writes (no secret in it: secrets go to the keyring)."""
    return render_default_config(answers.values(), folders=answers.folder_tables())


def save_setup(answers: SetupAnswers, config_path: Path, secret_store: SecretStore) -> SaveOutcome:
    """Validate, store the secrets, write the configuration file.

    Nothing is written when the answers have a problem. An existing file is
    copied to ``<name>.bak`` first.
    """
    problems = check_answers(answers)
    if problems:
        return SaveOutcome(False, "the answers have problems; nothing was saved", tuple(problems))
    try:
        if answers.password is not None and answers.password.reveal():
            secret_store.set(PMS_PASSWORD_SECRET, answers.password.reveal())
        if answers.token is not None and answers.token.reveal():
            secret_store.set(CLOUD_TOKEN_SECRET, answers.token.reveal())
        backup = None
        if config_path.exists():
            backup = config_path.with_name(config_path.name + ".bak")
            shutil.copy2(config_path, backup)
        write_config_file(config_path, config_text(answers), overwrite=True)
    except BridgeError as exc:
        return SaveOutcome(False, f"{exc.message} ({exc.fix})" if exc.fix else exc.message)
    except OSError as exc:
        return SaveOutcome(False, f"could not keep a copy of {config_path} ({exc.strerror})")
    return SaveOutcome(True, f"saved {config_path}", config_path=config_path, backup=backup)


def doctor_results(
    paths: BridgePaths, config_path: Path, secret_store: SecretStore
) -> list[CheckResult]:
    """``bridge doctor`` on the saved setup, every check."""
    paths.ensure()
    return list(run_doctor(paths, config_path, secret_store))


def start_engine(
    config_path: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``bridge run`` as its own process (it outlives the wizard).

    On a server where the installer registered the Windows service, the
    service is what runs the engine; this starts it for a setup without one.
    The engine writes its own log; its console output is discarded.
    """
    flags: dict[str, Any] = {}
    if sys.platform == "win32":
        flags["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.DETACHED_PROCESS
    else:
        flags["start_new_session"] = True
    return subprocess.Popen(
        [sys.executable, "-m", "bridge", "--config", str(config_path), "run"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(env) if env is not None else None,
        **flags,
    )
