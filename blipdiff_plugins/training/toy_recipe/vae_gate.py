"""The check after stage 1: can the oracle still tell the subject in the VAE's reconstructions?

No U-Net draws what the decoder cannot: run 1's 4-channel VAE lost stripes, checks and dots and capped the
oracle at 0.70 on its reconstructions (docs/toyworld_plan.md), so the recipe measures this before it spends
the text-to-image budget, and stops below a threshold.
"""

from __future__ import annotations

import numpy as np
import torch

from blipdiff_plugins.toyworld.oracle import classify, load_oracle
from blipdiff_plugins.toyworld.world import ToyWorld

GATE_RENDERS = 256
GATE_SEED = 7  # another stream than any training stage's


@torch.no_grad()
def reconstruction_accuracy(vae, world: ToyWorld, *, oracle=None, count: int = GATE_RENDERS, batch_size: int = 64) -> dict:
    """The oracle's accuracy on VAE reconstructions of ``count`` held-out renders, and their mean absolute error.

    Returns:
        `dict`: ``shape``, ``appearance`` and ``subject`` (both right) accuracies, ``mae`` in 0-255 units, ``renders``.
    """
    oracle = load_oracle() if oracle is None else oracle
    renders = [world.sample(index, split="heldout", seed=GATE_SEED) for index in range(count)]
    reconstructions, errors = [], []
    for start in range(0, count, batch_size):
        batch = np.stack([render.image for render in renders[start : start + batch_size]])
        pixels = torch.from_numpy(batch).permute(0, 3, 1, 2).float().to(vae.device) / 127.5 - 1.0
        decoded = vae.decode(vae.encode(pixels).latent_dist.mode()).sample
        images = ((decoded.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        errors.append(np.abs(images.astype(np.float32) - batch.astype(np.float32)).mean(axis=(1, 2, 3)))
        reconstructions += list(images)
    predicted = classify(oracle, reconstructions)
    shape_right = np.array([p == r.subject.shape for p, r in zip(predicted["shape"], renders)])
    appearance_right = np.array([p == r.subject.appearance for p, r in zip(predicted["appearance"], renders)])
    return {
        "shape": float(shape_right.mean()),
        "appearance": float(appearance_right.mean()),
        "subject": float((shape_right & appearance_right).mean()),
        "mae": float(np.concatenate(errors).mean()),
        "renders": count,
    }


def check_vae_gate(measured: dict, threshold: float) -> None:
    """Raise when the oracle reads fewer than ``threshold`` of the reconstructions right (``threshold`` 0: never)."""
    if measured["subject"] < threshold:
        raise RuntimeError(
            f"The stage-1 VAE loses the subject: the oracle reads {measured['subject']:.3f} of its reconstructions of "
            f"{measured['renders']} held-out renders right (shape {measured['shape']:.3f}, appearance "
            f"{measured['appearance']:.3f}, mean absolute error {measured['mae']:.1f}/255), below the gate of {threshold}. "
            "Train the VAE longer (--vae-steps) or with more latent channels (--size) in a new run folder, or pass "
            "--vae-gate 0 to go on with this one."
        )
