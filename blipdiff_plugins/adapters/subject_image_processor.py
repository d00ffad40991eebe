"""Preprocessing of subject images for the BLIP-2 vision encoder."""

from __future__ import annotations

import warnings
from typing import Sequence, TypedDict

import numpy as np
import PIL.Image
import torch
from transformers.image_processing_utils import ImageProcessingMixin

from ..utils.images import ImageLike, load_images

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

RESIZE_MODES = ("crop", "squash")


class SubjectImageProcessorKwargs(TypedDict, total=False):
    """The saved settings `from_pretrained` may override (transformers >= 5.25 reads them from ``valid_kwargs``)."""

    image_size: int
    resize_mode: str
    image_mean: Sequence[float]
    image_std: Sequence[float]
    alpha: str


class SubjectImageProcessor(ImageProcessingMixin):
    """Turns subject images into normalised ``(batch, 3, size, size)`` pixel tensors.

    Args:
        image_size (`int`, defaults to 224): side of the square the vision encoder expects.
        resize_mode (`str`, defaults to ``"crop"``): ``"crop"`` resizes the short side to ``image_size``
            (bicubic) and centre-crops, as the original LAVIS code; ``"squash"`` resizes to
            ``image_size x image_size`` ignoring the aspect ratio, as diffusers' `BlipImageProcessor`.
        image_mean (`tuple[float]`): per-channel mean, CLIP's by default.
        image_std (`tuple[float]`): per-channel standard deviation, CLIP's by default.
        alpha (`str`, defaults to ``"composite"``): transparent pixels are composited over white;
            ``"drop"`` discards the alpha channel as both original implementations do.
    """

    model_input_names = ["pixel_values"]
    valid_kwargs = SubjectImageProcessorKwargs

    def __init__(
        self,
        image_size: int = 224,
        resize_mode: str = "crop",
        image_mean: Sequence[float] = OPENAI_CLIP_MEAN,
        image_std: Sequence[float] = OPENAI_CLIP_STD,
        alpha: str = "composite",
        image_processor_type: str | None = None,  # written by ImageProcessingMixin.save_pretrained
        processor_class: str | None = None,  # likewise, when saved inside a processor
    ):
        super().__init__()
        if resize_mode not in RESIZE_MODES:
            raise ValueError(f"`resize_mode` must be one of {RESIZE_MODES}, got {resize_mode!r}.")
        if alpha not in ("composite", "drop"):
            raise ValueError(f"`alpha` must be 'composite' or 'drop', got {alpha!r}.")
        if int(image_size) <= 0:
            raise ValueError(f"`image_size` must be positive, got {image_size!r}.")
        self.image_size = int(image_size)
        self.resize_mode = resize_mode
        self.image_mean = [float(v) for v in image_mean]
        self.image_std = [float(v) for v in image_std]
        self.alpha = alpha

    def _resize(self, image: PIL.Image.Image) -> PIL.Image.Image:
        size = self.image_size
        if self.resize_mode == "squash":
            return image.resize((size, size), PIL.Image.BICUBIC)
        # torchvision's Resize(int) + CenterCrop on PIL images, which LAVIS uses.
        width, height = image.size
        if width <= height:
            new_width, new_height = size, int(size * height / width)
        else:
            new_width, new_height = int(size * width / height), size
        if (new_width, new_height) != (width, height):
            image = image.resize((new_width, new_height), PIL.Image.BICUBIC)
        top = int(round((new_height - size) / 2.0))
        left = int(round((new_width - size) / 2.0))
        return image.crop((left, top, left + size, top + size))

    def preprocess(self, images: ImageLike | Sequence[ImageLike], *, argument: str = "subject_images") -> torch.Tensor:
        """Images (paths, PIL, arrays, tensors, a folder) to a float32 ``(batch, 3, size, size)`` tensor."""
        pil_images = load_images(images, argument=argument, alpha=self.alpha)
        self._warn_if_tiny(pil_images, argument)
        mean = np.asarray(self.image_mean, dtype=np.float32)
        std = np.asarray(self.image_std, dtype=np.float32)
        arrays = []
        for image in pil_images:
            array = np.asarray(self._resize(image), dtype=np.float32) / 255.0
            arrays.append((array - mean) / std)
        # (batch, height, width, 3) -> (batch, 3, height, width)
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()

    def _warn_if_tiny(self, images: Sequence[PIL.Image.Image], argument: str) -> None:
        """One warning per call for degenerate images: a side under 1/8 of the encoder's input (28 px at 224),
        upscaled over 8x (a 1x1 or icon-sized image holds almost nothing of the subject)."""
        tiny = [index for index, image in enumerate(images) if min(image.size) * 8 < self.image_size]
        if tiny:
            width, height = images[tiny[0]].size
            where = argument if len(images) == 1 else f"{argument}[{tiny[0]}]"
            others = f" (and {len(tiny) - 1} more)" if len(tiny) > 1 else ""
            warnings.warn(
                f"`{where}` is {width}x{height} px{others}; the subject encoder sees {self.image_size}x{self.image_size}, "
                f"so it is upscaled and holds little of the subject. Use images of at least {self.image_size // 2} px a side.",
                stacklevel=3,
            )

    def __call__(self, images: ImageLike | Sequence[ImageLike], *, argument: str = "subject_images") -> torch.Tensor:
        return self.preprocess(images, argument=argument)
