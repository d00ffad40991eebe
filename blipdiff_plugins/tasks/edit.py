"""The edit task: put the user's subject into a generated image or a real photo (prompt-to-prompt), each pair saved
as source (or reconstruction), edited and side-by-side PNGs with one JSON sidecar."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

from ..pipelines.edit_settings import EditSettings  # noqa: F401 - the front doors build it from here
from .errors import InvalidArgumentError
from .generate import slug, subject_image_files
from .models import ModelSettings, load_model
from .results import ResultWriter, versions
from .sampling import ImageSamplingRequest
from .subject_cache import SUBJECT_EMBEDDINGS, SubjectEmbeddingCache


@dataclasses.dataclass
class EditRequest(ImageSamplingRequest):
    """One edit run; field names are the task's argument names.

    Args:
        prompt (`list[str]`): scene prompts.
        subject_image (`list`): files, folders or PIL images of the user's subject.
        target_subject (`str`): the user's subject's category word.
        source_subject (`str`): the subject word of the source image or prompt.
        image (`list`, *optional*): real photos to edit, one per prompt (or one for all).
        inversion (`str`, defaults to ``"ddim"``): ``"ddim"`` or ``"null_text"`` (real photos).
        null_text_steps (`int`, defaults to 10): optimiser steps per step of null-text inversion.
        settings (`EditSettings`): how the edit follows the source.
        negative_prompt, num_images, seed, steps (defaults to 50 here), guidance, height, width: sampling settings
            (`ImageSamplingRequest`).
    """

    prompt: Sequence[str]
    subject_image: Sequence[Any]
    target_subject: str
    source_subject: str
    image: Sequence[Any] | None = None
    inversion: str = "ddim"
    null_text_steps: int = 10
    settings: EditSettings = dataclasses.field(default_factory=EditSettings)
    steps: int = dataclasses.field(default=50, kw_only=True)  # the inversion and the edit read more steps than sampling

    @property
    def source_name(self) -> str:
        return "reconstruction" if self.image else "source"


def output_stems(request: EditRequest) -> list[str]:
    return [f"{index:03d}-{slug(prompt)}" for index, prompt in enumerate(p for p in request.prompt for _ in range(request.num_images))]


def output_files(request: EditRequest) -> list[str]:
    """Every file name a run of ``request`` writes."""
    suffixes = (f"-{request.source_name}.png", "-edited.png", "-pair.png", ".json")
    return [stem + suffix for stem in output_stems(request) for suffix in suffixes]


def check_request(request: EditRequest) -> EditRequest:
    """Everything about ``request`` that can be checked before the model loads (files read, words present)."""
    changes: dict[str, Any] = {"subject_image": subject_image_files("subject_image", request.subject_image)}
    for name, example in (("target_subject", "cat"), ("source_subject", "dog")):
        value = getattr(request, name)
        if value is None or not str(value).strip():
            raise InvalidArgumentError(f"`{name}` is empty ({value!r}); pass the category word, e.g. `{name} {example}`.", argument=name)
        changes[name] = str(value).strip()
    if request.image:
        if len(request.image) not in (1, len(request.prompt)):
            raise InvalidArgumentError(
                f"`image` has {len(request.image)} files for {len(request.prompt)} prompts; pass one or {len(request.prompt)}.", argument="image"
            )
        changes["image"] = [subject_image_files("image", [item])[0] for item in request.image]
    return dataclasses.replace(request, **changes)


def load_edit_model(settings: ModelSettings, *, notify: Callable[[str], None] | None = None):
    """The `BlipDiffusionEditPipeline` of ``settings.model``."""
    from ..pipelines.pipeline_blip_diffusion_edit import BlipDiffusionEditPipeline

    return load_model(settings, BlipDiffusionEditPipeline, notify=notify)


def edit_pipeline(pipe):
    """A `BlipDiffusionEditPipeline` on the modules of the loaded BLIP-Diffusion pipeline ``pipe`` (shared, not
    copied: the web app edits with the model it serves)."""
    from ..pipelines.pipeline_blip_diffusion_edit import BlipDiffusionEditPipeline

    return BlipDiffusionEditPipeline(**pipe.components)


def edit(pipe, request: EditRequest, *, output: str | Path | None = None, record: Callable[[], dict] | None = None,
         subject_cache: SubjectEmbeddingCache = SUBJECT_EMBEDDINGS) -> tuple[Any, list[Path]]:
    """Run ``request`` with ``pipe`` (a `BlipDiffusionEditPipeline`); with ``output`` write each pair and its sidecar
    (``record()``: what the sidecars record besides the pair's own values). Returns the pipeline output and the files.
    The subject images' embeddings come from ``subject_cache`` when they were encoded before (by any task)."""
    import torch

    from ..utils.grids import labelled_grid

    request = check_request(request)
    subject_embeds = subject_cache.encode(pipe, request.subject_image, request.target_subject, method="blip_diffusion")
    common = dict(
        subject_embeds=subject_embeds, edit_settings=request.settings, negative_prompt=request.negative_prompt,
        guidance_scale=request.guidance, num_inference_steps=request.steps, height=request.height, width=request.width,
        num_images_per_prompt=request.num_images,
    )
    prompts = list(request.prompt)
    if request.image:
        result = pipe(prompts, request.source_subject, request.target_subject, image=request.image, inversion_method=request.inversion,
                      null_text_steps=request.null_text_steps, **common)
    else:
        total = len(prompts) * request.num_images
        generators = [torch.Generator("cpu").manual_seed(request.seed + index) for index in range(total)]
        result = pipe(prompts, request.source_subject, request.target_subject, generator=generators, **common)
    files: list[Path] = []
    if output is None:
        return result, files
    source_name = request.source_name
    extra = record() if record is not None else {"settings": request}
    with ResultWriter(output) as writer:
        for index, (source, edited, stem) in enumerate(zip(result.source_images, result.edited_images, output_stems(request))):
            images = {f"{stem}-{source_name}.png": source, f"{stem}-edited.png": edited,
                      f"{stem}-pair.png": labelled_grid([source, edited], [source_name, f"edited: {request.target_subject}"])}
            sidecar = {
                "images": dict(zip((source_name, "edited", "pair"), images)),
                "prompt": prompts[index // request.num_images],
                "mode": "real image" if request.image else "generate then edit",
                "seed": None if request.image else request.seed + index,
                "edit_mask_fraction": None if result.masks is None else float(result.masks[index].float().mean()),
                "versions": versions(),
                **extra,
            }
            files += writer.write(f"{stem}.json", sidecar, images)
    return result, files
