"""``python -m gui``: the tray icon and panel (see :mod:`gui.app`)."""

from __future__ import annotations

import sys

from gui.app import main

sys.exit(main())
