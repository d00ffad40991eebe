"""Speed and memory of the pre-training trainer (issue 11). Not a test: prints figures and ratios.

    python benchmark/speed/bench_pretrain.py --size small --resolution 128 --batch-size 4 --steps 4

Measurements, each in its own process (so peak memory is its own):

- ``trainer``: `SubjectPretrainer.training_step` reading records from parquet files on disk (PNG bytes,
  decoded, resized and preprocessed every step), the subject drop, the frozen VAE's encoding, noise,
  timesteps, the whole graph under accelerate, AdamW over the decay groups.
- ``in_memory``: the same trainer with the records already decoded in memory (no file reads, no PNG decoding).
- ``floor``: a hand-written minimal step of the same forward/backward: the same modules and
  batch tensors prepared once, VAE encoding, Q-Former, splice, text encoder, U-Net, MSE, backward,
  AdamW; no accelerate, no record reading, no generator bookkeeping.
- ``trainer_checkpointing``: ``trainer`` with gradient checkpointing.

Memory is ``torch.cuda.max_memory_allocated`` on a GPU, else the process's peak resident set
(``ru_maxrss``); "training memory" is that peak minus the resident set after the model was built.
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

MEASURES = ("floor", "trainer", "in_memory", "trainer_checkpointing")


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


def write_records(folder: Path, count: int, size: int) -> Path:
    """``count`` records of ``size`` px PNGs (random subject squares on random backgrounds) as parquet."""
    import datasets
    import numpy as np
    import PIL.Image

    generator = np.random.default_rng(0)
    rows = {"target": [], "composite": [], "caption": [], "subject": []}
    for index in range(count):
        target = generator.integers(0, 255, (size, size, 3), dtype=np.uint8)
        composite = generator.integers(0, 255, (size, size, 3), dtype=np.uint8)
        composite[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = target[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4]
        rows["target"].append(PIL.Image.fromarray(target))
        rows["composite"].append(PIL.Image.fromarray(composite))
        rows["caption"].append(f"a dog sitting on a sofa in a living room, photo {index}")
        rows["subject"].append("dog")
    features = datasets.Features({"target": datasets.Image(), "composite": datasets.Image(), "caption": datasets.Value("string"), "subject": datasets.Value("string")})
    folder.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(folder / "train-00000.parquet"))
    return folder


class InMemoryOrder:
    """Records already decoded in memory, served in the same order as the trainer's own reader."""

    def __init__(self, order, records):
        self.order, self.decoded = order, records

    def next_records(self, count):
        indices = self.order.order.next_indices(count).tolist()
        return [self.decoded[index] for index in indices]

    def state_dict(self):
        return self.order.state_dict()


def measure(args) -> dict:
    import torch

    from blipdiff_plugins import build_builtin_pipeline
    from blipdiff_plugins.training.pretrain import SubjectPretrainer

    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    pipe = build_builtin_pipeline(args.size)
    pipe.set_progress_bar_config(disable=True)
    config = {"steps": args.steps + 1, "batch_size": args.batch_size, "resolution": args.resolution, "mixed_precision": "no",
              "progress_bar": False, "report_to": "none", "gradient_checkpointing": args.measure == "trainer_checkpointing"}
    trainer = SubjectPretrainer(args.data, config=config, pipeline=pipe)
    trainer.setup()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    baseline = torch.cuda.memory_allocated() / 2**20 if device == "cuda" else rss_mib()
    if args.measure == "floor":
        step = hand_written_step(trainer, torch)
    else:
        if args.measure == "in_memory":
            records = trainer.records
            decoded = [records.decode(records.dataset[index], f"record {index}") for index in range(records.num_records)]
            trainer.data_order = InMemoryOrder(trainer.data_order, decoded)
        step = trainer.training_step
    step()  # warm-up
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times = []
    for _ in range(args.steps):
        sync()
        started = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - started)
    result = {"measure": args.measure, "seconds_per_step": min(times), "mean_seconds_per_step": sum(times) / len(times),
              "peak_mib": peak_mib(torch), "baseline_mib": baseline, "device": device,
              "memory_kind": "cuda max_memory_allocated" if device == "cuda" else "peak RSS (ru_maxrss)"}
    result["training_mib"] = result["peak_mib"] - baseline
    return result


def hand_written_step(trainer, torch):
    """The floor: the same modules, one prepared batch, the forward/backward and AdamW written out by hand."""
    import torch.nn.functional as F

    pipe = trainer.pipeline
    unet, text_encoder, encoder, vae = pipe.unet, pipe.text_encoder, pipe.subject_encoder, pipe.vae
    records = trainer.data_order.next_records(trainer.micro_batch_size)
    batch = trainer.make_batch(records, drop=torch.zeros(len(records), dtype=torch.bool), generator=torch.Generator().manual_seed(0))
    from blipdiff_plugins.training.records import preprocess_records

    target_pixels = preprocess_records(records, resolution=trainer.resolution, subject_image_processor=pipe.subject_image_processor,
                                       subject_tokenizer=pipe.subject_tokenizer)["target"].to(trainer.device)
    params = [p for p in trainer.unwrapped_module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": 0.01},
                                   {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}], lr=2e-6)
    scheduler, scaling = trainer.noise_scheduler, vae.config.scaling_factor
    position, count = pipe.prompt_injector.position, encoder.num_query_tokens
    generator = torch.Generator().manual_seed(0)

    def step():
        with torch.no_grad():
            posterior = vae.encode(target_pixels).latent_dist
        latents = (posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator).to(trainer.device)) * scaling
        noise = torch.randn(latents.shape, generator=generator).to(trainer.device)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],), generator=generator).to(trainer.device)
        noisy = scheduler.add_noise(latents, noise, timesteps)
        embeds = encoder(batch["subject_pixels"], batch["subject_ids"], batch["subject_mask"])

        def splice(module, inputs, output):
            return torch.cat([output[:, :position], embeds, output[:, position + count :]], dim=1)

        handle = text_encoder.get_input_embeddings().register_forward_hook(splice)
        hidden = text_encoder(input_ids=batch["input_ids"]).last_hidden_state
        handle.remove()
        prediction = unet(noisy, timesteps, encoder_hidden_states=hidden).sample
        loss = F.mse_loss(prediction.float(), noise.float())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="small", choices=("tiny", "small", "mid"), help="random-weight built-in size (builtin:random-<size>)")
    parser.add_argument("--resolution", type=int, default=128, help="target image side")
    parser.add_argument("--batch-size", type=int, default=4, help="records per step")
    parser.add_argument("--record-size", type=int, default=512, help="side of the stored PNG records")
    parser.add_argument("--records", type=int, default=32, help="records written to the parquet file")
    parser.add_argument("--steps", type=int, default=4, help="timed steps after one warm-up step (the fastest is reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--rounds", type=int, default=2, help="the four measurements are interleaved this many times; the best of each is kept")
    parser.add_argument("--output", default=None, help="write the figures as JSON here")
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)  # internal: one measurement per process
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args)))
        return 0
    with tempfile.TemporaryDirectory() as folder:
        data = write_records(Path(folder) / "records", args.records, args.record_size)
        results: dict[str, dict] = {}
        for _ in range(args.rounds):
            for name in MEASURES:
                command = [sys.executable, __file__, "--size", args.size, "--resolution", str(args.resolution), "--batch-size",
                           str(args.batch_size), "--steps", str(args.steps), "--data", str(data), "--measure", name]
                if args.threads:
                    command += ["--threads", str(args.threads)]
                done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
                if done.returncode:
                    print(done.stderr[-3000:], file=sys.stderr)
                    return 1
                result = json.loads(done.stdout.strip().splitlines()[-1])
                best = results.get(name)
                if best is None or result["seconds_per_step"] < best["seconds_per_step"]:
                    results[name] = {**result, "peak_mib": min(result["peak_mib"], best["peak_mib"]) if best else result["peak_mib"],
                                     "training_mib": min(result["training_mib"], best["training_mib"]) if best else result["training_mib"]}
    for name, r in results.items():
        print(f"{name:>22}: {r['seconds_per_step']:.3f} s/step, peak {r['peak_mib']:.0f} MiB (training +{r['training_mib']:.0f} MiB)", flush=True)
    ratios = {
        "trainer_over_floor": results["trainer"]["seconds_per_step"] / results["floor"]["seconds_per_step"],
        "checkpointing_over_plain_training_memory": results["trainer_checkpointing"]["training_mib"] / results["trainer"]["training_mib"],
        "disk_records_over_in_memory": results["trainer"]["seconds_per_step"] / results["in_memory"]["seconds_per_step"],
    }
    trainer = results["trainer"]
    print(f"config: built-in {args.size}, {args.resolution} px targets from {args.record_size} px PNG records (parquet), batch {args.batch_size}, "
          f"{args.steps} timed steps after 1 warm-up, best of {args.rounds} interleaved rounds; {trainer['memory_kind']} on {trainer['device']}")
    print(f"trainer step / hand-written floor:             {ratios['trainer_over_floor']:.3f} (target <= 1.1)")
    print(f"training memory, checkpointing / without:      {ratios['checkpointing_over_plain_training_memory']:.3f} (target <= 0.7)")
    print(f"step time, records from disk / in memory:      {ratios['disk_records_over_in_memory']:.3f} (target <= 1.05)")
    if args.output:
        Path(args.output).write_text(json.dumps({"args": {k: v for k, v in vars(args).items() if k not in ("data", "measure")},
                                                 "results": results, "ratios": ratios}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
