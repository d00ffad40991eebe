"""Pack a finished toy recipe run into the package as the shipped ``builtin`` model (a maintainer script).

    .venv/bin/python docs/runs/toyworld/pack_toy_model.py RUN_FOLDER [--into blipdiff_plugins/builtin/toy] [--benchmark TABLE.md]

Loads ``RUN_FOLDER/model`` (the recipe's pipeline), stores its weights in float16 (the package's 25 MB budget;
`load_toy_pipeline` computes in float32) and writes a model card from the run's ``recipe.json`` and
``report.json``. The destination must not exist (nothing is replaced).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

CARD = """---
library_name: diffusers
tags: [blip-diffusion, subject-driven-generation, toy-world]
---
# Toy-world BLIP-Diffusion (the `builtin` model of blipdiff_plugins)

A small BLIP-Diffusion trained from scratch on a 2-core CPU on the procedural toy world of
`blipdiff_plugins.toyworld` (8 shapes x 8 appearances on 6 backgrounds, 64-px renders). It is **not Stable
Diffusion** and knows nothing of photographs: it draws toy shapes with toy appearances in toy contexts
("on grass at the left, small"). Held-out subjects (shape and appearance seen in training, never together)
test compositional zero-shot generation; see docs/toyworld.md for the oracle benchmark.

Made with: `{command}` (seed {seed}), then `python docs/runs/toyworld/pack_toy_model.py RUN` (float16 storage).

## Recipe (`RecipeConfig`)

```json
{recipe}
```

## Stages as run

| stage | steps | final loss | minutes |
|---|---|---|---|
{stages}

The VAE, checked before the text-to-image stage: the oracle reads {gate} of its reconstructions of held-out renders right.{retrieval}

Sizes: {sizes}

Generation: the pipeline's `default_prompt_reps` is 1 (trained on single captions); {scheduler}; {image_size} px.
{benchmark}"""


def main() -> None:
    from blipdiff_plugins.pipelines.pipeline_blip_diffusion import BlipDiffusionPipeline
    from blipdiff_plugins.training.toy_recipe.sizes import toy_size
    from blipdiff_plugins.utils.atomic import atomic_directory

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a finished `blipdiff toyworld train` run folder")
    parser.add_argument("--into", default="blipdiff_plugins/builtin/toy", help="destination folder (must not exist)")
    parser.add_argument("--benchmark", default=None, help="a markdown file with the oracle benchmark's table, copied into the card")
    args = parser.parse_args()
    run, into = Path(args.run), Path(args.into)
    if into.exists():
        raise SystemExit(f"--into: {str(into)!r} exists; remove it first (nothing is replaced).")
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    if not report.get("subject_driven"):
        raise SystemExit(f"{str(run)!r}: stage 3 is not done; finish the recipe first.")
    recipe = json.loads((run / "recipe.json").read_text(encoding="utf-8"))
    pipe = BlipDiffusionPipeline.from_pretrained(run / "model").to(torch.float16)
    rows = []
    for name in ("vae", "t2i", "image_encoder", "qformer", "prompted"):  # recipe v2's stages; v1 runs lack the middle two
        if name not in report:
            continue
        stage = report[name].get("training", report[name])  # the image-encoder stage nests its training figures
        rows.append(f"| {stage.get('name', name)} | {stage['steps']} | {stage['loss']:.4f} | {stage['seconds'] / 60:.1f} |")
    retrieval = report.get("qformer", {}).get("retrieval_heldout")
    if retrieval:
        gate_retrieval = (
            f" Stage 1's retrieval on {retrieval['pairs']} held-out image-caption pairs: recall@1 "
            f"{retrieval['image_to_text']['recall@1']:.3f} image to text, {retrieval['text_to_image']['recall@1']:.3f} text to image."
        )
    else:
        gate_retrieval = ""
    params = {name: sum(p.numel() for p in getattr(pipe, name).parameters()) for name in ("unet", "vae", "text_encoder", "subject_encoder")}
    gate = report["vae"].get("oracle_on_reconstructions")
    gate_text = "(not measured)" if gate is None else (
        f"{gate['subject']:.3f} (shape {gate['shape']:.3f}, appearance {gate['appearance']:.3f}; mean absolute error "
        f"{gate['mae']:.1f}/255; {gate['renders']} renders)"
    )
    benchmark = "" if args.benchmark is None else "\n## Oracle benchmark\n\n" + Path(args.benchmark).read_text(encoding="utf-8")
    card = CARD.format(
        command=f"blipdiff toyworld train --output RUN (size {recipe['size']}, defaults of RecipeConfig)", seed=recipe["seed"],
        recipe=json.dumps(recipe, indent=2), stages="\n".join(rows),
        gate=gate_text, retrieval=gate_retrieval, benchmark=benchmark, image_size=recipe["image_size"],
        scheduler=f"{type(pipe.scheduler).__name__} ({pipe.scheduler.config.prediction_type}, "
        f"{pipe.scheduler.config.timestep_spacing} spacing, the recipe's SNR-shifted betas in the scheduler config)",
        sizes=f"{toy_size(recipe['size'])}; parameters " + ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in params.items()),
    )
    with atomic_directory(into) as staging:
        pipe.save_pretrained(staging)
        (staging / "README.md").write_text(card, encoding="utf-8")
    total = sum(f.stat().st_size for f in into.rglob("*") if f.is_file())
    print(f"{into}: {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
