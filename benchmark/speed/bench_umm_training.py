"""UMM-Diffusion training step over a hand-written step (a script, not a test).

    .venv/bin/python benchmark/speed/bench_umm_training.py [--size small] [--batch 4] [--steps 5] [--device cpu]

Trainer (`UMMTrainer.training_step`: records decoded, CLIP features, VAE encode, MLP -> injector -> text encoder ->
U-Net, loss, backward, AdamW on the MLP) over the same work written by hand on the same pipeline and images.
Target <= 1.1. Built-in random model; interleaved runs, best of each (other load only adds time).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F


def images(count: int):
    rng = np.random.default_rng(0)
    return [PIL.Image.fromarray(rng.integers(0, 255, (80, 72, 3), dtype=np.uint8)) for _ in range(count)]


def main():
    from blipdiff_plugins import UMMDiffusionPipeline
    from blipdiff_plugins.training.data import training_pixels
    from blipdiff_plugins.training.umm_examples import pairs_dataset
    from blipdiff_plugins.training.umm_module import UMMTrainingModule
    from blipdiff_plugins.training.umm_trainer import UMMTrainer

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="small")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    pictures = images(args.batch)
    captions = ["a [dog] on a beach"] * args.batch
    pipe = UMMDiffusionPipeline.from_pretrained(f"builtin:random-{args.size}")
    pipe.set_progress_bar_config(disable=True)
    trainer = UMMTrainer(pairs_dataset(pictures, captions), pipeline=pipe,
                         config={"steps": 10_000, "batch_size": args.batch, "progress_bar": False, "mixed_precision": "no", "shuffle": False})
    trainer.setup()
    resolution = trainer.resolution

    # the hand-written floor: the same model work on its own optimizer over the same MLP
    module = UMMTrainingModule(pipe.subject_encoder.mlp, pipe.text_encoder, pipe.tokenizer, pipe.unet, pipe.prompt_injector).train()
    optimizer = torch.optim.AdamW(pipe.subject_encoder.mlp.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    words, plain = ["dog"] * args.batch, ["a dog on a beach"] * args.batch

    def floor_step():
        target = training_pixels(pictures, resolution)
        with torch.no_grad():
            features = pipe.subject_encoder.image_features(pipe.subject_image_processor.preprocess(pictures))
            posterior = pipe.vae.encode(target).latent_dist
        latents = (posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)) * pipe.vae.config.scaling_factor
        noise = torch.randn(latents.shape, generator=generator)
        timesteps = torch.randint(0, 1000, (args.batch,), generator=generator)
        noisy = trainer.noise_scheduler.add_noise(latents, noise, timesteps)
        loss = F.mse_loss(module(features, plain, words, noisy, timesteps).float(), noise.float())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def timed(step):
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        return (time.perf_counter() - start) / args.steps

    floor_step(), trainer.training_step()  # warm-up
    floor_times, trainer_times = [], []
    for _ in range(args.repeats):
        floor_times.append(timed(floor_step))
        trainer_times.append(timed(trainer.training_step))
    best_floor, best_trainer = min(floor_times), min(trainer_times)
    print(f"config: built-in '{args.size}' UMM, batch {args.batch}, {resolution} px, cpu, torch threads {torch.get_num_threads()}")
    print(f"hand-written step best {best_floor:.3f} s (runs {', '.join(f'{t:.3f}' for t in floor_times)})")
    print(f"trainer step      best {best_trainer:.3f} s (runs {', '.join(f'{t:.3f}' for t in trainer_times)})")
    print(f"ratio trainer/hand-written = {best_trainer / best_floor:.3f}  (target <= 1.1)")


if __name__ == "__main__":
    main()
