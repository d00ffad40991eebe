"""Contexts a caption describes: background (plain colour or pattern), position and size, and the caption grammar.

Captions read ``"a {shape} on {background} at the {position}, {size}"``; `parse_caption` inverts them,
so a benchmark can tell from a prompt which attributes were asked for.
"""

from __future__ import annotations

import dataclasses
import re
from types import MappingProxyType

import numpy as np

Color = tuple[int, int, int]


@dataclasses.dataclass(frozen=True)
class Background:
    """A background: a plain colour, or a two-colour pattern ("bricks", "tiles").

    Args:
        name (`str`): the caption word.
        pattern (`str`): "plain", "bricks" or "tiles".
        colors (`tuple`): one RGB colour (plain) or two (pattern: base, lines).
    """

    name: str
    pattern: str
    colors: tuple[Color, ...]


BACKGROUNDS: "MappingProxyType[str, Background]" = MappingProxyType(
    {
        background.name: background
        for background in (
            Background("grass", "plain", ((60, 120, 60),)),
            Background("sky", "plain", ((150, 190, 230),)),
            Background("sand", "plain", ((200, 180, 130),)),
            Background("night", "plain", ((35, 35, 90),)),
            Background("bricks", "bricks", ((150, 80, 60), (110, 110, 110))),
            Background("tiles", "tiles", ((170, 170, 190), (120, 120, 145))),
        )
    }
)
BACKGROUND_NAMES = tuple(BACKGROUNDS)

# Box centres as fractions of the canvas (x, y).
POSITIONS: "MappingProxyType[str, tuple[float, float]]" = MappingProxyType(
    {"center": (0.5, 0.5), "left": (0.3, 0.5), "right": (0.7, 0.5), "top": (0.5, 0.3), "bottom": (0.5, 0.7)}
)
POSITION_NAMES = tuple(POSITIONS)
# Box sides as fractions of the canvas.
SIZES: "MappingProxyType[str, float]" = MappingProxyType({"small": 0.36, "large": 0.56})
SIZE_NAMES = tuple(SIZES)
# Renders jitter the box centre by up to this fraction of the canvas and its side by this relative amount.
POSITION_JITTER = 0.04
SIZE_JITTER = 0.06

CAPTION_WORDS = ("a", "on", "at", "the")


@dataclasses.dataclass(frozen=True)
class Context:
    """Where and how a subject is shown. ``position`` or ``size`` may be `None`: not in the caption, drawn at random.

    Args:
        background (`str`): one of `BACKGROUND_NAMES`.
        position (`str`, *optional*): one of `POSITION_NAMES`.
        size (`str`, *optional*): one of `SIZE_NAMES`.
    """

    background: str
    position: str | None = None
    size: str | None = None

    def __post_init__(self):
        for argument, value, names in (
            ("background", self.background, BACKGROUND_NAMES),
            ("position", self.position, POSITION_NAMES),
            ("size", self.size, SIZE_NAMES),
        ):
            if (value is not None or argument == "background") and value not in names:
                raise ValueError(f"`{argument}`: {value!r} is not one of {', '.join(names)}.")

    def text(self) -> str:
        """The caption after the subject word: ``"on grass at the left, small"``."""
        words = f"on {self.background}"
        if self.position is not None:
            words += f" at the {self.position}"
        if self.size is not None:
            words += f", {self.size}"
        return words

    def prompted(self) -> dict[str, str]:
        """The attributes the caption asks for."""
        values = {"background": self.background, "position": self.position, "size": self.size}
        return {key: value for key, value in values.items() if value is not None}


def caption(word: str, context: Context) -> str:
    """The full caption ``"a {word} {context}"``."""
    return f"a {word} {context.text()}"


_CAPTION = re.compile(r"^a (?P<word>[a-z]+) on (?P<background>[a-z]+)(?: at the (?P<position>[a-z]+))?(?:, (?P<size>[a-z]+))?$")


def parse_caption(text: str) -> tuple[str, Context]:
    """Invert `caption`: ``(word, Context)``; text of another form raises `ValueError` showing the grammar."""
    match = _CAPTION.match(" ".join(text.split()))
    if match is None:
        raise ValueError(f"`text`: {text!r} is not a toy-world caption 'a <shape> on <background>[ at the <position>][, <size>]'.")
    return match.group("word"), Context(match.group("background"), match.group("position"), match.group("size"))


def paint_background(name: str, canvas: int, phase: float = 0.0) -> np.ndarray:
    """The background over the whole canvas: uint8 ``(canvas, canvas, 3)``; ``phase`` in [0, 1) shifts a pattern."""
    if name not in BACKGROUNDS:
        raise ValueError(f"`background`: {name!r} is not one of {', '.join(BACKGROUND_NAMES)}.")
    spec = BACKGROUNDS[name]
    image = np.empty((canvas, canvas, 3), np.uint8)
    image[:] = spec.colors[0]
    if spec.pattern == "plain":
        return image
    # Patterns scale with the canvas: 8 rows of bricks, 6 tiles per side, lines ~1/32 of the canvas wide.
    pixels = np.arange(canvas, dtype=np.float64) + 0.5
    line = max(canvas / 32, 1.0)
    offset = phase * canvas
    if spec.pattern == "bricks":
        height = canvas / 8
        row = np.floor((pixels[:, None] + offset) / height)
        shifted = pixels[None, :] + offset + (row % 2) * height
        lines = (np.mod(pixels[:, None] + offset, height) < line) | (np.mod(shifted, 2 * height) < line)
    else:
        width = canvas / 6
        lines = (np.mod(pixels[:, None] + offset, width) < line) | (np.mod(pixels[None, :] + offset, width) < line)
    image[lines] = spec.colors[1]
    return image
