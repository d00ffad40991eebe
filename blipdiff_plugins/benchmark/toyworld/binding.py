"""The binding benchmark's dataset: pairs of toy-world subjects as the runner's "subjects", two-subject captions as
their prompts.

A row is one pair (``subject`` is ``"{first}+{second}"``); its ``reference_images`` are the first subject's reference
renders followed by the second's (``reference_counts`` says how many each), the same renders the one-subject oracle
benchmark uses (`load_toyworld_bench`, protocol v2), so the runner, resume and result files work unchanged. Each pair's
prompts are distinct (subject order, layout, direction, background) choices drawn from all 48, seeded by the pair, in the caption form
``"a star at the left and a heart at the right on grass"`` (no placeholders: the prompt is the text as written).
"""

from __future__ import annotations

import itertools
import os
from typing import Iterable

import numpy as np

from blipdiff_plugins.toyworld.contexts import BACKGROUND_NAMES
from blipdiff_plugins.toyworld.pairs import PAIR_LAYOUTS, PAIR_SPLITS, Pair, pair_caption
from blipdiff_plugins.toyworld.pairs import pairs as split_pairs  # `pairs` is also load_binding_bench's argument
from blipdiff_plugins.toyworld.world import ToyWorld

from ..dreambench.dataset import DreamBench, DreamBenchPrompt
from .dataset import load_toyworld_bench

PROMPT_KIND = "binding"
# Seeds of the pair choice and of each pair's prompt draw (apart from the one-subject benchmark's streams).
PAIR_ORDER_STREAM = 800
PAIR_PROMPT_STREAM = 900
# Every (subject order, layout, layout direction, background) a pair's prompt can take: 2 x 2 x 2 x 6 = 48.
PROMPT_CHOICES = tuple(itertools.product((0, 1), range(len(PAIR_LAYOUTS)), (0, 1), BACKGROUND_NAMES))
MAX_PAIR_PROMPTS = 24  # the runner numbers prompts 0-24


def chosen_pairs(world: ToyWorld, split: str, *, names: Iterable[str] | None = None, count: int | None = None) -> list[Pair]:
    """The pairs to run: ``names`` (``"{first}+{second}"``, either order), else the split's pairs in a fixed seeded
    order, the first ``count`` of them (all when `None`)."""
    available = split_pairs(world, split)
    if names is not None:
        by_name = {pair.name: pair for pair in available}
        by_name.update({f"{pair.second.name}+{pair.first.name}": pair for pair in available})
        chosen = []
        for name in names:
            if name not in by_name:
                example = available[0].name if available else "ruby_circle+tiger_star"
                raise KeyError(f"`pairs`: {name!r} is not a pair of split {split!r}; name two of its subjects as {example!r}.")
            chosen.append(by_name[name])
        return list(dict.fromkeys(chosen))
    order = np.random.default_rng([PAIR_ORDER_STREAM, PAIR_SPLITS.index(split)]).permutation(len(available))
    picked = [available[i] for i in order]
    if count is not None:
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"`num_pairs` must be a positive integer, got {count!r}.")
        picked = picked[:count]
    return picked


def binding_prompts(world: ToyWorld, pair: Pair, count: int) -> list[DreamBenchPrompt]:
    """``count`` distinct prompts of one pair: subject order, layout, layout direction and background, seeded by the pair."""
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_PAIR_PROMPTS:
        raise ValueError(f"`num_prompts` must be an integer from 1 to {MAX_PAIR_PROMPTS}, got {count!r}.")
    seed = [PAIR_PROMPT_STREAM, world.subjects.index(pair.first), world.subjects.index(pair.second)]
    order = np.random.default_rng(seed).permutation(len(PROMPT_CHOICES))[:count]
    prompts = []
    for index, choice in enumerate(order):
        swap_subjects, layout, reverse, background = PROMPT_CHOICES[choice]
        subjects = pair.subjects[::-1] if swap_subjects else pair.subjects
        positions = PAIR_LAYOUTS[layout][::-1] if reverse else PAIR_LAYOUTS[layout]
        text = pair_caption((subjects[0].word, subjects[1].word), positions, background)
        prompts.append(DreamBenchPrompt(index, text, "", text, PROMPT_KIND))
    return prompts


def load_binding_bench(
    root: str | os.PathLike,
    *,
    split: str = "heldout",
    pairs: Iterable[str] | None = None,
    num_pairs: int | None = None,
    num_prompts: int = 2,
    num_references: int = 4,
    image_size: int = 64,
) -> DreamBench:
    """Render the pairs' subjects' references into ``root`` and return the binding benchmark.

    Args:
        root (`str` or `os.PathLike`): folder for the reference renders (``<subject>/<NN>.png``, shared by pairs).
        split (`str`, defaults to "heldout"): a `PAIR_SPLITS` split: "heldout" (two held-out subjects),
            "heldout_pairs" (training subjects never paired in training) or "train".
        pairs (`Iterable[str]`, *optional*): only these pairs, ``"{first}+{second}"``.
        num_pairs (`int`, *optional*): the first ``num_pairs`` of the split's pairs in a fixed seeded order.
        num_prompts (`int`, defaults to 2): prompts per pair (1-24).
        num_references (`int`, defaults to 4): reference renders per subject (1-6).
        image_size (`int`, defaults to 64): render side.

    Returns:
        [`DreamBench`] with the extra columns ``pair_subjects`` (the two subject names), ``words``, ``reference_counts``.
    """
    import datasets

    if split not in PAIR_SPLITS:
        raise ValueError(f"`split`: {split!r} is not one of {', '.join(PAIR_SPLITS)}.")
    world = ToyWorld(image_size=image_size)
    chosen = chosen_pairs(world, split, names=pairs, count=num_pairs)
    subject_split = "heldout" if split == "heldout" else "train"
    names = list(dict.fromkeys(subject.name for pair in chosen for subject in pair.subjects))
    references = load_toyworld_bench(root, split=subject_split, subjects=names, num_references=num_references, image_size=image_size)
    paths = {row["subject"]: list(row["reference_images"]) for row in references.subjects}
    all_pairs = split_pairs(world, split)
    rows, prompts = [], {}
    for pair in chosen:
        first, second = (paths[subject.name] for subject in pair.subjects)
        prompts[pair.name] = binding_prompts(world, pair, num_prompts)
        rows.append(
            {
                "subject": pair.name,
                "subject_index": all_pairs.index(pair),  # fixed per pair: seeds do not depend on filters
                "class_noun": f"{pair.first.word} and {pair.second.word}",
                "category": pair.name,
                "reference_images": first + second,
                "num_references": len(first) + len(second),
                "pair_subjects": [pair.first.name, pair.second.name],
                "words": [pair.first.word, pair.second.word],
                "reference_counts": [len(first), len(second)],
                "split": split,
            }
        )
    features = datasets.Features(
        {
            "subject": datasets.Value("string"),
            "subject_index": datasets.Value("int32"),
            "class_noun": datasets.Value("string"),
            "category": datasets.Value("string"),
            "reference_images": datasets.Sequence(datasets.Value("string")),
            "num_references": datasets.Value("int32"),
            "pair_subjects": datasets.Sequence(datasets.Value("string")),
            "words": datasets.Sequence(datasets.Value("string")),
            "reference_counts": datasets.Sequence(datasets.Value("int32")),
            "split": datasets.Value("string"),
        }
    )
    return DreamBench(
        root=references.root,
        subjects=datasets.Dataset.from_list(rows, features=features),
        prompts=prompts,
        skipped_images=[],
        skipped_subjects=[],
        all_subjects=[pair.name for pair in all_pairs],
    )
