"""The interpolate task: morph between two subjects with fixed noise (frames, a grid and a GIF), or render a weighted
mix of several, each run with one JSON sidecar."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import InvalidArgumentError
from .generate import subject_image_files
from .results import ResultWriter, versions
from .sampling import SamplingRequest


@dataclasses.dataclass
class InterpolateRequest(SamplingRequest):
    """One interpolation (or mix) run; field names are the task's argument names.

    Args:
        subject (`list[tuple[str, list]]`): ``(category word, images)`` of each subject, two or more.
        target_subject (`str`): the category word rendered.
        prompt (`str`): the scene prompt.
        weights (`list[float]`, *optional*): mix weights, one per subject (a mix instead of a sequence).
        frames (`int`, defaults to 5): frames including both endpoints.
        method (`str`, defaults to ``"linear"``): ``"linear"`` or ``"spherical"``.
        batch_size (frames per pipeline call), gif_ms (GIF frame duration).
        seed, steps, guidance: sampling settings (`SamplingRequest`).
    """

    subject: Sequence[tuple[str, Sequence[Any]]]
    target_subject: str
    prompt: str
    weights: Sequence[float] | None = None
    frames: int = 5
    method: str = "linear"
    batch_size: int = 4
    gif_ms: int = 200


def output_files(request: InterpolateRequest) -> list[str]:
    if request.weights is not None:
        return ["mix.png", "mix.json"]
    return [f"frame-{index:03d}.png" for index in range(request.frames)] + ["grid.png", "interpolation.gif", "interpolation.json"]


def _word(value, argument: str) -> str:
    if value is None or not str(value).strip():
        raise InvalidArgumentError(f"`{argument}` is empty ({value!r}); pass the category word, e.g. `{argument} dog`.", argument=argument)
    return str(value).strip()


def check_request(request: InterpolateRequest) -> InterpolateRequest:
    """Everything about ``request`` that can be checked before the model loads."""
    subjects = [(_word(word, "subject"), subject_image_files("subject", images)) for word, images in request.subject]
    if len(subjects) < 2:
        raise InvalidArgumentError(f"Give two or more subjects (repeat `subject WORD PATH ...`), got {len(subjects)}.", argument="subject")
    if request.weights is not None:
        if len(request.weights) != len(subjects):
            raise InvalidArgumentError(f"`weights`: {len(request.weights)} weights for {len(subjects)} subjects; pass one per `subject`.", argument="weights")
    elif len(subjects) != 2:
        raise InvalidArgumentError(
            f"An interpolation sequence goes between two subjects, got {len(subjects)}; pass `weights` to mix more.", argument="subject"
        )
    elif request.frames < 2:
        raise InvalidArgumentError(f"`frames` counts both endpoints: at least 2, got {request.frames}.", argument="frames")
    return dataclasses.replace(request, subject=subjects, target_subject=_word(request.target_subject, "target_subject"))


def interpolate(pipe, request: InterpolateRequest, *, output: str | Path | None = None, record: Callable[[], dict] | None = None,
                progress: Callable[[int], Any] | None = None) -> tuple[list, list[Path]]:
    """Run ``request`` with ``pipe``; with ``output`` write the images and the sidecar (``record()``: what it records
    besides the run's own values). ``progress(n)`` hears of each ``n`` frames done. Returns the images and the files."""
    import torch

    from ..recipes.interpolation import mix_subjects, render_interpolation
    from ..utils.grids import labelled_grid, save_gif

    request = check_request(request)
    embeds = [pipe.encode_subject(images, word) for word, images in request.subject]
    words = [word for word, _ in request.subject]
    extra = record() if record is not None else {"settings": request}
    sampling = dict(num_inference_steps=request.steps, guidance_scale=request.guidance)
    if request.weights is not None:
        mixed = mix_subjects(embeds, list(request.weights))
        image = pipe(prompt=request.prompt, subject_embeds=mixed, target_subject=request.target_subject,
                     generator=torch.Generator("cpu").manual_seed(request.seed), **sampling).images[0]
        files: list[Path] = []
        if output is not None:
            sidecar = {"image": "mix.png", "weights": list(request.weights), "subjects": words, "versions": versions(), **extra}
            with ResultWriter(output) as writer:
                files = writer.write("mix.json", sidecar, {"mix.png": image})
        return [image], files
    ts, frames = render_interpolation(
        pipe, embeds[0], embeds[1], prompt=request.prompt, target_subject=request.target_subject, num_frames=request.frames,
        method=request.method, seed=request.seed, batch_size=request.batch_size, progress=progress, **sampling,
    )
    files = []
    if output is not None:
        names = [f"frame-{index:03d}.png" for index in range(len(frames))]
        sidecar = {"frames": names, "t": ts, "grid": "grid.png", "gif": "interpolation.gif", "subjects": words, "versions": versions(), **extra}
        images: dict[str, Any] = dict(zip(names, frames))
        images["grid.png"] = labelled_grid(frames, [f"t={t:.2f}" for t in ts])
        images["interpolation.gif"] = lambda path: save_gif(frames, path, duration_ms=request.gif_ms)
        with ResultWriter(output) as writer:
            files = writer.write("interpolation.json", sidecar, images)
    return frames, files
