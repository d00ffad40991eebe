"""DINO image embeddings: the CLS token of a self-supervised ViT, as in the DreamBooth/BLIP-Diffusion protocol."""

from __future__ import annotations

import os
from typing import Sequence

import PIL.Image
import torch

from .backbones import DEFAULT_DINO_BACKBONE, load_dino_backbone
from .preprocessing import DINO_PREPROCESSING, ImagePreprocessing


class DinoEmbedder:
    """Unit-norm CLS-token embeddings of a DINO (or DINOv2) ViT.

    Args:
        backbone (`str` or `os.PathLike`, defaults to `"facebook/dino-vits16"`):
            Hub id or local folder of a ``vit``/``dinov2`` model; anything else raises `ValueError`.
        device (`str` or `torch.device`, defaults to `"cpu"`): where the backbone runs.
        batch_size (`int`, defaults to 32): images per forward pass.
        preprocessing ([`ImagePreprocessing`], *optional*):
            Defaults to the protocol's resize 256 (bicubic) -> centre crop 224 -> ImageNet mean/std.
    """

    feature = "cls_token"

    def __init__(
        self,
        backbone: str | os.PathLike = DEFAULT_DINO_BACKBONE,
        *,
        device: str | torch.device = "cpu",
        batch_size: int = 32,
        preprocessing: ImagePreprocessing = DINO_PREPROCESSING,
    ):
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
        self.backbone = str(backbone)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.preprocessing = preprocessing
        self.model = load_dino_backbone(self.backbone, device=self.device)

    @property
    def protocol(self) -> dict:
        """What this embedder computes, for result files."""
        return {
            "backbone": self.backbone,
            "model_type": self.model.config.model_type,
            "feature": "CLS token of the last hidden state (after the final LayerNorm), L2-normalised",
            "preprocessing": self.preprocessing.to_dict(),
        }

    @torch.no_grad()
    def embed_images(self, images: Sequence[PIL.Image.Image]) -> torch.Tensor:
        """Embed PIL images; returns float32 (num_images, hidden) with unit rows, on the CPU."""
        chunks = []
        for start in range(0, len(images), self.batch_size):
            pixels = self.preprocessing(images[start : start + self.batch_size]).to(self.device)
            # Interpolate position embeddings where the model's native size differs (DINOv2: 518).
            hidden = self.model(pixel_values=pixels, interpolate_pos_encoding=True).last_hidden_state
            chunks.append(hidden[:, 0].float().cpu())  # (batch, hidden)
        if not chunks:
            return torch.zeros(0, self.model.config.hidden_size)
        return torch.nn.functional.normalize(torch.cat(chunks), dim=-1)
