"""The engine must import and run without Qt (STYLE.md practice 1)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROBE = """
import sys
import bridge, bridge.cli, bridge.engine, bridge.doctor, bridge.pms.odbc, bridge.state
qt = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'shiboken6'))
print(','.join(qt) or 'none')
"""


def test_bridge_loads_no_qt_module() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "none"


def test_bridge_never_imports_qt_in_source() -> None:
    root = Path(__file__).resolve().parents[1] / "bridge"
    offenders = [str(p) for p in root.rglob("*.py") if "PySide6" in p.read_text(encoding="utf-8")]
    assert offenders == []
