"""CLIP image and text embeddings for CLIP-I and CLIP-T (OpenAI CLIP preprocessing, projected features)."""

from __future__ import annotations

import os
from typing import Sequence

import PIL.Image
import torch

from .backbones import DEFAULT_CLIP_BACKBONE, load_clip_backbone
from .preprocessing import ImagePreprocessing, clip_preprocessing


def _features(output) -> torch.Tensor:
    # transformers 5 returns a model output whose pooler_output holds the projected features; 4.x a tensor.
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class ClipEmbedder:
    """Unit-norm CLIP image embeddings (CLIP-I, CLIP-T) and text embeddings (CLIP-T).

    Args:
        backbone (`str` or `os.PathLike`, defaults to `"openai/clip-vit-base-patch32"`):
            Hub id or local folder of a ``clip`` model with its tokenizer; anything else raises `ValueError`.
        device (`str` or `torch.device`, defaults to `"cpu"`): where the backbone runs.
        batch_size (`int`, defaults to 32): images or texts per forward pass.
        preprocessing ([`ImagePreprocessing`], *optional*):
            Defaults to OpenAI CLIP's: resize the short side to the model's input size (bicubic), centre crop,
            CLIP mean/std.
    """

    def __init__(
        self,
        backbone: str | os.PathLike = DEFAULT_CLIP_BACKBONE,
        *,
        device: str | torch.device = "cpu",
        batch_size: int = 32,
        preprocessing: ImagePreprocessing | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
        self.backbone = str(backbone)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.model, self.tokenizer = load_clip_backbone(self.backbone, device=self.device)
        self.preprocessing = preprocessing or clip_preprocessing(self.model.config.vision_config.image_size)

    @property
    def protocol(self) -> dict:
        return {
            "backbone": self.backbone,
            "model_type": self.model.config.model_type,
            "feature": "projected image/text embeddings (get_image_features/get_text_features), L2-normalised",
            "preprocessing": self.preprocessing.to_dict(),
            "text_max_length": self.model.config.text_config.max_position_embeddings,
        }

    @torch.no_grad()
    def embed_images(self, images: Sequence[PIL.Image.Image]) -> torch.Tensor:
        """Embed PIL images; returns float32 (num_images, projection_dim) with unit rows, on the CPU."""
        chunks = []
        for start in range(0, len(images), self.batch_size):
            pixels = self.preprocessing(images[start : start + self.batch_size]).to(self.device)
            chunks.append(_features(self.model.get_image_features(pixel_values=pixels)).float().cpu())
        if not chunks:
            return torch.zeros(0, self.model.config.projection_dim)
        return torch.nn.functional.normalize(torch.cat(chunks), dim=-1)

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Embed texts (truncated to the text model's length); returns float32 (num_texts, projection_dim)."""
        chunks = []
        max_length = self.model.config.text_config.max_position_embeddings
        for start in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(
                list(texts[start : start + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(self.device)
            output = self.model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
            chunks.append(_features(output).float().cpu())
        if not chunks:
            return torch.zeros(0, self.model.config.projection_dim)
        return torch.nn.functional.normalize(torch.cat(chunks), dim=-1)
