"""UMM-Diffusion's fused multi-modal guidance (SYSTEM.md section 5), beside the shared denoising loop.

The paper fuses the prediction guided by the multi-modal condition ``h_u`` with the one guided by the text
alone ``h_y``, so that background and lighting copied from the reference are damped; its exact coefficients
are not public. We use the form SYSTEM.md gives as consistent with the description::

    eps = eps(empty) + w * (a * (eps(h_u) - eps(empty)) + (1 - a) * (eps(h_y) - eps(empty)))

``a = 0`` is plain text-to-image (Stable Diffusion's classifier-free guidance), ``a = 1`` the multi-modal
condition alone. ``a`` may change per step (our addition: a schedule, e.g. more text early for layout).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

# Branch order of the one batched U-Net call: [negative; text h_y; multi-modal h_u].
BRANCHES = ("negative", "text", "multimodal")


def fused_guidance(
    noise_uncond: torch.Tensor | None,
    noise_text: torch.Tensor,
    noise_multimodal: torch.Tensor,
    *,
    guidance_scale: float,
    fusion_weight: float,
) -> torch.Tensor:
    """The fused prediction of one step; without guidance (``noise_uncond`` None) ``a * eps(h_u) + (1 - a) * eps(h_y)``.

    Written as differences to the unconditional prediction so that ``a = 0`` is, operation for operation,
    Stable Diffusion's ``eps(empty) + w * (eps(h_y) - eps(empty))`` (``0 * x`` and ``+ 0`` are exact).
    """
    a = fusion_weight
    if noise_uncond is None:
        return noise_text + a * (noise_multimodal - noise_text) if a else noise_text
    delta = a * (noise_multimodal - noise_uncond) + (1 - a) * (noise_text - noise_uncond)
    return noise_uncond + guidance_scale * delta


def conditional_branches(weights: Sequence[float]) -> tuple[str, ...]:
    """The conditional branches the U-Net must run, in batch order: a branch that weighs 0 on every step is left out
    (the multi-modal one at a = 0, the text one at a = 1), the other alone then running under plain classifier-free
    guidance.

    `fused_guidance` at a = 0 is, operation for operation, classifier-free guidance on the text branch, and at a = 1
    on the multi-modal branch (``1 * x`` and ``0 * y`` are exact); unguided, the remaining branch's own prediction is
    ``a * eps(h_u) + (1 - a) * eps(h_y)``, which `fused_guidance` computes as ``eps(h_y) + a * (eps(h_u) - eps(h_y))``,
    so at a = 1 the two differ by that sum's rounding. So the images stay the same, up to that rounding and the float
    order of a smaller U-Net batch (within 1e-5 in the tests), for a third less U-Net work. A schedule
    that gives a branch weight on any step runs both on every step (the shared loop keeps one batch per run).
    """
    if not any(weights):
        return ("text",)
    if all(weight == 1.0 for weight in weights):
        return ("multimodal",)
    return ("text", "multimodal")


class FusedGuidance:
    """`fused_guidance` as the shared loop's guidance function (`denoising.GuidanceFn`, ``conditions=2``).

    The loop calls it once per step with the negative rows (None without guidance) and the conditional rows
    ``[text; multi-modal]``; it counts its calls to pick the step's fusion weight from ``weights``.
    """

    def __init__(self, weights: Sequence[float]):
        self.weights = list(weights)
        self.step = 0

    def __call__(self, noise_uncond: torch.Tensor | None, noise_conditions: torch.Tensor, guidance_scale: float) -> torch.Tensor:
        noise_text, noise_multimodal = noise_conditions.chunk(2)
        weight = self.weights[min(self.step, len(self.weights) - 1)]
        self.step += 1
        return fused_guidance(noise_uncond, noise_text, noise_multimodal, guidance_scale=guidance_scale, fusion_weight=weight)


def check_fusion_weight(fusion_weight, num_steps: int) -> list[float]:
    """``fusion_weight`` (one number in [0, 1], or one per step) as a list of ``num_steps`` weights.

    ``num_steps`` is the number of U-Net steps the scheduler runs (``len(scheduler.timesteps)``), which
    second-order schedulers make larger than ``num_inference_steps``.
    """
    if isinstance(fusion_weight, torch.Tensor):
        fusion_weight = fusion_weight.tolist()
    if isinstance(fusion_weight, (int, float)) and not isinstance(fusion_weight, bool):
        weights = [float(fusion_weight)] * num_steps
        argument = "fusion_weight"
    elif isinstance(fusion_weight, Sequence) and not isinstance(fusion_weight, str):
        if len(fusion_weight) != num_steps:
            raise ValueError(
                f"`fusion_weight` as a schedule needs one value per scheduler step: the scheduler runs {num_steps} "
                f"steps, got {len(fusion_weight)} values."
            )
        weights = []
        for value in fusion_weight:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(f"`fusion_weight` schedule values must be numbers in [0, 1], got {value!r}.")
            weights.append(float(value))
        argument = "fusion_weight schedule value"
    else:
        raise ValueError(
            f"`fusion_weight` must be a number in [0, 1] (0 = text only, 1 = subject image only) or a list with one "
            f"such number per step, got {fusion_weight!r}."
        )
    for value in weights:
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise ValueError(
                f"`{argument}` must lie in [0, 1] (0 = plain text-to-image, 1 = the multi-modal condition only), got {value!r}."
            )
    return weights
