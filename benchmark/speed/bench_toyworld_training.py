"""Seconds per training step of the toy-world recipe's stages at candidate sizes (a script, not a test).

    .venv/bin/python benchmark/speed/bench_toyworld_training.py [--sizes xs,s,m] [--batch 32] [--steps 6]

For each size: stage 1 (VAE reconstruction step), stage 2 (text-to-image step: VAE encode, text encoder,
U-Net, backward, AdamW). The first step of each is a warm-up and not timed. Wall and CPU seconds (all threads)
per step are printed with the load average: on a shared machine wall time is an upper bound, and CPU seconds
divided by the thread count estimate the wall time on an idle machine.
The plan in docs/toyworld_plan.md is made from these numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch


def seconds_per_step(loss_fn, parameters, steps: int) -> dict:
    """Median wall seconds and median CPU seconds (all threads of this process) per step."""
    optimizer = torch.optim.AdamW(parameters, lr=1e-4)
    wall, cpu = [], []
    for step in range(steps + 1):
        started, started_cpu = time.perf_counter(), time.process_time()
        loss = loss_fn(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step:  # step 0 warms up
            wall.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
    return {"wall": round(sorted(wall)[len(wall) // 2], 3), "cpu": round(sorted(cpu)[len(cpu) // 2], 3)}


def main() -> None:
    from blipdiff_plugins.training.toy_recipe.components import build_toy_components, toy_size
    from blipdiff_plugins.training.toy_recipe.recipe import make_t2i_loss, make_vae_loss
    from blipdiff_plugins.training.toy_recipe.recipe_config import RecipeConfig
    from blipdiff_plugins.toyworld.world import ToyWorld

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="xs,s,m")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--skip-vae", action="store_true")
    args = parser.parse_args()
    world = ToyWorld()
    results = {"threads": torch.get_num_threads(), "batch": args.batch, "load_before": os.getloadavg()[0], "sizes": {}}
    vae_done = set()
    for name in args.sizes.split(","):
        spec = toy_size(name)
        config = RecipeConfig(size=name, vae_batch_size=args.batch, t2i_batch_size=args.batch)
        components = build_toy_components(spec, seed=0)
        row = {
            "unet_params_m": round(sum(p.numel() for p in components["unet"].parameters()) / 1e6, 2),
            "vae_params_m": round(sum(p.numel() for p in components["vae"].parameters()) / 1e6, 2),
            "latent_side": 64 // spec.vae_factor,
        }
        if not args.skip_vae and spec.vae_channels not in vae_done:
            vae_done.add(spec.vae_channels)
            row["vae_s_per_step"] = (seconds_per_step(make_vae_loss(components["vae"], config, world), components["vae"].parameters(), args.steps))
        parameters = list(components["unet"].parameters()) + list(components["text_encoder"].parameters())
        row["t2i_s_per_step"] = seconds_per_step(make_t2i_loss(components, config, world), parameters, args.steps)
        row["load"] = os.getloadavg()[0]
        results["sizes"][name] = row
        print(name, json.dumps(row), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
