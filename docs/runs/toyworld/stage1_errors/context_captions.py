"""Experiment: the toy CLIP's captions name the whole context (background, position, size), then stage 1 over it.

    OMP_NUM_THREADS=1 .venv/bin/python docs/runs/toyworld/stage1_errors/context_captions.py RUN_FOLDER

RUN_FOLDER holds a copy of a run's recipe.json; the two paper stages run into it (paper_stages_ahead.py) with the
toy CLIP's training captions patched to ``"a tiger star on grass at the left, small"`` (context_rate of them; the
others stay ``"a tiger star"``). Compare analyse.py on it with the run's own.
"""

import runpy
import sys

import numpy as np

from blipdiff_plugins.training.toy_recipe import toy_clip


def training_batch(world, config, step):
    rng = np.random.default_rng([config.seed, step, 17])
    subjects = world.split("train")
    chosen = rng.permutation(len(subjects))[: config.batch_size]
    images, captions = [], []
    for index in chosen:
        subject = subjects[index]
        render_seed = int(rng.integers(2**31))
        render = world.render(subject, world.random_context(render_seed), seed=render_seed)
        named = rng.uniform() < config.context_rate
        images.append(render.image)
        captions.append(f"a {subject.appearance} {subject.shape}" + (f" {render.context.text()}" if named else ""))
    return images, captions


toy_clip.training_batch = training_batch
sys.argv = ["paper_stages_ahead.py", *sys.argv[1:]]
runpy.run_path("docs/runs/toyworld/recipe_v2/paper_stages_ahead.py", run_name="__main__")
