"""Tiny synthetic pre-training records and settings shared by the pre-training tests."""

from __future__ import annotations

import numpy as np
import PIL.Image
import torch

# 16 px targets (8x8 latents of the built-in tiny model) keep a step in a fraction of a second.
RESOLUTION = 16
SUBJECTS = (("dog", (200, 40, 40)), ("cat", (40, 40, 200)), ("teapot", (40, 180, 40)))


def record_images(index: int, size: int = 24) -> tuple[PIL.Image.Image, PIL.Image.Image]:
    """A target (coloured square subject on a striped background) and its composite (the same square, same
    place, on another background), as `blipdiff prepare-data` makes them."""
    generator = np.random.default_rng(index)
    _, colour = SUBJECTS[index % len(SUBJECTS)]
    rows, cols = np.mgrid[0:size, 0:size]
    background = np.stack([(rows * (3 + index)) % 256, (cols * 5) % 256, ((rows + cols) * 7) % 256], -1).astype(np.uint8)
    other = generator.integers(0, 255, (size, size, 3), dtype=np.uint8)
    top, left = 4 + index % 5, 6 + index % 4
    target, composite = background.copy(), other.copy()
    target[top : top + 10, left : left + 10] = colour
    composite[top : top + 10, left : left + 10] = colour
    return PIL.Image.fromarray(target), PIL.Image.fromarray(composite)


def make_records(count: int = 6, *, columns=("target", "composite", "caption", "subject")):
    """A `datasets.Dataset` of ``count`` records with the documented columns (names overridable)."""
    import datasets

    targets, composites, captions, subjects = [], [], [], []
    for index in range(count):
        target, composite = record_images(index)
        word = SUBJECTS[index % len(SUBJECTS)][0]
        targets.append(target)
        composites.append(composite)
        captions.append(f"a {word} in front of stripes number {index}")
        subjects.append(word)
    target_column, composite_column, caption_column, subject_column = columns
    features = datasets.Features({target_column: datasets.Image(), composite_column: datasets.Image(),
                                  caption_column: datasets.Value("string"), subject_column: datasets.Value("string")})
    return datasets.Dataset.from_dict({target_column: targets, composite_column: composites, caption_column: captions,
                                       subject_column: subjects}, features=features)


def settings_for_tests(**overrides) -> dict:
    """Settings for a few fast steps on the built-in tiny model (lr far above the paper's 2e-6 so loss moves)."""
    return {"base_model": "builtin:random-tiny", "steps": 4, "batch_size": 2, "resolution": RESOLUTION, "learning_rate": 1e-3,
            "progress_bar": False, "report_to": "none", "validation_steps": 2, **overrides}


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def fixed_batch_loss(trainer, seed: int = 5, count: int = 4) -> float:
    """Loss on the first ``count`` records with the subject kept, at fixed noise, timesteps and dropout."""
    records = [trainer.records.decode(trainer.records.dataset[index], f"record {index}") for index in range(count)]
    batch = trainer.make_batch(records, drop=torch.zeros(count, dtype=torch.bool), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return float(trainer.compute_loss(batch))
