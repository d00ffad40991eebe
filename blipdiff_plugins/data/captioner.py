"""Optional captions from a transformers image-to-text model (BLIP-2 as in the paper, or any other)."""

from __future__ import annotations

from typing import Sequence

import PIL.Image
import torch


class Captioner:
    """Captions images with `AutoModelForImageTextToText` + `AutoProcessor`; loaded only when asked for.

    Args:
        model: an image-to-text model with ``generate`` (e.g. `Blip2ForConditionalGeneration`).
        processor: its processor.
        max_new_tokens (`int`, defaults to 30): caption length limit.
        batch_size (`int`, defaults to 8): images per ``generate`` call.
    """

    def __init__(self, model, processor, *, max_new_tokens: int = 30, batch_size: int = 8):
        self.model = model.eval()
        self.processor = processor
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size

    @classmethod
    def load(cls, model_id: str, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, batch_size: int = 8) -> "Captioner":
        """From a Hub id (e.g. ``Salesforce/blip2-opt-2.7b``) or a local folder."""
        from transformers import AutoModelForImageTextToText, AutoProcessor

        try:
            model = AutoModelForImageTextToText.from_pretrained(model_id, dtype=dtype).to(device)
            processor = AutoProcessor.from_pretrained(model_id)
        except (OSError, ValueError) as error:
            raise ValueError(
                f"`captioner`: cannot load an image-to-text model and processor from {model_id!r} ({error}); pass a Hub id "
                "such as 'Salesforce/blip2-opt-2.7b' or a folder saved with save_pretrained."
            ) from error
        return cls(model, processor, batch_size=batch_size)

    @torch.no_grad()
    def __call__(self, images: Sequence[PIL.Image.Image]) -> list[str]:
        captions: list[str] = []
        for start in range(0, len(images), self.batch_size):
            batch = [image.convert("RGB") for image in images[start : start + self.batch_size]]
            inputs = self.processor(images=batch, return_tensors="pt").to(self.model.device, self.model.dtype)
            tokens = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
            captions += [text.strip() for text in self.processor.batch_decode(tokens, skip_special_tokens=True)]
        return captions
