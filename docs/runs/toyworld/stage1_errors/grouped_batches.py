"""Experiment: stage-1 batches made of a few subjects in several contexts each (position-hard ITC negatives).

    OMP_NUM_THREADS=1 .venv/bin/python docs/runs/toyworld/stage1_errors/grouped_batches.py RUN OUT GROUP

The recipe's stage 1 over RUN's toy CLIP, with the training pairs generated in groups of GROUP renders of one subject
in independent random contexts, read in order (`Stage1Config.shuffle` off), so each batch of 64 holds 64 / GROUP
subjects with GROUP contexts each and ITC must tell the contexts of one subject apart. Prints the retrieval on the
stage's pairs; compare with analyse.py on the fresh streams.
"""

import json
import sys
from pathlib import Path

import datasets
import numpy as np
import PIL.Image

from blipdiff_plugins.training.toy_recipe import paper_stages
from blipdiff_plugins.training.toy_recipe.components import build_toy_components, toy_size
from blipdiff_plugins.training.toy_recipe.recipe_config import RecipeConfig
from blipdiff_plugins.toyworld.world import ToyWorld

run, out, group = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
config = RecipeConfig.from_recorded(json.loads((run / "recipe.json").read_text()))
original_pairs, original_settings = paper_stages.image_caption_pairs, paper_stages.stage1_settings


def grouped_pairs(config, *, split, count, stream):
    if split != "train":
        return original_pairs(config, split=split, count=count, stream=stream)
    world = ToyWorld(image_size=config.image_size)
    subjects = world.split("train")
    images, captions = [], []
    for index in range(count):
        rng = np.random.default_rng([config.seed, stream, index // group])
        subject = subjects[rng.integers(len(subjects))]
        render_seed = int(np.random.default_rng([config.seed, stream, index, 1]).integers(2**31))
        render = world.render(subject, world.random_context(render_seed), seed=render_seed)
        images.append(PIL.Image.fromarray(render.image))
        captions.append(paper_stages.pair_caption(render))
    return datasets.Dataset.from_dict({"image": images, "caption": captions},
                                      features=datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string")}))


paper_stages.image_caption_pairs = grouped_pairs
paper_stages.stage1_settings = lambda folder, config, progress: {**original_settings(folder, config, progress=progress), "shuffle": False}
components = build_toy_components(toy_size(config.size), image_size=config.image_size, seed=config.seed, prediction_type=config.prediction_type,
                                  zero_terminal_snr=config.zero_terminal_snr, snr_shift=config.snr_shift)
paper_stages.load_image_encoder(run / "image_encoder", components)
(out / "qformer").mkdir(parents=True, exist_ok=True)
(out / "recipe.json").write_text((run / "recipe.json").read_text())
print(json.dumps(paper_stages.run_qformer_stage(out / "qformer", components, config, progress=False)["retrieval_heldout"]))
