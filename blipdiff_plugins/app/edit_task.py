"""The Edit tab's request: prompt-to-prompt subject edit of a generated image or an uploaded photo."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Sequence

import numpy as np
import PIL.Image
import torch

from .checks import check_float, check_int, check_word
from .uploads import load_images

if TYPE_CHECKING:
    from .service import ModelService

INVERSIONS = ("ddim", "null_text")


@dataclasses.dataclass
class EditResult:
    source: PIL.Image.Image
    edited: PIL.Image.Image
    mask: PIL.Image.Image | None
    source_label: str  # "source" (generated) or "reconstruction" (real photo)


def mask_image(mask: torch.Tensor, size: tuple[int, int]) -> PIL.Image.Image:
    """A latent-size blend mask ``(1, h, w)`` as a black/white image at the output size (nearest)."""
    array = (mask.detach().float().cpu().numpy()[0] > 0.5).astype(np.uint8) * 255
    return PIL.Image.fromarray(array, mode="L").resize(size, PIL.Image.NEAREST)


def edit(
    service: "ModelService",
    *,
    mode: str,
    subject_images: Sequence,
    target_subject: str,
    source_subject: str,
    prompt: str,
    photo=None,
    steps: int = 25,
    guidance: float = 7.5,
    seed: int = 0,
    blend_threshold: float = 0.3,
    inversion: str = "ddim",
) -> EditResult:
    """Prompt-to-prompt subject edit of a generated image (``mode="generate"``) or an uploaded photo (``"photo"``)."""
    from ..pipelines.pipeline_blip_diffusion_edit import BlipDiffusionEditPipeline

    if mode not in ("generate", "photo"):
        raise ValueError(f"Edit mode must be 'generate' or 'photo', got {mode!r}.")
    target = check_word(target_subject, "Your subject's word", service.suggestions.subject)
    source = check_word(source_subject, "Subject word to replace", service.suggestions.other_subject)
    images = load_images(subject_images, "Subject images")
    if not (prompt or "").strip():
        raise ValueError(f"Prompt is empty: describe the scene, e.g. {service.suggestions.scene!r}.")
    steps = check_int("Steps", steps, 1, service.limits.max_steps)
    guidance = check_float("Guidance", guidance, 0.0, 30.0)
    seed = check_int("Seed", seed, 0, 2**63 - 1)
    blend_threshold = check_float("Blend threshold", blend_threshold, 0.0, 1.0)
    if inversion not in INVERSIONS:
        raise ValueError(f"Inversion must be one of {', '.join(INVERSIONS)}, got {inversion!r}.")
    if mode == "photo":
        if photo is None:
            raise ValueError("Photo to edit: upload the photo whose subject you want to replace.")
        photo = load_images([photo], "Photo to edit")[0]
    with service.lock:
        pipe = BlipDiffusionEditPipeline(**service.pipe.components)  # the shared modules, no copy
        pipe.set_progress_bar_config(disable=True)
        embeds = pipe.encode_subject(images, target)
        common = dict(subject_embeds=embeds, blend_threshold=blend_threshold, guidance_scale=guidance, num_inference_steps=steps)
        if mode == "photo":  # the photo is inverted, then the source branch reconstructs it
            output = pipe(prompt.strip(), source, target, image=photo, inversion_method=inversion, **common)
        else:
            output = pipe(prompt.strip(), source, target, generator=torch.Generator("cpu").manual_seed(seed), **common)
    source_image, edited = output.source_images[0], output.edited_images[0]
    mask = None if output.masks is None else mask_image(output.masks[0], edited.size)
    return EditResult(source_image, edited, mask, "reconstruction" if mode == "photo" else "source")
