"""Training images of one subject: reading them, preprocessing, and a resumable data order."""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import PIL.Image
import torch

from ..utils.images import IMAGE_SUFFIXES, ImageLike, load_image

# Images whose long side is more than this many times the short side lose most of their content to
# the centre crop; they still train, with a warning.
EXTREME_ASPECT_RATIO = 4.0


@dataclass
class TrainingImages:
    """The readable training images and what was skipped, with the reason."""

    images: list[PIL.Image.Image]
    names: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _dataset_images(dataset, argument: str) -> tuple[list[ImageLike], list[str]]:
    """Images of a `datasets.Dataset`: its ``image`` column, else its first `Image` feature column."""
    columns = list(dataset.column_names)
    column = "image" if "image" in columns else None
    if column is None:
        features = getattr(dataset, "features", {}) or {}
        column = next((name for name, feature in features.items() if type(feature).__name__ == "Image"), None)
    if column is None:
        raise ValueError(f"`{argument}`: the dataset has no 'image' column or Image feature; its columns are {columns}.")
    return list(dataset[column]), [f"{argument}[{index}]" for index in range(len(dataset))]


def collect_training_images(images, *, argument: str = "images") -> TrainingImages:
    """Read a folder, a list of paths/PIL images/arrays/tensors, one image, or a `datasets.Dataset`.

    In a folder, files that are not images or cannot be decoded are skipped and reported (a warning and
    `TrainingImages.skipped`); it is an error when none remain. Explicitly listed files must all read.
    """
    if images is None:
        raise ValueError(f"`{argument}` is required: pass a folder, a list of image paths or PIL images, or a datasets.Dataset.")
    skipped: list[tuple[str, str]] = []
    if isinstance(images, (str, os.PathLike)) and Path(images).is_dir():
        folder = Path(images)
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        loaded, names, ignored = [], [], []
        for path in files:
            try:
                loaded.append(load_image(path, argument=argument))
                names.append(str(path))
            except ValueError as error:
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    skipped.append((str(path), str(error)))
                else:  # not named as an image (a references.json sidecar, notes): not reported
                    ignored.append(path.name)
        if skipped:
            listing = ", ".join(Path(name).name for name, _ in skipped)
            if loaded:
                warnings.warn(f"`{argument}`: skipped {len(skipped)} file(s) of {str(folder)!r} that are not readable images: {listing}.", stacklevel=3)
        if not loaded:
            unused = [Path(name).name for name, _ in skipped] + ignored
            detail = f" It holds only unreadable or non-image files: {', '.join(unused)}." if unused else " It is empty."
            raise ValueError(f"`{argument}`: folder {str(folder)!r} has no readable image (PNG, JPEG, WebP, ...).{detail}")
        return TrainingImages(loaded, names, skipped)
    if isinstance(images, (str, os.PathLike)) and not Path(images).exists():
        raise FileNotFoundError(f"`{argument}`: no file or folder at {str(images)!r}.")
    if type(images).__module__.startswith("datasets") and hasattr(images, "column_names"):
        items, names = _dataset_images(images, argument)
    else:
        if isinstance(images, torch.Tensor) and images.ndim == 4:
            images = list(images)
        items = list(images) if isinstance(images, (list, tuple)) else [images]
        names = [str(item) if isinstance(item, (str, os.PathLike)) else f"{argument}[{index}]" for index, item in enumerate(items)]
    if not items:
        raise ValueError(f"`{argument}`: got no images; pass at least one image (a folder, paths, PIL images or a dataset).")
    loaded = [load_image(item, argument=f"{argument}[{index}]") for index, item in enumerate(items)]
    return TrainingImages(loaded, names, skipped)


def resize_and_crop(image: PIL.Image.Image, size: int) -> PIL.Image.Image:
    """Short side to ``size`` (bicubic), then the centre ``size x size`` square, as the released recipe."""
    width, height = image.size
    scale = size / min(width, height)
    new_width, new_height = max(size, round(width * scale)), max(size, round(height * scale))
    image = image.resize((new_width, new_height), PIL.Image.BICUBIC)
    left, top = (new_width - size) // 2, (new_height - size) // 2
    return image.crop((left, top, left + size, top + size))


def training_pixels(images: Sequence[PIL.Image.Image], size: int, *, names: Sequence[str] | None = None) -> torch.Tensor:
    """``(n, 3, size, size)`` float pixels in [-1, 1], every image resized and centre-cropped to ``size``."""
    names = list(names) if names is not None else [f"images[{i}]" for i in range(len(images))]
    extreme = [name for name, image in zip(names, images) if max(image.size) / min(image.size) > EXTREME_ASPECT_RATIO]
    if extreme:
        warnings.warn(
            f"{len(extreme)} training image(s) are more than {EXTREME_ASPECT_RATIO:g}x longer than wide (or the reverse); "
            f"the centre crop keeps only their middle: {', '.join(extreme)}.",
            stacklevel=3,
        )
    arrays = [np.asarray(resize_and_crop(image, size), dtype=np.float32) / 127.5 - 1.0 for image in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def pixels_fingerprint(pixels: torch.Tensor) -> str:
    """Hash of the preprocessed training images, recorded in checkpoints so a resume uses the same data."""
    return hashlib.sha256(pixels.detach().cpu().numpy().tobytes()).hexdigest()[:16]


class DataOrder:
    """Shuffled passes over ``num_items`` indices from its own generator; its state resumes exactly.

    All processes hold the same order; a step's global batch is split among them by rank.
    """

    def __init__(self, num_items: int, seed: int):
        if num_items < 1:
            raise ValueError(f"`num_items` must be at least 1, got {num_items}.")
        self.num_items = num_items
        self.generator = torch.Generator().manual_seed(seed)
        self.permutation = torch.randperm(num_items, generator=self.generator)
        self.position = 0

    def next_indices(self, count: int) -> torch.Tensor:
        indices = []
        while len(indices) < count:
            if self.position == self.num_items:
                self.permutation = torch.randperm(self.num_items, generator=self.generator)
                self.position = 0
            take = min(count - len(indices), self.num_items - self.position)
            indices += self.permutation[self.position : self.position + take].tolist()
            self.position += take
        return torch.tensor(indices, dtype=torch.long)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "permutation": self.permutation.clone(), "position": self.position, "num_items": self.num_items}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["num_items"]) != self.num_items:
            raise ValueError(f"The checkpoint's data order covers {int(state['num_items'])} images, this run has {self.num_items}.")
        self.generator.set_state(state["generator"])
        self.permutation = state["permutation"].clone()
        self.position = int(state["position"])
