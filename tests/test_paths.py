"""Where the bridge keeps its files."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge import paths


def test_bridge_home_puts_everything_under_one_folder(bridge_home: Path) -> None:
    p = paths.default_paths().ensure()
    assert p.config_file == bridge_home.resolve() / "config" / "bridge.toml"
    assert p.state_db == bridge_home.resolve() / "data" / "state.sqlite3"
    assert p.log_dir.is_dir()


def test_windows_service_paths_live_in_programdata(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRIDGE_HOME", raising=False)
    monkeypatch.setattr(paths.sys, "platform", "win32")
    monkeypatch.setattr(paths, "APP_NAME", "DentalPmsBridge")
    seen: list[tuple[str, object]] = []

    def site_data_dir(name: str, appauthor: object = None) -> str:
        seen.append((name, appauthor))
        return "C:/ProgramData/" + name

    monkeypatch.setattr(paths.platformdirs, "site_data_dir", site_data_dir)
    p = paths.default_paths()
    assert seen == [("DentalPmsBridge", False)]
    assert p.data_dir == Path("C:/ProgramData/DentalPmsBridge/data")
    assert p.config_file == Path("C:/ProgramData/DentalPmsBridge/config/bridge.toml")
