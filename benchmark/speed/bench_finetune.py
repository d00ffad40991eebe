"""Speed and memory of subject fine-tuning per strategy (issue 3, item 7). Not a test: prints figures and ratios.

    python benchmark/speed/bench_finetune.py --size mid --steps 3

Each measurement runs in its own process so peak memory is per strategy: ``torch.cuda.max_memory_allocated``
on a GPU, else the process's peak resident set (``resource.getrusage(...).ru_maxrss``), reported both as the
absolute peak and as the increase over the resident set after the model was built ("training memory").
The floor is a minimal hand-written step on the same model and batch: sample latents from the cached VAE
posterior, noise, uniform timesteps, text encoder with the subject embedding spliced in, U-Net, MSE,
backward, AdamW; no accelerate, no data order, no generator bookkeeping.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STRATEGIES = ("full_unet", "lora", "embedding_only")


def rss_mib() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mib(torch) -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def images():
    import numpy as np
    import PIL.Image

    generator = np.random.default_rng(0)
    return [PIL.Image.fromarray(generator.integers(0, 255, (300 + 40 * i, 280, 3), dtype=np.uint8)) for i in range(3)]


def measure(args) -> dict:
    """One strategy (or the hand-written floor) in this process."""
    import torch

    from blipdiff_plugins import build_builtin_pipeline
    from blipdiff_plugins.training.finetune import FinetuneConfig, SubjectTrainer

    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    pipe = build_builtin_pipeline(args.size).to(device)
    pipe.set_progress_bar_config(disable=True)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    baseline = torch.cuda.memory_allocated() / 2**20 if device == "cuda" else rss_mib()
    name = args.measure
    strategy = "full_unet" if name == "floor" else name
    config = FinetuneConfig(strategy=strategy, steps=args.steps + 1, mixed_precision="no", progress_bar=False, sample_image=False)
    trainer = SubjectTrainer(pipe, images=images(), subject="dog", config=config)
    trainer.setup()
    if name == "floor":
        step = hand_written_step(trainer, torch)
    else:
        step = trainer.training_step
    step()  # warm-up
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    seconds = (time.perf_counter() - started) / args.steps
    result = {"measure": name, "seconds_per_step": seconds, "peak_mib": peak_mib(torch), "baseline_mib": baseline,
              "device": device, "memory_kind": "cuda max_memory_allocated" if device == "cuda" else "peak RSS (ru_maxrss)"}
    result["training_mib"] = result["peak_mib"] - baseline
    if name != "floor":
        with tempfile.TemporaryDirectory() as folder:
            trainer._restore_modules()
            model = trainer.result()
            model.save_pretrained(folder)
            result["saved_mib"] = folder_mib(Path(folder))  # everything: weights, embedding, card, sample PNG
            weights = [p for p in Path(folder).rglob("*.safetensors")]
            result["weights_mib"] = sum(p.stat().st_size for p in weights) / 2**20  # embedding + LoRA or U-Net
    return result


def hand_written_step(trainer, torch):
    """The floor: the same graph and optimizer, written out by hand."""
    import torch.nn.functional as F

    pipe = trainer.pipeline
    unet, text_encoder, injector = pipe.unet, pipe.text_encoder, pipe.prompt_injector
    embedding = trainer.unwrapped_module.subject_embedding
    params = [embedding] + [p for p in unet.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=5e-6)
    scheduler, scaling = trainer.noise_scheduler, pipe.vae.config.scaling_factor
    mean, std, input_ids = trainer.latent_mean, trainer.latent_std, trainer.input_ids
    generator = torch.Generator().manual_seed(0)
    batch = trainer.strategy.batch_size

    def step():
        index = torch.randint(0, mean.shape[0], (batch,), generator=generator).to(mean.device)
        latents = (mean[index] + std[index] * torch.randn(mean[index].shape, generator=generator).to(mean.device)) * scaling
        noise = torch.randn(latents.shape, generator=generator).to(latents.device)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (batch,), generator=generator).to(latents.device)
        noisy = scheduler.add_noise(latents, noise, timesteps)
        with injector.injected(text_encoder, embedding.expand(batch, -1, -1)):
            hidden = text_encoder(input_ids=input_ids.expand(batch, -1)).last_hidden_state
        prediction = unet(noisy, timesteps, encoder_hidden_states=hidden).sample
        loss = F.mse_loss(prediction.float(), noise.float())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="mid", choices=("tiny", "small", "mid"))
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--output", default=None, help="write the figures as JSON here")
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)  # internal: one measurement per process
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args)))
        return 0
    results = {}
    for name in ("floor",) + STRATEGIES:
        command = [sys.executable, __file__, "--size", args.size, "--steps", str(args.steps), "--measure", name]
        if args.threads:
            command += ["--threads", str(args.threads)]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if done.returncode:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        r = results[name]
        print(f"{name:>15}: {r['seconds_per_step']:.3f} s/step, peak {r['peak_mib']:.0f} MiB "
              f"(training +{r['training_mib']:.0f} MiB), saved {r.get('saved_mib', float('nan')):.2f} MiB "
              f"(weights {r.get('weights_mib', float('nan')):.3f} MiB)", flush=True)
    full, lora = results["full_unet"], results["lora"]
    ratios = {
        "full_unet_step_over_floor": full["seconds_per_step"] / results["floor"]["seconds_per_step"],
        "lora_saved_over_full": lora["saved_mib"] / full["saved_mib"],
        "lora_weights_over_full": lora["weights_mib"] / full["weights_mib"],
        "lora_peak_over_full_peak": lora["peak_mib"] / full["peak_mib"],
        "lora_training_memory_over_full": lora["training_mib"] / full["training_mib"],
    }
    print(f"memory: {full['memory_kind']} on {full['device']}; model {args.size}, batch 3, {args.steps} timed steps after 1 warm-up")
    print(f"full_unet step / hand-written floor: {ratios['full_unet_step_over_floor']:.3f} (target <= 1.1)")
    print(f"LoRA weights / full-U-Net weights:   {ratios['lora_weights_over_full']:.4f} (target <= 0.01; safetensors files)")
    print(f"LoRA folder / full-U-Net folder:     {ratios['lora_saved_over_full']:.4f} (with model card and sample PNG)")
    print(f"LoRA peak / full_unet peak:          {ratios['lora_peak_over_full_peak']:.3f} (absolute peaks)")
    print(f"LoRA / full_unet training memory:    {ratios['lora_training_memory_over_full']:.3f} (target <= 0.6; peak minus the built model)")
    if args.output:
        Path(args.output).write_text(json.dumps({"size": args.size, "steps": args.steps, "results": results, "ratios": ratios}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
