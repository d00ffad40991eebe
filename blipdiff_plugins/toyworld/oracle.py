"""The oracle: a small CNN that names a toy-world subject's shape and appearance, and a feature space to compare subjects.

It is trained on ground-truth renders of all 64 subjects (held-out ones included: it judges, it is not judged), at
the world's sizes and over a wider range of sides; a subject whose side is under ``min_side`` of the canvas gets its
own answer, `TOO_SMALL`, on both heads (a benchmark scores it wrong: no subject can be told at that size).
The shipped weights (``weights/oracle``) come from `train_oracle` with the seed and steps recorded in their config;
`load_oracle` reads them. The penultimate layer gives the DINO-like feature similarity of the benchmark.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import PIL.Image
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from .appearances import APPEARANCE_NAMES
from .shapes import SHAPE_NAMES

SHIPPED_ORACLE = Path(__file__).resolve().parent / "weights" / "oracle"
TOO_SMALL = "too small"
# Sides (fractions of the canvas) under which a subject is too small to judge: 12.8 px at 64 px, where the world's
# smallest subjects are 0.34 (21.7 px).
MIN_SIDE = 0.2


class ToyWorldOracle(ModelMixin, ConfigMixin):
    """A CNN with a shape head and an appearance head over a shared feature vector.

    Args:
        shapes (`tuple[str, ...]`, defaults to the world's shapes and `TOO_SMALL`): the shape head's class names, in order.
        appearances (`tuple[str, ...]`, defaults to the world's appearances and `TOO_SMALL`): the appearance head's.
        channels (`tuple[int, ...]`, defaults to `(16, 32, 64)`): widths of the conv stages (each halves the side).
        feature_dim (`int`, defaults to 64): width of the penultimate layer (the feature similarity space).
        image_size (`int`, defaults to 64): input side; other sizes are resized to it.
        train_seed (`int`, *optional*): the seed the weights were trained with (a record, not used here).
        train_steps (`int`, *optional*): the steps they were trained for (a record).
        min_side (`float`, *optional*): sides under this fraction of the canvas were labelled `TOO_SMALL` in training
            (a record; `None` for an oracle trained at the world's sizes only).
    """

    @register_to_config
    def __init__(
        self,
        *,
        shapes: Sequence[str] = (*SHAPE_NAMES, TOO_SMALL),
        appearances: Sequence[str] = (*APPEARANCE_NAMES, TOO_SMALL),
        channels: Sequence[int] = (16, 32, 64),
        feature_dim: int = 64,
        image_size: int = 64,
        train_seed: int | None = None,
        train_steps: int | None = None,
        min_side: float | None = None,
    ):
        super().__init__()
        layers: list[torch.nn.Module] = []
        width_in = 3
        for width in channels:
            layers += [
                torch.nn.Conv2d(width_in, width, 3, padding=1),
                torch.nn.ReLU(),
                torch.nn.Conv2d(width, width, 3, padding=1),
                torch.nn.ReLU(),
                torch.nn.MaxPool2d(2),
            ]
            width_in = width
        self.body = torch.nn.Sequential(*layers)
        # Mean and max pooling: the mean sees colour proportions, the max small texture details.
        self.features = torch.nn.Sequential(torch.nn.Linear(2 * width_in, feature_dim), torch.nn.ReLU())
        self.shape_head = torch.nn.Linear(feature_dim, len(shapes))
        self.appearance_head = torch.nn.Linear(feature_dim, len(appearances))

    @property
    def identity(self) -> dict:
        """What a benchmark protocol records of the oracle that judged it (its sizes and training run)."""
        config = self.config
        return {"channels": list(config.channels), "feature_dim": config.feature_dim, "image_size": config.image_size,
                "train_seed": config.train_seed, "train_steps": config.train_steps}

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``pixel_values`` in [0, 1], ``(batch, 3, H, W)``; returns shape logits, appearance logits and features."""
        size = self.config.image_size
        if pixel_values.shape[-2:] != (size, size):
            pixel_values = torch.nn.functional.interpolate(pixel_values, size=(size, size), mode="bilinear", antialias=True)
        hidden = self.body(pixel_values * 2.0 - 1.0)  # (batch, channels, size / 8, size / 8)
        pooled = torch.cat([hidden.mean(dim=(2, 3)), hidden.amax(dim=(2, 3))], dim=1)
        features = self.features(pooled)  # (batch, feature_dim)
        return self.shape_head(features), self.appearance_head(features), features


def to_pixel_values(images: Sequence) -> torch.Tensor:
    """PIL images or uint8 ``(H, W, 3)`` arrays to a float ``(batch, 3, H, W)`` tensor in [0, 1]."""
    arrays = []
    for image in images:
        if isinstance(image, PIL.Image.Image):
            image = np.asarray(image.convert("RGB"))
        array = np.asarray(image)
        if array.ndim != 3 or array.shape[-1] != 3:
            raise ValueError(f"`images`: expected RGB images (H, W, 3), got an array of shape {array.shape}.")
        arrays.append(torch.from_numpy(np.array(array, dtype=np.uint8)).permute(2, 0, 1).float() / 255.0)  # a writable copy
    sides = {tuple(a.shape[-2:]) for a in arrays}
    if len(sides) > 1:
        arrays = [torch.nn.functional.interpolate(a[None], size=arrays[0].shape[-2:], mode="bilinear", antialias=True)[0] for a in arrays]
    return torch.stack(arrays)


@torch.no_grad()
def classify(oracle: ToyWorldOracle, images: Sequence, *, batch_size: int = 256) -> dict[str, list]:
    """Predicted ``shape`` and ``appearance`` names and the ``features`` (a float tensor) of each image."""
    shapes, appearances, features = [], [], []
    oracle.eval()
    for start in range(0, len(images), batch_size):
        pixel_values = to_pixel_values(images[start : start + batch_size]).to(oracle.device)
        shape_logits, appearance_logits, batch_features = oracle(pixel_values)
        shapes += [oracle.config.shapes[i] for i in shape_logits.argmax(-1).tolist()]
        appearances += [oracle.config.appearances[i] for i in appearance_logits.argmax(-1).tolist()]
        features.append(batch_features.float().cpu())
    return {"shape": shapes, "appearance": appearances, "features": torch.cat(features) if features else torch.empty(0)}


def load_oracle(path: str | os.PathLike | None = None) -> ToyWorldOracle:
    """The shipped oracle, or one saved with ``save_pretrained`` at ``path``."""
    folder = Path(path) if path is not None else SHIPPED_ORACLE
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"`path`: no oracle in {str(folder)!r}; train one with `blipdiff toyworld oracle --output {folder}` "
            "or pass the folder of a saved oracle."
        )
    return ToyWorldOracle.from_pretrained(folder).eval()
