"""Train and check the oracle on fresh ground-truth renders (seeded; the data never repeats)."""

from __future__ import annotations

import numpy as np
import torch

from ..utils.checks import check_positive_ints
from .oracle import MIN_SIDE, TOO_SMALL, ToyWorldOracle, classify
from .world import ToyWorld

# Seeds of the streams: training and evaluation renders never share a seed.
TRAIN_STREAM = 1_000
EVAL_STREAM = 2_000
# Half the training renders take the world's sizes; the other half a side drawn log-uniformly from this range
# (fractions of the canvas), so the oracle judges subjects smaller and larger than the world's and calls the
# ones under `MIN_SIDE` too small.
WIDE_SIDES = (0.08, 0.7)
WIDE_FRACTION = 0.5


def label(subject, side: float | None, *, min_side: float = MIN_SIDE) -> tuple[str, str]:
    """The (shape, appearance) answer the oracle is taught: the subject's, or `TOO_SMALL` on both under ``min_side``."""
    if side is not None and side < min_side:
        return TOO_SMALL, TOO_SMALL
    return subject.shape, subject.appearance


def render_batch(
    world: ToyWorld, *, stream: int, start: int, count: int, wide_fraction: float = 0.0, side: float | None = None
) -> tuple[np.ndarray, list, list]:
    """``count`` renders of any of the 64 subjects in random contexts: uint8 images ``(count, H, W, 3)``, the
    subjects, and each render's side (`None`: the world's size). ``wide_fraction`` of them take a side drawn from
    `WIDE_SIDES`; ``side`` fixes every side instead."""
    images, subjects, sides = [], [], []
    low, high = np.log(WIDE_SIDES[0]), np.log(WIDE_SIDES[1])
    for index in range(start, start + count):
        rng = np.random.default_rng([stream, index])
        subject = world.subjects[rng.integers(len(world.subjects))]
        seed = int(rng.integers(2**31))
        drawn = float(np.exp(rng.uniform(low, high))) if rng.uniform() < wide_fraction else None
        render_side = side if side is not None else drawn
        images.append(world.render(subject, world.random_context(seed), seed=seed, side=render_side).image)
        subjects.append(subject)
        sides.append(render_side)
    return np.stack(images), subjects, sides


def _augment(pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Noise and blur of the strength a small diffusion model's outputs show, so the judge is not brittle."""
    batch = pixels.shape[0]
    blurred = torch.nn.functional.avg_pool2d(pixels, 3, stride=1, padding=1, count_include_pad=False)
    use_blur = (torch.rand(batch, 1, 1, 1, generator=generator) < 0.5).float()
    pixels = use_blur * blurred + (1 - use_blur) * pixels
    strength = torch.rand(batch, 1, 1, 1, generator=generator) * 0.06
    return (pixels + strength * torch.randn(pixels.shape, generator=generator)).clamp(0, 1)


@torch.no_grad()
def _copy_weights(source: ToyWorldOracle, target: ToyWorldOracle) -> None:
    """Body and feature layer whole; each head's rows for the classes both oracles name."""
    state = {key: value for key, value in source.state_dict().items() if not key.startswith(("shape_head", "appearance_head"))}
    target.load_state_dict(state, strict=False)
    for head, names in (("shape_head", "shapes"), ("appearance_head", "appearances")):
        old_names, new_names = list(source.config[names]), list(target.config[names])
        for new_index, name in enumerate(new_names):
            if name in old_names:
                getattr(target, head).weight[new_index] = getattr(source, head).weight[old_names.index(name)]
                getattr(target, head).bias[new_index] = getattr(source, head).bias[old_names.index(name)]


def train_oracle(
    *,
    steps: int = 1500,
    batch_size: int = 64,
    learning_rate: float = 2e-3,
    seed: int = 0,
    image_size: int = 64,
    channels: tuple[int, ...] = (16, 32, 64),
    feature_dim: int = 64,
    init: ToyWorldOracle | None = None,
    progress: bool = True,
) -> ToyWorldOracle:
    """Train a fresh oracle on seeded ground-truth renders (cross-entropy on both heads, AdamW, cosine decay).

    Half the renders are at the world's sizes, half at sides from `WIDE_SIDES`; those under `MIN_SIDE` are
    labelled `TOO_SMALL`.

    Args:
        steps (`int`, defaults to 1500): optimiser steps; each sees ``batch_size`` new renders.
        batch_size (`int`, defaults to 64): renders per step.
        learning_rate (`float`, defaults to 2e-3): peak AdamW learning rate.
        seed (`int`, defaults to 0): seeds the weights, the render stream and the augmentation.
        image_size (`int`, defaults to 64): render side.
        channels (`tuple[int, ...]`), feature_dim (`int`): the CNN's widths (see [`ToyWorldOracle`]).
        init ([`ToyWorldOracle`], *optional*): start from this oracle's weights (its widths replace ``channels`` and
            ``feature_dim``); head rows of classes it shares are copied, new classes start fresh.
        progress (`bool`, defaults to `True`): show a tqdm bar.

    Returns:
        [`ToyWorldOracle`] in eval mode.
    """
    from tqdm.auto import tqdm

    check_positive_ints(steps=steps, batch_size=batch_size)
    world = ToyWorld(image_size=image_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if init is not None:
            channels, feature_dim = tuple(init.config.channels), init.config.feature_dim
        oracle = ToyWorldOracle(
            channels=tuple(channels), feature_dim=feature_dim, image_size=image_size, train_seed=seed, train_steps=steps,
            min_side=MIN_SIDE,
        )
    if init is not None:
        _copy_weights(init, oracle)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(oracle.parameters(), lr=learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=learning_rate, total_steps=steps, pct_start=0.1)
    shape_index = {name: i for i, name in enumerate(oracle.config.shapes)}
    appearance_index = {name: i for i, name in enumerate(oracle.config.appearances)}
    oracle.train()
    bar = tqdm(range(steps), desc="oracle", disable=not progress)
    for step in bar:
        images, subjects, sides = render_batch(
            world, stream=TRAIN_STREAM + seed, start=step * batch_size, count=batch_size, wide_fraction=WIDE_FRACTION
        )
        pixels = _augment(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0, generator)
        labels = [label(subject, side) for subject, side in zip(subjects, sides)]
        shape_target = torch.tensor([shape_index[shape] for shape, _ in labels])
        appearance_target = torch.tensor([appearance_index[appearance] for _, appearance in labels])
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


def evaluate_oracle(oracle: ToyWorldOracle, *, num_images: int = 1024, seed: int = 0, side: float | None = None) -> dict[str, float]:
    """Accuracy on fresh ground-truth renders (a stream no training run uses) at the world's sizes, or all at one
    ``side`` (a fraction of the canvas): shape, appearance, both, and the share of `TOO_SMALL` answers. Under the
    oracle's ``min_side`` the right answer is `TOO_SMALL`."""
    world = ToyWorld(image_size=oracle.config.image_size)
    images, subjects, sides = render_batch(world, stream=EVAL_STREAM + seed, start=0, count=num_images, side=side)
    predicted = classify(oracle, list(images))
    min_side = oracle.config.min_side if oracle.config.min_side is not None else 0.0
    labels = [label(subject, render_side, min_side=min_side) for subject, render_side in zip(subjects, sides)]
    shape = np.array([p == shape for p, (shape, _) in zip(predicted["shape"], labels)])
    appearance = np.array([p == appearance for p, (_, appearance) in zip(predicted["appearance"], labels)])
    return {
        "images": num_images,
        "side": side,
        "shape_accuracy": float(shape.mean()),
        "appearance_accuracy": float(appearance.mean()),
        "subject_accuracy": float((shape & appearance).mean()),
        "too_small_rate": float(np.mean([p == TOO_SMALL for p in predicted["shape"]])),
    }
