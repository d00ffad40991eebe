"""The two-subject judge: the oracle reads each subject in its own region, and the reads become binding verdicts.

The oracle knows one subject on a full canvas. To read the subject asked at one position, the other half of the
canvas is painted over with the background the pixels show (read from the image's border by the pixel measures,
which also find the subject pixels); the result is a one-subject image at a world position, what the oracle was trained on. A region with too few
subject pixels (or one the oracle calls too small) holds no subject: "missing".

Verdicts per image (`judge_pair`): each subject right (its shape and appearance, in its asked region), both right,
a swap (some region shows one subject's shape with the other's appearance), a position swap (each region shows the
other subject whole), and each subject missing.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from .contexts import paint_background
from .measures import measure_context
from .oracle import TOO_SMALL, classify
from .pairs import region_mask
from .world import Subject

# A region holds a subject when its cleaned subject pixels cover at least this fraction of the canvas: the world's
# smallest pair subject (a star of side 0.34) covers about 0.045, a speck or a blurred edge far less.
MIN_SUBJECT_AREA = 0.01


@dataclasses.dataclass(frozen=True)
class RegionRead:
    """What the judge reads in one region: the oracle's ``shape`` and ``appearance`` (`None` when the region is
    empty), whether a subject is ``present``, and its ``area`` (subject pixels over canvas pixels)."""

    position: str
    shape: str | None
    appearance: str | None
    present: bool
    area: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def isolate(image: np.ndarray, position: str, background: str) -> np.ndarray:
    """The image with everything outside ``position``'s region painted as ``background`` (phase 0)."""
    side = image.shape[0]
    keep = region_mask(position, side)
    isolated = paint_background(background, side)
    isolated[keep] = image[keep]
    return isolated


def read_regions(oracle, images: Sequence, positions: Sequence[tuple[str, str]]) -> list[tuple[RegionRead, RegionRead]]:
    """Read both regions of each image (PIL or uint8 ``(H, W, 3)``); ``positions`` gives each image's two positions.

    Returns:
        `list[tuple[RegionRead, RegionRead]]`: per image, the reads at its first and second position.
    """
    if len(images) != len(positions):
        raise ValueError(f"`positions` must give two positions per image ({len(images)}), got {len(positions)}.")
    crops, areas = [], []
    for image, pair_positions in zip(images, positions):
        pixels = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image, dtype=np.uint8)
        measured = measure_context(pixels)  # the border is background on either side
        for position in pair_positions:
            crops.append(isolate(pixels, position, measured.background))
            foreground = measured.foreground & region_mask(position, pixels.shape[0])
            areas.append(float(foreground.sum()) / foreground.size)
    predicted = classify(oracle, crops) if crops else {"shape": [], "appearance": []}
    reads = []
    for index, pair_positions in enumerate(positions):
        pair = []
        for offset, position in enumerate(pair_positions):
            at = 2 * index + offset
            shape, appearance = predicted["shape"][at], predicted["appearance"][at]
            present = areas[at] >= MIN_SUBJECT_AREA and TOO_SMALL not in (shape, appearance)
            pair.append(RegionRead(position, shape if present else None, appearance if present else None, present, areas[at]))
        reads.append(tuple(pair))
    return reads


def judge_pair(reads: tuple[RegionRead, RegionRead], subjects: tuple[Subject, Subject]) -> dict:
    """Binding verdicts of one image from its two region reads (in caption order) and the two asked subjects."""
    truths = [(subject.shape, subject.appearance) for subject in subjects]
    seen = [(read.shape, read.appearance) for read in reads]
    right = [seen[i] == truths[i] for i in range(2)]
    mixed = {(truths[0][0], truths[1][1]), (truths[1][0], truths[0][1])}
    return {
        "first_right": right[0],
        "second_right": right[1],
        "both_right": right[0] and right[1],
        "each_right": (right[0] + right[1]) / 2,
        "swap": any(pair in mixed for pair in seen),
        "position_swap": seen[0] == truths[1] and seen[1] == truths[0],
        "first_missing": not reads[0].present,
        "second_missing": not reads[1].present,
        "missing": (int(not reads[0].present) + int(not reads[1].present)) / 2,
    }
