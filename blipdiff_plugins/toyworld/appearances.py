"""The toy world's appearances: a two-colour palette and a texture (solid, stripes, dots, checks).

Textures are drawn in the subject's box coordinates, so they scale with the subject. Subject colours are
saturated (or pure black and white) and background colours muted, so the two never get close (a test
checks the distance); that is what lets the pixel measures find the subject in a generated image.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

import numpy as np

TEXTURES = ("solid", "stripes", "dots", "checks")
# Pattern periods in box units (the box spans [-1, 1]).
STRIPE_PERIOD = 0.55
DOT_PERIOD = 0.6
DOT_RADIUS = 0.19
CHECK_PERIOD = 0.5

Color = tuple[int, int, int]


@dataclasses.dataclass(frozen=True)
class Appearance:
    """A palette and a texture.

    Args:
        name (`str`): the appearance's word ("tiger").
        texture (`str`): one of `TEXTURES`.
        primary (`tuple[int, int, int]`): RGB of the main colour.
        secondary (`tuple[int, int, int]`): RGB of the pattern colour (unused by "solid").
    """

    name: str
    texture: str
    primary: Color
    secondary: Color

    @property
    def colors(self) -> tuple[Color, ...]:
        return (self.primary,) if self.texture == "solid" else (self.primary, self.secondary)


def texture_selector(texture: str, x: np.ndarray, y: np.ndarray, phase: float = 0.0) -> np.ndarray:
    """Boolean array, True where the secondary colour goes; ``phase`` in [0, 1) shifts the pattern."""
    if texture == "solid":
        return np.zeros(np.broadcast(x, y).shape, dtype=bool)
    if texture == "stripes":  # diagonal bands
        return np.mod((x + y) / STRIPE_PERIOD + phase, 1.0) < 0.5
    if texture == "dots":
        u = np.mod(x / DOT_PERIOD + phase, 1.0) - 0.5
        v = np.mod(y / DOT_PERIOD + phase, 1.0) - 0.5
        return (u**2 + v**2) * DOT_PERIOD**2 <= DOT_RADIUS**2
    if texture == "checks":
        return (np.floor(x / CHECK_PERIOD + phase) + np.floor(y / CHECK_PERIOD + phase)) % 2 == 0
    raise ValueError(f"`texture`: {texture!r} is not one of {', '.join(TEXTURES)}.")


RED, YELLOW, ORANGE, BLACK = (220, 30, 30), (250, 220, 0), (255, 140, 0), (0, 0, 0)
WHITE, CYAN, PURPLE, BLUE, PINK = (255, 255, 255), (0, 230, 230), (140, 0, 200), (0, 60, 255), (255, 80, 200)

APPEARANCES: "MappingProxyType[str, Appearance]" = MappingProxyType(
    {
        appearance.name: appearance
        for appearance in (
            Appearance("ruby", "solid", RED, RED),
            Appearance("lemon", "solid", YELLOW, YELLOW),
            Appearance("tiger", "stripes", ORANGE, BLACK),
            Appearance("mint", "stripes", CYAN, WHITE),
            Appearance("dalmatian", "dots", WHITE, BLACK),
            Appearance("plum", "dots", PURPLE, YELLOW),
            Appearance("chess", "checks", BLACK, WHITE),
            Appearance("ocean", "checks", BLUE, PINK),
        )
    }
)
APPEARANCE_NAMES = tuple(APPEARANCES)


def paint(appearance: str, x: np.ndarray, y: np.ndarray, phase: float = 0.0) -> np.ndarray:
    """The appearance's colours at box coordinates: uint8 ``(*shape, 3)``."""
    if appearance not in APPEARANCES:
        raise ValueError(f"`appearance`: {appearance!r} is not one of {', '.join(APPEARANCE_NAMES)}.")
    spec = APPEARANCES[appearance]
    secondary = texture_selector(spec.texture, x, y, phase)
    return np.where(secondary[..., None], np.array(spec.secondary, np.uint8), np.array(spec.primary, np.uint8))
