"""Where the bridge keeps its files.

Defaults come from platformdirs with ``multipath=False`` and the *site*
directories on Windows (``C:\\ProgramData\\DentalPmsBridge\\{config,data,logs}``) because the
engine runs as a service with no user profile; elsewhere the user
directories are used (``~/.local/share/dental-pms-bridge``). The environment
variable ``BRIDGE_HOME`` overrides everything and puts config, data and logs
under one folder (tests, demos and portable installs use it).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "DentalPmsBridge" if sys.platform == "win32" else "dental-pms-bridge"


@dataclass(frozen=True)
class BridgePaths:
    """The folders the bridge uses; create them with :meth:`ensure`."""

    config_dir: Path
    data_dir: Path
    log_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "bridge.toml"

    @property
    def state_db(self) -> Path:
        return self.data_dir / "state.sqlite3"

    @property
    def control_dir(self) -> Path:
        """The control channel's folder: the engine's key and, on POSIX, its socket
        (:mod:`bridge.control.endpoint`)."""
        return self.data_dir / "control"

    def ensure(self) -> BridgePaths:
        for folder in (self.config_dir, self.data_dir, self.log_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def default_paths() -> BridgePaths:
    """Return the paths for this machine, honouring ``BRIDGE_HOME``."""
    home = os.environ.get("BRIDGE_HOME")
    if home:
        root = Path(home).expanduser().resolve()
        return BridgePaths(root / "config", root / "data", root / "logs")
    if sys.platform == "win32":
        # appauthor=False: otherwise platformdirs nests the name twice
        # (C:\ProgramData\DentalPmsBridge\DentalPmsBridge).
        root = Path(platformdirs.site_data_dir(APP_NAME, appauthor=False))
        return BridgePaths(root / "config", root / "data", root / "logs")
    return BridgePaths(
        Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
        Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)),
        Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)),
    )
