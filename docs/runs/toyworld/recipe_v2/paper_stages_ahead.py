"""Run recipe v2's "image_encoder" and "qformer" stages of a run folder ahead of their turn, on a second core.

Neither stage reads what the "vae" and "t2i" stages train (the toy CLIP trains on renders; stage 1 trains the
subject encoder's Q-Former over that CLIP), so they can run beside them: this script builds the components exactly as
`train_toyworld` does from the run's recipe.json, runs the two stages into the run's own folders and writes their
``done.json``; when the main run reaches them it loads them instead (it skips any stage whose ``done.json`` exists).
Resumable like the recipe (rerun the same command). Used for runs/toy12 (2026-12-07):

    OMP_NUM_THREADS=1 python docs/runs/toyworld/recipe_v2/paper_stages_ahead.py runs/toy12
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from blipdiff_plugins.training.toy_recipe.components import build_toy_components, toy_size
from blipdiff_plugins.training.toy_recipe.paper_stages import load_image_encoder, run_image_encoder_stage, run_qformer_stage
from blipdiff_plugins.training.toy_recipe.recipe_config import RecipeConfig
from blipdiff_plugins.training.toy_recipe.stage_loop import DONE_FILE
from blipdiff_plugins.utils.atomic import write_json


def main(run: Path) -> None:
    config = RecipeConfig.from_recorded(json.loads((run / "recipe.json").read_text(encoding="utf-8")))
    if not config.qformer_pretraining:
        raise SystemExit(f"{run} runs without the paper's stages (qformer_pretraining is off).")
    components = build_toy_components(toy_size(config.size), image_size=config.image_size, seed=config.seed,
                                      prediction_type=config.prediction_type, zero_terminal_snr=config.zero_terminal_snr,
                                      snr_shift=config.snr_shift)
    for name, run_stage in (("image_encoder", run_image_encoder_stage), ("qformer", run_qformer_stage)):
        folder = run / name
        if (folder / DONE_FILE).is_file():
            if name == "image_encoder":
                load_image_encoder(folder, components)
            print(f"{name}: done already")
            continue
        folder.mkdir(parents=True, exist_ok=True)
        result = run_stage(folder, components, config, progress=True)
        write_json(folder / DONE_FILE, result)
        print(json.dumps({name: result}, indent=2, default=str))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
