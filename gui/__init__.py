"""The tray icon and panel (PySide6). Talks to the engine only through
:mod:`bridge.control`'s client; installed with the ``gui`` extra."""
