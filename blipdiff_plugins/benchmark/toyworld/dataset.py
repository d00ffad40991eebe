"""The toy-world oracle benchmark as a dataset the DreamBench runner can run: subjects, references and prompts.

`load_toyworld_bench` returns a [`DreamBench`] whose rows are toy-world subjects (``class_noun`` is the shape
word), whose reference images are renders written once into a folder, and whose prompts are toy-world contexts,
so `run_benchmark` (resume, sharding, result files) runs it unchanged.

Two protocols choose the contexts. "v2" (the default) draws each subject's prompt contexts from all 60 of the
world's contexts (6 backgrounds x 5 positions x 2 sizes, without repeats within a subject) and renders its
references in random contexts too, seeded by the subject; each subject is then its own prompt ``category``. "v1"
(the first protocol, kept for comparison) gives every subject the same 12 contexts (`benchmark_contexts`) and
centred references (`REFERENCE_CONTEXTS`), under the category "object".
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
import PIL.Image

import itertools

from blipdiff_plugins.toyworld.contexts import BACKGROUND_NAMES, POSITION_NAMES, SIZE_NAMES, Context
from blipdiff_plugins.toyworld.world import SPLITS, ToyWorld

from ...utils.atomic import write_png
from ..dreambench.dataset import DreamBench, DreamBenchPrompt

NUM_PROMPTS = 12
MAX_REFERENCES = 6
REFERENCE_SEED = 500
PROTOCOLS = ("v2", "v1")
# Seeds of protocol v2's context draws (prompts and references never share one).
PROMPT_CONTEXT_STREAM = 600
REFERENCE_CONTEXT_STREAM = 700
ALL_CONTEXTS = tuple(
    Context(background, position, size)
    for background, position, size in itertools.product(BACKGROUND_NAMES, POSITION_NAMES, SIZE_NAMES)
)
# Reference contexts: the subject at the centre, once per size, on backgrounds the prompts also use. With
# `reference_background` every reference takes that one background instead (positions and sizes kept), so that
# background leak is specific: the prompts name it for 2 of 12 contexts only, and a wrong background is that one
# by chance 1 time in 5.
REFERENCE_CONTEXTS = (
    Context("sky", "center", "large"),
    Context("sand", "center", "small"),
    Context("tiles", "center", "large"),
    Context("night", "center", "small"),
    Context("grass", "center", "large"),
    Context("bricks", "center", "small"),
)


def benchmark_contexts(count: int = NUM_PROMPTS) -> list[Context]:
    """The prompt contexts: each background twice, positions and sizes cycling so that all appear."""
    contexts = []
    for index in range(count):
        background = BACKGROUND_NAMES[index % len(BACKGROUND_NAMES)]
        position = POSITION_NAMES[(index * 2 + index // len(BACKGROUND_NAMES)) % len(POSITION_NAMES)]
        size = SIZE_NAMES[(index + index // len(BACKGROUND_NAMES)) % len(SIZE_NAMES)]
        contexts.append(Context(background, position, size))
    return contexts


def sampled_contexts(subject_index: int, count: int, *, stream: int) -> list[Context]:
    """Protocol v2: ``count`` distinct contexts drawn uniformly from all 60, seeded by the stream and the subject."""
    order = np.random.default_rng([stream, subject_index]).permutation(len(ALL_CONTEXTS))
    return [ALL_CONTEXTS[i] for i in order[:count]]


def toyworld_prompts(count: int = NUM_PROMPTS, *, contexts: list[Context] | None = None) -> list[DreamBenchPrompt]:
    """Prompts in the DreamBench template form ``"a {0} {1} on grass at the left, small"``: of ``contexts``, or of
    protocol v1's `benchmark_contexts`."""
    contexts = benchmark_contexts(count) if contexts is None else contexts
    return [
        DreamBenchPrompt(index, "a {0} {1} " + context.text(), "", context.text(), "recontextualization")
        for index, context in enumerate(contexts)
    ]


def _write_png_checked(array: np.ndarray, path: Path) -> None:
    """Write a reference render once; an existing file must hold the same pixels (never silently replaced)."""
    if path.is_file():
        with PIL.Image.open(path) as existing:
            if not np.array_equal(np.asarray(existing.convert("RGB")), array):
                raise ValueError(
                    f"`root`: {str(path)!r} exists and is not this toy-world reference render; "
                    "choose an empty folder for the references."
                )
        return
    write_png(path, PIL.Image.fromarray(array))


def load_toyworld_bench(
    root: str | os.PathLike,
    *,
    split: str = "heldout",
    subjects: Iterable[str] | None = None,
    num_references: int = 4,
    num_prompts: int = NUM_PROMPTS,
    image_size: int = 64,
    reference_background: str | None = None,
    protocol: str = "v2",
) -> DreamBench:
    """Render the references of a split's subjects into ``root`` and return the benchmark.

    Args:
        root (`str` or `os.PathLike`): folder for the reference renders (``<subject>/<NN>.png``).
        split (`str`, defaults to "heldout"): "heldout" (compositional zero-shot) or "train".
        subjects (`Iterable[str]`, *optional*): only these subject names (of the split).
        num_references (`int`, defaults to 4): reference renders per subject (1-6).
        num_prompts (`int`, defaults to 12): prompt contexts per subject (1-25).
        image_size (`int`, defaults to 64): render side.
        reference_background (`str`, *optional*): render every reference on this background (one of the world's
            six), positions and sizes kept; by default the references' backgrounds vary.
        protocol (`str`, defaults to "v2"): "v2" draws each subject's prompt and reference contexts from all 60;
            "v1" uses the same 12 prompt contexts for every subject and centred references (see the module).

    Returns:
        [`DreamBench`] with the extra subject columns ``reference_captions`` (each reference's context, ``"on sky at the
            center, large"``), ``shape``, ``appearance`` and ``split``.
    """
    import datasets

    if split not in SPLITS:
        raise ValueError(f"`split`: {split!r} is not one of {', '.join(SPLITS)}.")
    if protocol not in PROTOCOLS:
        raise ValueError(f"`protocol`: {protocol!r} is not one of {', '.join(PROTOCOLS)}.")
    if not isinstance(num_references, int) or not 1 <= num_references <= MAX_REFERENCES:
        raise ValueError(f"`num_references` must be an integer from 1 to {MAX_REFERENCES}, got {num_references!r}.")
    if not isinstance(num_prompts, int) or not 1 <= num_prompts <= 25:
        raise ValueError(f"`num_prompts` must be an integer from 1 to 25 (the runner's prompt range), got {num_prompts!r}.")
    if reference_background is not None and reference_background not in BACKGROUND_NAMES:
        raise ValueError(f"`reference_background`: {reference_background!r} is not one of {', '.join(BACKGROUND_NAMES)}.")
    world = ToyWorld(image_size=image_size)
    chosen = list(world.split(split))
    if subjects is not None:
        names = list(subjects)
        for name in names:
            subject = world.subject(name)  # unknown names raise KeyError with close matches
            if subject.split != split:
                raise KeyError(f"`subjects`: {name!r} is a {subject.split} subject, not in split {split!r}.")
        chosen = [subject for subject in chosen if subject.name in set(names)]
    root = Path(root)
    rows, prompts = [], {}
    for subject in chosen:
        subject_index = world.subjects.index(subject)
        if protocol == "v1":
            contexts = list(REFERENCE_CONTEXTS[:num_references])
            category = "object"
            prompts[category] = toyworld_prompts(num_prompts)
        else:
            contexts = sampled_contexts(subject_index, num_references, stream=REFERENCE_CONTEXT_STREAM)
            category = subject.name  # each subject has its own sampled prompt contexts
            prompts[category] = toyworld_prompts(contexts=sampled_contexts(subject_index, num_prompts, stream=PROMPT_CONTEXT_STREAM))
        if reference_background is not None:
            contexts = [Context(reference_background, context.position, context.size) for context in contexts]
        paths = []
        for index, context in enumerate(contexts):
            render = world.render(subject, context, seed=REFERENCE_SEED + index)
            path = root / subject.name / f"{index:02d}.png"
            _write_png_checked(render.image, path)
            paths.append(str(path))
        rows.append(
            {
                "subject": subject.name,
                "subject_index": subject_index,
                "class_noun": subject.word,
                "category": category,
                "reference_images": paths,
                "reference_captions": [context.text() for context in contexts],
                "num_references": len(paths),
                "shape": subject.shape,
                "appearance": subject.appearance,
                "split": subject.split,
            }
        )
    features = datasets.Features(
        {
            "subject": datasets.Value("string"),
            "subject_index": datasets.Value("int32"),
            "class_noun": datasets.Value("string"),
            "category": datasets.Value("string"),
            "reference_images": datasets.Sequence(datasets.Value("string")),
            "reference_captions": datasets.Sequence(datasets.Value("string")),
            "num_references": datasets.Value("int32"),
            "shape": datasets.Value("string"),
            "appearance": datasets.Value("string"),
            "split": datasets.Value("string"),
        }
    )
    return DreamBench(
        root=root,
        subjects=datasets.Dataset.from_list(rows, features=features),
        prompts=prompts,
        skipped_images=[],
        skipped_subjects=[],
        all_subjects=[subject.name for subject in world.subjects],
    )
