"""Image grids with captions and animated GIFs, written atomically."""

from __future__ import annotations

import math
import os
from typing import Sequence

import PIL.Image
import PIL.ImageDraw

from .atomic import write_atomically


def labelled_grid(images: Sequence[PIL.Image.Image], labels: Sequence[str], *, columns: int | None = None, label_height: int = 14) -> PIL.Image.Image:
    """Images in a grid with a caption under each (PIL's default font)."""
    if not images:
        raise ValueError("`images` is empty; nothing to put in a grid.")
    columns = columns or len(images)
    rows = math.ceil(len(images) / columns)
    width, height = images[0].size
    grid = PIL.Image.new("RGB", (columns * width, rows * (height + label_height)), "white")
    draw = PIL.ImageDraw.Draw(grid)
    for index, (image, label) in enumerate(zip(images, labels)):
        x, y = (index % columns) * width, (index // columns) * (height + label_height)
        grid.paste(image.convert("RGB").resize((width, height)), (x, y))
        draw.text((x + 2, y + height + 1), str(label)[: max(1, width // 6)], fill="black")
    return grid


def save_gif(images: Sequence[PIL.Image.Image], path: str | os.PathLike, *, duration_ms: int = 200, boomerang: bool = True) -> None:
    """An animated GIF of the frames (forward then back when ``boomerang``), looping."""
    frames = [image.convert("RGB") for image in images]
    if boomerang and len(frames) > 2:
        frames = frames + frames[-2:0:-1]
    write_atomically(
        path,
        lambda temporary: frames[0].save(
            temporary, format="GIF", save_all=True, append_images=frames[1:], duration=duration_ms, loop=0
        ),
    )
