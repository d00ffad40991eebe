"""Images shown in the page: small ones (the built-in model's 32-64 px) enlarged so they can be seen."""

from __future__ import annotations

import PIL.Image

MIN_SIDE = 256


def for_display(image: PIL.Image.Image | None, min_side: int = MIN_SIDE) -> PIL.Image.Image | None:
    """``image`` scaled up by a whole factor (nearest, so pixels stay sharp) until its short side is at least ``min_side``."""
    if image is None or min(image.size) >= min_side:
        return image
    factor = -(-min_side // min(image.size))
    return image.resize((image.width * factor, image.height * factor), PIL.Image.NEAREST)
