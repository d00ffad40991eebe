"""Uploaded images (paths from Gradio, or PIL images through the API) read once, each unreadable file named."""

from __future__ import annotations

import os
from typing import Sequence

import PIL.Image
from diffusers.utils import logging

from ..utils.images import load_image

logger = logging.get_logger(__name__)


def load_images(files: Sequence | None, field: str) -> list[PIL.Image.Image]:
    """Uploaded files (paths or PIL images) as RGB images; an unreadable file names itself and the field."""
    if not files:
        raise ValueError(f"{field}: upload at least one image.")
    images = []
    for index, item in enumerate(files):
        name = os.path.basename(str(item)) if not isinstance(item, PIL.Image.Image) else f"image {index + 1}"
        try:
            images.append(load_image(item, argument=field))
        except (ValueError, OSError) as error:
            logger.info(f"Unreadable upload {name!r}: {error}")
            raise ValueError(f"{field}: {name!r} is not a readable image; upload a PNG, JPEG or WebP file.") from None
    return images
