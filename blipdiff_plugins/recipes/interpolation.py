"""Subject interpolation and blending (SYSTEM.md section 4): mixes of subject embeddings, rendered with fixed noise.

Subject embeddings are the projected Q-Former outputs, ``(1, num_query_tokens, hidden)`` from
`BlipDiffusionPipeline.encode_subject`. A weighted average of two or more gives a hybrid subject; an
interpolation sequence renders a path between two with the same initial noise for every frame, so
only the subject changes.
"""

from __future__ import annotations

import math
from typing import Sequence

import PIL.Image
import torch

METHODS = ("linear", "spherical")


def check_weights(weights: Sequence[float], count: int, *, argument: str = "weights") -> list[float]:
    """Weights of a mix: ``count`` numbers, each >= 0, summing to 1 (within 1e-6)."""
    values = list(weights)
    if len(values) != count:
        raise ValueError(f"`{argument}` has {len(values)} entries for {count} subjects; pass one weight per subject.")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in values):
        raise ValueError(f"`{argument}` must be finite numbers, got {values!r}.")
    negative = [v for v in values if v < 0]
    if negative:
        raise ValueError(f"`{argument}` must be >= 0, got {values!r}; e.g. {[round(1 / count, 3)] * count}.")
    if abs(sum(values) - 1.0) > 1e-6:
        raise ValueError(
            f"`{argument}` must sum to 1, got {values!r} (sum {sum(values):.6g}); "
            f"divide by the sum: {[round(v / sum(values), 4) for v in values] if sum(values) > 0 else [round(1 / count, 3)] * count}."
        )
    return [float(v) for v in values]


def mix_subjects(embeds: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """The weighted mean of two or more subjects' embeddings, ``(1, num_query_tokens, hidden)``."""
    if len(embeds) < 2:
        raise ValueError(f"`embeds` needs two or more subjects to mix, got {len(embeds)}.")
    shapes = {tuple(e.shape) for e in embeds}
    if len(shapes) != 1:
        raise ValueError(f"`embeds` must all have one shape, got {sorted(shapes)}.")
    values = check_weights(weights, len(embeds))
    total = torch.zeros_like(embeds[0])
    for weight, embed in zip(values, embeds):
        total = total + weight * embed
    return total


def slerp(start: torch.Tensor, end: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation of each token vector (last dimension); linear where the two are nearly parallel.

    The endpoints are returned exactly at ``t`` = 0 and 1.
    """
    if t == 0:
        return start.clone()
    if t == 1:
        return end.clone()
    a, b = start.double(), end.double()
    cosine = (a * b).sum(-1, keepdim=True) / (a.norm(dim=-1, keepdim=True) * b.norm(dim=-1, keepdim=True)).clamp_min(1e-12)
    omega = torch.arccos(cosine.clamp(-1.0, 1.0))
    sin_omega = torch.sin(omega)
    parallel = sin_omega.abs() < 1e-6
    safe = torch.where(parallel, torch.ones_like(sin_omega), sin_omega)
    spherical = (torch.sin((1 - t) * omega) / safe) * a + (torch.sin(t * omega) / safe) * b
    linear = (1 - t) * a + t * b
    return torch.where(parallel, linear, spherical).to(start.dtype)


def interpolation_path(start: torch.Tensor, end: torch.Tensor, num_frames: int, method: str = "linear") -> tuple[list[float], torch.Tensor]:
    """``num_frames`` evenly spaced embeddings from ``start`` to ``end`` (both included), ``(frames, n, hidden)``."""
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}.")
    if not isinstance(num_frames, int) or num_frames < 2:
        raise ValueError(f"`num_frames` must be an integer >= 2 (the two endpoints included), got {num_frames!r}.")
    if start.shape != end.shape:
        raise ValueError(f"The two subjects' embeddings differ in shape: {tuple(start.shape)} and {tuple(end.shape)}.")
    ts = [index / (num_frames - 1) for index in range(num_frames)]
    frames = []
    for t in ts:
        if method == "linear":
            frames.append(start.clone() if t == 0 else end.clone() if t == 1 else (1 - t) * start + t * end)
        else:
            frames.append(slerp(start, end, t))
    return ts, torch.cat([f.reshape(1, *start.shape[-2:]) for f in frames])


@torch.no_grad()
def render_interpolation(
    pipe,
    start: torch.Tensor,
    end: torch.Tensor,
    *,
    prompt: str,
    target_subject: str,
    num_frames: int = 5,
    method: str = "linear",
    seed: int = 0,
    batch_size: int = 4,
    progress=None,
    **generate_kwargs,
) -> tuple[list[float], list[PIL.Image.Image]]:
    """Render the interpolation path with the same initial noise for every frame (only the subject changes).

    Args:
        pipe (`BlipDiffusionPipeline`): the generator.
        start, end (`torch.Tensor`): the two subjects' embeddings, ``(1, num_query_tokens, hidden)``.
        prompt (`str`): the scene; target_subject (`str`): the category word rendered.
        num_frames (`int`, defaults to 5): frames including both endpoints.
        method (`str`, defaults to ``"linear"``): ``"linear"`` or ``"spherical"`` (per token vector).
        seed (`int`, defaults to 0): seed of the shared noise.
        batch_size (`int`, defaults to 4): frames per pipeline call.
        generate_kwargs: passed to the pipeline (``num_inference_steps``, ``guidance_scale``, ``height``...).
    """
    ts, path = interpolation_path(start, end, num_frames, method)
    height, width = pipe.default_size(generate_kwargs.pop("height", None), generate_kwargs.pop("width", None))
    shape = (1, pipe.unet.config.in_channels, height // pipe.vae_scale_factor, width // pipe.vae_scale_factor)
    noise = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))
    images = []
    for first in range(0, num_frames, batch_size):
        chunk = path[first : first + batch_size]
        output = pipe(
            prompt=[prompt] * chunk.shape[0],
            subject_embeds=chunk,
            target_subject=target_subject,
            latents=noise.expand(chunk.shape[0], -1, -1, -1).to(pipe._execution_device),
            height=height,
            width=width,
            **generate_kwargs,
        )
        images.extend(output.images)
        if progress is not None:
            progress(chunk.shape[0])
    return ts, images
