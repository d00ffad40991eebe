"""The attention task: one image and the cross-attention map of each subject token and chosen words, written as
``image.png``, ``attention.png`` (a labelled grid) and ``attention.json``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import InvalidArgumentError
from .generate import subject_image_files
from .results import ResultWriter, versions
from .sampling import SamplingRequest

OUTPUT_FILES = ("image.png", "attention.png", "attention.json")


@dataclasses.dataclass
class AttentionRequest(SamplingRequest):
    """One attention-map run; field names are the task's argument names.

    Args:
        subject_image (`list`): files, folders or PIL images of the subject.
        subject (`str`): its category word.
        prompt (`str`): the scene prompt.
        target_subject (`str`, *optional*): the word rendered (default: ``subject``).
        words (`list[str]`): prompt words mapped besides the subject tokens.
        resolution (`int`, *optional*): the map side (default: the one nearest a quarter of the latent side).
        columns (`int`, defaults to 6): grid columns.
        prompt_reps (`int`, *optional*): the prompt-amplification repeat count (default: the model's).
        seed, steps, guidance: sampling settings (`SamplingRequest`).
    """

    subject_image: Sequence[Any]
    subject: str
    prompt: str
    target_subject: str | None = None
    words: Sequence[str] = ()
    resolution: int | None = None
    columns: int = 6
    prompt_reps: int | None = None


def check_request(request: AttentionRequest) -> AttentionRequest:
    changes: dict[str, Any] = {"subject_image": subject_image_files("subject_image", request.subject_image)}
    for name in ("subject", "target_subject"):
        value = getattr(request, name)
        if name == "target_subject" and value is None:
            continue
        if value is None or not str(value).strip():
            raise InvalidArgumentError(f"`{name}` is empty ({value!r}); pass the category word, e.g. `{name} dog`.", argument=name)
        changes[name] = str(value).strip()
    return dataclasses.replace(request, **changes)


def attention(pipe, request: AttentionRequest, *, output: str | Path | None = None, record: Callable[[], dict] | None = None):
    """Run ``request`` with ``pipe``; with ``output`` write the image, the grid and the sidecar. Returns the
    `recipes.attention_maps` result and the files."""
    from ..recipes.attention_maps import attention_grid, subject_attention_maps

    request = check_request(request)
    embeds = pipe.encode_subject(request.subject_image, request.subject)
    result = subject_attention_maps(
        pipe, prompt=request.prompt, subject_embeds=embeds, target_subject=request.target_subject or request.subject,
        words=list(request.words), resolution=request.resolution, seed=request.seed, num_inference_steps=request.steps,
        guidance_scale=request.guidance, prompt_reps=request.prompt_reps,
    )
    files: list[Path] = []
    if output is not None:
        extra = record() if record is not None else {"settings": request}
        sidecar = {"grid": "attention.png", "image": "image.png", "maps": list(result.maps), "resolution": result.resolution,
                   "versions": versions(), **extra}
        with ResultWriter(output) as writer:
            files = writer.write("attention.json", sidecar, {"image.png": result.image, "attention.png": attention_grid(result, columns=request.columns)})
    return result, files
