"""Polygon geometry of the synthetic object shapes.

Every shape is a list of simple polygons (flat ``[x1, y1, x2, y2, ...]`` lists, image pixel coordinates,
origin top-left) whose union is the object's mask: exactly what an LVIS ``segmentation`` field holds.
A ring is two half-annuli, so that no polygon needs a hole. Shapes are never rotated (a rotated square
would be a diamond); only size and aspect ratio vary per instance.
"""

from __future__ import annotations

import math

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "ring", "cross", "diamond", "hexagon", "star")

_CIRCLE_VERTICES = 24


def _regular(cx: float, cy: float, rx: float, ry: float, n: int, phase: float) -> list[tuple[float, float]]:
    return [
        (cx + rx * math.cos(phase + 2 * math.pi * k / n), cy + ry * math.sin(phase + 2 * math.pi * k / n))
        for k in range(n)
    ]


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, stop: float, n: int) -> list[tuple[float, float]]:
    return [
        (cx + rx * math.cos(start + (stop - start) * k / n), cy + ry * math.sin(start + (stop - start) * k / n))
        for k in range(n + 1)
    ]


def shape_polygons(shape: str, cx: float, cy: float, w: float, h: float) -> list[list[tuple[float, float]]]:
    """Vertices of ``shape`` centred at (cx, cy) inside a ``w`` x ``h`` box (pixels).

    Returns a list of polygons, each a list of (x, y) vertices; the object is their union.
    """
    rx, ry = w / 2.0, h / 2.0
    if shape == "circle":
        return [_regular(cx, cy, rx, ry, _CIRCLE_VERTICES, 0.0)]
    if shape == "square":
        return [[(cx - rx, cy - ry), (cx + rx, cy - ry), (cx + rx, cy + ry), (cx - rx, cy + ry)]]
    if shape == "triangle":
        return [[(cx, cy - ry), (cx + rx, cy + ry), (cx - rx, cy + ry)]]
    if shape == "diamond":
        return [[(cx, cy - ry), (cx + rx, cy), (cx, cy + ry), (cx - rx, cy)]]
    if shape == "hexagon":
        return [_regular(cx, cy, rx, ry, 6, 0.0)]
    if shape == "star":
        pts = []
        for k in range(10):
            radius = 1.0 if k % 2 == 0 else 0.45
            angle = -math.pi / 2 + math.pi * k / 5
            pts.append((cx + rx * radius * math.cos(angle), cy + ry * radius * math.sin(angle)))
        return [pts]
    if shape == "cross":
        ax, ay = rx / 3.0, ry / 3.0  # arm half-width
        return [[
            (cx - ax, cy - ry), (cx + ax, cy - ry), (cx + ax, cy - ay), (cx + rx, cy - ay),
            (cx + rx, cy + ay), (cx + ax, cy + ay), (cx + ax, cy + ry), (cx - ax, cy + ry),
            (cx - ax, cy + ay), (cx - rx, cy + ay), (cx - rx, cy - ay), (cx - ax, cy - ay),
        ]]
    if shape == "ring":
        irx, iry = rx * 0.55, ry * 0.55
        halves = []
        for start in (0.0, math.pi):
            outer = _arc(cx, cy, rx, ry, start, start + math.pi, _CIRCLE_VERTICES // 2)
            inner = _arc(cx, cy, irx, iry, start + math.pi, start, _CIRCLE_VERTICES // 2)
            halves.append(outer + inner)
        return halves
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def polygon_area(points: list[tuple[float, float]]) -> float:
    """Area of a simple polygon (shoelace formula), in square pixels."""
    total = 0.0
    for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1]):
        total += x1 * y2 - x2 * y1
    return abs(total) / 2.0
