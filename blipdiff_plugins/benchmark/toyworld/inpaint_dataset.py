"""The inpainting benchmark's dataset for the shared runner: held-out subjects as its "subjects", their scenes as
their "prompts" (prompt ``i`` of a subject is its scene ``i``; its text is the region's context), so the runner,
resume, sharding and result files work unchanged.

The references are the renders the first (standalone) inpainting loop used (`render_references`, seed 0), written as
PNGs (lossless) into ``<root>/<subject>/NN.png``; the scenes are `make_scenes`' with the run's seed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import PIL.Image

from blipdiff_plugins.toyworld.references import render_references
from blipdiff_plugins.toyworld.world import ToyWorld

from ...utils.atomic import write_png
from ..dreambench.dataset import DreamBench, DreamBenchPrompt
from .inpaint_scenes import InpaintScene, make_scenes

PROMPT_KIND = "inpaint"
MAX_SCENES = 25  # the runner numbers prompts 0-24


def scene_prompts(scenes: list[InpaintScene]) -> list[DreamBenchPrompt]:
    """One prompt per scene of a subject, numbered as the scenes; the text is the scene's prompt, as written."""
    return [DreamBenchPrompt(index, scene.prompt.replace("{", "{{").replace("}", "}}"), "", scene.prompt, PROMPT_KIND)
            for index, scene in enumerate(scenes)]


def load_inpaint_bench(
    root: str | os.PathLike,
    *,
    split: str = "heldout",
    subjects: Iterable[str] | None = None,
    scenes_per_subject: int = 2,
    num_references: int = 4,
    seed: int = 0,
    image_size: int = 64,
) -> tuple[DreamBench, dict[tuple[str, int], InpaintScene]]:
    """Write the subjects' reference renders into ``root`` and return the benchmark and its scenes.

    Args:
        root (`str` or `os.PathLike`): folder for the reference renders.
        split (`str`, defaults to "heldout"): whose subjects (when ``subjects`` is `None`).
        subjects (`Iterable[str]`, *optional*): only these subjects.
        scenes_per_subject (`int`, defaults to 2): scenes per subject (1-25; even: plain, odd: a training subject elsewhere).
        num_references (`int`, defaults to 4): reference renders per subject.
        seed (`int`, defaults to 0): the scenes' seed (the run's ``--seed``).
        image_size (`int`, defaults to 64): the photos' and renders' side.

    Returns:
        `tuple`: the [`DreamBench`] (one row per subject, its scenes as prompts) and ``(subject, scene index) -> scene``.
    """
    import datasets

    if not isinstance(scenes_per_subject, int) or isinstance(scenes_per_subject, bool) or not 1 <= scenes_per_subject <= MAX_SCENES:
        raise ValueError(f"`scenes_per_subject` must be an integer from 1 to {MAX_SCENES}, got {scenes_per_subject!r}.")
    world = ToyWorld(image_size=image_size)
    names = list(dict.fromkeys(subjects)) if subjects is not None else [subject.name for subject in world.split(split)]
    for name in names:
        world.subject(name)  # unknown names raise with close matches
    scenes = make_scenes(subjects=names, scenes_per_subject=scenes_per_subject, seed=seed, image_size=image_size)
    root = Path(root)
    rows, prompts, by_key = [], {}, {}
    for name in names:
        own = [scene for scene in scenes if scene.subject == name]
        by_key.update({(name, index): scene for index, scene in enumerate(own)})
        paths = []
        for index, render in enumerate(render_references(name, count=num_references, image_size=image_size)):
            paths.append(str(write_png(root / name / f"{index:02d}.png", PIL.Image.fromarray(render.image))))
        prompts[name] = scene_prompts(own)
        rows.append({"subject": name, "subject_index": world.subjects.index(world.subject(name)),  # fixed: seeds ignore filters
                     "class_noun": world.subject(name).word, "category": name, "reference_images": paths, "num_references": len(paths)})
    features = datasets.Features({
        "subject": datasets.Value("string"), "subject_index": datasets.Value("int32"), "class_noun": datasets.Value("string"),
        "category": datasets.Value("string"), "reference_images": datasets.Sequence(datasets.Value("string")),
        "num_references": datasets.Value("int32"),
    })
    bench = DreamBench(root=root, subjects=datasets.Dataset.from_list(rows, features=features), prompts=prompts, skipped_images=[],
                       skipped_subjects=[], all_subjects=[subject.name for subject in world.subjects])
    return bench, by_key
