"""Trimap from a confidence map: known foreground, known background, and an unknown band between."""

from __future__ import annotations

import numpy as np

from .config import DataBuilderConfig

FOREGROUND, UNKNOWN, BACKGROUND = 1.0, 0.5, 0.0  # pymatting's trimap values


def _disk(radius: int) -> np.ndarray:
    rows, cols = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return rows**2 + cols**2 <= radius**2


def trimap_from_confidence(confidence: np.ndarray, config: DataBuilderConfig) -> np.ndarray:
    """``(height, width)`` trimap in {0, 0.5, 1} from a confidence map in [0, 1].

    Known foreground: confidence >= ``foreground_threshold``, eroded by ``erode_pixels``. Known background:
    outside the region with confidence >= ``background_threshold`` dilated by ``dilate_pixels``. The rest is
    unknown, for the matting to decide.
    """
    from scipy import ndimage

    confidence = np.asarray(confidence, dtype=np.float32)
    if confidence.ndim != 2:
        raise ValueError(f"`confidence` must be a (height, width) map, got shape {confidence.shape}.")
    foreground = confidence >= config.foreground_threshold
    not_background = confidence >= config.background_threshold
    if config.erode_pixels:
        # border_value=1: a subject touching the image edge stays known foreground there
        foreground = ndimage.binary_erosion(foreground, structure=_disk(config.erode_pixels), border_value=1)
    if config.dilate_pixels:
        not_background = ndimage.binary_dilation(not_background, structure=_disk(config.dilate_pixels))
    trimap = np.full(confidence.shape, UNKNOWN, dtype=np.float64)
    trimap[~not_background] = BACKGROUND
    trimap[foreground] = FOREGROUND
    return trimap
