"""The Edit tab's request: prompt-to-prompt subject edit of a generated image or an uploaded photo, run by the
task layer's edit (`tasks/edit.py`, which also writes each pair with its sidecar) on the base model's modules."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import PIL.Image
import torch

from ..tasks.edit import EditRequest, EditSettings, edit_pipeline
from ..tasks.edit import edit as run_edit
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
    files: list[Path]  # the sidecar, then source, edited and side-by-side PNGs


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
    # a photo is inverted, then the source branch reconstructs it; otherwise the source is generated from the seed
    request = EditRequest(
        prompt=[prompt.strip()], subject_image=images, target_subject=target, source_subject=source,
        image=[photo] if mode == "photo" else None, inversion=inversion, settings=EditSettings(blend_threshold=blend_threshold),
        seed=seed, steps=steps, guidance=guidance,
    )
    with service.lock:
        pipe = edit_pipeline(service.pipe)  # the shared modules, no copy
        pipe.set_progress_bar_config(disable=True)
        output, files = run_edit(pipe, request, output=service.new_run_dir("edit"), record=lambda: {
            "settings": {"model": service.model_name, "mode": mode, "target_subject": target, "source_subject": source,
                         "steps": steps, "guidance": guidance, "blend_threshold": blend_threshold, "inversion": inversion},
        })
    source_image, edited = output.source_images[0], output.edited_images[0]
    mask = None if output.masks is None else mask_image(output.masks[0], edited.size)
    return EditResult(source_image, edited, mask, request.source_name, files)
