"""Alpha-blend an extracted subject onto a background at the same place and size as in the target."""

from __future__ import annotations

import numpy as np
import PIL.Image


def paste_subject(foreground: np.ndarray, alpha: np.ndarray, background: PIL.Image.Image) -> PIL.Image.Image:
    """``alpha * foreground + (1 - alpha) * background``, rounded to 8-bit RGB.

    Args:
        foreground (`np.ndarray`): ``(height, width, 3)`` colours in [0, 255].
        alpha (`np.ndarray`): ``(height, width)`` in [0, 1]; where it is exactly 1 the output is the
            foreground, where exactly 0 the background.
        background (`PIL.Image.Image`): an RGB image of the same size.
    """
    height, width = alpha.shape
    if background.size != (width, height):
        raise ValueError(f"`background` must be {width}x{height} like the alpha map, got {background.size[0]}x{background.size[1]}.")
    if foreground.shape != (height, width, 3):
        raise ValueError(f"`foreground` must have shape {(height, width, 3)}, got {foreground.shape}.")
    back = np.asarray(background.convert("RGB"), dtype=np.float64)
    weight = np.asarray(alpha, dtype=np.float64)[..., None]
    blended = weight * foreground + (1.0 - weight) * back
    return PIL.Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))
