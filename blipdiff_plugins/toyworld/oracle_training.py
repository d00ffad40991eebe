"""Train and check the oracle on fresh ground-truth renders (seeded; the data never repeats)."""

from __future__ import annotations

import numpy as np
import torch

from ..utils.checks import check_positive_ints
from .appearances import APPEARANCE_NAMES
from .oracle import ToyWorldOracle, classify
from .shapes import SHAPE_NAMES
from .world import ToyWorld

# Seeds of the streams: training and evaluation renders never share a seed.
TRAIN_STREAM = 1_000
EVAL_STREAM = 2_000


def render_batch(world: ToyWorld, *, stream: int, start: int, count: int) -> tuple[np.ndarray, list]:
    """``count`` renders of any of the 64 subjects in random contexts: uint8 images ``(count, H, W, 3)`` and subjects."""
    images, subjects = [], []
    for index in range(start, start + count):
        rng = np.random.default_rng([stream, index])
        subject = world.subjects[rng.integers(len(world.subjects))]
        seed = int(rng.integers(2**31))
        images.append(world.render(subject, world.random_context(seed), seed=seed).image)
        subjects.append(subject)
    return np.stack(images), subjects


def _augment(pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Noise and blur of the strength a small diffusion model's outputs show, so the judge is not brittle."""
    batch = pixels.shape[0]
    blurred = torch.nn.functional.avg_pool2d(pixels, 3, stride=1, padding=1, count_include_pad=False)
    use_blur = (torch.rand(batch, 1, 1, 1, generator=generator) < 0.5).float()
    pixels = use_blur * blurred + (1 - use_blur) * pixels
    strength = torch.rand(batch, 1, 1, 1, generator=generator) * 0.06
    return (pixels + strength * torch.randn(pixels.shape, generator=generator)).clamp(0, 1)


def train_oracle(
    *,
    steps: int = 1500,
    batch_size: int = 64,
    learning_rate: float = 2e-3,
    seed: int = 0,
    image_size: int = 64,
    channels: tuple[int, ...] = (16, 32, 64),
    feature_dim: int = 64,
    progress: bool = True,
) -> ToyWorldOracle:
    """Train a fresh oracle on seeded ground-truth renders (cross-entropy on both heads, AdamW, cosine decay).

    Args:
        steps (`int`, defaults to 1500): optimiser steps; each sees ``batch_size`` new renders.
        batch_size (`int`, defaults to 64): renders per step.
        learning_rate (`float`, defaults to 2e-3): peak AdamW learning rate.
        seed (`int`, defaults to 0): seeds the weights, the render stream and the augmentation.
        image_size (`int`, defaults to 64): render side.
        channels (`tuple[int, ...]`), feature_dim (`int`): the CNN's widths (see [`ToyWorldOracle`]).
        progress (`bool`, defaults to `True`): show a tqdm bar.

    Returns:
        [`ToyWorldOracle`] in eval mode.
    """
    from tqdm.auto import tqdm

    check_positive_ints(steps=steps, batch_size=batch_size)
    world = ToyWorld(image_size=image_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        oracle = ToyWorldOracle(
            channels=tuple(channels), feature_dim=feature_dim, image_size=image_size, train_seed=seed, train_steps=steps
        )
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(oracle.parameters(), lr=learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=learning_rate, total_steps=steps, pct_start=0.1)
    shape_index = {name: i for i, name in enumerate(SHAPE_NAMES)}
    appearance_index = {name: i for i, name in enumerate(APPEARANCE_NAMES)}
    oracle.train()
    bar = tqdm(range(steps), desc="oracle", disable=not progress)
    for step in bar:
        images, subjects = render_batch(world, stream=TRAIN_STREAM + seed, start=step * batch_size, count=batch_size)
        pixels = _augment(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0, generator)
        shape_target = torch.tensor([shape_index[s.shape] for s in subjects])
        appearance_target = torch.tensor([appearance_index[s.appearance] for s in subjects])
        shape_logits, appearance_logits, _ = oracle(pixels)
        loss = torch.nn.functional.cross_entropy(shape_logits, shape_target) + torch.nn.functional.cross_entropy(
            appearance_logits, appearance_target
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return oracle.eval()


def evaluate_oracle(oracle: ToyWorldOracle, *, num_images: int = 1024, seed: int = 0) -> dict[str, float]:
    """Accuracy on fresh ground-truth renders (a stream no training run uses): shape, appearance and both."""
    world = ToyWorld(image_size=oracle.config.image_size)
    images, subjects = render_batch(world, stream=EVAL_STREAM + seed, start=0, count=num_images)
    predicted = classify(oracle, list(images))
    shape = np.array([p == s.shape for p, s in zip(predicted["shape"], subjects)])
    appearance = np.array([p == s.appearance for p, s in zip(predicted["appearance"], subjects)])
    return {
        "images": num_images,
        "shape_accuracy": float(shape.mean()),
        "appearance_accuracy": float(appearance.mean()),
        "subject_accuracy": float((shape & appearance).mean()),
    }
