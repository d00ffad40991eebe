"""Stage 1 of a run folder again, with recipe and stage-1 settings overridden (issue 26 experiments).

    OMP_NUM_THREADS=1 .venv/bin/python docs/runs/toyworld/stage1_errors/stage1_variant.py RUN OUT STEPS STAGE1_JSON [RECIPE_JSON]

Builds the subject encoder over RUN's toy CLIP (RUN/image_encoder), runs the recipe's "qformer" stage for STEPS steps
into OUT/qformer with the recipe overridden by RECIPE_JSON and the `Stage1Config` settings by STAGE1_JSON, and prints
the held-out retrieval. Used for runs/s1_lr2e3 (`runs/s1_ctx runs/s1_lr2e3 1200 {} {"qformer_learning_rate": 0.002}`).
"""
import json, sys
from pathlib import Path
from blipdiff_plugins.training.toy_recipe.components import build_toy_components, toy_size
from blipdiff_plugins.training.toy_recipe import paper_stages
from blipdiff_plugins.training.toy_recipe.recipe_config import RecipeConfig
run = Path(sys.argv[1]); out = Path(sys.argv[2]); steps = int(sys.argv[3]); weights = json.loads(sys.argv[4])
config = RecipeConfig.from_recorded(json.loads((run / "recipe.json").read_text()))
config = RecipeConfig(**{**config.to_dict(), "qformer_steps": steps, **(json.loads(sys.argv[5]) if len(sys.argv) > 5 else {})})
components = build_toy_components(toy_size(config.size), image_size=config.image_size, seed=config.seed, prediction_type=config.prediction_type,
                                  zero_terminal_snr=config.zero_terminal_snr, snr_shift=config.snr_shift)
paper_stages.load_image_encoder(run / "image_encoder", components)
original = paper_stages.stage1_settings
paper_stages.stage1_settings = lambda folder, config, progress: {**original(folder, config, progress=progress), **weights}
out.mkdir(parents=True, exist_ok=True)
(out / "recipe.json").write_text((run / "recipe.json").read_text())
(out/"qformer").mkdir(exist_ok=True)
print(json.dumps(paper_stages.run_qformer_stage(out / "qformer", components, config, progress=False)["retrieval_heldout"]))
