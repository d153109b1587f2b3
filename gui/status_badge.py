"""A status line: the level's icon (shape and colour) beside words that wrap.

Used wherever the panel or the wizard says how something stands (a
connection test, a component, a doctor check). The icon carries the level's
shape, so the line reads the same to people who cannot tell the colours
apart; the words stay dark on light for contrast.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QWidget

from gui.health_rules import Level
from gui.icons import level_pixmap


class StatusBadge(QWidget):
    """An icon and a text; :meth:`set_status` changes both, :meth:`clear` hides them."""

    def __init__(self, parent: QWidget | None = None, *, icon_size: int = 20) -> None:
        super().__init__(parent)
        self._icon_size = icon_size
        self.level: Level | None = None
        self.icon = QLabel(self)
        self.icon.setFixedSize(icon_size, icon_size)
        self.icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.text = QLabel(self)
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self.text, 1)
        self.clear()

    def set_status(self, level: Level, text: str, detail: str = "") -> None:
        """Show ``text`` (plain) and an optional smaller ``detail`` line under it."""
        self.level = level
        self.icon.setPixmap(level_pixmap(level, self._icon_size))
        self.icon.setToolTip(level.word)
        self.text.setTextFormat(Qt.TextFormat.PlainText)
        self.text.setText(text + (f"\n{detail}" if detail else ""))
        self.setVisible(True)

    def clear(self) -> None:
        self.level = None
        self.icon.clear()
        self.text.clear()
        self.setVisible(False)
