"""Status icons, drawn at run time with QPainter: a distinct shape per level.

Colour alone does not carry meaning (some receptionists are colour-blind),
so each :class:`~gui.health_rules.Level` has its own outline and glyph:

=======  ==========================  =====================================
level    shape                       used for
=======  ==========================  =====================================
OK       green disc with a tick      in sync, component ok
BUSY     blue ring of two arrows     syncing, first sync, Sync now running
WARN     amber triangle with "!"     needs attention, component warns
FAIL     red octagon with a cross    error, component failed
IDLE     grey rounded square, "II"   offline or paused, not known yet
=======  ==========================  =====================================

Icons are drawn once per (level, size) and cached; they need a
``QGuiApplication``. No image files ship with the panel.
"""

from __future__ import annotations

import math
from functools import cache

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap, QPolygonF

from gui.health_rules import Level

ICON_SIZES = (16, 20, 22, 24, 32, 48, 64, 128)
_WHITE = QColor("#ffffff")
_INK = QColor("#1f1f1f")


@cache
def level_pixmap(level: Level, size: int) -> QPixmap:
    """The level's glyph on a transparent square of ``size`` pixels."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    try:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.scale(size / 100.0, size / 100.0)  # draw on a 100 x 100 canvas
        _DRAW[level](painter, QColor(level.fill))
    finally:
        painter.end()
    return pixmap


@cache
def level_icon(level: Level) -> QIcon:
    """The level's glyph at every common size (for the tray and buttons)."""
    icon = QIcon()
    for size in ICON_SIZES:
        icon.addPixmap(level_pixmap(level, size))
    return icon


def _pen(colour: QColor, width: float) -> QPen:
    pen = QPen(colour, width)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    return pen


def _draw_ok(p: QPainter, fill: QColor) -> None:
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QBrush(fill))
    p.drawEllipse(QRectF(4, 4, 92, 92))
    p.setPen(_pen(_WHITE, 13))
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.drawPolyline(QPolygonF([QPointF(27, 52), QPointF(43, 68), QPointF(73, 34)]))


def _draw_busy(p: QPainter, fill: QColor) -> None:
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QBrush(fill))
    p.drawEllipse(QRectF(4, 4, 92, 92))
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.setPen(_pen(_WHITE, 10))
    ring = QRectF(25, 25, 50, 50)
    # two arcs with a gap each, like a "refresh" sign (Qt angles: 1/16 degree)
    p.drawArc(ring, 20 * 16, 140 * 16)
    p.drawArc(ring, 200 * 16, 140 * 16)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QBrush(_WHITE))
    for end_degrees in (160.0, 340.0):  # arrow heads at the end of each arc
        angle = math.radians(end_degrees)
        tip = QPointF(50 + 25 * math.cos(angle), 50 - 25 * math.sin(angle))
        # the arrow points along the arc, counter-clockwise
        tangent = QPointF(-math.sin(angle), -math.cos(angle))
        normal = QPointF(math.cos(angle), -math.sin(angle))
        head = tip + tangent * 12
        p.drawPolygon(QPolygonF([head, tip + normal * 11, tip - normal * 11]))


def _draw_warn(p: QPainter, fill: QColor) -> None:
    path = QPainterPath()
    path.moveTo(50, 6)
    path.lineTo(96, 90)
    path.lineTo(4, 90)
    path.closeSubpath()
    p.setPen(_pen(fill, 6))
    p.setBrush(QBrush(fill))
    p.drawPath(path)
    p.setPen(_pen(_INK, 11))
    p.drawLine(QPointF(50, 36), QPointF(50, 62))
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QBrush(_INK))
    p.drawEllipse(QPointF(50, 77), 6.5, 6.5)


def _draw_fail(p: QPainter, fill: QColor) -> None:
    points = [
        QPointF(50 + 47 * math.cos(math.radians(22.5 + 45 * i)),
                50 + 47 * math.sin(math.radians(22.5 + 45 * i)))
        for i in range(8)
    ]  # fmt: skip
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QBrush(fill))
    p.drawPolygon(QPolygonF(points))
    p.setPen(_pen(_WHITE, 13))
    p.drawLine(QPointF(33, 33), QPointF(67, 67))
    p.drawLine(QPointF(67, 33), QPointF(33, 67))


def _draw_idle(p: QPainter, fill: QColor) -> None:
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QBrush(fill))
    p.drawRoundedRect(QRectF(6, 6, 88, 88), 18, 18)
    p.setBrush(QBrush(_WHITE))
    p.drawRoundedRect(QRectF(31, 28, 13, 44), 3, 3)
    p.drawRoundedRect(QRectF(56, 28, 13, 44), 3, 3)


_DRAW = {
    Level.OK: _draw_ok,
    Level.BUSY: _draw_busy,
    Level.WARN: _draw_warn,
    Level.FAIL: _draw_fail,
    Level.IDLE: _draw_idle,
}
