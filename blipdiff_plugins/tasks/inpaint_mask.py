"""The region of a photo to repaint: a mask image or a box, checked against the photo, and the final blend.

What counts as a mask (our choice, the same in Python, the CLI and the web app): a greyscale image, that is one
value per pixel (PIL modes ``1``, ``L``, ``I``, ``I;16``, ``F``, ``LA``; or RGB/RGBA whose red, green and blue are
equal at every pixel, as a grey image saved as RGB is; a 2-D array). Alpha is ignored. Pixels at or above half of
white (128 of 255) are repainted, the rest is kept: the mask is binary, so "outside the mask" is exact. A colour
image (channels that differ anywhere, e.g. a photo or RGB noise passed by mistake) is refused.

The final blend (our choice, on by default, ``blend=False`` turns it off): diffusers' inpainting pipeline decodes
the whole image, so the VAE round trip changes pixels outside the mask too; pasting the photo back outside the mask
keeps them exactly as they were.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import PIL.Image

from .errors import InvalidArgumentError

THRESHOLD = 128  # of 255: pixels at or above are repainted
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def _grey_array(mask: Any) -> np.ndarray:
    """One value per pixel in [0, 255] as float, ``(H, W)``; refuses colour images naming ``mask``."""
    from ..utils.images import ImageTooLargeError, open_image

    if isinstance(mask, (str, os.PathLike)):
        path = str(mask)
        if not os.path.isfile(path):
            what = "is a folder" if os.path.isdir(path) else "is no file"
            raise InvalidArgumentError(f"`mask`: {path!r} {what}; pass an image file (PNG) of the region, white where to repaint.", argument="mask")
        try:
            mask = open_image(path, argument="mask")
        except ImageTooLargeError as error:
            raise InvalidArgumentError(str(error), argument="mask") from error
        except (ValueError, OSError) as error:
            # the reader's own message already names `mask` and the file; only its cause is kept here
            cause = error.__cause__ or error
            raise InvalidArgumentError(f"`mask`: could not read {path!r} as an image ({cause}); pass a PNG of the region.", argument="mask") from error
    if isinstance(mask, PIL.Image.Image):
        if mask.mode in GREY_MODES:
            array = np.asarray(mask.convert("L") if mask.mode in ("1", "LA") else mask, dtype=np.float64)
            if mask.mode.startswith("I;16") or (mask.mode in ("I", "F") and array.max() > 255):
                array = array / 65535.0 * 255.0
            return array
        mask = np.asarray(mask.convert("RGBA" if "A" in mask.getbands() else "RGB"))
    array = np.asarray(mask)
    if array.dtype == bool:
        array = array.astype(np.float64) * 255.0
    elif np.issubdtype(array.dtype, np.floating) and array.size and array.max() <= 1.0:
        array = array * 255.0  # a float mask in [0, 1]
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 3 and array.shape[-1] in (1, 2):
        array = array[..., 0]  # grey, or grey with alpha
    elif array.ndim == 3 and array.shape[-1] in (3, 4):
        colour = array[..., :3]
        if not (np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 0], colour[..., 2])):
            differing = float(np.mean((colour[..., 0] != colour[..., 1]) | (colour[..., 0] != colour[..., 2])))
            raise InvalidArgumentError(
                f"`mask` is a colour image ({differing:.0%} of its pixels have red, green and blue unequal), not a mask; pass a "
                "greyscale image with the region white and the rest black, or a `box`.",
                argument="mask",
            )
        array = colour[..., 0]
    if array.ndim != 2:
        raise InvalidArgumentError(f"`mask` has shape {array.shape}; pass a greyscale image (height, width).", argument="mask")
    if not np.isfinite(array).all():
        raise InvalidArgumentError("`mask` holds NaN or infinite values; pass values in [0, 255] (or [0, 1]).", argument="mask")
    return array


def read_mask(mask: Any, image_size: tuple[int, int]) -> np.ndarray:
    """The region of ``mask`` (a file, PIL image or array) as bool ``(height, width)``, checked against the photo's
    ``image_size`` ``(width, height)``: same size, some pixels repainted, some kept."""
    grey = _grey_array(mask)
    width, height = image_size
    if grey.shape != (height, width):
        raise InvalidArgumentError(
            f"`mask` is {grey.shape[1]}x{grey.shape[0]} pixels but the `image` is {width}x{height}; pass a mask of the photo's size, "
            "or a `box`.",
            argument="mask",
        )
    return check_region(grey >= THRESHOLD, "mask")


def box_mask(box: Sequence[Any], image_size: tuple[int, int]) -> np.ndarray:
    """The region of ``box`` ``(left, top, right, bottom)`` in photo pixels (right and bottom excluded), bool
    ``(height, width)``; a box not inside the photo is refused naming ``box``."""
    width, height = image_size
    values = list(box) if isinstance(box, (list, tuple)) else None
    if values is None or len(values) != 4 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise InvalidArgumentError(f"`box` must be four whole numbers LEFT TOP RIGHT BOTTOM in photo pixels, got {box!r}.", argument="box")
    left, top, right, bottom = (int(v) for v in values)
    if not (0 <= left < right <= width and 0 <= top < bottom <= height):
        raise InvalidArgumentError(
            f"`box` {left} {top} {right} {bottom} is not inside the {width}x{height} `image`; pass LEFT TOP RIGHT BOTTOM with "
            f"0 <= LEFT < RIGHT <= {width} and 0 <= TOP < BOTTOM <= {height}.",
            argument="box",
        )
    region = np.zeros((height, width), dtype=bool)
    region[top:bottom, left:right] = True
    return check_region(region, "box")


def check_region(region: np.ndarray, argument: str) -> np.ndarray:
    """``region`` repaints some pixels and keeps some; an empty or full one is refused naming ``argument``."""
    if not region.any():
        raise InvalidArgumentError(
            f"`{argument}` marks no pixel to repaint (none at or above {THRESHOLD} of 255); paint the region white, or pass a `box`.",
            argument=argument,
        )
    if region.all():
        raise InvalidArgumentError(
            f"`{argument}` marks every pixel of the photo, so nothing of it would be kept; leave part of it unmasked, or generate a new "
            "image instead (the generate task).",
            argument=argument,
        )
    return region


def region_of(*, mask: Any = None, box: Sequence[int] | None = None, image_size: tuple[int, int]) -> np.ndarray:
    """The region given by exactly one of ``mask`` and ``box``."""
    if (mask is None) == (box is None):
        raise InvalidArgumentError(
            "Pass exactly one of `mask` (an image, white where to repaint) and `box` (LEFT TOP RIGHT BOTTOM in photo pixels)"
            + ("; got both." if mask is not None else "."),
            argument="mask",
        )
    return read_mask(mask, image_size) if mask is not None else box_mask(box, image_size)


def blend_outside(photo: PIL.Image.Image, result: PIL.Image.Image, region: np.ndarray) -> PIL.Image.Image:
    """``result`` inside ``region`` and ``photo`` outside it, at the photo's size (``result`` resized if needed)."""
    if result.size != photo.size:
        result = result.resize(photo.size, PIL.Image.BICUBIC)
    pixels = np.where(region[..., None], np.asarray(result.convert("RGB")), np.asarray(photo.convert("RGB")))
    return PIL.Image.fromarray(pixels.astype(np.uint8))


def mask_image(region: np.ndarray) -> PIL.Image.Image:
    """``region`` as the white-on-black mode-``L`` image diffusers' pipelines take."""
    return PIL.Image.fromarray(np.where(region, 255, 0).astype(np.uint8))  # uint8 (H, W): mode L
