"""Pixel measures of the prompt: which background, where the subject is, and how big, read from an image.

The background is the one whose colours best explain the image's border; subject pixels are those far
from that background's colours (for a two-colour pattern, far from the segment between its colours, so
blurred pattern edges stay background); the subject's extent (bounding box of the cleaned subject pixels,
without specks apart from the subject) gives the position (nearest box centre) and the size (nearest box side,
on a log scale).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .contexts import BACKGROUND_NAMES, BACKGROUNDS, POSITIONS, SIZES

BORDER_FRACTION = 1 / 16  # border ring width, as a fraction of the side
FOREGROUND_DISTANCE = 45.0  # RGB distance from the background beyond which a pixel is subject
CAP = 120.0  # caps each border pixel's distance, so subject pixels on the border cannot dominate
# Shapes fill 0.9-1.0 of their box, so the measured extent is compared with 0.95 x the nominal side.
EXTENT_PER_SIDE = 0.95
# Connected parts smaller than this fraction of the largest are specks, not subject: a generated pattern's lines
# come out off-colour in places, and a few such pixels far from the subject would stretch its box.
SPECK_FRACTION = 0.1


@dataclasses.dataclass(frozen=True)
class ContextMeasure:
    """What the pixels say: ``background``, ``position`` and ``size`` (`None` when no subject is found), and the subject mask."""

    background: str
    position: str | None
    size: str | None
    foreground: np.ndarray  # bool (H, W)

    def to_dict(self) -> dict:
        return {"background": self.background, "position": self.position, "size": self.size}


def _distance_to_background(pixels: np.ndarray, name: str) -> np.ndarray:
    """RGB distance of each pixel to the background's colour, or to the segment between its two colours."""
    colors = np.array(BACKGROUNDS[name].colors, dtype=np.float64)
    if len(colors) == 1:
        return np.linalg.norm(pixels - colors[0], axis=-1)
    start, direction = colors[0], colors[1] - colors[0]
    t = np.clip(((pixels - start) @ direction) / (direction @ direction), 0.0, 1.0)
    return np.linalg.norm(pixels - (start + t[..., None] * direction), axis=-1)


def _border(image: np.ndarray) -> np.ndarray:
    width = max(1, int(round(image.shape[0] * BORDER_FRACTION)))
    keep = np.zeros(image.shape[:2], dtype=bool)
    keep[:width], keep[-width:], keep[:, :width], keep[:, -width:] = True, True, True, True
    return image[keep]


def _clean(mask: np.ndarray) -> np.ndarray:
    """Drop isolated pixels: keep a pixel when at least 3 of its 8 neighbours agree (noise is not a subject)."""
    padded = np.pad(mask.astype(np.int32), 1)
    neighbours = sum(
        padded[1 + dy : padded.shape[0] - 1 + dy, 1 + dx : padded.shape[1] - 1 + dx]
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
        if dy or dx
    )
    return mask & (neighbours >= 3)


def _components(mask: np.ndarray) -> np.ndarray:
    """Labels of the 8-connected parts of ``mask`` (0 off the mask): each pixel takes its part's smallest index.

    Propagates minimum labels until nothing changes; scipy is not a dependency and the images are small.
    """
    size = mask.shape[0] * mask.shape[1] + 1
    labels = np.where(mask, np.arange(1, size).reshape(mask.shape), size)
    while True:
        padded = np.pad(labels, 1, constant_values=size)
        neighbours = np.min(
            [padded[1 + dy : padded.shape[0] - 1 + dy, 1 + dx : padded.shape[1] - 1 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)],
            axis=0,
        )
        updated = np.where(mask, neighbours, size)
        if np.array_equal(updated, labels):
            return np.where(mask, labels, 0)
        labels = updated


def _drop_specks(mask: np.ndarray) -> np.ndarray:
    """Keep the parts of ``mask`` with at least `SPECK_FRACTION` of the largest part's pixels."""
    labels = _components(mask)
    names, counts = np.unique(labels[labels > 0], return_counts=True)
    if names.size == 0:
        return mask
    kept = names[counts >= SPECK_FRACTION * counts.max()]
    return np.isin(labels, kept)


def measure_context(image) -> ContextMeasure:
    """Read background, position and size of an RGB image (PIL or uint8 ``(H, W, 3)``) of any square side.

    Returns:
        [`ContextMeasure`]
    """
    pixels = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image, dtype=np.float64)
    if pixels.ndim != 3 or pixels.shape[-1] != 3:
        raise ValueError(f"`image`: expected an RGB image (H, W, 3), got shape {pixels.shape}.")
    border = _border(pixels)
    scores = [np.minimum(_distance_to_background(border, name), CAP).mean() for name in BACKGROUND_NAMES]
    background = BACKGROUND_NAMES[int(np.argmin(scores))]
    foreground = _drop_specks(_clean(_distance_to_background(pixels, background) > FOREGROUND_DISTANCE))
    if foreground.sum() < 4:
        return ContextMeasure(background, None, None, foreground)
    side = pixels.shape[0]
    rows, columns = np.nonzero(foreground)
    # Extremes of the cleaned mask: percentiles would cut the thin tips of stars and diamonds.
    top, bottom = rows.min(), rows.max() + 1.0
    left, right = columns.min(), columns.max() + 1.0
    center = np.array([(left + right) / 2, (top + bottom) / 2]) / side
    extent = max(bottom - top, right - left) / side
    position = min(POSITIONS, key=lambda name: np.linalg.norm(center - np.array(POSITIONS[name])))
    size = min(SIZES, key=lambda name: abs(np.log(extent / (EXTENT_PER_SIDE * SIZES[name]))))
    return ContextMeasure(background, position, size, foreground)
