"""Probe what a toy model draws from text alone, read by the oracle (a maintainer script for recipe ablations).

    .venv/bin/python docs/runs/toyworld/probe_text_to_image.py MODEL_FOLDER --output probe.png [--guidance 7.5] [--steps 25]

MODEL_FOLDER is a toy pipeline folder (RUN/model) or a stage-2 checkpoint of a running recipe
(RUN/stage2_t2i/checkpoints/checkpoint-N: its U-Net and text encoder, their moving average where the run keeps
one, with the run's stage-1 VAE), to judge stage 2 before it ends.

Prompts name the appearance and the shape ("a tiger star on sky at the center, large", stage 2's caption form)
for 8 training subjects x the 12 benchmark contexts, one image each (seeds 0..95). Prints the oracle's shape,
appearance and subject accuracy and the pixel measures' background, position and size accuracy, and writes the
images as one grid (a new file; an existing one is refused). It isolates stage 2: no subject encoder is used.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import PIL.Image
import torch

# One training subject per shape, with eight different appearances (none of them a held-out pair).
SUBJECTS = (("tiger", "star"), ("ruby", "circle"), ("mint", "square"), ("chess", "heart"),
            ("ocean", "cross"), ("lemon", "triangle"), ("plum", "diamond"), ("dalmatian", "crescent"))


def load_pipeline(path: Path):
    """A pipeline folder as it is, or a stage-2 checkpoint assembled with its run's components and stage-1 VAE."""
    from diffusers import AutoencoderKL

    from blipdiff_plugins import BlipDiffusionPipeline
    from blipdiff_plugins.training.toy_recipe.components import build_toy_components, toy_size
    from blipdiff_plugins.training.toy_recipe.recipe_config import TOY_PROMPT_REPS, RecipeConfig
    from blipdiff_plugins.training.toy_recipe.stage_loop import module_state
    from blipdiff_plugins.training.checkpoints import load_checkpoint

    if (path / "model_index.json").is_file():
        return BlipDiffusionPipeline.from_pretrained(path)
    run = path.parents[2]
    config = RecipeConfig.from_recorded(json.loads((run / "recipe.json").read_text(encoding="utf-8")))
    components = build_toy_components(toy_size(config.size), image_size=config.image_size, seed=config.seed,
                                      prediction_type=config.prediction_type, zero_terminal_snr=config.zero_terminal_snr,
                                      snr_shift=config.snr_shift)
    components["vae"] = AutoencoderKL.from_pretrained(run / "stage1_vae" / "vae")
    trainable = load_checkpoint(path)["trainable"]
    for name in ("unet", "text_encoder"):
        components[name].load_state_dict(module_state(trainable, name, moving_average=True))
    return BlipDiffusionPipeline(**components, default_prompt_reps=TOY_PROMPT_REPS)


def main() -> None:
    from blipdiff_plugins.benchmark.toyworld.dataset import benchmark_contexts
    from blipdiff_plugins.toyworld.measures import measure_context
    from blipdiff_plugins.toyworld.oracle import classify, load_oracle
    from blipdiff_plugins.toyworld.world import heldout_pairs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a toy pipeline folder (RUN/model) or a stage-2 checkpoint folder")
    parser.add_argument("--output", required=True, help="PNG grid to write (must not exist)")
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--steps", type=int, default=25)
    args = parser.parse_args()
    if Path(args.output).exists():
        raise SystemExit(f"--output: {args.output!r} exists; choose a new file (nothing is replaced).")
    assert not any((a, s) in heldout_pairs() for a, s in SUBJECTS)
    pipe = load_pipeline(Path(args.model))
    pipe.set_progress_bar_config(disable=True)
    contexts = benchmark_contexts()
    cases = [(appearance, shape, context) for appearance, shape in SUBJECTS for context in contexts]
    images = []
    for start in range(0, len(cases), 12):
        batch = cases[start : start + 12]
        images += pipe(
            prompt=[context.text() for _, _, context in batch], target_subject=[f"{a} {s}" for a, s, _ in batch],
            guidance_scale=args.guidance, num_inference_steps=args.steps, height=64, width=64,
            generator=[torch.Generator().manual_seed(start + k) for k in range(len(batch))],
        ).images
    predicted = classify(load_oracle(), images)
    measured = [measure_context(image) for image in images]
    shape = np.array([p == s for p, (_, s, _) in zip(predicted["shape"], cases)])
    appearance = np.array([p == a for p, (a, _, _) in zip(predicted["appearance"], cases)])
    scores = {
        "shape": shape.mean(), "appearance": appearance.mean(), "subject": (shape & appearance).mean(),
        **{name: np.mean([getattr(m, name) == getattr(c, name) for m, (_, _, c) in zip(measured, cases)]) for name in ("background", "position", "size")},
    }
    print(json.dumps({"model": args.model, "guidance": args.guidance, "steps": args.steps, "images": len(images),
                      **{k: round(float(v), 3) for k, v in scores.items()}}))
    grid = PIL.Image.new("RGB", (64 * len(contexts), 64 * len(SUBJECTS)))
    for index, image in enumerate(images):
        grid.paste(image, ((index % len(contexts)) * 64, (index // len(contexts)) * 64))
    grid.save(args.output)


if __name__ == "__main__":
    main()
