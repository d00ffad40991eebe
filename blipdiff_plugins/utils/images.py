"""Reading user images: files, PIL images, arrays and tensors, in every common PIL mode.

Every image file or byte string the package reads from a user goes through `open_image` or
`open_image_bytes`: they refuse images over `MAX_IMAGE_PIXELS` from the header, before decoding, so a
small file that claims a huge size (a "decompression bomb") costs nothing and fails with one clear error.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import PIL.Image
import PIL.ImageOps
import torch

from .errors import InvalidInputError

ImageLike = Union[str, os.PathLike, PIL.Image.Image, np.ndarray, torch.Tensor]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")

# The largest image the package decodes: 8192 x 8192 pixels (about 200 MB as 8-bit RGB). Far above any model's
# input size, and below PIL's own warning threshold (`PIL.Image.MAX_IMAGE_PIXELS`), which is left as it is.
MAX_IMAGE_PIXELS = 8192 * 8192


class ImageTooLargeError(InvalidInputError):
    """An image's header claims more than `MAX_IMAGE_PIXELS` pixels; it is refused before decoding."""


def _too_large(argument: str, what: str, size: str) -> ImageTooLargeError:
    return ImageTooLargeError(
        f"`{argument}`: {what} is {size}, over the limit of {MAX_IMAGE_PIXELS:,} pixels (8192 x 8192) "
        "that blipdiff_plugins decodes; pass a smaller image (downscale it first)."
    )


def _open_checked(file, *, argument: str, what: str) -> PIL.Image.Image:
    """Open ``file`` (a path or a binary file object) fully, refusing more than `MAX_IMAGE_PIXELS` from the header."""
    try:
        with warnings.catch_warnings():
            # Ours is the stricter limit, checked below; PIL's warning would only repeat it.
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
            with PIL.Image.open(file) as image:
                if image.width * image.height > MAX_IMAGE_PIXELS:
                    raise _too_large(argument, what, f"{image.width} x {image.height} pixels")
                image.load()
                return PIL.ImageOps.exif_transpose(image)
    except ImageTooLargeError:
        raise
    except PIL.Image.DecompressionBombError as error:  # PIL's own check, in `open`, for the largest headers
        raise _too_large(argument, what, "larger than PIL's limit") from error
    except (PIL.UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(
            f"`{argument}`: could not read {what} as an image ({error}); pass a PNG/JPEG/WebP file or a PIL image."
        ) from error


def open_image(path: str | os.PathLike, *, argument: str = "image") -> PIL.Image.Image:
    """Open an image file fully (so a truncated file fails here, not later) and apply its EXIF rotation.

    Raises `FileNotFoundError`, `ValueError` (not an image, or a folder) or `ImageTooLargeError` (over
    `MAX_IMAGE_PIXELS`, from the header alone).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"`{argument}`: no file at {str(path)!r}.")
    if path.is_dir():
        raise ValueError(f"`{argument}`: {str(path)!r} is a folder; pass an image file, or use `images_in_folder`.")
    return _open_checked(path, argument=argument, what=repr(str(path)))


def open_image_bytes(data: bytes, *, argument: str = "image") -> PIL.Image.Image:
    """`open_image` for an encoded image held in memory (a dataset cell, an upload)."""
    return _open_checked(io.BytesIO(data), argument=argument, what="the stored image")


def images_in_folder(folder: str | os.PathLike, *, argument: str = "images") -> list[Path]:
    """Image files of a folder, sorted by name; raises if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"`{argument}`: no folder at {str(folder)!r}.")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"`{argument}`: folder {str(folder)!r} holds no image file ({', '.join(IMAGE_SUFFIXES)}).")
    return files


def to_rgb(image: PIL.Image.Image, *, alpha: str = "composite", background=(255, 255, 255)) -> PIL.Image.Image:
    """Convert any PIL mode to 8-bit RGB.

    Transparent pixels are composited over ``background`` (``alpha="composite"``) or dropped as PIL's
    plain ``convert("RGB")`` does (``alpha="drop"``, what the original diffusers processor does).
    16- and 32-bit grey images are scaled to 8 bit instead of being clipped.
    """
    if alpha not in ("composite", "drop"):
        raise ValueError(f"`alpha` must be 'composite' or 'drop', got {alpha!r}.")
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        array = np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return PIL.Image.fromarray(array).convert("RGB")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha and alpha == "composite":
        rgba = image.convert("RGBA")
        canvas = PIL.Image.new("RGBA", rgba.size, tuple(background) + (255,))
        return PIL.Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(image: ImageLike, *, argument: str = "image", alpha: str = "composite") -> PIL.Image.Image:
    """One image-like input as an RGB PIL image.

    Args:
        image: a path, a PIL image, a ``(H, W[, C])`` uint8 array or a ``(C, H, W)`` float tensor in [0, 1].
        argument (`str`): the caller's argument name, used in error messages.
        alpha (`str`): how transparency is handled, see `to_rgb`.
    """
    if isinstance(image, (str, os.PathLike)):
        image = open_image(image, argument=argument)
    elif isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] not in (1, 3, 4):
            raise ValueError(f"`{argument}`: a tensor image must be (channels, height, width), got {tuple(image.shape)}.")
        if image.is_floating_point() and not torch.isfinite(image).all():
            raise ValueError(f"`{argument}`: the tensor image holds NaN or infinite values; pass finite values in [0, 1].")
        if image.is_floating_point() and (image.min() < 0 or image.max() > 1):
            raise ValueError(f"`{argument}`: float tensor images must lie in [0, 1], got [{image.min():.3f}, {image.max():.3f}].")
        array = image.detach().float().cpu().permute(1, 2, 0).numpy()
        array = (array * 255).round().astype(np.uint8) if image.is_floating_point() else array.astype(np.uint8)
        image = PIL.Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array)
    elif isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
                raise ValueError(f"`{argument}`: the array holds NaN or infinite values; pass finite floats in [0, 1] or uint8.")
            if not np.issubdtype(image.dtype, np.floating) or image.min() < 0 or image.max() > 1:
                raise ValueError(f"`{argument}`: arrays must be uint8 or float in [0, 1], got {image.dtype}.")
            image = (image * 255).round().astype(np.uint8)
        image = PIL.Image.fromarray(image)
    elif not isinstance(image, PIL.Image.Image):
        raise ValueError(
            f"`{argument}`: expected a path, PIL image, numpy array or tensor, got {type(image).__name__}."
        )
    return to_rgb(image, alpha=alpha)


def load_images(images: ImageLike | Sequence[ImageLike], *, argument: str = "images", alpha: str = "composite") -> list[PIL.Image.Image]:
    """A single image, a folder, or a list of image-likes, as a list of RGB PIL images."""
    if isinstance(images, (str, os.PathLike)) and Path(images).is_dir():
        images = images_in_folder(images, argument=argument)
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        images = list(images)
    if not isinstance(images, (list, tuple)):
        images = [images]
    if len(images) == 0:
        raise ValueError(f"`{argument}`: got an empty list; pass at least one image.")
    return [load_image(image, argument=f"{argument}[{index}]", alpha=alpha) for index, image in enumerate(images)]
