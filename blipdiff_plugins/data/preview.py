"""The preview grid: one row per record, original | confidence | trimap | alpha | composite."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import PIL.Image

PREVIEW_COLUMNS = ("original", "confidence", "trimap", "alpha", "composite")


def _grey(array: np.ndarray) -> PIL.Image.Image:
    return PIL.Image.fromarray(np.rint(np.clip(np.asarray(array, dtype=np.float64), 0, 1) * 255).astype(np.uint8)).convert("RGB")


def preview_grid(rows: Sequence[dict], *, cell: int = 160) -> PIL.Image.Image:
    """A grid of ``len(rows)`` x 5 cells of ``cell`` px; each row holds the keys of `PREVIEW_COLUMNS`
    (PIL images for ``original``/``composite``, float maps in [0, 1] for the others)."""
    from diffusers.utils import make_image_grid

    if not rows:
        raise ValueError("`rows` is empty: the preview needs at least one kept record.")
    cells = []
    for row in rows:
        for column in PREVIEW_COLUMNS:
            value = row[column]
            image = value.convert("RGB") if isinstance(value, PIL.Image.Image) else _grey(value)
            cells.append(image.resize((cell, cell), PIL.Image.BILINEAR))
    return make_image_grid(cells, rows=len(rows), cols=len(PREVIEW_COLUMNS))
