"""What the service hands back: result records, the blend mask as an image, and PNGs with JSON sidecars."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import PIL.Image
import torch

from ..utils.atomic import write_json, write_png


@dataclasses.dataclass
class GenerateResult:
    images: list[PIL.Image.Image]
    files: list[Path]  # image, sidecar, image, sidecar, ...
    encoding: str  # "cached", "computed" or "subject model <name>"


@dataclasses.dataclass
class EditResult:
    source: PIL.Image.Image
    edited: PIL.Image.Image
    mask: PIL.Image.Image | None
    source_label: str  # "source" (generated) or "reconstruction" (real photo)


def versions() -> dict:
    import diffusers
    import transformers

    from .. import __version__

    return {"blipdiff_plugins": __version__, "torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__}


def mask_image(mask: torch.Tensor, size: tuple[int, int]) -> PIL.Image.Image:
    """A latent-size blend mask ``(1, h, w)`` as a black/white image at the output size (nearest)."""
    array = (mask.detach().float().cpu().numpy()[0] > 0.5).astype(np.uint8) * 255
    return PIL.Image.fromarray(array, mode="L").resize(size, PIL.Image.NEAREST)


def write_images_with_sidecars(folder: Path, images: Sequence[PIL.Image.Image], settings: dict, encoding: str) -> list[Path]:
    """``NNN-<prompt>.png`` and ``.json`` per image (image ``i`` of prompt ``i // num_images``, seed ``seed + i``)."""
    files = []
    for index, image in enumerate(images):
        prompt = settings["prompts"][index // settings["num_images"]]
        path = folder / f"{index:03d}-{re.sub(r'[^a-z0-9]+', '-', prompt.lower()).strip('-')[:40] or 'image'}.png"
        write_png(path, image)
        write_json(path.with_suffix(".json"), {
            "image": path.name, "prompt": prompt, "image_index": index, "seed": settings["seed"] + index,
            "settings": settings, "subject_encoding": encoding, "versions": versions(),
            "note": "generate again with the same settings (all prompts, seed, images per prompt) to reproduce this image exactly",
        })
        files += [path, path.with_suffix(".json")]
    return files
