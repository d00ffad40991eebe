"""Seconds per step of recipe v2's new stages at a toy size (random weights: the cost does not depend on them).

Times (wall and CPU seconds per step, the median over the steps after the first): the toy CLIP ("image_encoder" stage), BLIP-2 stage 1 ("qformer"), and the
prompted stage with the image encoder frozen and trainable, at the batch sizes of `RecipeConfig`. Prints one JSON
line per stage (median of the timed steps) and writes them to ``--output``.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python docs/runs/toyworld/time_recipe_v2.py --output timing.json [--size s2] [--steps 4]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


class StepClock:
    """Wall and CPU seconds between consecutive callbacks (CPU time is what a busy shared machine distorts least)."""

    def __init__(self):
        self.wall, self.cpu, self._last = [], [], None

    def __call__(self, *_):
        now = (time.perf_counter(), time.process_time())
        if self._last is not None:
            self.wall.append(now[0] - self._last[0])
            self.cpu.append(now[1] - self._last[1])
        self._last = now

    def result(self) -> dict:
        return {"wall_seconds_per_step": float(np.median(self.wall)), "cpu_seconds_per_step": float(np.median(self.cpu))}


def time_toy_clip(config, steps: int) -> float:
    from blipdiff_plugins.toyworld.world import ToyWorld
    from blipdiff_plugins.training.toy_recipe.components import build_tokenizers
    from blipdiff_plugins.training.toy_recipe.toy_clip import build_toy_clip, make_clip_loss

    clip_config = config.toy_clip_config()
    tokenizer = build_tokenizers()[0]
    model = build_toy_clip(clip_config, tokenizer).train()
    loss_fn = make_clip_loss(model, tokenizer, clip_config, ToyWorld(image_size=config.image_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    clock = StepClock()
    for step in range(steps + 1):
        loss = loss_fn(step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        clock()
    return clock.result()


def time_stage1(config, components, steps: int, folder: Path) -> float:
    from blipdiff_plugins.training.stage1 import train_stage1
    from blipdiff_plugins.training.toy_recipe.paper_stages import image_caption_pairs, stage1_settings

    data = image_caption_pairs(config, split="train", count=config.qformer_batch_size * (steps + 1), stream=3)
    settings = {**stage1_settings(folder, config, progress=False), "steps": steps + 1, "validation_every": None, "checkpoint_every": None}
    clock = StepClock()
    train_stage1(data, config=settings, subject_encoder=components["subject_encoder"], tokenizer=components["subject_tokenizer"],
                 image_processor=components["subject_image_processor"], callback=clock)
    return clock.result()


def time_prompted(config, components, steps: int, folder: Path) -> float:
    from blipdiff_plugins.pipelines.pipeline_blip_diffusion import BlipDiffusionPipeline
    from blipdiff_plugins.training.pretrain import SubjectPretrainer
    from blipdiff_plugins.training.toy_recipe.prompted_stage import build_records, pretrain_settings

    records = build_records(folder, config, progress=False)
    pipeline = BlipDiffusionPipeline(**components, default_prompt_reps=1)
    settings = {**pretrain_settings(folder, config, progress=False), "steps": steps + 1, "checkpoint_every": None, "ema": False}
    settings.pop("ema_decay", None)
    clock = StepClock()
    SubjectPretrainer(str(records), config=settings, pipeline=pipeline, callback=clock).train()
    return clock.result()


def main():
    from blipdiff_plugins.training.toy_recipe.components import build_toy_components, toy_size
    from blipdiff_plugins.training.toy_recipe.recipe_config import RecipeConfig

    parser = argparse.ArgumentParser()
    parser.add_argument("--output", required=True)
    parser.add_argument("--size", default="s2")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--stages", default="image_encoder,qformer,prompted_frozen,prompted_trainable")
    args = parser.parse_args()
    base = RecipeConfig(size=args.size)
    results = {"size": args.size, "threads": torch.get_num_threads(), "timed_steps": args.steps,
               "load_average_at_start": list(os.getloadavg())}
    for stage in args.stages.split(","):
        config = RecipeConfig(**{**base.to_dict(), "prompted_records": base.prompted_batch_size * (args.steps + 1),
                                 "prompted_image_encoder": "trainable" if stage == "prompted_trainable" else "frozen"})
        components = build_toy_components(toy_size(config.size), image_size=config.image_size, seed=0,
                                          prediction_type=config.prediction_type, zero_terminal_snr=config.zero_terminal_snr,
                                          snr_shift=config.snr_shift)
        with tempfile.TemporaryDirectory() as folder:
            if stage == "image_encoder":
                seconds, batch = time_toy_clip(config, args.steps), config.image_encoder_batch_size
            elif stage == "qformer":
                seconds, batch = time_stage1(config, components, args.steps, Path(folder)), config.qformer_batch_size
            else:
                seconds, batch = time_prompted(config, components, args.steps, Path(folder)), config.prompted_batch_size
        results[stage] = {**seconds, "batch_size": batch}
        print(json.dumps({stage: results[stage]}), flush=True)
        Path(args.output).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
