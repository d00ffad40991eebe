"""Metric image preprocessing: resize the short side, centre-crop, normalise, as torchvision does it."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import PIL.Image
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_RESAMPLE = {"bicubic": PIL.Image.BICUBIC, "bilinear": PIL.Image.BILINEAR, "lanczos": PIL.Image.LANCZOS}


@dataclasses.dataclass(frozen=True)
class ImagePreprocessing:
    """``Resize(resize)`` (short side, PIL) -> ``CenterCrop(crop)`` -> ``ToTensor`` -> ``Normalize(mean, std)``.

    Matches torchvision's transforms on PIL images exactly (same size rounding, same crop offsets).

    Args:
        resize (`int`): target length of the short side.
        crop (`int`): side of the square centre crop.
        mean (`tuple[float, float, float]`): per-channel mean subtracted after scaling to [0, 1].
        std (`tuple[float, float, float]`): per-channel standard deviation divided by.
        resample (`str`, defaults to `"bicubic"`): PIL filter, one of "bicubic", "bilinear", "lanczos".
    """

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resample: str = "bicubic"

    def __post_init__(self):
        if self.resample not in _RESAMPLE:
            raise ValueError(f"`resample`: {self.resample!r} is not one of {sorted(_RESAMPLE)}.")
        if self.crop > self.resize:
            raise ValueError(f"`crop` ({self.crop}) must not exceed `resize` ({self.resize}).")

    def to_dict(self) -> dict:
        return {
            "resize_short_side": self.resize,
            "resample": self.resample,
            "center_crop": self.crop,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    def resize_and_crop(self, image: PIL.Image.Image) -> PIL.Image.Image:
        image = image.convert("RGB")
        width, height = image.size
        # torchvision.transforms.functional.resize: the long side is truncated, not rounded.
        if width <= height:
            size = (self.resize, int(self.resize * height / width))
        else:
            size = (int(self.resize * width / height), self.resize)
        if size != image.size:
            image = image.resize(size, _RESAMPLE[self.resample])
        width, height = image.size
        # torchvision.transforms.functional.center_crop rounds the offsets.
        left = int(round((width - self.crop) / 2.0))
        top = int(round((height - self.crop) / 2.0))
        return image.crop((left, top, left + self.crop, top + self.crop))

    def __call__(self, images: Sequence[PIL.Image.Image]) -> torch.Tensor:
        """Preprocess PIL images into a float32 batch of shape (batch, 3, crop, crop)."""
        arrays = [np.asarray(self.resize_and_crop(image), dtype=np.float32) / 255.0 for image in images]
        pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)  # (batch, 3, crop, crop)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        return (pixels - mean) / std


# DreamBench DINO protocol (DreamBooth paper, BLIP-Diffusion eval): resize 256 bicubic, crop 224, ImageNet stats.
DINO_PREPROCESSING = ImagePreprocessing(256, 224, IMAGENET_MEAN, IMAGENET_STD)


def clip_preprocessing(image_size: int) -> ImagePreprocessing:
    """OpenAI CLIP's preprocessing for a model of input size ``image_size`` (224 for B/32 and L/14)."""
    return ImagePreprocessing(image_size, image_size, CLIP_MEAN, CLIP_STD)
