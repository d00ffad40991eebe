"""The background pool: pictures the extracted subject is pasted onto, chosen per record from its generator."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import PIL.Image

from ..utils.images import IMAGE_SUFFIXES, open_image, to_rgb
from .datasets_input import first_image_column, open_dataset, require_column
from .filtering import UNREADABLE_BACKGROUND, RecordSkipped


class BackgroundPool:
    """Background pictures from a folder (recursively) or a `datasets` dataset.

    A background smaller than the target is scaled up (aspect kept) until it covers the target; a larger
    one is scaled down the same way; then a random window of the target's size is cut. So a background
    always fills the target, and one of any size is usable (upscaled ones are counted in the summary).

    Args:
        source (`str`, `os.PathLike` or `datasets.Dataset`): a folder of images, a `datasets` dataset, a
            `save_to_disk` folder or a Hub dataset id.
        column (`str`, *optional*): the dataset's image column; default ``"image"`` or its first image column.
        split (`str`, defaults to `"train"`): the split of a dataset dict or Hub id.
    """

    def __init__(self, source, *, column: str | None = None, split: str = "train", argument: str = "backgrounds"):
        self.argument = argument
        self.files: list[Path] | None = None
        self.dataset = None
        if source is None:
            raise ValueError(f"`{argument}` is required: pass a folder of background pictures or a datasets dataset with an image column.")
        if isinstance(source, (str, os.PathLike)) and Path(source).is_dir() and not (Path(source) / "dataset_info.json").exists() and not (Path(source) / "dataset_dict.json").exists():
            folder = Path(source)
            self.files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
            if not self.files:
                raise ValueError(
                    f"`{argument}`: folder {str(folder)!r} holds no image file ({', '.join(IMAGE_SUFFIXES)}); "
                    "the background pool must not be empty: pass a folder of background pictures."
                )
            self.names = [str(p.relative_to(folder)) for p in self.files]
        else:
            self.dataset = open_dataset(source, split=split, argument=argument)
            self.column = column or first_image_column(self.dataset)
            if self.column is None:
                raise ValueError(f"`{argument}`: the dataset has no image column; its columns are {list(self.dataset.column_names)}.")
            require_column(self.dataset, self.column, argument=f"{argument}_column")
            if len(self.dataset) == 0:
                raise ValueError(f"`{argument}`: the dataset has no rows; the background pool must not be empty.")
            self.names = [f"{argument}[{index}]" for index in range(len(self.dataset))]

    def __len__(self) -> int:
        return len(self.names)

    def _open(self, index: int) -> PIL.Image.Image:
        if self.files is not None:
            return to_rgb(open_image(self.files[index], argument=self.argument))
        value = self.dataset[index][self.column]
        if isinstance(value, (str, os.PathLike)):
            value = open_image(value, argument=self.argument)
        if not isinstance(value, PIL.Image.Image):
            raise ValueError(f"`{self.argument}`: row {index} of column {self.column!r} is not an image ({type(value).__name__}).")
        return to_rgb(value)

    def sample(self, generator: np.random.Generator, size: tuple[int, int]) -> tuple[PIL.Image.Image, str, bool]:
        """A background of ``size`` (width, height) drawn with ``generator``: (image, its name, whether it was upscaled)."""
        index = int(generator.integers(len(self)))
        try:
            image = self._open(index)
        except (ValueError, FileNotFoundError, OSError) as error:
            raise RecordSkipped(UNREADABLE_BACKGROUND, f"background {self.names[index]!r} cannot be read: {error}") from error
        width, height = size
        scale = max(width / image.width, height / image.height)
        upscaled = scale > 1.0
        if scale != 1.0:
            new_size = (max(width, math.ceil(image.width * scale)), max(height, math.ceil(image.height * scale)))
            image = image.resize(new_size, PIL.Image.BICUBIC)
        left = int(generator.integers(image.width - width + 1))
        top = int(generator.integers(image.height - height + 1))
        return image.crop((left, top, left + width, top + height)), self.names[index], upscaled
