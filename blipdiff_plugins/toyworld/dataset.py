"""The toy world as a `datasets.Dataset`: the columns the stage-2 data builder reads, plus the ground truth.

Columns: ``image`` (RGB), ``mask`` (L, 255 on the subject, 0 elsewhere), ``caption``, ``subject`` (the category
word, i.e. the shape) and ``id``: the names the stage-2 data builder's `DatasetSource` reads by default;
``context``, the caption after the subject word (the caption the pre-trainer's ``"a {subject} {caption}"`` wants);
then ground truth for evaluation: ``name``, ``shape``, ``appearance``, ``background``, ``position``, ``size``,
``split``, ``seed``.
"""

from __future__ import annotations

import PIL.Image

from .world import SPLITS, ToyWorld

COLUMNS = ("image", "mask", "caption", "subject", "id", "context", "name", "shape", "appearance", "background", "position", "size", "split", "seed")


def _features():
    import datasets

    strings = {name: datasets.Value("string") for name in COLUMNS if name not in ("image", "mask", "seed")}
    return datasets.Features({"image": datasets.Image(), "mask": datasets.Image(), **strings, "seed": datasets.Value("int64")})


def render_record(world: ToyWorld, index: int, *, split: str, seed: int) -> dict:
    """Row ``index`` of the seeded stream over ``split`` as a dataset record."""
    render = world.sample(index, split=split, seed=seed)
    return {
        "image": PIL.Image.fromarray(render.image, mode="RGB"),
        "mask": PIL.Image.fromarray(render.mask.astype("uint8") * 255, mode="L"),
        "caption": render.caption,
        "subject": render.subject.word,
        "id": f"toyworld-{split}-{seed}-{index}",
        "context": render.caption.removeprefix(f"a {render.subject.word} "),
        "name": render.subject.name,
        "shape": render.subject.shape,
        "appearance": render.subject.appearance,
        "background": render.context.background,
        "position": render.context.position,
        "size": render.context.size,
        "split": split,
        "seed": seed * 10**9 + index,
    }


def toyworld_dataset(*, num_samples: int, split: str = "train", seed: int = 0, image_size: int = 64):
    """Render ``num_samples`` toy-world images of one split into a `datasets.Dataset`.

    Args:
        num_samples (`int`): rows to render (>= 1).
        split (`str`, defaults to "train"): "train" (training subjects) or "heldout".
        seed (`int`, defaults to 0): the stream's seed; row ``i`` depends only on (``i``, ``split``, ``seed``).
        image_size (`int`, defaults to 64): render side in pixels.

    Returns:
        `datasets.Dataset` with the columns in `COLUMNS`.
    """
    import datasets

    if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1:
        raise ValueError(f"`num_samples` must be a positive integer, got {num_samples!r}.")
    if split not in SPLITS:
        raise ValueError(f"`split`: {split!r} is not one of {', '.join(SPLITS)}.")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer, got {seed!r}.")
    world = ToyWorld(image_size=image_size)
    rows = [render_record(world, index, split=split, seed=seed) for index in range(num_samples)]
    return datasets.Dataset.from_list(rows, features=_features())
