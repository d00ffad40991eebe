"""The Attention tab's request: the subject-token (and chosen words') attention maps of one generation, by the task
layer's attention task (`tasks/attention.py`, which also writes the image, the grid and the sidecar)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Sequence

import PIL.Image

from ..recipes.attention_maps import attention_grid
from ..tasks.attention import AttentionRequest
from ..tasks.attention import attention as run_attention
from .checks import check_float, check_int, check_word
from .uploads import load_images

if TYPE_CHECKING:
    from .service import ModelService


def attention(
    service: "ModelService",
    *,
    subject_images: Sequence,
    subject: str,
    prompt: str,
    words: str = "",
    steps: int = 25,
    guidance: float = 7.5,
    seed: int = 0,
) -> tuple[PIL.Image.Image, PIL.Image.Image]:
    """The generated image and the grid of subject-token (and word) attention maps over it."""
    subject = check_word(subject, "Subject word", service.suggestions.subject)
    images = load_images(subject_images, "Subject images")
    if not (prompt or "").strip():
        raise ValueError(f"Prompt is empty: describe the scene, e.g. {service.suggestions.scene!r}.")
    word_list = [word for word in re.split(r"[\s,]+", words or "") if word]
    steps = check_int("Steps", steps, 1, service.limits.max_steps)
    guidance = check_float("Guidance", guidance, 0.0, 30.0)
    seed = check_int("Seed", seed, 0, 2**63 - 1)
    request = AttentionRequest(subject_image=images, subject=subject, prompt=prompt.strip(), words=word_list, seed=seed, steps=steps,
                               guidance=guidance)
    with service.lock:
        result, _ = run_attention(service.pipe, request, output=service.new_run_dir("attention"), record=lambda: {
            "settings": {"model": service.model_name, "subject": subject, "prompt": prompt.strip(), "words": word_list, "seed": seed,
                         "steps": steps, "guidance": guidance},
        })
    return result.image, attention_grid(result, columns=request.columns)
