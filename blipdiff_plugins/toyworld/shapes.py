"""The toy world's shapes: exact boolean masks on a square box, computed at pixel centres (no anti-aliasing).

Every shape fills its box's full width or height, so the size of a subject can be read from its extent.
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Callable

import numpy as np

# A shape maps box coordinates x, y in [-1, 1] (y down) to a boolean "inside" array.
ShapeFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _inside_polygon(x: np.ndarray, y: np.ndarray, vertices: list[tuple[float, float]]) -> np.ndarray:
    """Even-odd rule: a point is inside when a ray to the right crosses the polygon's edges an odd number of times."""
    inside = np.zeros(np.broadcast(x, y).shape, dtype=bool)
    for (x0, y0), (x1, y1) in zip(vertices, vertices[1:] + vertices[:1]):
        straddles = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            crossing = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= straddles & (x < crossing)
    return inside


def _star_vertices(points: int = 5, inner: float = 0.45) -> list[tuple[float, float]]:
    vertices = []
    for index in range(2 * points):
        radius = 1.0 if index % 2 == 0 else inner
        angle = -math.pi / 2 + index * math.pi / points
        vertices.append((radius * math.cos(angle), radius * math.sin(angle)))
    # Centre the star vertically: its top point is at -1 and its lowest points at sin(54 deg) ~ 0.81.
    shift = (1.0 - max(vy for _, vy in vertices)) / 2
    return [(vx, vy + shift) for vx, vy in vertices]


def circle(x, y):
    return x**2 + y**2 <= 1.0


def square(x, y):
    return np.maximum(np.abs(x), np.abs(y)) <= 0.9


def triangle(x, y):
    return _inside_polygon(x, y, [(0.0, -1.0), (1.0, 1.0), (-1.0, 1.0)])


def diamond(x, y):
    return np.abs(x) + np.abs(y) <= 1.0


def star(x, y):
    return _inside_polygon(x, y, _STAR)


def cross(x, y):
    arm = 0.34
    return ((np.abs(x) <= arm) & (np.abs(y) <= 1.0)) | ((np.abs(y) <= arm) & (np.abs(x) <= 1.0))


def heart(x, y):
    # The classic implicit heart (u^2 + v^2 - 1)^3 - u^2 v^3 <= 0 (v up) spans |u| <= 1.14, -1 <= v <= 1.236:
    # map it onto the box.
    u, v = x * 1.14, 0.118 - 1.118 * y
    return (u**2 + v**2 - 1.0) ** 3 - u**2 * v**3 <= 0.0


def crescent(x, y):
    return (x**2 + y**2 <= 1.0) & ((x - 0.55) ** 2 + (y + 0.1) ** 2 > 0.72**2)


_STAR = _star_vertices()

SHAPES: "MappingProxyType[str, ShapeFunction]" = MappingProxyType(
    {
        "circle": circle,
        "square": square,
        "triangle": triangle,
        "diamond": diamond,
        "star": star,
        "cross": cross,
        "heart": heart,
        "crescent": crescent,
    }
)
SHAPE_NAMES = tuple(SHAPES)


def shape_mask(shape: str, *, canvas: int, center: tuple[float, float], side: float) -> np.ndarray:
    """The exact mask of ``shape`` in a square box of ``side`` pixels centred at ``center`` (x, y) on a canvas.

    Args:
        shape (`str`): one of `SHAPE_NAMES`.
        canvas (`int`): canvas side in pixels.
        center (`tuple[float, float]`): box centre in pixels (x, y).
        side (`float`): box side in pixels.

    Returns:
        `np.ndarray`: boolean ``(canvas, canvas)``, True on the subject.
    """
    if shape not in SHAPES:
        raise ValueError(f"`shape`: {shape!r} is not one of {', '.join(SHAPE_NAMES)}.")
    pixels = np.arange(canvas, dtype=np.float64) + 0.5
    x = (pixels[None, :] - center[0]) / (side / 2)
    y = (pixels[:, None] - center[1]) / (side / 2)
    return np.asarray(SHAPES[shape](x, y), dtype=bool)
