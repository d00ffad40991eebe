"""Bundled example subjects, drawn in code (no image files to ship): a teapot and a toy ball."""

from __future__ import annotations

from pathlib import Path

import PIL.Image
import PIL.ImageDraw

from ..utils.atomic import write_png


def _teapot(size: int = 128) -> PIL.Image.Image:
    image = PIL.Image.new("RGB", (size, size), (235, 228, 210))
    draw = PIL.ImageDraw.Draw(image)
    s = size / 128
    draw.ellipse([30 * s, 45 * s, 98 * s, 105 * s], fill=(40, 90, 160))  # body
    draw.polygon([(95 * s, 70 * s), (120 * s, 48 * s), (122 * s, 56 * s), (98 * s, 84 * s)], fill=(40, 90, 160))  # spout
    draw.arc([10 * s, 55 * s, 45 * s, 90 * s], 90, 270, fill=(40, 90, 160), width=int(6 * s))  # handle
    draw.rectangle([50 * s, 38 * s, 78 * s, 48 * s], fill=(30, 70, 130))  # lid
    draw.ellipse([58 * s, 28 * s, 70 * s, 40 * s], fill=(30, 70, 130))  # knob
    return image


def _toy(size: int = 128) -> PIL.Image.Image:
    image = PIL.Image.new("RGB", (size, size), (200, 225, 200))
    draw = PIL.ImageDraw.Draw(image)
    s = size / 128
    draw.ellipse([24 * s, 24 * s, 104 * s, 104 * s], fill=(210, 40, 40))
    draw.chord([24 * s, 24 * s, 104 * s, 104 * s], 200, 340, fill=(250, 210, 40))
    draw.ellipse([44 * s, 40 * s, 58 * s, 52 * s], fill=(255, 255, 255))  # highlight
    return image


# name -> (subject word, drawing function)
EXAMPLES = {"blue teapot": ("teapot", _teapot), "red toy ball": ("toy", _toy)}


def write_examples(folder: Path) -> dict[str, tuple[str, Path]]:
    """Draw each example into ``folder`` once; name -> (subject word, PNG path)."""
    written = {}
    for name, (word, draw) in EXAMPLES.items():
        path = Path(folder) / f"example-{word}.png"
        if not path.exists():
            write_png(path, draw())
        written[name] = (word, path)
    return written
